"""Every enhance option does what it says or is refused before decoding (exit 7, one sentence, no output)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from vsr_pipeline import api
from vsr_pipeline.adapt.config import DEFAULT_LR, AdaptConfig
from vsr_pipeline.cli import main
from vsr_pipeline.config import EnhanceConfig, RunnerConfig
from vsr_pipeline.errors import ConfigError

from clips import make_clip


def run_refused(tmp_path, args: list[str], match: str) -> None:
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    out = tmp_path / "out.mp4"
    before = set(tmp_path.iterdir())
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(out), "--model", "bicubic", "-s", "2", *args])
    assert r.exit_code == 7, r.output
    assert match in r.output, r.output
    assert r.output.count("Error:") == 1
    assert set(tmp_path.iterdir()) == before  # no output, no temporary file


@pytest.mark.parametrize(
    "args,match",
    [
        (["--degradation", "gauss:sigma=abc"], "Invalid degradation spec 'gauss:sigma=abc'"),
        (["--degradation", "gauss:sigma=2"], "--degradation applies only with --adapt consistency or masked or online or internal"),
        (["--mc-passes", "10", "--adapt", "consistency"], "--mc-passes applies only with --adapt masked"),
        (["--steps-per-frame", "5"], "--steps-per-frame applies only with --adapt online"),
        (["--max-steps", "5", "--adapt", "online"], "--max-steps applies only with --adapt consistency or masked or internal"),
        (["--adapt-lr", "0.01"], "--adapt-lr applies only with --adapt"),
        (["--adapt", "consistency", "--kernel-method", "kernelgan"], "--kernel-method applies only with --degradation estimate"),
        (["--tile-pad", "8"], "--tile-pad applies only with --tile"),
        (["--scale", "nan"], "--scale must be a finite number"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--encoder-args", "-bogus 1"], "bogus"),
        (["--encoder-args", "-bogus 1", "--backend", "ffmpeg"], "bogus"),
        (["--crf", "99"], "--crf 99"),
    ],
)
def test_ignored_or_bad_options_are_refused(tmp_path, args, match):
    run_refused(tmp_path, args, match)


def test_cli_and_api_agree_on_learning_rates(tmp_path, monkeypatch):
    seen = {}

    def fake_enhance(src, dst, **kw):
        seen["config"] = api.make_config(**{k: v for k, v in kw.items() if k != "progress"})
        raise ConfigError("stop here")

    monkeypatch.setattr(api, "enhance", fake_enhance)
    c = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    for optimizer in ("sgd", "adam"):
        r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "o.mp4"), "--adapt", "consistency",
                                      "--adapt-optimizer", optimizer])
        assert r.exit_code == 7
        cli_lr = seen["config"].adapt.learning_rate
        api_lr = api.make_config(adapt="consistency", optimizer=optimizer).adapt.learning_rate
        assert cli_lr == api_lr == DEFAULT_LR[optimizer]
    assert DEFAULT_LR == {"adam": 3e-4, "sgd": 0.005}


def test_cli_defaults_are_the_dataclass_defaults():
    params = {p.name: p for p in main.get_command(None, "enhance").params}
    assert params["scale"].default == EnhanceConfig().scale
    assert params["model"].default == EnhanceConfig().model
    assert params["tile_pad"].default == RunnerConfig().tile_pad
    assert params["scene_threshold"].default == EnhanceConfig().scene_threshold
    assert params["patience"].default == AdaptConfig().patience
    assert params["steps_per_frame"].default == AdaptConfig().steps_per_frame
    assert params["mc_passes"].default == AdaptConfig().mc_passes
    assert tuple(params["adapt"].type.choices) == ("none", "consistency", "masked", "online", "internal")


@pytest.mark.parametrize("argv", [["--help"], ["enhance", "--help"], ["batch", "--help"], ["batch-of-nothing", "--help"], ["models"],
                                  ["degrade", "--help"], ["estimate-kernel", "--help"], ["train", "--help"]])
def test_help_and_models_do_not_import_torch(argv):
    code = (
        "import sys\n"
        "from vsr_pipeline.cli import main\n"
        "try:\n"
        f"    main({argv!r}, prog_name='vsrpipe')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().endswith("NO-TORCH"), r.stderr
    if argv == ["models"]:
        assert "vsrnet-x4" in r.stdout
    elif argv[0] != "batch-of-nothing":
        assert "Usage:" in r.stdout


def test_package_import_is_light_and_names_resolve():
    code = "import sys, vsr_pipeline; assert 'torch' not in sys.modules; vsr_pipeline.enhance; vsr_pipeline.Enhancer; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr
