"""timm as the oracle: every name timm registers in its ResNet-family modules is a preset computing timm's function.

timm 1.0.31 registers 132 names in resnet.py, resnetv2.py, res2net.py, resnest.py, senet.py and sknet.py; each is a
preset of the same name. Each distinct structure among them (the spec with its depth and bottleneck widths set
aside) is built at a reduced depth, on both sides with the same depth, so every kind of block, shortcut and stem runs:
timm's model gets random weights and random batch-norm statistics, they are loaded into ours through
`load_state_dict`, and the outputs must agree to a relative error below 1e-6 with equal parameter counts. The names
over 150M parameters run at one block per stage (their full depth: benchmarks/bench_timm_full.py). Every name's
parameters and state_dict names are compared at the reduced depth, one name of each family at full depth (on the
meta device), and mult-adds against torchinfo's count of timm's own model.
"""

from __future__ import annotations

import dataclasses
import re
from functools import partial

import pytest
import timm  # a pinned dev requirement (requirements-dev.txt): its absence is a failure, not a skip
import torch
import torchinfo
from timm.layers import StdConv2d
from timm.models.resnetv2 import ResNetV2

from resnet_core import PRESETS, build_model, load_state_dict, summarize
from resnet_core.models.weights import map_keys

SHALLOW = (1, 2, 1, 1)  # a second block in stage 2 runs the identity shortcut too
ONE_PER_STAGE = (1, 1, 1, 1)
TIMM_MODULES = ("resnet", "resnetv2", "res2net", "resnest", "senet", "sknet")
TIMM_PRESETS = [name for name, p in PRESETS.items() if p.timm]
TIMM_NAMES = [name for name in TIMM_PRESETS if PRESETS[name].timm == name]  # one preset per timm name
# Over 150M parameters at full depth (timm's counts, below): one block per stage here
BIG = {"resnetrs350": 163_956_168, "resnetrs420": 191_891_656, "resnext101_32x16d": 194_026_792,
       "resnext101_32x32d": 468_530_472, "resnetv2_50x3_bit": 217_319_080, "resnetv2_101x3_bit": 387_934_888,
       "resnetv2_152x2_bit": 236_335_208, "resnetv2_152x4_bit": 936_533_224}


def reduced(name: str, layers: tuple[int, ...]) -> dict:
    """The overrides that build preset `name` at `layers` (a pruned net keeps the first blocks of each stage)."""
    spec = PRESETS[name].spec
    if spec.block_widths is None:
        return dict(layers=layers)
    return dict(layers=layers, block_widths=tuple(w for stage, n in zip(spec.stage_block_widths(), layers)
                                                  for w in stage[:n]))


def timm_model(name: str, layers: tuple[int, ...] | None = None) -> torch.nn.Module:
    """timm's model `name`, at `layers` if given. timm's BiT entry points fix their depth, so those are timm's
    ResNetV2 with the arguments its BiT builder passes (the fixed stem, StdConv2d with eps 1e-8) and the name's width
    factor (test_bit_builder_is_timms_registered_model checks them against the registered model)."""
    bit = re.fullmatch(r"resnetv2_\d+x(\d)_bit", name)
    if bit and layers is not None:
        return ResNetV2(layers=list(layers), width_factor=int(bit[1]), stem_type="fixed",
                        conv_layer=partial(StdConv2d, eps=1e-8))
    return timm.create_model(name) if layers is None else timm.create_model(name, layers=layers)


def _structures() -> dict[str, str]:
    """One preset per structure (the spec without its depth, bottleneck widths and BiT's width factor), the first
    in table order; the names over 150M parameters are checked on their own."""
    seen: dict[object, str] = {}
    for name in TIMM_NAMES:
        spec = PRESETS[name].spec
        factor = dict(width=64, stem_width=64) if spec.weight_standardization else {}
        key = dataclasses.replace(spec, layers=(1,), groups=min(spec.groups, 2), width_per_group=64, **factor,
                                  block_widths=spec.block_widths and spec.block_widths[:1])
        if name not in BIG:
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


def shapes(state_dict: dict, name: str) -> dict:
    return {k: v.shape for k, v in map_keys(state_dict, "timm", PRESETS[name].spec).items()}


def test_every_name_timm_registers_in_its_resnet_family_is_a_preset():
    registered = {module: set(timm.list_models(module=module)) for module in TIMM_MODULES}
    assert {m: len(names) for m, names in registered.items()} == dict(resnet=81, resnetv2=20, res2net=9, resnest=8,
                                                                      senet=9, sknet=5)
    ours = {module: {PRESETS[n].timm for n in TIMM_NAMES if PRESETS[n].timm_module == module}
            for module in TIMM_MODULES}
    assert ours == registered
    assert len(TIMM_NAMES) == 132 and len(STRUCTURES) >= 50


