"""introspect.anatomy: traced block steps against torchvision's and timm's own blocks, and the seeds' bottleneck
comparison."""

from __future__ import annotations

import threading
from functools import partial

import pytest
import torch
from timm.layers import GroupNormAct, StdConv2d
from timm.models import res2net as timm_res2net
from timm.models import resnest as timm_resnest
from timm.models import resnetv2 as timm_resnetv2
from torch import nn
from torchvision.models import resnet as tv

from resnet_core import summarize
from resnet_core.introspect.anatomy import VARIANTS, bottleneck_saving, shortcut_options, trace_block


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tv_projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return nn.Sequential(tv.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def test_seeds_comparison_two_3x3_convs_against_a_bottleneck():
    saving = bottleneck_saving(256)
    assert saving.basic.params == 1_180_672
    assert saving.bottleneck.params == 70_400
    assert f"{saving.ratio:.1f}" == "16.8"
    assert f"{saving.conv_ratio:.1f}" == "16.9"  # 2·9·256² against 256·64 + 9·64² + 64·256
    assert [s.shape[1] for s in saving.bottleneck.steps if s.op.startswith("conv")] == [64, 64, 256]


@pytest.mark.parametrize("key, tv_block, kwargs", [
    ("basic", tv.BasicBlock, {}),
    ("bottleneck", tv.Bottleneck, {}),
    ("resnext", tv.Bottleneck, dict(groups=32, base_width=4)),
])
def test_block_params_equal_torchvisions_block(key, tv_block, kwargs):
    anatomy = trace_block(key, 128, 256, stride=2, size=56, shortcut="B")
    planes = 256 // tv_block.expansion
    reference = tv_block(128, planes, 2, tv_projection(128, 256, 2), **kwargs)
    assert anatomy.params == n_params(reference)
    assert sum(s.params for s in anatomy.steps) == anatomy.params
    assert anatomy.output_shape == tuple(reference(torch.zeros(1, 128, 56, 56)).shape) == (1, 256, 28, 28)


def test_bottleneck_strides_on_the_3x3_and_projects_the_shortcut():
    anatomy = trace_block("bottleneck", 256, 512, stride=2, size=56, shortcut="B")
    strided = [s for s in anatomy.steps if "stride 2" in s.op]
    assert [s.module for s in strided] == ["conv2", "downsample.0"]
    assert next(s for s in anatomy.steps if s.module == "conv2").op == "conv 3×3, 128→128, stride 2"
    assert anatomy.shortcut_path == "projection"
    assert [s.op for s in anatomy.steps if s.branch == "sum"] == ["add: main path + shortcut", "ReLU"]


def test_shortcut_kinds():
    same = dict(in_channels=64, out_channels=64, stride=1, size=32)
    assert trace_block("basic", **same, shortcut="A").shortcut_path == "identity"
    assert trace_block("basic", **same, shortcut="B").shortcut_path == "identity"
    projected = trace_block("basic", **same, shortcut="C")
    assert projected.shortcut_path == "projection"
    assert sum(s.params for s in projected.steps if s.branch == "shortcut") == 64 * 64 + 2 * 64
    padded = trace_block("basic", 16, 32, stride=2, size=32, shortcut="A")
    assert padded.shortcut_path == "zero-pad"
    assert [(s.op, s.shape, s.params) for s in padded.steps if s.branch == "shortcut"] == [
        ("subsample, stride 2 · zero-pad 8+8 channels", (1, 32, 16, 16), 0)]


def test_preact_se_and_plain_blocks():
    preact = trace_block("preact_basic", 64, 64, size=32)
    assert [s.op for s in preact.steps[1:4]] == ["batch norm", "ReLU", "conv 3×3, 64→64"]
    assert preact.steps[-1].op == "add: main path + shortcut"  # nothing after the sum
    se = trace_block("se", 256, 256, size=14)
    gate = [s for s in se.steps if s.branch == "se"]
    assert sum(s.params for s in gate) == (256 * 16 + 16) + (16 * 256 + 256)
    assert gate[0].shape == (1, 256, 1, 1) and gate[-1].shape == (1, 256, 14, 14)
    plain = trace_block("basic", 64, 64, size=32, skip=False)
    assert plain.shortcut_path == "none"
    assert not [s for s in plain.steps if s.branch in ("sum", "shortcut")]


def test_every_variant_traces_with_a_projection():
    for key in VARIANTS:
        anatomy = trace_block(key, 64, 256, stride=2, size=16, shortcut="C")
        assert anatomy.output_shape == (1, 256, 8, 8)
        assert anatomy.shortcut_path == "projection"


def test_shortcut_options_count_their_parameters():
    options = shortcut_options(128, 256, 2).set_index("shortcut")["params"].to_dict()
    assert options == {"A": 0, "B": 128 * 256 + 2 * 256, "C": 128 * 256 + 2 * 256, "D": 128 * 256 + 2 * 256}
    same = shortcut_options(256, 256, 1).set_index("shortcut")["params"].to_dict()
    assert same == {"A": 0, "B": 0, "C": 256 * 256 + 2 * 256, "D": 0}
    paths = shortcut_options(128, 256, 2).set_index("shortcut")["path"].to_dict()
    assert paths["D"] == "2×2 avg-pool, stride 2, then 1×1 conv 128→256 + batch norm"


def test_timm_variants_trace_their_extra_steps():
    eca = trace_block("eca", 256, 256, size=14)
    assert [s.op for s in eca.steps if s.branch == "se"][:3] == [
        "global average pool", "pooled channels as a 1-D sequence", "1-D conv across channels, kernel 5"]
    assert eca.params - trace_block("bottleneck", 256, 256, size=14).params == 5  # ECA: one 5-tap conv, no bias
    aa = trace_block("aa", 256, 512, stride=2, size=14)
    main = [s.op for s in aa.steps if s.branch == "main"]
    assert "conv 3×3, 128→128" in main and "avg-pool 2×2, stride 2" in main
    assert "blur 3×3, stride 2" in [s.op for s in trace_block("blur", 256, 512, stride=2, size=14).steps]
    assert trace_block("v1", 256, 512, stride=2, size=14).steps[1].op == "conv 1×1, 256→128, stride 2"
    assert "group norm, 32 groups" in [s.op for s in trace_block("gn", 256, 256, size=14).steps]
    with pytest.raises(ValueError, match="^out_channels of a GroupNorm bottleneck block must be a multiple of its 32"):
        trace_block("gn", 256, 264, size=14)


def test_tracing_leaves_other_threads_alone():
    """The app traces blocks while a background thread summarizes presets: neither may see the other's calls."""
    results = {}
    worker = threading.Thread(target=lambda: results.update(s=summarize("resnet34", (3, 96, 96), 3)))
    worker.start()
    anatomies = [trace_block("se", 64, 128, stride=2, size=size) for size in range(20, 30)]
    worker.join()
    assert results["s"].total_params == n_params(tv.resnet34())
    assert results["s"].output_shape == (3, 1000)
    assert {len(a.steps) for a in anatomies} == {len(trace_block("se", 64, 128, stride=2, size=40).steps)}


@pytest.mark.parametrize("args, field", [
    (dict(key="bottleneck", out_channels=255), "out_channels"),
    (dict(key="resnext", in_channels=32, out_channels=32), "out_channels"),
    (dict(key="basic", stride=3), "stride"),
    (dict(key="basic", in_channels=0), "in_channels"),
    (dict(key="basic", in_channels=256, out_channels=128, shortcut="A"), "out_channels"),
    (dict(key="basic", shortcut="E"), "shortcut"),
    (dict(key="dense"), "block"),
])
def test_bad_arguments_name_the_field(args, field):
    with pytest.raises(ValueError, match=field):
        trace_block(**args)


def test_selective_kernel_block_traces_both_paths_and_their_attention():
    sk = trace_block("sk", 256, 512, stride=2, size=14)
    main = [s.op for s in sk.steps if s.branch == "main"]
    assert "conv 3×3, 64→128, stride 2" in main and "conv 3×3, 64→128, stride 2, dilation 2" in main  # half each
    assert main.index("stack the paths") < main.index("softmax across the paths, per channel")
    assert sk.output_shape == (1, 512, 7, 7)
    # 1x1 reduce + norm, two 3x3 paths + norms, attention 128->8->256 (+ norm), 1x1 expand + norm, projection
    assert sk.params == (256 * 128 + 256 + 2 * (64 * 128 * 9 + 256) + 128 * 8 + 16 + 8 * 256 + 128 * 512 + 1024
                         + 256 * 512 + 1024)


def test_res2net_split_attention_and_bit_blocks_have_timms_parameters():
    """Parameter counts of the traced blocks against timm's own blocks, built with the same widths."""
    res2net = timm_res2net.Bottle2neck(256, 128, stride=2, downsample=tv_projection(256, 512, 2), base_width=26,
                                       scale=4, norm_layer=nn.BatchNorm2d)
    nest = timm_resnest.ResNestBottleneck(256, 128, stride=2, downsample=tv_projection(256, 512, 2), radix=2,
                                          avd=True, avd_first=False)
    bit = timm_resnetv2.PreActBottleneck(256, 512, stride=2, conv_layer=partial(StdConv2d, eps=1e-8),
                                         norm_layer=partial(GroupNormAct, num_groups=32),
                                         proj_layer=timm_resnetv2.DownsampleConv)
    for key, reference in (("res2net", res2net), ("split_attention", nest), ("bit", bit)):
        anatomy = trace_block(key, 256, 512, stride=2, size=14)
        assert anatomy.params == n_params(reference) == sum(s.params for s in anatomy.steps), key
        assert anatomy.output_shape == tuple(reference.eval()(torch.zeros(1, 256, 14, 14)).shape) == (1, 512, 7, 7)


def test_res2net_hierarchy_split_attention_and_standardised_convs_are_drawn():
    keeps = trace_block("res2net", 256, 256, size=14)  # groups chain: each 3x3 after adding the last output
    ops = [s.op for s in keeps.steps]
    assert ops.count("conv 3×3, 26→26") == 3 and ops.count("add the previous group's output") == 2
    assert ops.index("split the channels into 4 groups") < ops.index("concatenate the scale groups")
    assert ops.count("add: main path + shortcut") == 1
    changes = trace_block("res2net", 256, 512, stride=2, size=14)  # groups side by side, the last one pooled
    ops = [s.op for s in changes.steps]
    assert "add the previous group's output" not in ops and "avg-pool 3×3, stride 2" in ops
    nest = [s.op for s in trace_block("split_attention", 256, 512, stride=2, size=14).steps]
    assert "conv 3×3, 128→256, 2 groups" in nest and "softmax across the paths, per channel" in nest
    assert nest.index("softmax across the paths, per channel") < nest.index("avg-pool 3×3, stride 2")
    bit = trace_block("bit", 256, 512, stride=2, size=14)
    convs = [s.op for s in bit.steps if "conv" in s.op]
    assert convs == ["weight-standardised conv 1×1, 256→128", "weight-standardised conv 3×3, 128→128, stride 2",
                     "weight-standardised conv 1×1, 128→512", "weight-standardised conv 1×1, 256→512, stride 2"]
    assert "group norm, 32 groups" in [s.op for s in bit.steps]
