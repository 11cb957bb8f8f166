"""Issue 25's bars on the shape of the code: io/ imports nothing above it; batch/ opens no container itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "vsr_pipeline"


def test_io_imports_nothing_above_it():
    modules = sorted(f"vsr_pipeline.io.{p.stem}" for p in (PACKAGE / "io").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.startswith('vsr_pipeline'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    above = [m for m in loaded if not m.startswith("vsr_pipeline.io") and m not in ("vsr_pipeline", "vsr_pipeline.errors", "vsr_pipeline.limits")]
    assert above == [], f"io/ loads modules above it: {above}"
    assert "vsr_pipeline.io.sequence" in loaded and "vsr_pipeline.io.options" in loaded


def test_batch_opens_no_container_itself():
    for path in sorted((PACKAGE / "batch").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "av" for a in node.names), f"{path.name} imports av"
            elif isinstance(node, ast.ImportFrom):
                assert node.module != "av" and not (node.module or "").startswith("av."), f"{path.name} imports from av"
                assert not (node.module == "vsr_pipeline.io.probe" and any(a.name == "open_input" for a in node.names)), path.name
                assert node.module != "vsr_pipeline.io.reader" or not any(a.name == "VideoReader" for a in node.names), path.name
