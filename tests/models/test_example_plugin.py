"""The example plugin package installs, is discovered through its entry point, and runs.

The install test pip-installs the plugin into the running venv and uninstalls it again
(7-20 s on this shared CPU, so it is marked slow: run it with ``pytest -m slow``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsr_pipeline.models import registry

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "plugins" / "vsrpipe-example-plugin"
DIST = "vsrpipe-example-plugin"


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # pip install + two fresh interpreters: 7-20 s on this shared CPU
def test_plugin_install_discover_run_uninstall(tmp_path, monkeypatch):
    if _pip("show", DIST).returncode == 0:
        pytest.skip(f"{DIST} is already installed in this environment; not touching it")
    src = tmp_path / "plugin"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(src))
    assert done.returncode == 0, done.stderr
    try:
        monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
        # a fresh interpreter sees the new distribution's metadata for sure
        code = (
            "from vsr_pipeline.models.registry import available_models, load_model\n"
            "import torch\n"
            "found = available_models()\n"
            "print(found['example-nearest'].package)\n"
            "m = load_model('example-nearest')\n"
            "print(tuple(m(torch.rand(1, 1, 3, 4, 5)).shape))\n"
        )
        env_on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert env_on.returncode == 0, env_on.stderr
        assert env_on.stdout.split("\n")[:2] == ["vsrpipe-example-plugin", "(1, 3, 8, 10)"]

        code_off = "from vsr_pipeline.models.registry import available_models\nprint('example-nearest' in available_models())\n"
        env = {**__import__("os").environ, registry.DISABLE_ENV: "1"}
        off = subprocess.run([sys.executable, "-c", code_off], capture_output=True, text=True, timeout=120, env=env)
        assert off.returncode == 0, off.stderr
        assert off.stdout.strip() == "False"
    finally:
        gone = _pip("uninstall", "--yes", "--quiet", DIST)
        assert gone.returncode == 0, gone.stderr
    assert _pip("show", DIST).returncode != 0


def test_plugin_entry_in_process():
    """Without installing: the plugin's ModelEntry builds a working protocol model."""
    sys.path.insert(0, str(PLUGIN_SRC / "src"))
    try:
        import vsrpipe_example_plugin as plugin
    finally:
        sys.path.remove(str(PLUGIN_SRC / "src"))
    model = plugin.ENTRY.build()
    x = torch.rand(2, 1, 3, 4, 5)
    out = model(x)
    assert out.shape == (2, 3, 8, 10) and model.info.scale == 2
    assert torch.equal(out[:, :, ::2, ::2], x[:, 0])
