"""Lesion study: deleting identity-shaped blocks at test time, and refusing the ones that change the shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from resnet_core.cli import main
from resnet_core.data.image_data import ImageData, channel_stats
from resnet_core.data.synthetic import SYNTHETIC_CLASSES, synthetic_images
from resnet_core.experiments.lesion import BlockLesion, LesionResult, describe, lesion, lesion_run
from resnet_core.models.resnet import build_model
from resnet_core.runs.execute import execute
from resnet_core.training.config import TrainConfig
from tests.conftest import rerun_until

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "7_Lesion.py")


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
    result = lesion(small_net(), tiny_data, limit=8)
    assert [(b.block, b.deletable) for b in result.blocks] == [
        ("layer1.0", True), ("layer1.1", True), ("layer2.0", False), ("layer2.1", True)]
    assert result.blocks[2] == BlockLesion("layer2.0", False, None, None)


def test_deleting_a_zero_initialised_residual_block_changes_nothing(tiny_data):
    # With the last BN of every block at zero, a block computes relu(x + 0) = x for x >= 0: deleting it is exact.
    result = lesion(small_net(zero_init_residual=True), tiny_data, name="zero-init")
    rows = {b.block: b for b in result.blocks}
    assert not rows["layer2.0"].deletable and rows["layer2.0"].acc is None
    for name in ("layer1.0", "layer1.1", "layer2.1"):
        assert rows[name].acc == result.baseline_acc
        assert rows[name].loss == pytest.approx(result.baseline_loss, rel=1e-5)
    assert result.test_images == 96


def test_deleting_a_plain_block_changes_the_output_and_the_model_is_restored(tiny_data):
    model = small_net(skip=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lesion(model, tiny_data, name="plain")
    assert not result.skip
    rows = {b.block: b for b in result.blocks}
    assert rows["layer2.0"].deletable is False  # 8 -> 16 channels, stride 2
    assert any(b.loss != pytest.approx(result.baseline_loss, rel=1e-4) for b in result.blocks if b.deletable)
    assert [type(b).__name__ for stage in model.stages() for b in stage] == ["BasicBlock"] * 4
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "plain" in describe(result) and "cannot be deleted" in describe(result)


def test_lesion_of_a_stored_run_and_its_cli(tmp_path, capsys):
    config = TrainConfig(model="resnet20", overrides=dict(width=4), image_size=8, max_steps=3, batch_size=16,
                         test_subset=50, probe_every=0)
    execute(config, run_dir=tmp_path / "run")
    result = lesion_run(tmp_path / "run")
    assert result.test_images == 50 and len(result.blocks) == 9
    assert [b.deletable for b in result.blocks] == [True, True, True, False, True, True, False, True, True]
    assert main(["lesion", str(tmp_path / "run"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["name", "skip", "baseline_acc", "baseline_loss", "blocks", "test_images", "seconds"]
    assert out["baseline_acc"] == result.baseline_acc
    assert [list(b) for b in out["blocks"]] == [["block", "deletable", "acc", "loss"]] * 9
    assert out["blocks"][3] == {"block": "layer2.0", "deletable": False, "acc": None, "loss": None}
    assert [b["acc"] for b in out["blocks"]] == [b.acc for b in result.blocks]
    assert LesionResult.from_dict(out).blocks[:4] == result.blocks[:4]
    assert main(["lesion", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "  without layer2.0   not deletable (changes the shape)\n" in text
    assert f"  without layer1.0   {result.blocks[0].acc:.2%}\n" in text


def test_lesion_cli_bad_run_dir(tmp_path, capsys):
    assert main(["lesion", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: run_dir must be a run folder")


def test_the_page_picks_no_unlike_pair_and_warns_when_one_is_picked(tmp_path, monkeypatch):
    """A plain run of 3 steps and a residual run of 5: the page picks neither, says why, and warns once both are
    picked; each is still measured."""
    for name, model, steps in (("20261201-100000-plain20-ab12", "plain20", 3),
                               ("20261201-110000-resnet20-cd34", "resnet20", 5)):
        execute(TrainConfig(model=model, overrides=dict(width=4, layers=(1, 1, 1)), image_size=8, max_steps=steps,
                            batch_size=16, test_subset=50, probe_every=0), run_dir=tmp_path / name)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and at.multiselect(key="lesion_runs").value == []
    assert [i.value for i in at.info] == [
        "No stored plain and residual run were trained alike, so no pair is picked: the newest of each, plain20-ab12 "
        "and resnet20-cd34, differ in training 3 steps vs 5 steps. Pick runs yourself; the page says how they differ."]
    at.multiselect(key="lesion_runs").set_value(["20261201-100000-plain20-ab12", "20261201-110000-resnet20-cd34"])
    at.select_slider(key="lesion_limit").set_value(100).run()
    assert [w.value for w in at.warning if "trained alike" in w.value] == [
        "These runs were not trained alike: plain20-ab12 vs resnet20-cd34: training 3 steps vs 5 steps. Each is "
        "measured, but the drops of unlike runs are not like with like: pick runs that match to compare them."]
    at.button(key="lesion_start").click().run()
    rerun_until(at, lambda a: sum("Intact accuracy measured now" in c.value for c in a.caption) == 2, 60, 0.3)
    assert not at.exception and not at.error
