"""timm as the oracle: every preset with a timm twin computes timm's function with timm's weights.

Each distinct structure among the presets (the spec with `layers` set aside) is built at a reduced depth, on both
sides with the same override, so every kind of block, shortcut and stem runs: timm's model gets random weights
and random batch-norm statistics, they are loaded into ours through `load_state_dict`, and the outputs must agree
to a relative error below 1e-4 with equal parameter counts. Full depth is checked on the meta device for one
preset of each family, and mult-adds against torchinfo's count of timm's own model.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resnet_core import PRESETS, build_model, load_state_dict, summarize
from resnet_core.checkpoints import map_keys

timm = pytest.importorskip("timm")
torchinfo = pytest.importorskip("torchinfo")

SHALLOW = (1, 2, 1, 1)  # a second block in stage 2 runs the identity shortcut too
TIMM_PRESETS = [name for name, p in PRESETS.items() if p.timm]


def _structures() -> dict[str, str]:
    """One preset per structure (the spec without its depth and bottleneck widths), the first in table order."""
    seen: dict[object, str] = {}
    for name in TIMM_PRESETS:
        spec = PRESETS[name].spec
        key = dataclasses.replace(spec, layers=(1,), groups=min(spec.groups, 2), width_per_group=64)
        seen.setdefault(key, name)
    return {name: PRESETS[name].timm for name in seen.values()}


STRUCTURES = _structures()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small convolutions on a shared 2-core machine: one thread is several times faster than two that wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights, biases and batch-norm statistics (positive variances), so no layer is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                noise = torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var") else \
                    torch.randn(t.shape, generator=g) * 0.1
                t.copy_(noise)


def test_every_timm_family_is_covered():
    assert len(TIMM_PRESETS) >= 80
    assert len(STRUCTURES) >= 25
    families = ("resnet", "resnext", "seresnet", "seresnext", "ecaresnet", "resnetrs", "resnetaa", "resnetblur",
                "wide_resnet", "legacy_seresnet", "legacy_seresnext", "resnetv2", "skresnet", "skresnext")
    assert all(any(PRESETS[n].timm.startswith(f) for n in TIMM_PRESETS) for f in families)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_timm_weights_give_timm_outputs(name):
    timm_name = STRUCTURES[name]
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name, layers=SHALLOW).eval()
    ours = build_model(name, layers=SHALLOW).eval()
    assert count(ours) == count(theirs)
    randomize(theirs)
    load_state_dict(ours, theirs.state_dict(), source="timm")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.abs().max() > 1e-3  # the comparison means something
    assert ((got - expected).norm() / expected.norm()).item() < 1e-4


@pytest.mark.parametrize("name", TIMM_PRESETS)
def test_every_preset_has_timms_parameters_and_names(name):
    """Every preset, its widths included, at the reduced depth (full depth below for one of each family)."""
    with torch.device("meta"):
        theirs = timm.create_model(PRESETS[name].timm, layers=SHALLOW)
    ours = build_model(name, device="meta", layers=SHALLOW)
    assert count(ours) == count(theirs)
    assert ({k: v.shape for k, v in map_keys(theirs.state_dict(), "timm").items()} ==
            {k: v.shape for k, v in ours.state_dict().items()})


@pytest.mark.parametrize("name", ["resnet50d", "resnet26t", "resnet50s", "resnetrs50", "ecaresnetlight",
                                  "seresnext26d_32x4d", "resnetblur50", "resnetaa34d", "resnet50_gn",
                                  "legacy_seresnet18", "legacy_seresnext26_32x4d", "wide_resnet50_2", "resnetv2_50",
                                  "skresnet34", "skresnext50_32x4d"])
def test_full_depth_parameters_and_names_equal_timms(name):
    with torch.device("meta"):
        theirs = timm.create_model(PRESETS[name].timm)
    ours = build_model(name, device="meta")
    assert count(ours) == count(theirs)
    assert ({k: v.shape for k, v in map_keys(theirs.state_dict(), "timm").items()} ==
            {k: v.shape for k, v in ours.state_dict().items()})


@pytest.mark.parametrize("name", ["resnet26t", "ecaresnet26t", "resnetrs50", "resnetblur18", "resnet50_gn",
                                  "legacy_seresnet18"])
def test_mult_adds_equal_torchinfos_count_of_timms_model(name):
    theirs = timm.create_model(PRESETS[name].timm, layers=SHALLOW)
    info = torchinfo.summary(theirs, input_size=(1, 3, 64, 64), verbose=0, device="cpu")
    ours = summarize(name, (3, 64, 64), 1, layers=SHALLOW)
    assert (ours.total_params, ours.mult_adds) == (info.total_params, info.total_mult_adds)


@pytest.mark.parametrize("name", ["skresnet18", "skresnext50_32x4d"])
def test_selective_kernel_mult_adds_equal_torchinfos_count_of_timms_model(name):
    """torchinfo counts only leaf modules, and timm's BatchNormAct2d (norm + ReLU in one, inside the SK paths and the
    blocks' conv+norm pairs) has children; our plain BatchNorm2d is a leaf, so its per-sample affine counts."""
    theirs = timm.create_model(PRESETS[name].timm, layers=SHALLOW)
    info = torchinfo.summary(theirs, input_size=(1, 3, 64, 64), verbose=0, device="cpu")
    norm_act = sum(p.numel() for m in theirs.modules() if type(m).__name__ == "BatchNormAct2d" for p in m.parameters())
    ours = summarize(name, (3, 64, 64), 1, layers=SHALLOW)
    assert norm_act > 0
    assert (ours.total_params, ours.mult_adds) == (info.total_params, info.total_mult_adds + norm_act)
