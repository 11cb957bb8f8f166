import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clips import make_clip  # noqa: E402


@pytest.fixture
def clip(tmp_path):
    """A 10-frame 64x48 H.264 mp4 at 25 fps."""
    return make_clip(tmp_path / "in.mp4")
