"""Losses, the patch discriminator and PGD perturbation."""

from __future__ import annotations

import pytest
import torch

from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig
from vsr_pipeline.train.losses import (
    CharbonnierLoss,
    GANLoss,
    PatchDiscriminator,
    PerceptualLoss,
    build_pixel_loss,
    pgd_perturb,
)


def test_pixel_losses():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert build_pixel_loss("l1")(a, b).item() == pytest.approx(0.5)
    assert build_pixel_loss("mse")(a, b).item() == pytest.approx(0.25)
    assert CharbonnierLoss(eps=1e-6)(a, b).item() == pytest.approx(0.5, rel=1e-4)
    with pytest.raises(ConfigError, match="Unknown pixel loss"):
        build_pixel_loss("l3")


def test_perceptual_loss_offline_and_differentiable():
    loss = PerceptualLoss()
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    d = loss(y, x)
    assert d.item() > 0
    d.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training  # stays frozen in eval mode


def test_discriminator_and_gan_loss():
    disc = PatchDiscriminator(features=8)
    logits = disc(torch.rand(2, 3, 32, 48))
    assert logits.shape == (2, 1, 4, 6)
    gan = GANLoss()
    assert gan(torch.full((1, 1, 2, 2), 10.0), True).item() < 1e-3
    assert gan(torch.full((1, 1, 2, 2), 10.0), False).item() > 5


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    net = VSRNet(VSRNetConfig(scale=2, features=8, blocks=1))
    lr = torch.rand(2, 5, 3, 8, 8) * 0.8 + 0.1
    hr = torch.rand(2, 3, 16, 16)
    eps = 4 / 255
    adv = pgd_perturb(net, lr, hr, eps=eps, steps=3, generator=torch.Generator().manual_seed(0))
    assert adv.shape == lr.shape and not adv.requires_grad
    assert (adv - lr).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    l1 = torch.nn.functional.l1_loss
    with torch.no_grad():
        assert l1(net(adv), hr) > l1(net(lr), hr)
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    assert pgd_perturb(net, lr, hr, eps=0.0) is lr
