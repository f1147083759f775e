"""The feature index (`model.feature_info`) against torchvision's and timm's own nets and real forward passes; the
identity swap (`blocks_deleted`) and the hook set (`HookSet`) always undo themselves."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from resnet_core.introspect.hooks import HookSet
from resnet_core.models.features import BlockInfo, blocks_deleted
from resnet_core.models.resnet import build_model
from resnet_core.models.spec import (
    ANTI_ALIASES,
    ATTENTIONS,
    AVG_DOWNSAMPLES,
    BLOCKS,
    SHORTCUTS,
    STEM_POOLS,
    STEMS,
    ModelSpec,
)


def entries(model) -> list[tuple]:
    return [(i.name, i.stage, i.stage_index, i.index, i.in_channels, i.out_channels, i.stride, i.changes_shape)
            for i in model.feature_info]


def test_resnet18_index_is_torchvisions_blocks():
    assert entries(build_model("resnet18", device="meta")) == [
        ("layer1.0", "layer1", 0, 0, 64, 64, 1, False), ("layer1.1", "layer1", 0, 1, 64, 64, 1, False),
        ("layer2.0", "layer2", 1, 0, 64, 128, 2, True), ("layer2.1", "layer2", 1, 1, 128, 128, 1, False),
        ("layer3.0", "layer3", 2, 0, 128, 256, 2, True), ("layer3.1", "layer3", 2, 1, 256, 256, 1, False),
        ("layer4.0", "layer4", 3, 0, 256, 512, 2, True), ("layer4.1", "layer4", 3, 1, 512, 512, 1, False),
    ]


@pytest.mark.parametrize("name, last_conv", [("resnet18", "conv2"), ("resnet50", "conv3")])
def test_index_matches_torchvision_module_by_module(name, last_conv):
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    blocks = [(n, m) for n, m in theirs.named_modules() if isinstance(m, (torchvision.models.resnet.BasicBlock,
                                                                          torchvision.models.resnet.Bottleneck))]
    ours = build_model(name, device="meta").feature_info
    assert [(i.name, i.in_channels, i.out_channels, i.stride) for i in ours] == [
        (n, m.conv1.in_channels, getattr(m, last_conv).out_channels, m.stride) for n, m in blocks]


def test_resnet50_index_every_first_block_changes_the_shape():
    index = build_model("resnet50", device="meta").feature_info
    assert len(index) == 16
    assert [(i.name, i.in_channels, i.out_channels, i.stride) for i in index if i.changes_shape] == [
        ("layer1.0", 64, 256, 1), ("layer2.0", 256, 512, 2), ("layer3.0", 512, 1024, 2), ("layer4.0", 1024, 2048, 2)]
    assert index[1] == BlockInfo("layer1.1", "layer1", 0, 1, 256, 256, 1)


@pytest.mark.parametrize("name", ["resnet50", "resnet18", "res2net50d", "resnest14d", "senet154", "test_resnet",
                                  "ecaresnet50d_pruned", "resnetv2_50d_evos", "resnetv2_50x3_bit"])
def test_last_block_of_each_stage_gives_timms_feature_channels(name):
    """timm's feature_info: stage widths (a pruned net's adapted to its pruned widths; ResNetV2 names its stages
    stages.i)."""
    with torch.device("meta"):
        theirs = timm.create_model(name, pretrained=False)
    stages = {}
    for info in theirs.feature_info:
        module = info["module"]
        if module.startswith("layer"):
            stages[module] = info["num_chs"]
        elif module.startswith("stages."):  # ResNetV2: stages.0 is our layer1
            stages[f"layer{int(module.split('.')[1]) + 1}"] = info["num_chs"]
    ours = {i.stage: i.out_channels for i in build_model(name, device="meta").feature_info}
    assert ours == stages


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_cifar_twenty_layer_nets_index(name):
    index = build_model(name, device="meta").feature_info
    assert [i.name for i in index] == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert [(i.in_channels, i.out_channels, i.stride) for i in index] == (
        [(16, 16, 1)] * 3 + [(16, 32, 2)] + [(32, 32, 1)] * 2 + [(32, 64, 2)] + [(64, 64, 1)] * 2)
    assert [i.name for i in index if i.changes_shape] == ["layer2.0", "layer3.0"]


def test_block_gives_the_module_at_the_entrys_place():
    model = build_model("resnet20", device="meta")
    info = model.feature_info[4]
    assert model.block(info) is model.layer2[1] is model.block("layer2.1")
    assert model.block_info("layer3.0").stride == 2
    with pytest.raises(ValueError, match="block must name one of the net's 9 blocks .*; got 'layer4.0'"):
        model.block_info("layer4.0")


@st.composite
def per_stage(draw) -> dict:
    """layers, and (sometimes) a block type and a width per stage to go with them."""
    layers = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=4)))
    fields = dict(layers=layers)
    if draw(st.booleans()):
        fields["stage_blocks"] = tuple(draw(st.lists(st.sampled_from(BLOCKS), min_size=len(layers),
                                                     max_size=len(layers))))
        fields["block"] = fields["stage_blocks"][0]
    if draw(st.booleans()):
        fields["stage_widths"] = tuple(draw(st.lists(st.sampled_from([2, 4, 6, 8, 12]), min_size=len(layers),
                                                     max_size=len(layers))))
    return fields


SPECS = st.fixed_dictionaries({
    "block": st.sampled_from(BLOCKS),
    "layers": st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple),
    "width": st.sampled_from([2, 4, 8, 6]),
    "stem_width": st.one_of(st.none(), st.sampled_from([2, 4, 8, 12, 32])),
    "stem": st.sampled_from(STEMS),
    "stem_mid": st.just(8),
    "stem_pool": st.one_of(st.none(), st.sampled_from(STEM_POOLS)),
    "shortcut": st.sampled_from(SHORTCUTS),
    "skip": st.booleans(),
    "attention": st.sampled_from(ATTENTIONS),
    "anti_alias": st.sampled_from(ANTI_ALIASES),
    "stride_placement": st.sampled_from(["v1.5", "v1"]),
    "sk_split": st.booleans(),
    "num_classes": st.just(3),
    "res2net_scale": st.integers(2, 8),
    "radix": st.sampled_from([1, 2, 4]),
    "avg_downsample": st.sampled_from(AVG_DOWNSAMPLES),
    "weight_standardization": st.booleans(),
    "shortcut_kernel": st.sampled_from([1, 3]),
    "reduce_first": st.sampled_from([1, 2]),
    "norm": st.sampled_from(["batch", "evonorm_s0", "frn_tlu"]),
    "norm_groups": st.sampled_from([1, 2]),
}).flatmap(lambda fields: per_stage().map(lambda stage: {**fields, **stage}))


def valid(fields: dict) -> ModelSpec | None:
    try:
        return ModelSpec(**fields).validate()
    except ValueError:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(SPECS)
def test_changes_shape_is_what_a_forward_pass_shows(fields):
    spec = valid(fields)
    assume(spec is not None)
    model = build_model(spec, device="meta").eval()
    x = model.forward_stem(torch.empty(1, spec.in_channels, 64, 64, device="meta"))
    seen = []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        for i, block in enumerate(stage):
            y = block(x)
            seen.append((f"{stage_name}.{i}", x.shape[1], y.shape[1], tuple(x.shape) != tuple(y.shape)))
            x = y
    assert [(i.name, i.in_channels, i.out_channels, i.changes_shape) for i in model.feature_info] == seen


def test_a_pruned_nets_index_is_its_blocks_widths():
    """Per-block widths (timm's ecaresnet50d_pruned): every block of a stage keeps its shape, as forward passes
    show; the stage widths are the pruned ones."""
    model = build_model("ecaresnet50d_pruned", device="meta").eval()
    x = model.forward_stem(torch.empty(1, 3, 64, 64, device="meta"))
    seen = []
    for block in (b for stage in model.stages() for b in stage):
        y = block(x)
        seen.append((x.shape[1], y.shape[1], tuple(x.shape) != tuple(y.shape)))
        x = y
    assert [(i.in_channels, i.out_channels, i.changes_shape) for i in model.feature_info] == seen
    assert [i.out_channels for i in model.feature_info if i.index == 0] == [19, 171, 818, 2022]


def test_changes_shape_on_real_tensors():
    torch.manual_seed(0)
    model = build_model("resnet20", layers=(2, 2), width=4, stem_width=2).eval()
    x = model.forward_stem(torch.randn(2, 3, 8, 8))
    shapes = []
    for block in (b for stage in model.stages() for b in stage):
        y = block(x)
        shapes.append((tuple(x.shape), tuple(y.shape)))
        x = y
    assert shapes == [((2, 2, 8, 8), (2, 4, 8, 8)), ((2, 4, 8, 8), (2, 4, 8, 8)),
                      ((2, 4, 8, 8), (2, 8, 4, 4)), ((2, 8, 4, 4), (2, 8, 4, 4))]
    assert [i.changes_shape for i in model.feature_info] == [True, False, True, False]


def small_net():
    torch.manual_seed(0)
    return build_model("resnet20", layers=(2, 2), width=4).eval()


def test_blocks_deleted_swaps_in_the_identity_and_restores_the_originals():
    model = small_net()
    x = torch.randn(2, 3, 8, 8)
    originals = [model.layer1[1], model.layer2[1]]
    with torch.no_grad():
        before = model(x)
        with blocks_deleted(model, ["layer1.1", model.feature_info[3]]):
            assert isinstance(model.layer1[1], nn.Identity) and isinstance(model.layer2[1], nn.Identity)
            assert model.layer1[0] is not None and not isinstance(model.layer2[0], nn.Identity)
            during = model(x)
        after = model(x)
    assert [model.layer1[1], model.layer2[1]] == originals
    assert torch.equal(after, before) and not torch.equal(during, before)


def test_blocks_deleted_restores_after_an_exception_and_refuses_shape_changers():
    model = small_net()
    originals = list(model.modules())
    with pytest.raises(RuntimeError, match="inside"):
        with blocks_deleted(model, ["layer1.0", "layer1.1"]):
            raise RuntimeError("inside")
    assert list(model.modules()) == originals
    with pytest.raises(ValueError, match="layer2.0 maps 4 to 8 channels at stride 2: the identity cannot replace it"):
        with blocks_deleted(model, ["layer1.1", "layer2.0"]):
            pass
    assert list(model.modules()) == originals


def test_hook_set_calls_its_hooks_and_removes_them_after_an_exception():
    model = small_net()
    calls = []
    block = model.layer1[0]
    with pytest.raises(RuntimeError, match="inside"):
        with HookSet() as hooks:
            hooks.pre_forward(block, lambda _m, args: calls.append(("pre", tuple(args[0].shape))))
            hooks.forward(block, lambda _m, _args, out: calls.append(("out", tuple(out.shape))))
            model(torch.randn(1, 3, 8, 8))
            raise RuntimeError("inside")
    assert calls == [("pre", (1, 4, 8, 8)), ("out", (1, 4, 8, 8))]
    model(torch.randn(1, 3, 8, 8))
    assert len(calls) == 2


def test_hook_set_kept_open_until_close():
    model = small_net()
    calls = []
    hooks = HookSet()
    hooks.forward(model.fc, lambda _m, _args, out: calls.append(tuple(out.shape)))
    hooks.pre_forward(model.layer2[1], lambda _m, args: calls.append(tuple(args[0].shape)))
    model(torch.randn(2, 3, 8, 8))
    model(torch.randn(1, 3, 8, 8))
    assert calls == [(2, 8, 4, 4), (2, 10), (1, 8, 4, 4), (1, 10)]
    hooks.close()
    hooks.close()
    model(torch.randn(1, 3, 8, 8))
    assert len(calls) == 4
