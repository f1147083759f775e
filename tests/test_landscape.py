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
from resnet_core.data.transforms import normalize
from resnet_core.experiments.landscape import (
    LandscapeConfig,
    LandscapeResult,
    SliceCost,
    SliceJob,
    curvature_text,
    estimate_cost,
    estimate_text,
    filter_normalized_direction,
    make_slicer,
    pair_note,
    record_measured,
    run_choices,
    slice_model,
    slice_run,
    subset_indices,
)
from resnet_core.models.resnet import ResNet
from resnet_core.runs.execute import execute
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.runs.pairing import Difference
from resnet_core.runs.store import list_runs
from resnet_core.training.config import TrainConfig
from tests.conftest import rerun_until, wait_until

PAGES = Path(__file__).resolve().parent.parent / "pages"


def tiny(model: str, image_size: int = 8) -> TrainConfig:
    return TrainConfig(model=model, overrides=dict(width=4, layers=(1, 1, 1)), image_size=image_size, max_steps=6,
                       batch_size=32, test_subset=32, probe_every=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("landscape")
    for model in ("resnet20", "plain20"):
        execute(tiny(model), run_dir=root / model)
    return root


@pytest.fixture(scope="module")
def unlike(tmp_path_factory):
    """A residual run trained like `runs`' but on 16×16 images."""
    root = tmp_path_factory.mktemp("unlike")
    execute(tiny("resnet20", image_size=16), run_dir=root / "resnet20-16")
    return root / "resnet20-16"


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
    lines = curvature_text([plain, residual])
    p, r = plain.curvature["alpha"], residual.curvature["alpha"]
    assert lines[0] == (f"**plain20** (plain): loss {plain.origin_loss:.4g} at the trained weights; curvature at α = 0 "
                        f"(second difference): {p:.4g}.")
    verdict = lines[-1]
    assert ("not sharper" in verdict) == (p <= r) and f"{p:.4g}" in verdict and f"{r:.4g}" in verdict


def result(name: str, skip: bool, curvature: dict[str, float]) -> LandscapeResult:
    alpha, loss, acc = [-1.0, 0.0, 1.0], [2.5, 0.1234, 2.0], [0.1, 0.9, 0.2]
    if len(curvature) == 2:
        return LandscapeResult(name, skip, 2, alpha, alpha, [[3.0] * 3, loss, [3.0] * 3], [acc] * 3, 64, 1.0, curvature)
    return LandscapeResult(name, skip, 1, alpha, None, loss, acc, 64, 1.0, curvature)


def test_the_curvature_sentences_and_no_verdict_for_runs_trained_otherwise():
    plain, residual = result("plain20", False, dict(alpha=2.281)), result("resnet20", True, dict(alpha=3.5))
    assert curvature_text([plain, residual]) == [
        "**plain20** (plain): loss 0.1234 at the trained weights; curvature at α = 0 (second difference): 2.281.",
        "**resnet20** (residual): loss 0.1234 at the trained weights; curvature at α = 0 (second difference): 3.5.",
        "Here the plain net's slice is **not sharper** at α = 0: curvature 2.281 (plain) vs 3.5 (residual). Li et al. "
        "report the opposite for their fully trained CIFAR-10 nets; this measurement is what these runs give."]
    unlike = [Difference("image size", "16×16", "32×32"), Difference("training", "600 steps", "100 steps")]
    assert curvature_text([plain, residual], unlike)[-1] == (
        "**Not compared**: these runs were not trained alike (image size 16×16 vs 32×32; training 600 steps vs 100 "
        "steps), so a difference in curvature cannot be put down to the shortcuts. Li et al. compare nets trained "
        "alike; pick a plain and a residual run that match to compare them.")
    plane = result("plain20", False, dict(alpha=2.281, beta=1.5))
    assert curvature_text([plane])[0].endswith(
        "curvature at the origin (second difference): 2.281 along α, 1.5 along β.")


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
    timing = next(c.value for c in at.caption if "before Start" in c.value)
    assert timing.startswith("plain20-ab12: estimated ") and " · resnet20-ab12: estimated " in timing
    assert "Not compared" not in "\n".join(md.value for md in at.markdown) and not at.warning
    shattered_fig = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "shat_fig" in str(el.proto.id))
    assert [t["x"] for t in shattered_fig["data"]] == [[1, 2, 3, 4]] * 2
    assert not at.exception and not at.error


