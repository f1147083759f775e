"""Lesion study: deleting identity-shaped blocks at test time, and refusing the ones that change the shape."""

from __future__ import annotations

import json

import pytest
import torch

from resnet_core.cli import main
from resnet_core.config import TrainConfig
from resnet_core.data import SYNTHETIC_CLASSES, ImageData, channel_stats, synthetic_images
from resnet_core.jobs import execute
from resnet_core.lesion import block_shapes, describe, lesion, lesion_run
from resnet_core.model import build_model


@pytest.fixture(scope="module")
def tiny_data() -> ImageData:
    train_x, train_y = synthetic_images(64, seed=0, size=16)
    test_x, test_y = synthetic_images(96, seed=1, size=16)
    mean, std = channel_stats(train_x)
    return ImageData("synthetic16", train_x, train_y, test_x, test_y, SYNTHETIC_CLASSES, mean, std, "generated")


def small_net(**overrides):
    torch.manual_seed(0)
    return build_model("resnet20", layers=(2, 2), width=8, **overrides).eval()


def test_identity_shaped_blocks_are_deletable_and_shape_changers_are_not(tiny_data):
    model = small_net()
    shapes = block_shapes(model, tiny_data.test_images[:2].float())
    assert shapes == {"layer1.0": True, "layer1.1": True, "layer2.0": False, "layer2.1": True}


def test_deleting_a_zero_initialised_residual_block_changes_nothing(tiny_data):
    # With the last BN of every block at zero, a block computes relu(x + 0) = x for x >= 0: deleting it is exact.
    result = lesion(small_net(zero_init_residual=True), tiny_data, name="zero-init")
    rows = {r["block"]: r for r in result.blocks}
    assert not rows["layer2.0"]["deletable"] and rows["layer2.0"]["acc"] is None
    for name in ("layer1.0", "layer1.1", "layer2.1"):
        assert rows[name]["acc"] == result.baseline_acc
        assert rows[name]["loss"] == pytest.approx(result.baseline_loss, rel=1e-5)
    assert result.test_images == 96


def test_deleting_a_plain_block_changes_the_output_and_the_model_is_restored(tiny_data):
    model = small_net(skip=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lesion(model, tiny_data, name="plain")
    assert not result.skip
    rows = {r["block"]: r for r in result.blocks}
    assert rows["layer2.0"]["deletable"] is False  # 8 -> 16 channels, stride 2
    assert any(r["loss"] != pytest.approx(result.baseline_loss, rel=1e-4) for r in result.blocks if r["deletable"])
    assert [type(b).__name__ for stage in model.stages() for b in stage] == ["BasicBlock"] * 4
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "plain" in describe(result) and "cannot be deleted" in describe(result)


def test_lesion_of_a_stored_run_and_its_cli(tmp_path, capsys):
    config = TrainConfig(model="resnet20", overrides=dict(width=4), image_size=8, max_steps=3, batch_size=16,
                         test_subset=50, probe_every=0)
    execute(config, run_dir=tmp_path / "run")
    result = lesion_run(tmp_path / "run")
    assert result.test_images == 50 and len(result.blocks) == 9
    assert [r["deletable"] for r in result.blocks] == [True, True, True, False, True, True, False, True, True]
    assert main(["lesion", str(tmp_path / "run"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline_acc"] == result.baseline_acc
    assert [r["acc"] for r in out["blocks"]] == [r["acc"] for r in result.blocks]


def test_lesion_cli_bad_run_dir(tmp_path, capsys):
    assert main(["lesion", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: run_dir must be a run folder")
