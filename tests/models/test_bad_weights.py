"""Weights that cannot give a picture: a text file named .pth, NaN / infinite weights, finite weights
whose arithmetic overflows. Each is one sentence and its exit code, and nothing is left at the output path
(these used to end in "Internal error: IndexError" or in an all-black video with exit 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from broken_models import nan_pth, overflow_pth
from click.testing import CliRunner
from clips import make_clip

from vsr_pipeline.cli import main
from vsr_pipeline.errors import ModelError, VsrError
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "batch"))
from batch_helpers import leftovers, vsrpipe


def enhance(tmp_path, model: Path, code: int, *args: str) -> str:
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    before = sorted(p.name for p in tmp_path.iterdir())
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "out.mp4"), "--model", str(model), "-s", "2", "-q", *args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and "Internal error" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before and leftovers(tmp_path) == []
    return r.output


TEXTS = {
    "notes": "abc def ghi\n",  # the unpickler used to fail with IndexError: pop from empty list
    "config": "config file\nname: x\n",  # starts with pickle's GLOBAL opcode: was "pickles code (onfig)"
    "hello": "hello world\nthis is text\n",  # was "corrupt ... (101)"
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_text_file_named_pth(tmp_path, text):
    (tmp_path / "model.pth").write_text(text)
    out = enhance(tmp_path, tmp_path / "model.pth", ModelError.exit_code)
    assert f"Weights file {str(tmp_path / 'model.pth')!r} is a text file, not a PyTorch weights file; it cannot be read as a model." in out


def test_text_file_named_pth_in_a_real_process(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    (tmp_path / "model.pth").write_text(TEXTS["notes"])
    p = vsrpipe("enhance", c.path, tmp_path / "out.mp4", "--model", tmp_path / "model.pth", timeout=120)
    assert p.returncode == 5, p.stderr
    assert "is a text file, not a PyTorch weights file; it cannot be read as a model." in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.mp4", "model.pth"]


def test_git_lfs_pointer_named_pth(tmp_path):
    (tmp_path / "model.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 67040\n")
    out = enhance(tmp_path, tmp_path / "model.pth", ModelError.exit_code)
    assert "is a Git LFS pointer (fetch the real file with `git lfs pull`), not a PyTorch weights file" in out


def test_binary_junk_stays_corrupt(tmp_path):
    (tmp_path / "model.pth").write_bytes(b"\x00\x01abc def ghi\x02")
    out = enhance(tmp_path, tmp_path / "model.pth", ModelError.exit_code)
    assert "is corrupt or not a PyTorch weights file" in out


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_pth_weights(tmp_path, value):
    path = nan_pth(tmp_path / "broken.pth", value)
    out = enhance(tmp_path, path, ModelError.exit_code)
    assert (f"Model {str(path)!r} cannot be used: its weights hold 1 NaN or infinite value(s) (in net.body.2.weight); "
            "the file is damaged or was saved from a training run that diverged.") in out


def test_nan_in_our_own_safetensors(tmp_path):
    torch.manual_seed(0)
    net = VSRNet(VSRNetConfig(scale=2, features=8, blocks=1))
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = tmp_path / "ours.safetensors"
    save_vsrnet(net, path, name="ours")
    with pytest.raises(ModelError, match=r"cannot be used: its weights hold \d+ NaN or infinite value\(s\)"):
        load_model(str(path), scale=2)


def test_overflowing_model_fails_at_the_first_frame(tmp_path):
    path = overflow_pth(tmp_path / "overflow.pth")
    load_model(str(path))  # finite weights: loading succeeds
    out = enhance(tmp_path, path, VsrError.exit_code)
    assert ("Model 'overflow' gave NaN or infinite values for the first frame, so the video would come out black: the "
            "network's arithmetic overflows although its weights are finite, so the model is most likely broken; try another model.") in out


def test_overflowing_model_fails_with_tiles_too(tmp_path):
    out = enhance(tmp_path, overflow_pth(tmp_path / "overflow.pth"), VsrError.exit_code, "--tile", "16")
    assert "gave NaN or infinite values for the first frame" in out


class _Constant(torch.nn.Module):
    """A ×1 single-image 'model' whose output is ``value`` everywhere."""

    def __init__(self, value: float) -> None:
        super().__init__()
        from vsr_pipeline.models.base import ModelInfo

        self.value = value
        self.info = ModelInfo(name="constant", scale=1, frames=1)

    def forward(self, x):
        return torch.full_like(x[:, 0], self.value)


def test_first_output_only_and_the_half_hint():
    import dataclasses

    from vsr_pipeline.runner import Runner

    windows = torch.rand(1, 5, 3, 8, 8)
    runner = Runner(_Constant(0.5), 1)
    assert torch.equal(runner(windows), torch.full((1, 3, 8, 8), 0.5))
    runner.model.value = float("nan")
    assert torch.equal(runner(windows), torch.zeros(1, 3, 8, 8))  # later frames are cleaned, not checked
    fresh = Runner(_Constant(float("inf")), 1)
    fresh.config = dataclasses.replace(fresh.config, half=True)  # as on CUDA with --half
    with pytest.raises(VsrError, match=r"first frame, so the video would come out black: fp16 arithmetic overflows with this model; run without --half\.$"):
        fresh(windows)
