"""MC-dropout variance, the artifact mask (Sec. VI) and masked fine-tuning (Eq. 3, 4)."""

from __future__ import annotations

import pytest
import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.masked import adapt_masked
from vsr_pipeline.adapt.uncertainty import artifact_mask, median_filter, variance_map
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.bicubic import Bicubic


def lr_windows():
    return parse_degradation("bicubic", 2)(hr_clip(h=24, w=24))[None]  # (1, 5, 3, 12, 12)


def test_p_zero_gives_zero_variance_and_an_empty_mask():
    v = variance_map(tiny_net(2), lr_windows(), (24, 24), passes=4, p=0.0)
    assert v.shape == (1, 1, 24, 24) and torch.count_nonzero(v) == 0
    assert artifact_mask(v).sum() == 0


def test_dropout_gives_variance_and_is_seeded():
    net = tiny_net(2)
    a = variance_map(net, lr_windows(), (24, 24), passes=6, p=0.05, seed=3)
    b = variance_map(net, lr_windows(), (24, 24), passes=6, p=0.05, seed=3)
    assert a.max() > 0 and torch.equal(a, b)
    assert net.mc_dropout is None  # the caller's model is untouched


def test_mask_is_variance_above_mean_then_median_filtered():
    v = torch.zeros(1, 1, 8, 8)
    v[..., 2:6, 2:6] = 1.0  # a 4x4 block above the mean
    v[..., 0, 7] = 5.0  # an isolated outlier
    raw = artifact_mask(v, median=1)
    assert raw.sum() == 17 and raw[0, 0, 0, 7] == 1
    m = artifact_mask(v, median=3)
    assert m[0, 0, 0, 7] == 0  # isolated pixel removed
    assert m[0, 0, 3, 3] == 1 and m.mean() < raw.mean()
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 1:4] = x[0, 0, 1:4, 2] = 1  # a plus sign: 5 of the centre's 9 neighbours
    assert median_filter(x, 3)[0, 0, 2, 2] == 1 and median_filter(x, 3)[0, 0, 0, 0] == 0


def test_output_keeps_trained_pixels_outside_the_mask(tmp_path):
    net = tiny_net(2)
    w = lr_windows()
    r = adapt_masked(net, w, parse_degradation("bicubic", 2), 2, passes=6, p=0.05, lr=0.5, max_steps=3)
    r3 = adapt_masked(net, w, parse_degradation("bicubic", 2), 2, passes=6, p=0.05, lr=0.5, max_steps=3, loss="eq3")
    assert torch.equal(r3.mask, r.mask) and r3.output.shape == r.output.shape
    with torch.no_grad():
        trained = upscale(net, w, (24, 24))
    outside = r.mask == 0
    assert 0 < r.mask.mean() < 1
    assert torch.allclose(r.output.expand_as(trained)[outside.expand_as(trained)], trained[outside.expand_as(trained)])
    adapter = Adapter(net, 2, AdaptConfig(optimizer="sgd", method="masked", mc_passes=4, mc_dropout=0.05, max_steps=2, save_masks=str(tmp_path / "m")))
    out = adapter.process(w, [7], [0])
    assert out.shape == (1, 3, 24, 24)
    assert (tmp_path / "m" / "mask_000007.png").is_file() and (tmp_path / "m" / "variance_000007.png").is_file()
    assert 0 <= adapter.report.frames[0].mask_fraction <= 1


def test_masked_needs_a_model_with_dropout():
    with pytest.raises(ConfigError, match="cannot host MC-dropout"):
        Adapter(Bicubic(2), 2, AdaptConfig(optimizer="sgd", method="masked"))
    with pytest.raises(ConfigError, match="at least 2"):
        AdaptConfig(optimizer="sgd", method="masked", mc_passes=1)


def test_eq4_blend_is_exact_outside_and_changes_inside_the_mask():
    """Outside M the output is the trained network's, bit for bit; inside it is the tuned copy's, which moved."""
    from vsr_pipeline.adapt.base import trainable_copy

    net, w = tiny_net(2), lr_windows()
    r = adapt_masked(net, w, parse_degradation("bicubic", 2), 2, passes=6, p=0.05, lr=0.5, max_steps=3)
    assert r.tune.best_step > 0 and not r.tune.diverged  # the fine-tuning did improve the loss
    with torch.no_grad():
        trained = upscale(net, w, (24, 24))
        tuned_net = trainable_copy(net)
        tuned_net.load_state_dict(r.tune.state)
        tuned = upscale(tuned_net.eval(), w, (24, 24))  # the best weights, rebuilt here
    inside = (r.mask == 1).expand_as(trained)
    outside = ~inside
    assert 0 < inside.float().mean() < 1
    assert torch.equal(r.output[outside], trained[outside])  # Eq. 4: (1 − M) · f_ψ̃(y), exactly
    assert torch.allclose(r.output[inside], tuned[inside], atol=1e-6)  # M · f_ψ̂(y)
    changed = (r.output[inside] - trained[inside]).abs() > 1e-6
    assert changed.float().mean() > 0.9  # adaptation ran: the masked pixels moved
