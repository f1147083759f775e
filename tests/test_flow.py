"""Signal flow through plain and residual stacks: the measured numbers, the text written from them, the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from resnet_core.cli import main
from resnet_core.experiments.flow import data_batch, measure_model, measure_stacks, measure_twins, spread
from resnet_core.experiments.flow_stack import FlowConfig, FlowStack
from resnet_core.experiments.flow_text import describe_model, describe_stacks
from resnet_core.models.presets import resolve_spec
from resnet_core.models.resnet import build_model
from resnet_core.training.engine import build_seeded_model

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def batch():
    images, labels, classes = data_batch("synthetic", 32)  # the built-in set, 32×32 RGB
    assert classes == NUM_CLASSES and images.shape == (32, 3, 32, 32)
    return images, labels


def measure(batch, **config):
    images, labels = batch
    return measure_stacks(FlowConfig(**config).validate(), images, labels, NUM_CLASSES, dataset="synthetic")


def test_residual_gradient_spread_is_orders_narrower_at_50_blocks(batch):
    result = measure(batch, blocks=50)  # BatchNorm in train mode, relu, kaiming
    plain, residual = result.plain, result.residual
    assert len(plain.grad_norm) == len(residual.grad_norm) == 50
    assert all(g > 0 and math.isfinite(g) for g in plain.grad_norm + residual.grad_norm)
    assert plain.grad_spread / residual.grad_spread > 1e3
    # Not vanishing: in the plain stack the gradient GROWS toward the input, by orders of magnitude.
    assert plain.grad_norm[0] / plain.grad_norm[-1] > 1e3
    assert residual.grad_spread < 1e3


def test_vanishing_appears_with_saturating_activations_without_batchnorm(batch):
    result = measure(batch, blocks=30, batch_norm=False, activation="sigmoid", init="normal", init_std=0.05)
    plain = result.plain
    assert plain.grad_norm[-1] > 1e-4  # the output end still learns
    assert plain.grad_norm[0] < 1e-6 * plain.grad_norm[-1]  # the input end gets (almost) nothing
    text = " ".join(describe_stacks(result))
    assert "vanish" in text


def test_tanh_small_init_collapses_the_plain_signal_but_not_the_residual_one(batch):
    result = measure(batch, blocks=30, batch_norm=False, activation="tanh", init="normal", init_std=0.05)
    assert result.plain.act_std[-1] < 1e-10 < result.residual.act_std[-1]
    assert max(result.plain.grad_norm) < 1e-6 * min(result.residual.grad_norm)
    assert "plain stack's gradients are" in " ".join(describe_stacks(result))


def test_measurements_match_a_manual_pass_with_and_without_the_identity(batch):
    config = FlowConfig(blocks=4, width=8, resolution=16)
    images, labels = batch
    result = measure(batch, blocks=4, width=8, resolution=16)
    for skip, measured in ((False, result.plain), (True, result.residual)):
        torch.manual_seed(config.seed)
        stack = FlowStack(config, skip=skip, in_channels=3, num_classes=NUM_CLASSES)
        x = stack.stem(torch.nn.functional.adaptive_avg_pool2d(images, config.resolution))
        stds = []
        for block in stack.blocks:
            x = block(x)
            stds.append(x.std().item())
        torch.nn.functional.cross_entropy(stack.head(x.mean((2, 3))), labels).backward()
        assert measured.act_std == pytest.approx(stds, rel=1e-5)
        assert measured.grad_norm == pytest.approx([b.conv1.weight.grad.norm().item() for b in stack.blocks], rel=1e-4)
    assert result.plain.act_std != pytest.approx(result.residual.act_std, rel=1e-3)


def test_eval_mode_normalises_with_running_statistics(batch):
    train, evaluated = measure(batch, blocks=10, mode="train"), measure(batch, blocks=10, mode="eval")
    assert train.residual.grad_norm != evaluated.residual.grad_norm
    # running statistics were estimated on this batch, so the first block's output barely moves
    assert evaluated.plain.act_std[0] == pytest.approx(train.plain.act_std[0], rel=0.05)


def test_text_is_written_from_the_numbers(batch):
    result = measure(batch, blocks=20)
    text = "\n".join(describe_stacks(result))
    ratio = result.plain.grad_norm[0] / result.plain.grad_norm[-1]
    assert f"grows {ratio:.3g}×" in text or f"grows {ratio:.1e}×" in text
    assert "20 blocks of width 16" in text
    assert spread([1.0, 0.0]) == math.inf and spread([2.0, -8.0]) == 4.0


@pytest.mark.parametrize("field, value", [("blocks", 0), ("blocks", 501), ("init", "orthogonal"),
                                          ("activation", "gelu"), ("init_std", 0.0), ("mode", "test")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        FlowConfig(**{field: value}).validate()


def test_measure_model_per_block_and_stage(batch):
    model = build_model("resnet20", width=8)
    images, labels = batch
    flow = measure_model(model, images[:8], labels[:8])
    assert list(flow.blocks.block) == [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    assert list(flow.stages.stage) == ["layer1", "layer2", "layer3"]
    assert (flow.blocks.grad_norm > 0).all() and (flow.blocks.act_std > 0).all()
    # a stage's gradient norm covers all its convs, so it is at least its blocks' first-conv norms
    for stage, rows in flow.blocks.groupby("stage"):
        assert flow.stages.set_index("stage").grad_norm[stage] >= (rows.grad_norm**2).sum() ** 0.5
    assert "layer1.0" in " ".join(describe_model(flow, "resnet20"))


def test_measure_twins_toggles_only_the_identity():
    overrides = dict(width=4, layers=(1, 1, 1))
    twins = measure_twins("resnet20", overrides, side=16, batch_size=8)
    assert [(t.name, t.skip) for t in twins] == [("resnet20", True), ("resnet20, plain twin", False)]
    # each is the seeded model (so both start from the same weights) measured on the same seeded batch
    images, labels, classes = data_batch("synthetic", 8, seed=0, channels=3, image_size=16)
    spec = resolve_spec("resnet20", **overrides)
    for twin in twins:
        alone = measure_model(build_seeded_model(spec.replace(skip=twin.skip, num_classes=classes), 0), images, labels)
        pd.testing.assert_frame_equal(twin.flow.blocks, alone.blocks)
    residual, plain = (t.flow for t in twins)
    assert list(plain.blocks.block) == ["layer1.0", "layer2.0", "layer3.0"]
    assert residual.blocks.act_std.tolist() != pytest.approx(plain.blocks.act_std.tolist(), rel=1e-3)
    assert "layer1.0" in " ".join(describe_model(plain, twins[1].name))


def test_cli_flow_json(capsys):
    assert main(["flow", "--blocks", "6", "--width", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for kind in ("plain", "residual"):
        assert len(out[kind]["grad_norm"]) == len(out[kind]["act_std"]) == 6
        assert all(g > 0 for g in out[kind]["grad_norm"])


def test_cli_flow_bad_argument(capsys):
    assert main(["flow", "--blocks", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: blocks must be an integer from 1 to 500") and err.count("\n") == 1
