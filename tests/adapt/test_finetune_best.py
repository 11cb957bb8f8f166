"""Algorithm 1's bookkeeping on a scripted loss sequence: it returns the *best* step's output and weights.

The objective's loss is a scripted number per call plus the weight itself (so that SGD moves
the weight by exactly ``lr`` per step and each step's output is told apart from the others).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vsr_pipeline.adapt.finetune import finetune, finetune_record


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))


def scripted(net: Scalar, values: list[float]):
    calls = {"n": 0}

    def objective(n):
        i = calls["n"]
        calls["n"] += 1
        out = n.w * torch.ones(1, 3, 2, 2)
        return out, n.w + values[i]  # d loss / d w = 1: every step moves w by -lr

    return objective, calls


def test_returns_the_best_steps_output_and_weights_not_the_last():
    net = Scalar()
    objective, calls = scripted(net, [5.0, 3.0, 4.0, 6.0, 0.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    # steps: 0 (w=1.0, 6.0), 1 (w=0.75, 3.75: best), 2 (w=0.5, 4.5), 3 (w=0.25, 6.25) -> 2 misses: stop
    assert calls["n"] == 4 and r.steps == 3
    assert r.best_step == 1
    assert r.losses == pytest.approx([6.0, 3.75, 4.5, 6.25])
    assert r.loss_before == pytest.approx(6.0) and r.loss_after == pytest.approx(3.75)
    assert torch.allclose(r.output, torch.full((1, 3, 2, 2), 0.75))  # the best step's output
    assert r.state["w"].item() == pytest.approx(0.75)  # ... and its weights
    assert net.w.item() == pytest.approx(0.25)  # the net itself ends at the last weights tried
    assert not r.diverged
    record = finetune_record(r, r.output)
    assert record.unchanged is False


def test_no_improvement_keeps_the_first_output_and_says_unchanged():
    net = Scalar()
    objective, _ = scripted(net, [1.0, 2.0, 3.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    assert r.best_step == 0 and torch.allclose(r.output, torch.ones(1, 3, 2, 2))
    assert r.loss_after == r.loss_before == pytest.approx(2.0)
    assert finetune_record(r, r.output).unchanged is True


def test_max_steps_caps_the_updates_and_the_last_step_can_be_best():
    net = Scalar()
    objective, calls = scripted(net, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=3)
    assert r.steps == 3 and calls["n"] == 4 and r.best_step == 3
    assert torch.allclose(r.output, torch.full((1, 3, 2, 2), 0.25))


def test_patience_counts_consecutive_misses_only():
    net = Scalar()
    # miss, new best, miss, new best, miss, miss -> stops after call 7
    objective, calls = scripted(net, [5.0, 6.0, 4.0, 5.0, 3.0, 9.0, 9.0, 0.0])
    r = finetune(net, objective, lr=0.1, patience=2, max_steps=20)
    assert calls["n"] == 7 and r.best_step == 4
    assert r.state["w"].item() == pytest.approx(1.0 - 4 * 0.1)


def test_divergence_returns_the_first_output():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    assert r.diverged and r.state is None
    assert torch.allclose(r.output, torch.ones(1, 3, 2, 2))
    assert finetune_record(r, r.output).fallback is True


def test_backtracking_undoes_a_miss_and_retries_from_the_best_point_with_a_shorter_step():
    net = Scalar()
    objective, calls = scripted(net, [5.0, 3.0, 4.0, 0.0, 9.0, 9.0, 9.0])
    r = finetune(net, objective, lr=0.25, patience=3, max_steps=10, backtrack=0.5)
    # 0: w=1 (6, best)  1: w=.75 (3.75, best)  2: w=.5 (4.5, miss: back to .75, lr .125)
    # 3: w=.625 (.625, best)  4: w=.5 (9.5, miss: back to .625, lr .0625)  5: w=.5625 (9.5625, miss: lr .03125)
    # 6: w=.59375 (9.59375, third miss in a row: stop)
    assert r.losses == pytest.approx([6.0, 3.75, 4.5, 0.625, 9.5, 9.5625, 9.59375])
    assert calls["n"] == 7 and r.steps == 6 and r.best_step == 3
    assert r.state["w"].item() == pytest.approx(0.625)
    assert torch.allclose(r.output, torch.full((1, 3, 2, 2), 0.625))
    assert net.w.item() == pytest.approx(0.59375)  # the last weights tried


def test_without_backtracking_a_miss_is_kept_and_the_next_step_starts_from_it():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, 4.0, 0.0])
    r = finetune(net, objective, lr=0.25, patience=3, max_steps=3)
    assert r.losses == pytest.approx([6.0, 3.75, 4.5, 0.25])  # step 3 from w = .5, not from the best .75


def test_backtracking_restores_the_optimiser_state_of_the_best_point():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, 4.0, 0.0])
    r = finetune(net, objective, lr=0.25, momentum=0.5, patience=3, max_steps=3, backtrack=0.5)
    # SGD momentum buffer b: step 0 b=1 (w .75); step 1 b=1.5 (w .375); miss: back to w .75 and b=1,
    # then b = .5*1 + 1 = 1.5 at lr .125 -> w = .75 - .1875 = .5625
    assert r.losses == pytest.approx([6.0, 3.75, 4.375, 0.5625])


def test_a_non_finite_loss_is_a_miss_when_backtracking_and_a_divergence_otherwise():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan, 0.0])
    r = finetune(net, objective, lr=0.25, patience=3, max_steps=3, backtrack=0.5)
    assert not r.diverged and r.best_step == 3
    assert r.losses[2] == math.inf and r.losses[3] == pytest.approx(0.625)
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan, 0.0])
    r = finetune(net, objective, lr=0.25, patience=1, max_steps=3, backtrack=0.5)  # no patience left: diverged
    assert r.diverged and r.state is None and torch.allclose(r.output, torch.ones(1, 3, 2, 2))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_backtrack_outside_zero_one_is_refused(bad):
    from vsr_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"backtracking factor must be in \[0, 1\)"):
        finetune(Scalar(), scripted(Scalar(), [1.0])[0], backtrack=bad)


def test_make_optimizer():
    from vsr_pipeline.adapt.base import make_optimizer
    from vsr_pipeline.errors import ConfigError

    net = Scalar()
    sgd = make_optimizer(net, "sgd", 0.1, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == 0.1 and sgd.param_groups[0]["momentum"] == 0.9
    adam = make_optimizer(net, "adam", 0.01)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 0.01
    assert adam.param_groups[0]["params"] == [net.w]
    with pytest.raises(ConfigError, match="Unknown optimizer 'rmsprop'; use sgd or adam"):
        make_optimizer(net, "rmsprop", 0.1)


def test_finetune_record_carries_the_run():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, 4.0, 6.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    out = torch.zeros(1, 3, 2, 2)
    rec = finetune_record(r, out, mask_fraction=0.25)
    assert rec.output is out and rec.steps == 3 and rec.mask_fraction == 0.25
    assert rec.loss_before == pytest.approx(6.0) and rec.loss_after == pytest.approx(3.75)
    assert rec.fallback is False and rec.unchanged is False


def test_check_degradation_names_the_mismatch():
    from vsr_pipeline.adapt.finetune import check_degradation
    from vsr_pipeline.degrade.operator import parse_degradation
    from vsr_pipeline.errors import ConfigError

    assert check_degradation(parse_degradation("bicubic", 2), (12, 16), 2.0) == (24, 32)
    assert check_degradation(parse_degradation("gauss:sigma=1", 3), (10, 7), 3.0) == (30, 21)
    with pytest.raises(ConfigError, match=r"'bicubic' is for scale 2, but the output scale is 3; build it with the output scale"):
        check_degradation(parse_degradation("bicubic", 2), (12, 16), 3.0)
    with pytest.raises(ConfigError) as err:  # 7x9 (W x H) at 2.5 -> 18x22, which A' brings back to 8x9, not 7x9
        check_degradation(parse_degradation("bicubic", 2.5), (9, 7), 2.5)
    assert str(err.value) == (
        "The degradation 'bicubic' at scale 2.5 turns the 18x22 output into 8x9, not the 7x9 input, so it cannot be "
        "used for adaptation; pick a scale that divides the frame size (or an integer scale)."
    )


def test_combine_weights_the_losses_and_returns_the_first_output():
    from vsr_pipeline.adapt.finetune import combine

    net = object()
    a = lambda n: (torch.ones(1), torch.tensor(2.0 if n is net else 99.0))  # noqa: E731
    b = lambda n: (torch.zeros(1), torch.tensor(5.0 if n is net else 99.0))  # noqa: E731
    out, loss = combine((a, 1.0), (b, 0.5))(net)
    assert torch.equal(out, torch.ones(1)) and float(loss) == pytest.approx(4.5)
    out, loss = combine((b, 2.0), (a, 3.0))(net)
    assert torch.equal(out, torch.zeros(1)) and float(loss) == pytest.approx(16.0)


def test_defaults_are_the_papers():
    """SGD at 0.005, patience 2, at most 100 steps (Lucas et al.)."""
    net = Scalar()
    objective, calls = scripted(net, [-0.01 * i for i in range(200)])  # always a new minimum
    r = finetune(net, objective)
    assert r.steps == 100 and calls["n"] == 101
    assert r.state["w"].item() == pytest.approx(1.0 - 100 * 0.005)
    net = Scalar()
    objective, calls = scripted(net, [0.0, 1.0, 1.0, 1.0])
    finetune(net, objective)
    assert calls["n"] == 3  # two misses in a row stop it


def test_an_equal_loss_is_not_a_new_minimum():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 5.25, 0.0])  # losses 6.0, 6.0: the second is no improvement
    r = finetune(net, objective, lr=0.25, patience=1, max_steps=5)
    assert r.best_step == 0 and r.steps == 1 and r.state["w"].item() == pytest.approx(1.0)


def test_an_objective_without_output_is_allowed():
    net = Scalar()

    def objective(n):
        return None, n.w * 2

    r = finetune(net, objective, lr=0.1, patience=1, max_steps=2)
    assert r.output is None and r.steps == 2 and r.best_step == 2


def test_a_non_finite_output_with_a_finite_loss_is_a_divergence(caplog):
    net = Scalar()
    calls = {"n": 0}

    def objective(n):
        calls["n"] += 1
        out = n.w * torch.ones(1, 3, 2, 2)
        if calls["n"] == 2:
            out = out * math.nan
        return out, n.w * 0 + 3.0 - calls["n"]

    with caplog.at_level("WARNING"):
        r = finetune(net, objective, lr=0.1, patience=2, max_steps=5)
    assert r.diverged and torch.allclose(r.output, torch.ones(1, 3, 2, 2))
    assert math.isnan(r.losses[-1]) is False and r.losses[-1] == pytest.approx(1.0)
    assert "adaptation diverged (loss 1.0 at step 1); using the trained weights for this frame" in caplog.text


def test_divergence_is_logged_and_recorded_as_nan(caplog):
    net = Scalar()
    objective, _ = scripted(net, [5.0, math.nan])
    with caplog.at_level("WARNING"):
        r = finetune(net, objective, lr=0.25, patience=2, max_steps=5)
    assert r.diverged and len(r.losses) == 2 and math.isnan(r.losses[1])
    assert "adaptation diverged (loss nan at step 1)" in caplog.text


def test_backtracking_a_non_finite_loss_is_logged_and_the_last_step_still_diverges(caplog):
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan, 0.0])
    with caplog.at_level("INFO", logger="vsr_pipeline.adapt.finetune"):
        finetune(net, objective, lr=0.25, patience=3, max_steps=3, backtrack=0.5)
    assert "adaptation step 2 gave a non-finite loss; backtracking" in caplog.text
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan])
    r = finetune(net, objective, lr=0.25, patience=3, max_steps=2, backtrack=0.5)  # NaN at the last step: no retry left
    assert r.diverged
    net = Scalar()
    objective, _ = scripted(net, [math.nan, 0.0])
    r = finetune(net, objective, lr=0.25, patience=3, max_steps=3, backtrack=0.5)  # nothing to go back to
    assert r.diverged and r.steps == 0


def test_two_backtracks_in_a_row_restore_the_same_optimiser_state():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, 4.0, 4.0, 0.0])
    r = finetune(net, objective, lr=0.25, momentum=0.5, patience=3, max_steps=4, backtrack=0.5)
    # best point w=.75 with buffer b=1; each retry from there: b = .5*1 + 1 = 1.5
    # retry 1 at lr .125: w = .75 - .1875 = .5625 (miss); retry 2 at lr .0625: w = .75 - .09375 = .65625
    assert r.losses == pytest.approx([6.0, 3.75, 4.375, 4.5625, 0.65625])