def test_bit_builder_is_timms_registered_model():
    """`timm_model` builds BiT at a reduced depth as timm's ResNetV2 with its BiT builder's arguments: at full depth
    that gives the registered model, parameter for parameter and output for output."""
    for name, layers in (("resnetv2_50x3_bit", (3, 4, 6, 3)), ("resnetv2_152x2_bit", (3, 8, 36, 3))):
        with torch.device("meta"):
            registered, built = timm.create_model(name), timm_model(name, layers)
        assert count(built) == count(registered) == BIG[name]
        assert shapes(built.state_dict(), name) == shapes(registered.state_dict(), name)
    torch.manual_seed(0)
    registered = timm.create_model("resnetv2_50x1_bit").eval()
    built = timm_model("resnetv2_50x1_bit", (3, 4, 6, 3)).eval()
    built.load_state_dict(registered.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(built(x), registered(x))  # the same convs (weight-standardised) and stem


def assert_timm_outputs(name: str, layers: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    if name in BIG:  # hundreds of MB: built without initialising what randomize and the load overwrite
        with torch.device("meta"):
            theirs, ours = timm_model(PRESETS[name].timm, layers), build_model(name, **reduced(name, layers))
        theirs, ours = theirs.to_empty(device="cpu").eval(), ours.to_empty(device="cpu").eval()
    else:
        theirs = timm_model(PRESETS[name].timm, layers).eval()
        ours = build_model(name, **reduced(name, layers)).eval()
    assert count(ours) == count(theirs)
    randomize(theirs)
    load_state_dict(ours, theirs.state_dict(), source="timm", architecture=PRESETS[name].timm)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.abs().max() > 1e-3  # the comparison means something
    assert ((got - expected).norm() / expected.norm()).item() < 1e-6


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_timm_weights_give_timm_outputs(name):
    assert_timm_outputs(name, SHALLOW)


@pytest.mark.parametrize("name", sorted(BIG))
def test_names_over_150m_parameters_give_timm_outputs_at_one_block_per_stage(name):
    assert_timm_outputs(name, ONE_PER_STAGE)


@pytest.mark.parametrize("name", TIMM_PRESETS)
def test_every_preset_has_timms_parameters_and_names(name):
    """Every preset, its widths included, at the reduced depth (full depth below for one of each family)."""
    layers = ONE_PER_STAGE if PRESETS[name].timm in BIG else SHALLOW
    with torch.device("meta"):
        theirs = timm_model(PRESETS[name].timm, layers)
    ours = build_model(name, device="meta", **reduced(name, layers))
    assert count(ours) == count(theirs)
    assert shapes(theirs.state_dict(), name) == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet50d", "resnet26t", "resnet50s", "resnetrs50", "ecaresnetlight",
                                  "seresnext26d_32x4d", "resnetblur50", "resnetaa34d", "resnet50_gn",
                                  "legacy_seresnet18", "legacy_seresnext26_32x4d", "wide_resnet50_2", "resnetv2_50",
                                  "skresnet34", "skresnext50_32x4d", "res2next50", "res2net50d", "resnest50d_4s2x40d",
                                  "resnest101e", "resnetv2_50d_evos", "resnetv2_50x1_bit", "senet154",
                                  "legacy_senet154", "ecaresnet101d_pruned", "test_resnet"])
def test_full_depth_parameters_and_names_equal_timms(name):
    with torch.device("meta"):
        theirs = timm.create_model(PRESETS[name].timm)
    ours = build_model(name, device="meta")
    assert count(ours) == count(theirs)
    assert shapes(theirs.state_dict(), name) == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("name, params", [("ecaresnet50d_pruned", 19_939_713), ("test_resnet", 469_688),
                                          ("senet154", 115_088_984), ("resnetv2_50x1_bit", 25_549_352)])
def test_full_depth_counts_and_outputs(name, params):
    """The pruned nets' and test_resnet's widths are per block; senet154's count is the figure timm quotes for it
    (115.1M against the 121.7M of the nearest net before its shortcut and first-1x1 fields)."""
    ours = build_model(name, device="meta")
    assert count(ours) == params
    if params < 30_000_000:
        assert_timm_outputs(name, PRESETS[name].spec.layers)


@pytest.mark.parametrize("name", ["resnet26t", "ecaresnet26t", "resnetrs50", "resnetblur18", "resnet50_gn",
                                  "legacy_seresnet18", "res2net50d", "res2next50", "resnest50d_4s2x40d",
                                  "resnest50d_1s4x24d", "resnetv2_50d_evos", "resnetv2_50d_frn", "senet154",
                                  "legacy_senet154", "ecaresnet50d_pruned", "test_resnet"])
def test_mult_adds_equal_torchinfos_count_of_timms_model(name):
    theirs = timm_model(PRESETS[name].timm, SHALLOW)
    info = torchinfo.summary(theirs, input_size=(1, 3, 64, 64), verbose=0, device="cpu")
    ours = summarize(name, (3, 64, 64), 1, **reduced(name, SHALLOW))
    assert (ours.total_params, ours.mult_adds) == (info.total_params, info.total_mult_adds)


@pytest.mark.parametrize("name", ["skresnet18", "skresnext50_32x4d", "resnetv2_50d", "resnetv2_50x1_bit",
                                  "resnetv2_50d_gn"])
def test_norm_act_mult_adds_equal_torchinfos_count_of_timms_model(name):
    """torchinfo counts only leaf modules, and timm's BatchNormAct2d and GroupNormAct (norm + ReLU in one, inside
    the SK paths and the blocks' conv+norm pairs, and every ResNetV2 norm) have children; our plain norms are
    leaves, so their per-sample affine counts."""
    theirs = timm_model(PRESETS[name].timm, SHALLOW)
    info = torchinfo.summary(theirs, input_size=(1, 3, 64, 64), verbose=0, device="cpu")
    norm_act = sum(p.numel() for m in theirs.modules() if type(m).__name__ in ("BatchNormAct2d", "GroupNormAct")
                   for p in m.parameters())
    ours = summarize(name, (3, 64, 64), 1, layers=SHALLOW)
    assert norm_act > 0
    assert (ours.total_params, ours.mult_adds) == (info.total_params, info.total_mult_adds + norm_act)
