"""Loss-surface slices: filter-normalised directions, the in-place slicer against a rebuilt model, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from resnet_core.cli import main
from resnet_core.config import TrainConfig
from resnet_core.data import normalize
from resnet_core.jobs import execute
from resnet_core.landscape import (
    LandscapeConfig,
    curvature_text,
    filter_normalized_direction,
    make_slicer,
    slice_model,
    slice_run,
    subset_indices,
)
from resnet_core.model import ResNet
from resnet_core.runstore import load_model, load_run_data
from tests.conftest import rerun_until

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("landscape")
    for model in ("resnet20", "plain20"):
        execute(TrainConfig(model=model, overrides=dict(width=4, layers=(1, 1, 1)), image_size=8, max_steps=6,
                            batch_size=32, test_subset=32, probe_every=0), run_dir=root / model)
    return root


def test_directions_are_filter_normalised_and_leave_out_biases_and_bn(runs):
    model = load_model(runs / "resnet20")
    directions = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    for (name, p), d in zip(model.named_parameters(), directions):
        if p.dim() <= 1:  # BN weight and bias, fc bias
            assert d is None, name
            continue
        assert d.shape == p.shape
        torch.testing.assert_close(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5, atol=1e-7)
    assert sum(d is None for d in directions) == sum(p.dim() <= 1 for p in model.parameters()) > 0


def test_each_point_equals_a_model_rebuilt_with_the_moved_weights(runs):
    """The in-place slicer against the naive way: a fresh model loaded with θ* + α·d, BN in eval mode."""
    model, data = load_model(runs / "plain20"), load_run_data(runs / "plain20")
    config = LandscapeConfig(points=5, subset=48, seed=3)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    result = slice_model(model, data, config, name="p")
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())  # put back exactly
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(3))
    pick = subset_indices(len(data.train_labels), 48, 3)
    x, y = normalize(data.train_images[pick], data.mean, data.std), data.train_labels[pick]
    for alpha, loss, acc in zip(result.alpha, result.loss, result.acc):
        fresh = ResNet(model.spec)
        fresh.load_state_dict(trained)
        with torch.no_grad():
            for p, d in zip(fresh.parameters(), direction):
                if d is not None:
                    p.add_(d, alpha=alpha)
            logits = fresh.eval()(x)
        assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
        assert acc == int((logits.argmax(1) == y).sum()) / len(y)
    assert result.alpha == [-1.0, -0.5, 0.0, 0.5, 1.0]
    mid = result.loss
    assert result.curvature["alpha"] == pytest.approx((mid[3] - 2 * mid[2] + mid[1]) / 0.25)


def test_two_dimensional_grid_and_its_axes(runs):
    result = slice_run(runs / "resnet20", LandscapeConfig(points=3, dims=2, subset=16))
    assert result.dims == 2 and result.beta == result.alpha == [-1.0, 0.0, 1.0]
    assert len(result.loss) == 3 and all(len(row) == 3 for row in result.loss)
    model, data = load_model(runs / "resnet20"), load_run_data(runs / "resnet20")
    slicer = make_slicer(model, data, LandscapeConfig(points=3, dims=2, subset=16))
    assert result.loss[2][0] == pytest.approx(slicer.loss_at([-1.0, 1.0])[0], rel=1e-6)  # loss[j][i] at (α_i, β_j)
    assert set(result.curvature) == {"alpha", "beta"}


def test_cli_json_and_the_curvature_sentence(runs, capsys):
    assert main(["landscape", str(runs / "plain20"), "--points", "3", "--subset", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"alpha", "loss", "subset"} <= set(out) and "beta" not in out
    assert out["subset"] == 20 and len(out["loss"]) == 3
    plain = slice_run(runs / "plain20", LandscapeConfig(points=3, subset=20))
    residual = slice_run(runs / "resnet20", LandscapeConfig(points=3, subset=20))
    assert out["loss"] == plain.loss
    verdict = curvature_text([plain, residual])[-1]
    p, r = plain.curvature["alpha"], residual.curvature["alpha"]
    assert ("not sharper" in verdict) == (p <= r) and f"{p:.4g}" in verdict and f"{r:.4g}" in verdict


@pytest.mark.parametrize("extra, message", [
    (["--points", "0"], "error: points must be an integer from 3 to 101; got 0"),
    (["--points", "4"], "error: points must be odd"),
    (["--dims", "3"], "error: dims must be 1 or 2; got 3"),
    (["--subset", "10001"], "error: subset must be at most the run's 10000 training images; got 10001"),
])
def test_bad_input_is_one_line(runs, capsys, extra, message):
    assert main(["landscape", str(runs / "plain20"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_run_without_weights_is_one_line(runs, tmp_path, capsys):
    shutil.copytree(runs / "plain20", tmp_path / "run")
    (tmp_path / "run" / "weights.pt").unlink()
    assert main(["landscape", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: run run has no weights yet (weights.pt is written when the run ends)\n"


def test_loss_landscape_page_slices_a_plain_and_a_residual_run_side_by_side(runs, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    for name in ("plain20", "resnet20"):
        shutil.copytree(runs / name, root / f"20261130-100000-{name}-ab12")
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    at = AppTest.from_file(str(PAGES / "9_Loss_landscape.py"), default_timeout=60)
    at.session_state["shat_blocks"] = 4
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="land_plain").value == "20261130-100000-plain20-ab12"
    assert at.selectbox(key="land_residual").value == "20261130-100000-resnet20-ab12"
    at.select_slider(key="land_points").set_value(5)
    at.select_slider(key="land_subset").set_value(64).run()
    assert sum("5 evaluations × 64 images = 320 images" in c.value for c in at.caption) == 2  # the cost, before Start
    at.button(key="land_start").click().run()
    rerun_until(at, lambda a: "curvature at α = 0" in "\n".join(md.value for md in a.markdown), 60, 0.3)
    figure = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "land_1d" in str(el.proto.id))
    lines = [t for t in figure["data"] if t.get("xaxis", "x") == "x"]
    assert [t["name"] for t in lines] == ["plain20-ab12 (plain)", "resnet20-ab12 (residual)"]
    assert lines[0]["x"] == lines[1]["x"] == [-1.0, -0.5, 0.0, 0.5, 1.0]  # the same axes
    expected = slice_run(root / "20261130-100000-plain20-ab12", LandscapeConfig(points=5, subset=64)).loss
    assert lines[0]["y"] == pytest.approx(expected, rel=1e-6)
    shattered_fig = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "shat_fig" in str(el.proto.id))
    assert [t["x"] for t in shattered_fig["data"]] == [[1, 2, 3, 4]] * 2
    assert not at.exception and not at.error
