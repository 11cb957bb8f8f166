"""ZSSR-style internal objective with the DoG pyramid loss, and the Adapter's degradation hook."""

from __future__ import annotations

import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.base import trainable_copy
from vsr_pipeline.adapt.finetune import finetune
from vsr_pipeline.adapt.dog import DoGLoss
from vsr_pipeline.adapt.internal import internal_objective
from vsr_pipeline.degrade.kernels import gaussian_kernel
from vsr_pipeline.degrade.operator import parse_degradation


def test_dog_loss_is_zero_for_equal_images_and_weights_the_bands():
    x = torch.rand(2, 3, 20, 20)
    assert DoGLoss()(x, x) == 0
    y = x + 0.1 * torch.randn_like(x)  # mostly high-frequency difference
    assert DoGLoss(weight=10)(x, y) > 5 * DoGLoss(weight=1)(x, y)
    assert DoGLoss()(torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5)) > 0  # smaller than the kernel


def test_internal_objective_lowers_its_loss():
    lr = parse_degradation("bicubic", 2)(hr_clip(h=32, w=32))[None]  # (1, 5, 3, 16, 16)
    deg = parse_degradation("bicubic", 2)
    r = finetune(trainable_copy(tiny_net(2)), internal_objective(lr, deg, (32, 32), DoGLoss()), lr=0.05, max_steps=5)
    assert r.output.shape == (1, 3, 32, 32) and r.loss_after < r.loss_before


def test_adapter_internal_and_both():
    lr = parse_degradation("bicubic", 2)(hr_clip(h=32, w=32))[None]
    for cfg in (AdaptConfig(optimizer="sgd", method="internal", lr=0.05, max_steps=2), AdaptConfig(optimizer="sgd", method="consistency", objective="both", lr=0.05, max_steps=2)):
        a = Adapter(tiny_net(2), 2, cfg)
        assert a.process(lr, [0], [0]).shape == (1, 3, 32, 32)
        assert a.report.frames[0].steps == 2


def test_estimate_hook_is_called_once_per_scene():
    lr = parse_degradation("bicubic", 2)(hr_clip(h=16, w=16))[None]
    calls = []

    def hook(scene, window):
        calls.append(scene)
        return gaussian_kernel(1.0, 7)  # (7, 7) kernel resolving "estimate"

    a = Adapter(tiny_net(2), 2, AdaptConfig(optimizer="sgd", method="consistency", degradation="estimate", max_steps=1), degradation_for_scene=hook)
    a.process(torch.cat([lr, lr]), [0, 1], [0, 0])
    a.process(lr, [2], [1])
    assert calls == [0, 1]
    assert a.degradation(0, lr[0]).resolved
