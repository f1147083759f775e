"""Path lengths (Veit et al.): the binomial distribution, k blocks deleted at once, and the Lesion page section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from resnet_core.data.image_data import ImageData, channel_stats
from resnet_core.data.synthetic import SYNTHETIC_CLASSES, synthetic_images
from resnet_core.experiments.paths import deletable_blocks, delete_blocks, delete_k, path_length_distribution
from resnet_core.models.resnet import build_model
from resnet_core.runs.execute import execute
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import evaluate
from tests.conftest import rerun_until

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(scope="module")
def tiny_data() -> ImageData:
    train_x, train_y = synthetic_images(32, seed=0, size=16)
    test_x, test_y = synthetic_images(64, seed=1, size=16)
    mean, std = channel_stats(train_x)
    return ImageData("synthetic16", train_x, train_y, test_x, test_y, SYNTHETIC_CLASSES, mean, std, "generated")


def net(**overrides):
    torch.manual_seed(0)
    return build_model("resnet20", layers=(3, 3), width=8, **overrides).eval()


def test_path_lengths_are_binomial():
    dist = path_length_distribution(54)  # ResNet-110 has 54 blocks
    assert sum(d["paths"] for d in dist) == 2**54
    assert math.fsum(d["share"] for d in dist) == pytest.approx(1.0)
    assert max(dist, key=lambda d: d["share"])["length"] == 27
    assert dist[3]["paths"] == math.comb(54, 3)


def test_deleting_zero_initialised_residual_blocks_changes_nothing(tiny_data):
    model = net(zero_init_residual=True)
    assert [b.name for b in deletable_blocks(model)] == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2"]
    intact = evaluate(model, tiny_data).acc
    row = delete_k(model, tiny_data, 5, samples=2)
    assert row["accs"] == [intact, intact] and row["paths_left"] == 2.0**-5


def test_deleting_plain_blocks_and_restoring_the_model(tiny_data):
    model = net(skip=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    intact = evaluate(model, tiny_data).loss
    assert delete_blocks(model, tiny_data, ["layer1.1", "layer2.2"]) is not None
    assert evaluate(model, tiny_data).loss == intact
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    row = delete_k(model, tiny_data, 2, samples=3, seed=1)
    assert len(row["accs"]) == 3 and row["acc"] == pytest.approx(sum(row["accs"]) / 3)
    with pytest.raises(ValueError, match="k must be an integer from 1 to 5; got 6"):
        delete_k(model, tiny_data, 6)


def test_lesion_page_path_section(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    execute(TrainConfig(model="resnet20", overrides=dict(width=4, layers=(2, 2, 2)), image_size=8, max_steps=3,
                        batch_size=16, test_subset=32, probe_every=0), run_dir=tmp_path / "runs" / "r")
    at = AppTest.from_file(str(PAGES / "7_Lesion.py"), default_timeout=60).run()
    assert not at.exception
    at.button(key="paths_start").click().run()
    rerun_until(at, lambda a: any("paths_fig" in str(el.proto.id) for el in a.get("plotly_chart")), 60, 0.3)
    figure = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "paths_fig" in str(el.proto.id))
    bars = [t for t in figure["data"] if t["type"] == "bar"]
    assert [b["name"] for b in bars] == ["n = 6"] and len(bars[0]["x"]) == 7
    accuracy = next(t for t in figure["data"] if t.get("name") == "r")
    assert accuracy["x"] == [1, 2, 3, 4]  # 6 blocks, 2 of them downsample
    assert any("(residual, 6 blocks, 4 deletable)" in md.value for md in at.markdown)
    assert not at.exception and not at.error
