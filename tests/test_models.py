"""Builders: exact parameter counts against torchvision and He et al., state_dict parity, overrides."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from resnet_core import PRESETS, ModelSpec, build_model, load_state_dict, resolve_spec
from resnet_core.cli import build_parser
from resnet_core.cli.train import config_from_args
from resnet_core.models.blocks import ZeroPadShortcut
from resnet_core.models.spec import (
    MAX_BLOCKS_PER_STAGE,
    MAX_CHANNELS,
    MAX_STAGES,
    MAX_TOTAL_BLOCKS,
    coerce_layers,
    field_from_text,
    field_to_text,
)
from resnet_core.models.weights import CheckpointWarning
from resnet_core.training.config import TrainConfig
from resnet_core.training.launch import train_command

TORCHVISION_COUNTS = {  # torchvision's documented figures (the test also counts torchvision's own models)
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(TORCHVISION_COUNTS))
def test_imagenet_presets_match_torchvision_counts_and_names(name):
    ours = build_model(name, device="meta")
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    assert count(ours) == count(theirs) == TORCHVISION_COUNTS[name]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert PRESETS[name].torchvision == name


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torchvision_state_dict_loads_strictly_and_outputs_match(name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = build_model(name).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("name, params", [("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586),
                                           ("resnet56", 853_018), ("resnet110", 1_727_962),
                                           ("resnet1202", 19_421_274)])
def test_cifar_counts_option_a(name, params):
    model = build_model(name, device="meta")
    assert count(model) == params
    # He et al. 2015, Table 6 rounds to two significant figures (0.27M, 0.46M, ..., 19.4M).
    ref = PRESETS[name].reference["params"]
    assert abs(params - ref) / ref < 0.02
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())
    assert sum(isinstance(m, ZeroPadShortcut) for m in model.modules()) == 2


def test_seeds_small_resnet_is_resnet20_with_two_blocks_and_projections():
    assert count(build_model("resnet20", layers=(2, 2, 2), shortcut="B")) == 175_258


def test_wide_resnets_match_zagoruyko_and_komodakis():
    for name in ("wrn16_4", "wrn28_10"):
        ref = PRESETS[name].reference["params"]
        assert abs(count(build_model(name, device="meta")) - ref) / ref < 0.02, name


def test_se_resnet50_matches_hu_et_al():
    # Hu et al. 2018 (Squeeze-and-Excitation Networks), Table 1: SE-ResNet-50 has 28.1M parameters.
    n = count(build_model("se_resnet50", device="meta"))
    assert n == 28_088_024 and abs(n - 28.1e6) / 28.1e6 < 0.005


def test_plain_twin_drops_every_shortcut_and_changes_the_function():
    res, plain = build_model("resnet20"), build_model("plain20")
    assert count(res) == count(plain)  # option A shortcuts have no parameters
    assert plain.spec == res.spec.replace(skip=False)
    assert all(not m.skip and m.downsample is None for m in plain.modules() if hasattr(m, "skip"))
    plain.load_state_dict(res.state_dict())
    res.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(res(x), plain(x))
    # Projection shortcuts disappear too: plain50 has resnet50's count minus the four downsample branches.
    downsample = sum(count(m.downsample) for m in build_model("resnet50", device="meta").modules()
                     if getattr(m, "downsample", None) is not None)
    assert count(build_model("plain50", device="meta")) == 25_557_032 - downsample


def test_shortcut_options_a_b_c_order_param_counts():
    a, b, c = (count(build_model("resnet20", shortcut=s, device="meta")) for s in "ABC")
    assert a == 269_722
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 projections with BN
    # C projects in every one of the 9 blocks: 7 identity-shaped ones more than B.
    assert c - b == 3 * (16 * 16 + 32) + 2 * (32 * 32 + 64) + 2 * (64 * 64 + 128)


@pytest.mark.parametrize("overrides", [dict(block="preact_basic"), dict(block="preact_bottleneck"),
                                       dict(attention="se"), dict(stem="deep"), dict(stem="cifar"), dict(layers=(1,)),
                                       dict(layers=(1, 1, 1, 1, 1)), dict(in_channels=1, num_classes=7),
                                       dict(block="bottleneck", groups=8, width_per_group=8),
                                       dict(attention="eca", attention_placement="after_relu"),
                                       dict(anti_alias="blur", stem_pool="conv"), dict(anti_alias="avg"),
                                       dict(norm="group", norm_groups=8, shortcut="D"),
                                       dict(block="bottleneck", stride_placement="v1", stem_pool="max_ceil"),
                                       dict(block="preact_bottleneck", shortcut="D", anti_alias="blur"),
                                       dict(stem="deep_tiered", stem_mid=8, stem_width=24),
                                       dict(block="sk_basic", norm="group", norm_groups=8),
                                       dict(block="sk_bottleneck", groups=4, width_per_group=8, attention="eca")])
def test_overrides_build_and_run(overrides):
    model = build_model("resnet18", width=16, **overrides).eval()
    x = torch.randn(2, overrides.get("in_channels", 3), 64, 64)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, overrides.get("num_classes", 1000))


def test_depths_are_the_names():
    named = [n for n in PRESETS if n.startswith(("resnet", "plain")) and n[6:].isdigit()]
    assert len(named) == 24  # 22 from He et al. and torchvision, with timm's resnet26 and resnet200
    for name in named:
        assert PRESETS[name].spec.depth == int(name.removeprefix("resnet").removeprefix("plain")), name
    assert resolve_spec("resnet18", stem="deep").depth == 20


def test_zero_init_residual_zeroes_each_blocks_last_bn():
    model = build_model("resnet50", zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for stage in model.stages() for b in stage)
    assert torch.all(model.bn1.weight == 1)


def test_pretrained_weights_load_from_local_hub_cache(tmp_path, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(1)
    reference = torchvision.models.resnet18().eval()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / weights.url.rsplit("/", 1)[-1])
    model = build_model("resnet18", weights="IMAGENET1K_V1").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_pretrained_weights_offline_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"could not download resnet18 weights IMAGENET1K_V1 .*internet"):
        build_model("resnet18", weights="IMAGENET1K_V1")


def test_pretrained_weights_bad_requests():
    with pytest.raises(ValueError, match=r"weights for resnet50 must be one of IMAGENET1K_V1, IMAGENET1K_V2"):
        build_model("resnet50", weights="IMAGENET9")
    with pytest.raises(ValueError, match="only for unmodified torchvision presets"):
        build_model("resnet50", weights="IMAGENET1K_V2", num_classes=10)
    with pytest.raises(ValueError, match="only for unmodified torchvision presets"):
        build_model("resnet20", weights="IMAGENET1K_V1")


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="resnet99"), r"^model must be one of the \d+ presets \(resnet18, resnet34, .* got 'resnet99'$"),
    (dict(layers=(3, 0, 3)), r"layers: stage 2 has 0 blocks; each stage needs an integer from 1 to 1000"),
    (dict(layers=(3, -1)), r"layers: stage 2 has -1 blocks"),
    (dict(layers="3,x"), r"layers must be comma-separated whole numbers from 1 to 1000 \(e\.g\. 3,4,6,3\), got '3,x'"),
    (dict(layers=()), r"layers must list the blocks of at least 1 stage"),
    (dict(groups=0), r"groups must be an integer from 1 to 4096; got 0"),
    (dict(width=0), r"width must be an integer from 1 to 4096; got 0"),
    (dict(num_classes=0), r"num_classes must be an integer from 1 to 100000; got 0"),
    (dict(block="dense"), r"block must be one of basic, bottleneck, preact_basic, preact_bottleneck, sk_basic, "
                                  r"sk_bottleneck, res2net_bottleneck, split_attention_bottleneck; got 'dense'"),
    (dict(shortcut="E"), r"shortcut must be one of A, B, C, D; got 'E'"),
    (dict(stem="huge"), r"stem must be one of imagenet, cifar, deep, deep_tiered; got 'huge'"),
    (dict(attention="cbam"), r"^attention must be one of none, se, eca; got 'cbam'$"),
    (dict(anti_alias=True), r"^anti_alias must be one of none, avg, blur; got True$"),
    (dict(norm="layer"), r"^norm must be one of batch, group, evonorm_s0, frn_tlu; got 'layer'$"),
    (dict(stem_pool="avg"), r"^stem_pool must be one of max, max_ceil, conv, zero_pad_max, none; got 'avg'$"),
    (dict(stride_placement="v2"), r"^stride_placement must be one of v1.5, v1; got 'v2'$"),
    (dict(attention_placement="first"), r"^attention_placement must be one of before_add, after_relu"),
    (dict(attention_reduction=0), r"^attention_reduction must be an integer from 1 to 1024; got 0$"),
    (dict(attention_divisor=65), r"^attention_divisor must be an integer from 1 to 64; got 65$"),
    (dict(stem_mid=3), r"^stem_mid must be an integer from 4 to 4096; got 3$"),
    (dict(norm="group", norm_groups=48), r"^norm_groups: 48 groups do not divide the 64 channels of the stem; "),
    (dict(anti_alias="avg", stem_pool="max_ceil"), r"^anti_alias: a stem_pool of max_ceil has no anti-aliased"),
    (dict(anti_alias="avg", stride_placement="v1"), r"^anti_alias needs stride_placement v1.5"),
    (dict(shortcut="A", stem_width=88), r"^shortcut A zero-pads channels, so they must not shrink: stem_width 88 is "
                                        r"wider than stage 1.s 64 output channels; use shortcut B, C or D"),
    (dict(groups=32), r"basic blocks only support groups=1"),
    (dict(block="sk_basic", sk_reduction=0), r"^sk_reduction must be an integer from 1 to 1024; got 0$"),
    (dict(block="sk_basic", sk_split="half"), r"^sk_split must be true or false"),
    (dict(block="sk_basic", stem_width=63), r"^sk_split: the selective-kernel conv splits its 63 input channels "
                                            r"\(the stem\) between 2 paths of 1 group\(s\) each; use widths divisible"),
    (dict(block="sk_bottleneck", anti_alias="avg"), r"^anti_alias: sk_bottleneck blocks have no anti-aliased form"),
    (dict(skip="yes"), r"skip must be true or false"),
    (dict(depth=50), r"unknown override 'depth'; allowed overrides are block, layers"),
    # the fields of timm's Res2Net, ResNeSt, BiT, SENet-154, pruned and test nets
    (dict(block="res2net_bottleneck", res2net_scale=1), r"^res2net_scale must be an integer from 2 to 8; got 1$"),
    (dict(block="res2net_bottleneck", res2net_scale=9), r"^res2net_scale must be an integer from 2 to 8; got 9$"),
    (dict(block="res2net_bottleneck", anti_alias="avg"), r"^anti_alias: res2net_bottleneck blocks take anti_alias "
                                                         r"none; got avg$"),
    (dict(block="split_attention_bottleneck", radix=0), r"^radix must be an integer from 1 to 8; got 0$"),
    (dict(block="split_attention_bottleneck", attention="se"), r"^attention: split_attention_bottleneck blocks "
                                                               r"have their own attention"),
    (dict(avg_downsample="middle"), r"^avg_downsample must be one of none, before_conv, after_conv; got 'middle'$"),
    (dict(block="bottleneck", avg_downsample="after_conv"), r"^avg_downsample moves the stride of "
                                                            r"split_attention_bottleneck blocks"),
    (dict(weight_standardization="yes"), r"^weight_standardization must be true or false; got 'yes'$"),
    (dict(shortcut_kernel=5), r"^shortcut_kernel must be 1 or 3; got 5$"),
    (dict(shortcut_kernel=3, shortcut="D"), r"^shortcut_kernel 3 makes a strided projection a 3x3 conv; it needs "
                                            r"shortcut B or C, got D$"),
    (dict(reduce_first=0), r"^reduce_first must be an integer from 1 to 64; got 0$"),
    (dict(reduce_first=2, block="preact_basic"), r"^reduce_first narrows the first conv of basic and bottleneck"),
    (dict(block="bottleneck", width=1, reduce_first=2), r"^reduce_first: 2 leaves the first conv of a 1-plane "
                                                        r"stage \(1 channels\) with none; at most 1$"),
    (dict(norm="evonorm_s0"), r"^norm: evonorm_s0 is a norm and its activation in one, built here for "
                              r"pre-activation blocks"),
    (dict(block="preact_basic", norm="evonorm_s0", norm_groups=48), r"^norm_groups: 48 groups do not divide"),
    (dict(stem_pool="zero_pad_max", anti_alias="blur"), r"^anti_alias: a stem_pool of zero_pad_max has no "),
    (dict(stage_blocks=("basic", "bottleneck")), r"^stage_blocks must give one of the block types for each of the "
                                                 r"4 stages; got 2; none clears it$"),
    (dict(stage_blocks=("basic", "basic", "dense", "basic")), r"^stage_blocks \(stage 3\) must be one of basic, "),
    (dict(stage_blocks=("bottleneck",) * 4), r"^block: stage_blocks gives stage 1 bottleneck blocks, so block must "
                                             r"be bottleneck; got 'basic'$"),
    (dict(stage_blocks=("basic", "preact_basic", "basic", "basic")), r"^stage_blocks: pre-activation and "
                                                                      r"post-activation blocks cannot be mixed"),
    (dict(stage_widths=(32, 48, 48)), r"^stage_widths must give one of the widths for each of the 4 stages; got 3"),
    (dict(stage_widths=(64, 128, 96, 256), shortcut="A"), r"^shortcut A zero-pads channels, so they must not shrink: "
                                                          r"stage 3 has 96 output channels after stage 2's 128; "),
    (dict(stage_widths=(32, 48, 48, 0)), r"^stage_widths \(stage 4\) must be an integer from 1 to 4096; got 0$"),
    (dict(block_widths=((1, 1, 1),)), r"^block_widths must give 3 widths for each of the 8 blocks \(layers "
                                      r"2,2,2,2\); got 1 entries; none clears it$"),
    (dict(block_widths=((1, 1, 1),) * 8), r"^block_widths: per-block widths are for bottleneck blocks"),
    (dict(block="bottleneck", block_widths=((1, 1, 1),) * 7 + ((1, 1, 0),)), r"^block_widths: block 8 must be three "
                                                                             r"widths \(first 1x1, 3x3, output\)"),
    (dict(block="bottleneck", block_widths=((1, 1, 2), (1, 1, 3)) * 4), r"^block_widths: the blocks of stage 1 add "
                                                                        r"their outputs, so they need one output"),
])
def test_invalid_specs_name_the_field(kwargs, message):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", "resnet18")
    with pytest.raises(ValueError, match=message):
        build_model(model, device="meta", **kwargs)


@pytest.mark.parametrize("fields, message", [
    (dict(layers=(999999,)), "layers: stage 1 has 999999 blocks; each stage needs an integer from 1 to 1000"),
    (dict(layers=(3, 1001)), "layers: stage 2 has 1001 blocks; each stage needs an integer from 1 to 1000"),
    (dict(layers=(10**30,)), f"layers: stage 1 has {10**30} blocks; each stage needs an integer from 1 to 1000"),
    (dict(layers=(10**5000,)), "layers: stage 1 has <an integer of about 5001 digits> blocks; each stage needs an "
                               "integer from 1 to 1000"),
    (dict(layers=(1,) * 40), "layers: 40 stages; at most 8"),
    (dict(layers=(1,) * 10**6), "layers: 1000000 stages; at most 8"),  # not echoed: its repr is 3 MB
    (dict(layers=(1,) * 20), "layers: 20 stages; at most 8"),  # reported 21 quadrillion parameters before
    (dict(layers=(1000, 1000, 1)), "layers: 2001 blocks in all; at most 2000"),
    (dict(layers=(2.0, 2)), "layers: stage 1 has 2.0 blocks; each stage needs an integer from 1 to 1000"),
    (dict(width=4096), "width: stage 4 would have 32768 channels (width 4096 * 2**3); at most 16384: lower width "
                       "or the number of stages"),
    (dict(block="bottleneck", layers=(1,) * 8), "width: stage 8 would have 32768 channels (width 64 * 2**7 * "
                                                "expansion 4); at most 16384: lower width or the number of stages"),
    (dict(block="bottleneck", width_per_group=4096), "width_per_group: stage 4's grouped conv would have 32768 "
     "channels (512 planes * width_per_group 4096 / 64 * groups 1); at most 16384: lower width_per_group, groups "
     "or width"),
    (dict(block="bottleneck", groups=4096), "groups: stage 4's grouped conv would have 2097152 channels (512 planes "
     "* width_per_group 64 / 64 * groups 4096); at most 16384: lower width_per_group, groups or width"),
    (dict(width=10**30), f"width must be an integer from 1 to 4096; got {10**30}"),
])
def test_sizes_have_upper_bounds_checked_before_building(fields, message):
    for make in (lambda: ModelSpec(**fields).validate(), lambda: build_model(ModelSpec(**fields), device="meta")):
        start = time.perf_counter()
        with pytest.raises(ValueError) as caught:
            make()
        assert str(caught.value) == message
        assert time.perf_counter() - start < 0.1


def test_the_bounds_themselves_are_allowed():
    ModelSpec(layers=(MAX_BLOCKS_PER_STAGE, MAX_TOTAL_BLOCKS - MAX_BLOCKS_PER_STAGE)).validate()
    assert MAX_STAGES == 8 and MAX_CHANNELS == 128 * 2**7  # the two specs below sit exactly on these bounds
    ModelSpec(layers=(1,) * 8, width=128).validate()  # 128 * 2**7 = 16,384 channels in stage 8
    ModelSpec(block="bottleneck", layers=(1,) * 8, width=32).validate()  # 32 * 2**7 * 4
    ModelSpec(block="bottleneck", layers=(1, 1, 1, 1), groups=32, width_per_group=64).validate()  # 512*64/64*32
    widest = max(PRESETS.values(), key=lambda p: max(p.spec.stage_out_channels))
    assert (widest.name, max(widest.spec.stage_out_channels)) == ("resnetv2_152x4_bit", 8192)  # half the bound
    assert sum(PRESETS["resnet1202"].spec.layers) == 600


@pytest.mark.parametrize("value, message", [
    ("1000000000000000000000000000000", f"layers: stage 1 has {10**30} blocks; each stage needs an integer from 1 "
                                        "to 1000"),
    ("-3,3,3", "layers: stage 1 has -3 blocks; each stage needs an integer from 1 to 1000"),
    (",".join(["1"] * 40), "layers: 40 stages; at most 8"),
    ("9" * 5000, "layers: stage 1 has a 5000-digit number of blocks; each stage needs an integer from 1 to 1000"),
    ("x" * 5000, "layers must be comma-separated whole numbers from 1 to 1000 (e.g. 3,4,6,3), got "
                 "'xxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx'"),
    ([1] * 40, "layers: 40 stages; at most 8"),
    (range(10**12), "layers: 1000000000000 stages; at most 8"),
    (iter(int, 1), "layers: more than 8 stages; at most 8"),  # endless: read no further than the bound
    (None, "layers must be a list of whole numbers from 1 to 1000, got None"),
    ({"a": 1}, "layers must be a list of whole numbers from 1 to 1000, got {'a': 1}"),
])
def test_coerce_layers_refuses_absurd_values_early(value, message):
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        coerce_layers(value)
    assert str(caught.value) == message and time.perf_counter() - start < 0.1


def test_config_json_spec_with_absurd_sizes_is_one_value_error():
    config_spec = json.loads(json.dumps({**PRESETS["resnet20"].spec.to_dict(), "layers": [10**30, 3, 3]}))
    with pytest.raises(ValueError) as caught:
        ModelSpec.from_dict(config_spec)
    assert str(caught.value) == f"layers: stage 1 has {10**30} blocks; each stage needs an integer from 1 to 1000"
    with pytest.raises(ValueError, match=r"^spec has unknown field 1; the fields are block, layers"):
        ModelSpec.from_dict({1: 2, "depth": 3})  # keys of mixed types sort for the message


def test_spec_round_trips_through_dict():
    spec = resolve_spec("resnext50_32x4d", layers="1,2")
    assert spec.layers == (1, 2)
    assert ModelSpec(**{**spec.to_dict(), "layers": tuple(spec.to_dict()["layers"])}) == spec
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert all(ModelSpec.from_dict(p.spec.to_dict()) == p.spec for p in PRESETS.values())


def test_load_state_dict_names_the_first_bad_key():
    model = build_model("resnet20", device="meta")
    good = build_model("resnet20").state_dict()
    with pytest.raises(ValueError, match=r"^state_dict: missing key 'conv1.weight' \(shape \(16, 3, 3, 3\)\) from the "
                                         r"timm checkpoint; it was made for a different network$"):
        load_state_dict(model, {k: v for k, v in good.items() if k != "conv1.weight"})
    wrong = {**good, "fc.weight": torch.zeros(7, 64)}
    with pytest.raises(ValueError, match=r"^state_dict: key 'fc.weight' has shape \(7, 64\) in the torchvision "
                                         r"checkpoint but \(10, 64\) in this model$"):
        load_state_dict(model, wrong, source="torchvision")
    with pytest.raises(ValueError, match=r"^state_dict: unexpected key 'head.extra.weight' in the timm checkpoint"):
        load_state_dict(model, {**good, "head.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"^state_dict: key 'fc.bias' does not map a name to a tensor$"):
        load_state_dict(model, {**good, "fc.bias": [0.0] * 10})
    with pytest.raises(ValueError, match=r"^source must be one of timm, torchvision; got 'keras'$"):
        load_state_dict(model, good, source="keras")


def test_legacy_senet_names_map_onto_ours():
    ours = build_model("legacy_seresnet18")
    theirs = {k.replace("conv1.", "layer0.conv1.", 1) if k.startswith("conv1.") else
              k.replace("bn1.", "layer0.bn1.", 1) if k.startswith("bn1.") else
              k.replace(".se.", ".se_module.").replace("fc.", "last_linear.", 1) if k.startswith("fc.") or ".se." in k
              else k: v for k, v in build_model("legacy_seresnet18").state_dict().items()}
    assert {"layer0.conv1.weight", "last_linear.weight", "layer1.0.se_module.fc1.weight"} <= set(theirs)
    load_state_dict(ours, theirs, source="timm")
    torch.testing.assert_close(ours.state_dict()["fc.weight"], theirs["last_linear.weight"], rtol=0, atol=0)


def test_build_model_loads_a_local_checkpoint(tmp_path):
    torch.manual_seed(3)
    source = build_model("resnet20").eval()
    path = tmp_path / "resnet20.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    with pytest.warns(CheckpointWarning, match=r"^state_dict: weight_standardization, stem_pool, skip, anti_alias "
                                               r"cannot be told from this timm checkpoint"):  # a bare state_dict
        loaded = build_model("resnet20", weights=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^state_dict: key 'conv1.weight' has shape \(16, 3, 3, 3\) in the timm "
                                         r"checkpoint but \(8, 3, 3, 3\) in this model$"):
        build_model("resnet20", weights=str(path), width=8)
    with pytest.raises(ValueError, match=r"^weights: no such file '.*missing.pt'$"):
        build_model("resnet20", weights=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"^weights: junk.pt is not a readable checkpoint \(\w+\)$"):
        build_model("resnet20", weights=str(tmp_path / "junk.pt"))


def test_old_specs_still_load():
    old = json.loads((Path(__file__).parent / "fixtures" / "run-v1" / "config.json").read_text())["spec"]
    assert "se" in old and "attention" not in old
    spec = ModelSpec.from_dict(old)
    assert spec == PRESETS["resnet20"].spec.replace(layers=(1, 1, 1), width=4)
    with_se = ModelSpec.from_dict({**old, "se": True})
    assert (with_se.attention, with_se.attention_divisor) == ("se", 1)  # the old rule: channels // 16, at least 1
    # one SE per block with one hidden unit (4 // 16, 8 // 16 and 16 // 16 all give at least 1): c + 1 + c + c each
    assert count(build_model(with_se)) - count(build_model(spec)) == (3 * 4 + 1) + (3 * 8 + 1) + (3 * 16 + 1)
    with pytest.raises(ValueError, match=r"^se must be true or false; got 'yes'$"):
        ModelSpec.from_dict({**old, "se": "yes"})


def test_numpy_integers_and_lists_are_whole_numbers_and_layers():
    import numpy as np

    spec = ModelSpec(layers=[np.int64(2), 2], width=np.int32(8)).validate()
    assert spec.layers == (2, 2) and type(spec.width) is int and type(spec.layers[0]) is int
    assert json.loads(json.dumps(spec.to_dict()))["width"] == 8


def test_timm_presets_carry_timms_names():
    assert PRESETS["resnet50d"].timm == "resnet50d" and PRESETS["se_resnet50"].timm == "seresnet50"
    assert PRESETS["se_resnet50"].spec == PRESETS["seresnet50"].spec
    d = PRESETS["resnet50d"].spec
    assert (d.stem, d.stem_widths, d.shortcut) == ("deep", (32, 32, 64), "D")
    assert PRESETS["resnet50t"].spec.stem_widths == (24, 32, 64)
    assert PRESETS["resnet50s"].spec.stem_widths == (64, 64, 128)


@pytest.mark.parametrize("model, overrides", [
    ("ecaresnet50d_pruned", dict(layers=(1, 1, 1, 1), block_widths=None)),  # "none" clears the preset's widths
    ("ecaresnet50d_pruned", dict(block_widths=((8, 8, 16),) * 3 + ((9, 9, 32),) * 4 + ((4, 4, 64),) * 6
                                 + ((5, 6, 128),) * 3)),
    ("test_resnet", dict(stage_blocks=("basic", "bottleneck", "bottleneck", "basic"), stage_widths=(16, 32, 32, 64))),
    ("resnet50", dict(block="res2net_bottleneck", res2net_scale=6, width_per_group=26)),
    ("resnest50d", dict(radix=4, avg_downsample="before_conv")),
    ("resnetv2_50", dict(norm="group", weight_standardization=True, stem_pool="zero_pad_max")),
    ("resnet50", dict(shortcut_kernel=3, reduce_first=2, groups=64, width_per_group=4)),
    ("resnetv2_50d", dict(norm="evonorm_s0")),
])
def test_the_new_fields_round_trip_through_the_train_command(model, overrides):
    """The launch command (training/launch.py) gives every new field by its flag (cli/spec_args.py)."""
    config = TrainConfig(model=model, overrides=overrides).validate()
    args = shlex.split(train_command(config))
    assert args[:3] == ["python", "-m", "resnet_core"]
    assert config_from_args(build_parser().parse_args(args[3:])) == config.canonical()
    resolve_spec(model, **overrides)  # a valid network


def test_field_text_round_trips_and_names_the_field():
    for name, text, value in (("block_widths", "47:18:19, 52:22:19", ((47, 18, 19), (52, 22, 19))),
                              ("stage_blocks", "basic,bottleneck", ("basic", "bottleneck")),
                              ("stage_widths", "none", None), ("stem_width", "none", None),
                              ("weight_standardization", "yes", True), ("shortcut_kernel", "3", 3)):
        assert field_from_text(name, text) == value
        assert field_from_text(name, field_to_text(value)) == value
    for name, text, message in (("block_widths", "1:2:x", "block_widths must be a whole number; got 'x'"),
                                ("block_widths", "1:2:3:4", "block_widths: more than 3 entries in '1:2:3:4'"),
                                ("stage_widths", "1," * 9, "stage_widths: more than 8 stages in"),
                                ("stage_widths", "9" * 5000, "stage_widths must be whole numbers in range; got a "
                                                             "5000-character value")):
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            field_from_text(name, text)
