import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clips import make_clip  # noqa: E402


@pytest.fixture
def hr(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "hr.mp4", n=6, size=(64, 48)).path
