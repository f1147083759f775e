"""Introspection: totals and mult-adds equal torchinfo's, stage tables add up, receptive fields are measured."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
import torchinfo
from torch import nn

from resnet_core import build_model, summarize
from resnet_core.introspect.summary import _summarize_spec, preset_row, receptive_fields
from resnet_core.introspect.tables import stage_table_markdown, stage_table_text
from resnet_core.models.presets import resolve_spec
from resnet_core.models.spec import natural_input_size


@pytest.mark.parametrize("name, input_size, kwargs", [
    ("resnet50", (3, 224, 224), {}),
    ("resnet20", (3, 32, 32), {}),
    ("resnext50_32x4d", (3, 96, 96), {}),
    ("resnet18", (1, 64, 64), dict(block="preact_bottleneck", attention="se", stem="deep", in_channels=1,
                                   shortcut="C")),
    ("resnet18", (3, 64, 64), dict(attention="eca", stem="deep_tiered", stem_pool="conv", shortcut="D",
                                   anti_alias="blur", norm="group", norm_groups=8)),
    ("resnet50", (3, 48, 48), dict(stride_placement="v1", stem_pool="max_ceil", anti_alias="none",
                                   attention="se", attention_divisor=1, attention_reduction=4)),
    ("skresnet18", (3, 64, 64), dict(layers=(1, 2, 1, 1))),
    ("skresnext50_32x4d", (3, 64, 64), dict(layers=(1, 2, 1, 1), attention="se", sk_split=True)),
    ("res2next50", (3, 64, 64), dict(layers=(1, 3, 1, 1), res2net_scale=6)),
    ("resnest50d_4s2x40d", (3, 64, 64), dict(layers=(1, 2, 1, 1))),
    ("resnetv2_50x1_bit", (3, 64, 64), dict(layers=(1, 2, 1, 1))),
    ("resnetv2_50d_evos", (3, 64, 64), dict(layers=(1, 2, 1, 1))),
    ("senet154", (3, 64, 64), dict(layers=(1, 2, 1, 1))),
    ("test_resnet", (3, 64, 64), dict(layers=(2, 1, 3, 1))),
])
def test_params_and_mult_adds_equal_torchinfo(name, input_size, kwargs):
    ours = summarize(name, input_size, 2, **kwargs)
    model = build_model(name, **kwargs)
    info = torchinfo.summary(model, input_size=(2, *input_size), verbose=0, device="cpu")
    assert ours.total_params == info.total_params
    assert ours.trainable_params == info.trainable_params
    assert ours.mult_adds == info.total_mult_adds
    assert ours.output_shape == tuple(model(torch.zeros(2, *input_size)).shape)


def test_resnet50_reference_mult_adds():
    s = summarize("resnet50", (3, 224, 224), 1)
    assert (s.total_params, s.mult_adds, s.output_shape, s.depth) == (25_557_032, 4_089_238_376, (1, 1000), 50)


def test_preset_rows_are_the_summary_at_the_natural_input():
    # params: He et al. 2015 Table 6 gives 0.27M; 269,722 by hand (stem 464 + stages 14,016 + 51,072 + 203,520 + fc
    # 650). mult_adds at 32×32: torchinfo 1.8.0's count of the built resnet20, which is by hand the convs' 40,550,400
    # + the batch norms' 1,376 (torchinfo counts their weights once per image) + the classifier's 650
    assert preset_row("resnet20") == dict(model="resnet20", family="cifar", block="basic", skip=True, depth=20,
                                          published_depth=20, params=269_722, mult_adds=40_552_426,
                                          torchvision=None)
    row = preset_row("resnet50")
    assert (row["params"], row["mult_adds"], row["depth"], row["torchvision"]) == (25_557_032, 4_089_238_376, 50,
                                                                                  "resnet50")
    assert preset_row("plain56")["skip"] is False and preset_row("plain56")["params"] == 853_018
    assert (preset_row("wrn28_10")["depth"], preset_row("wrn28_10")["published_depth"]) == (26, 28)


def test_stage_table_adds_up():
    s = summarize("resnet50", (3, 224, 224), 1)
    st = s.stages
    assert list(st["stage"]) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert list(st["blocks"]) == [0, 3, 4, 6, 3, 0]
    assert st["params"].sum() == s.total_params == 25_557_032  # torchvision.models.resnet50's parameters
    assert st["mult_adds"].sum() == s.mult_adds == 4_089_238_376  # torchinfo 1.8.0 on torchvision's resnet50
    assert abs(st["params_pct"].sum() - 100) < 0.05
    assert list(st["output_shape"]) == [(1, 64, 56, 56), (1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14),
                                        (1, 2048, 7, 7), (1, 1000)]
    assert st.loc[st.stage == "layer4", "params"].item() == 14_964_736


def test_layer_rows_carry_output_size_arithmetic():
    layers = summarize("resnet50", (3, 224, 224), 1).layers
    conv1 = layers[layers.name == "conv1"].iloc[0]
    assert conv1.output_size == "⌊(224+2·3−7)/2⌋+1 = 112"
    assert (conv1.kernel, conv1.stride, conv1.padding, conv1.depth) == (7, 2, 3, 1)
    pool = layers[layers.name == "maxpool"].iloc[0]
    assert pool.output_size == "⌊(112+2·1−3)/2⌋+1 = 56"
    assert layers[layers.name == "layer2.0.conv2"].iloc[0].output_size == "⌊(56+2·1−3)/2⌋+1 = 28"
    assert layers[layers.name == "layer3.5.bn3"].iloc[0].depth == 3
    # Containers carry the sum of their children, as torchinfo's rows do.
    block = layers[layers.name == "layer1.0"].iloc[0]
    assert block.params == 75_008


def test_batch_and_resolution_cost_no_memory():
    small = summarize("resnet152", (3, 224, 224), 1)
    huge = summarize("resnet152", (3, 224, 224), 4096)  # real activations would need ~0.9 TB
    # torchinfo 1.8.0's count of torchvision.models.resnet152 at 224×224 is 11,513,779,048 mult-adds per image
    assert huge.mult_adds == 4096 * small.mult_adds == 4096 * 11_513_779_048
    assert huge.activation_bytes == 4096 * small.activation_bytes
    assert huge.training_memory_bytes > 800 * 2**30


def test_activation_estimate_counts_saved_outputs():
    s = summarize("resnet20", (3, 32, 32), 1)
    # conv/bn outputs of every layer (in-place ReLUs share them) + each block's residual sum
    leaf = s.layers[s.layers.leaf & (s.layers.type != "ReLU")]
    per_sample = sum(torch.Size(shape).numel() for shape in leaf.output_shape)
    sums = 3 * (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)
    assert s.activation_bytes == 4 * (per_sample + sums)


def _measured_receptive_field(model: nn.Module, stage: str, size: int) -> int:
    """Width of the input region that one central output pixel of `stage` depends on, by backprop."""
    for m in model.modules():  # positive weights, identity BN: every path is live, so support = receptive field
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.01)
    if model.maxpool is not None:  # max-pool routes gradient to one pixel; average-pool has the same window
        model.maxpool = nn.AvgPool2d(3, 2, 1)
    model.eval()
    x = torch.ones(1, 3, size, size, requires_grad=True)
    out = model.forward_stem(x)
    for name in model.stage_names:
        out = getattr(model, name)(out)
        if name == stage:
            break
    h, w = out.shape[2] // 2, out.shape[3] // 2
    out[0, :, h, w].sum().backward()
    cols = (x.grad[0].abs().sum(0).sum(0) > 0).nonzero()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("name, stage, size", [("resnet20", "layer1", 64), ("resnet20", "layer2", 96),
                                               ("resnet18", "layer1", 128), ("resnet50", "layer2", 256),
                                               ("skresnet18", "layer1", 128), ("skresnext50_32x4d", "layer2", 256),
                                               ("res2net50_26w_4s", "layer2", 256), ("res2net50d", "layer1", 128)])
def test_receptive_fields_match_backprop(name, stage, size):
    model = build_model(name)
    assert receptive_fields(model)[stage] == _measured_receptive_field(model, stage, size)


def test_invalid_inputs_name_the_field():
    with pytest.raises(ValueError, match=r"input must be three positive integers C,H,W"):
        summarize("resnet50", (3, 224), 1)
    with pytest.raises(ValueError, match=r"input must be three positive integers"):
        summarize("resnet50", (3, 0, 224), 1)
    with pytest.raises(ValueError, match=r"batch must be an integer from 1 to 65536; got 0"):
        summarize("resnet50", (3, 224, 224), 0)
    with pytest.raises(ValueError, match=r"input has 1 channels but the model's in_channels is 3"):
        summarize("resnet50", (1, 224, 224), 1)


def test_summarize_a_built_model_counts_frozen_parameters():
    model = build_model("resnet20")
    model.fc.requires_grad_(False)
    s = summarize(model, (3, 32, 32), 1)
    assert (s.total_params, s.trainable_params) == (269_722, 269_722 - 650)


def test_formatting_is_separate_and_complete():
    s = summarize("resnet20", (3, 32, 32), 8)
    text = stage_table_text(s)
    assert "269,722" in text and "8×64×8×8" in text
    md = stage_table_markdown(s)
    assert md.count("\n") == 2 + len(s.stages) and "| layer3 | 3 |" in md


def test_built_models_are_checked_like_specs():
    model = build_model("resnet18")
    with pytest.raises(ValueError, match=r"^input has 1 channels but the model's in_channels is 3$"):
        summarize(model, (1, 224, 224))
    # overrides describe another network: its own trainable count, not the built model's
    assert summarize(model, num_classes=10).trainable_params == summarize("resnet18", num_classes=10).total_params \
        == 11_181_642  # torchvision.models.resnet18(num_classes=10)


def test_an_input_the_network_cannot_take_is_one_value_error():
    # a 2x2 anti-aliasing pool floors the odd 7x7 map of a fifth stage to 3x3 while the projection gives 4x4
    with pytest.raises(ValueError, match=r"^input 224×224 does not fit this network \(torch: .*\); try a size that "):
        summarize("resnetaa50", (3, 224, 224), layers=(1, 1, 1, 1, 1))
    assert summarize("resnetaa50", (3, 256, 256), layers=(1, 1, 1, 1, 1)).output_shape == (1, 1000)


@pytest.mark.parametrize("name, overrides", [
    ("resnet110", {}), ("plain56", {}), ("preact_resnet110", {}), ("wrn28_10", {}), ("resnet50", {}),
    ("resnext50_32x4d", {}), ("resnet50d", {}), ("resnetrs50", {}), ("legacy_seresnet50", {}),
    ("resnetblur50", {}), ("ecaresnetlight", {}), ("resnet50_gn", {}), ("resnet26t", {}),
    ("resnet20", dict(shortcut="C", layers=(5, 1, 3))), ("resnet18", dict(block="preact_bottleneck", layers=(3, 2))),
    ("skresnet34", {}), ("skresnext50_32x4d", {}), ("res2net50_26w_6s", {}), ("resnest50d", {}),
    ("resnetv2_50x1_bit", {}), ("resnetv2_50d_frn", {}), ("ecaresnet50d_pruned", {}),
    ("test_resnet", dict(layers=(3, 1, 4, 2))),
])
def test_repeated_blocks_equal_the_full_trace(name, overrides):
    """Only a stage's first block and one of each distinct later block are traced (two blocks a stage, but in a
    pruned net); every row, stage and total equals the trace of every block."""
    spec = resolve_spec(name, **overrides)
    dims = natural_input_size(spec)
    fast, full = _summarize_spec(spec, dims, 1), _summarize_spec(spec, dims, 1, repeat=False)
    pd.testing.assert_frame_equal(fast.layers, full.layers)
    pd.testing.assert_frame_equal(fast.stages, full.stages)
    assert fast == dataclasses.replace(full, layers=fast.layers, stages=fast.stages)
