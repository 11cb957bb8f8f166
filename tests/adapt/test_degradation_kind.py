"""The degradation spec is parsed once, when the AdaptConfig is made; its kind is what the stage reads (issue 25)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.errors import ConfigError


@pytest.mark.parametrize("spec,kind", [
    ("bicubic", "bicubic"), ("gauss:sigma=2.0", "gauss"), ("disk:radius=2", "disk"),
    ("aniso:l1=2,l2=1,theta=0.5", "aniso"), ("estimate", "estimate"), ("estimate,down=bicubic", "estimate"),
])
def test_kind_of_each_spec(spec, kind):
    assert AdaptConfig(method="consistency", degradation=spec).degradation_kind == kind


def test_kind_survives_copies_and_replace():
    cfg = AdaptConfig(method="online", degradation="estimate")
    for other in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg)):
        assert other.degradation_kind == "estimate" and other == cfg
    assert dataclasses.replace(cfg, degradation="gauss:sigma=1").degradation_kind == "gauss"
    assert AdaptConfig() == AdaptConfig() and hash(AdaptConfig()) == hash(AdaptConfig())


def test_kernel_method_needs_an_estimate_kind():
    AdaptConfig(method="consistency", degradation="estimate,down=bicubic", kernel_method="kernelgan")
    with pytest.raises(ConfigError, match="--kernel-method applies only with --degradation estimate"):
        AdaptConfig(method="consistency", degradation="gauss:sigma=2", kernel_method="kernelgan")