def test_the_page_picks_no_unlike_pair_and_draws_no_verdict_from_one(runs, unlike, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(runs / "plain20", root / "20261130-100000-plain20-ab12")
    shutil.copytree(unlike, root / "20261130-110000-resnet20-cd34")
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    at = AppTest.from_file(str(PAGES / "9_Loss_landscape.py"), default_timeout=60)
    at.session_state["shat_blocks"] = 4
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="land_plain").value == at.selectbox(key="land_residual").value == "—"
    assert [i.value for i in at.info] == [
        "No stored plain and residual run were trained alike, so no pair is picked: the newest of each, plain20-ab12 "
        "and resnet20-cd34, differ in image size 8×8 vs 16×16. Pick runs yourself; the page says how they differ."]
    at.selectbox(key="land_plain").set_value("20261130-100000-plain20-ab12")
    at.selectbox(key="land_residual").set_value("20261130-110000-resnet20-cd34")
    at.select_slider(key="land_points").set_value(3)
    at.select_slider(key="land_subset").set_value(64).run()
    assert [w.value for w in at.warning] == [
        "These runs were not trained alike: image size 8×8 vs 16×16. Both are sliced, but their curvatures are not "
        "compared: pick a plain and a residual run that match."]
    at.button(key="land_start").click().run()
    rerun_until(at, lambda a: "curvature at α = 0" in "\n".join(md.value for md in a.markdown), 60, 0.3)
    text = "\n".join(md.value for md in at.markdown)
    assert "**Not compared**: these runs were not trained alike (image size 8×8 vs 16×16)" in text
    assert "Li et al. report the opposite" not in text and "as Li et al. found" not in text
    assert not at.exception and not at.error


def test_the_cost_before_start_counts_evaluations_and_images_and_says_so(runs):
    cost = estimate_cost(runs / "plain20", LandscapeConfig(points=5, subset=64))
    assert (cost.evaluations, cost.subset, cost.images) == (5, 64, 320)
    assert cost.setup > 0 and cost.first_point > 0 and cost.per_point > 0 and cost.basis == "two points timed now"
    assert cost.seconds == pytest.approx(cost.setup + cost.first_point + 4 * cost.per_point)
    assert estimate_cost(runs / "plain20", LandscapeConfig(points=3, dims=2, subset=16)).images == 9 * 16
    assert SliceCost(evaluations=21, subset=512, images=10_752, setup=2.0, first_point=1.5,
                     per_point=1.2).text("20261130-100000-plain20-ab12") == (
        "plain20-ab12: 21 evaluations × 512 images = 10,752 images through the model, about 28 s: 2.0 s to load, "
        "then 1,200 ms a point (measured on this run's own model and images: two points timed now).")
    assert estimate_text(28.0, 55.0) == "estimated 28 s before Start, took 55 s (1.96× the estimate)"
    assert estimate_text(4.0, 3.0) == "estimated 4.0 s before Start, took 3.0 s (0.75× the estimate)"


def test_the_estimate_learns_from_a_slice_measured_before(runs):
    config = LandscapeConfig(points=5, subset=40, batch_size=20)
    record_measured(runs / "resnet20", config, 1.5, [0.9, 0.4, 0.5, 0.3, 0.6])
    for points in (5, 21):  # the same run, subset and batch: its setup, first point and the median later point
        cost = estimate_cost(runs / "resnet20", LandscapeConfig(points=points, subset=40, batch_size=20))
        assert (cost.setup, cost.first_point, cost.per_point) == (1.5, 0.9, 0.5)
        assert cost.seconds == pytest.approx(1.5 + 0.9 + (points - 1) * 0.5)
        assert cost.basis == "the 5 points of its last slice here"
    assert estimate_cost(runs / "resnet20", LandscapeConfig(points=5, subset=41)).basis == "two points timed now"


def test_the_runs_offered_are_split_by_kind_with_the_newest_picked(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "no-groups"))  # no degradation group to prefer
    stored = {info.run_id: info for info in list_runs(runs)}
    assert run_choices(stored) == {False: (["plain20"], "plain20"), True: (["resnet20"], "resnet20")}
    residual_only = {"resnet20": stored["resnet20"]}
    assert run_choices(residual_only) == {False: ([], None), True: (["resnet20"], "resnet20")}
    assert pair_note(stored) is None


def test_a_slice_job_measures_the_chosen_runs_and_knows_its_settings(runs):
    stored = {info.run_id: info for info in list_runs(runs)}
    config = LandscapeConfig(points=3, subset=16)
    job = SliceJob.start(stored, ["plain20", "resnet20"], config)
    assert job.task.total == 2 * 3
    wait_until(lambda: job.done, 60, 0.05, message="the slices were not measured")
    rows, _, error = job.task.snapshot()
    results = job.slices.results(rows)
    assert error is None and [(r.name, r.skip) for r in results] == [("plain20", False), ("resnet20", True)]
    assert results[0].loss == pytest.approx(slice_run(runs / "plain20", config).loss, rel=1e-6)
    assert job.is_for(["plain20", "resnet20"], config) and job.is_for(("plain20", "resnet20"), config)
    assert not job.is_for(["plain20"], config)
    assert not job.is_for(["plain20", "resnet20"], LandscapeConfig(points=3, subset=16, seed=1))
