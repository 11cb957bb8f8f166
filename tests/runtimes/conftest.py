"""Tiny networks for the runtime tests: every built-in model kind and the spandrel architectures in use."""

from __future__ import annotations

import pytest
import torch



from runtime_nets import ConvStack, perturbed  # noqa: E402,F401  (shared with the tests)


def _vsrnet(scale=4):
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig

    torch.manual_seed(0)
    return VSRNet(VSRNetConfig(scale=scale, features=8, blocks=2))


def _compact():
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return _spandrel(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), "compact")


def _esrgan():
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    return _spandrel(ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict(), "esrgan")


def _spandrel(state, name):
    from spandrel import ModelLoader

    from vsr_pipeline.models.community import SpandrelModel

    return SpandrelModel(ModelLoader().load_from_state_dict(state), name)


def _vdsr():
    from vsr_pipeline.models.vdsr import VDSR

    torch.manual_seed(0)
    return VDSR(features=8, convs=8, scale=2)


def _bicubic():
    from vsr_pipeline.models.bicubic import Bicubic

    return Bicubic(3)


def _builtin(name):
    def build():
        from vsr_pipeline.models.registry import load_model

        return load_model(name)

    return build


# every built-in model (the shipped ones at their real size, small inputs keep them fast),
# and tiny instances of each architecture family the project loads
MODELS = {
    "vsrnet-x4": _builtin("vsrnet-x4"),
    "vsrnet-x4-gan": _builtin("vsrnet-x4-gan"),
    "compact-x4-gan": _builtin("compact-x4-gan"),
    "bicubic": _bicubic,
    "tiny-vsrnet": _vsrnet,
    "vdsr": _vdsr,
    "spandrel-compact": _compact,
    "spandrel-esrgan": _esrgan,
}


@pytest.fixture(params=sorted(MODELS))
def any_model(request):
    """(name, model) for each entry of MODELS, in eval mode on the CPU."""
    return request.param, MODELS[request.param]().eval()
