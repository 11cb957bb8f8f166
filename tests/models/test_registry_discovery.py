"""Model discovery through faked entry points (nothing is installed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models import base, entries, registry, vsrnet
from vsr_pipeline.models.base import ModelEntry, ModelInfo
from vsr_pipeline.models.entries import BICUBIC


class FakeEntryPoint:
    """Enough of importlib.metadata.EntryPoint for the registry: name, dist, load()."""

    def __init__(self, name: str, target, package: str) -> None:
        self.name, self.group = name, registry.GROUP
        self._target = target
        self.dist = SimpleNamespace(metadata={"Name": package})

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


class Doubler(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.info = ModelInfo(name="doubler", scale=2, frames=1, trainable=False)

    def forward(self, x):
        return torch.nn.functional.interpolate(x[:, x.shape[1] // 2], scale_factor=2)


PLUGIN = ModelEntry(name="doubler", scale=2, frames=1, description="test plugin", build=Doubler)


@pytest.fixture
def fake_eps(monkeypatch):
    eps = [
        FakeEntryPoint("bicubic", BICUBIC, "vsr-pipeline"),
        FakeEntryPoint("vsrnet-x4", entries.VSRNET_X4, "vsr-pipeline"),
        FakeEntryPoint("vsrnet-x4-gan", entries.VSRNET_X4_GAN, "vsr-pipeline"),
        FakeEntryPoint("doubler", PLUGIN, "some-plugin"),
        FakeEntryPoint("broken", ImportError("no module named nowhere"), "broken-plugin"),
        FakeEntryPoint("notanentry", object(), "odd-plugin"),
        FakeEntryPoint("hijack", ModelEntry("vsrnet-x4", 4, 5, "impostor", build=Doubler), "evil-plugin"),
    ]

    def entry_points(*, group=None):
        return [ep for ep in eps if group in (None, ep.group)]

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    return eps


def test_builtins_and_plugins_are_discovered(fake_eps, caplog):
    found = registry.available_models()
    assert list(found) == ["bicubic", "doubler", "vsrnet-x4", "vsrnet-x4-gan"]
    assert found["vsrnet-x4"].package == "vsr-pipeline"
    assert found["vsrnet-x4"].entry is entries.VSRNET_X4  # the impostor did not replace it
    assert found["doubler"].package == "some-plugin"
    assert "broken" in caplog.text and "not a ModelEntry" in caplog.text


def test_disable_env_keeps_only_builtins(fake_eps, monkeypatch):
    monkeypatch.setenv(registry.DISABLE_ENV, "1")
    assert list(registry.available_models()) == ["bicubic", "vsrnet-x4", "vsrnet-x4-gan"]


def test_load_model_by_name(fake_eps):
    model = registry.load_model("doubler")
    assert model(torch.rand(1, 1, 3, 4, 5)).shape == (1, 3, 8, 10)


def test_unknown_name_lists_models(fake_eps):
    with pytest.raises(ModelError, match="available models: bicubic, doubler, vsrnet-x4, vsrnet-x4-gan"):
        registry.load_model("vsrnet-x9")


def test_missing_shipped_weights_is_a_model_error(fake_eps, monkeypatch, tmp_path):
    monkeypatch.setattr(base, "shipped_weights", lambda filename: tmp_path / filename)
    with pytest.raises(ModelError, match="vsrnet-x4.*missing"):
        registry.load_model("vsrnet-x4")


def test_weights_path_goes_through_community_loader(fake_eps, tmp_path):
    path = tmp_path / "mine.safetensors"
    vsrnet.save_vsrnet(vsrnet.VSRNet(vsrnet.VSRNetConfig(features=4, blocks=1)), path)
    model = registry.load_model(str(path))
    assert isinstance(model, vsrnet.VSRNet) and model.info.name == "mine"
