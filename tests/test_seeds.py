"""Seeds as an axis: the degradation experiment with K seeds, its mean/std curves, the bands and the paper lines."""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.cli import main
from resnet_core.experiments import seeds
from resnet_core.runs import store as runstore
from resnet_core.runs.runner import JobRunner, default_runner
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import TestRecord, TrainRecord
from tests.conftest import rerun_until
from ui.seed_figures import seed_band_figure
from ui.widgets import OWNER_KEY


def values(data) -> list[float]:
    """A plotly trace's y, plain or base64-typed-array encoded."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return [v for v in data if v is not None]


PAGES = Path(__file__).resolve().parent.parent / "pages"
TINY = ["--shallow", "3", "--deep", "4", "--steps", "3", "--batch-size", "8", "--width", "4", "--image-size", "8",
        "--test-subset", "16"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """`degradation --seeds 2 --json` on a tiny budget: (its last JSON line, the run root)."""
    root = tmp_path_factory.mktemp("seeds")
    with pytest.MonkeyPatch.context() as mp:
        lines = []
        mp.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
        assert main(["degradation", *TINY, "--seeds", "2", "--seed", "5", "--run-root", str(root), "--json"]) == 0
    return json.loads(lines[-1]), root


def test_cli_json_shape_seeds_mean_and_std(seed_run):
    out, root = seed_run
    assert out["seeds"] == [5, 6]
    assert list(out["nets"]) == ["plain20", "plain26", "resnet20", "resnet26"]
    for net in out["nets"].values():
        assert [s["seed"] for s in net["seeds"]] == [5, 6]
        for s in net["seeds"]:
            assert set(s) == {"seed", "run_dir", "train_loss", "test_acc"}
            assert s["test_acc"] == runstore.read_run(s["run_dir"]).final.test_acc
            stored = [json.loads(line) for line in (Path(s["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
            assert s["train_loss"] == [r["loss"] for r in stored if r["kind"] == "train"]  # the file's own lines
            assert runstore.read_run(s["run_dir"]).config.train.seed == s["seed"]
        a, b = (s["train_loss"] for s in net["seeds"])
        assert a != b  # different weights and batches: the seeds differ
        assert net["mean"]["train_loss"] == pytest.approx([(x + y) / 2 for x, y in zip(a, b)])
        assert net["std"]["train_loss"] == pytest.approx([statistics.stdev([x, y]) for x, y in zip(a, b)])
        accs = [s["test_acc"] for s in net["seeds"]]
        assert net["mean"]["test_acc"] == pytest.approx(statistics.fmean(accs))
        assert net["std"]["test_acc"] == pytest.approx(statistics.stdev(accs))
    assert len(list(root.iterdir())) == 8


def test_sets_read_back_and_bands_match_the_summary(seed_run):
    out, root = seed_run
    sets = seeds.list_seed_sets(root)
    assert list(sets) == [out["set_id"]] and list(sets[out["set_id"]]) == [5, 6]
    records = seeds.set_records(sets[out["set_id"]])
    summary = seeds.seed_summary(records)
    assert {n: s["mean"] for n, s in summary.items()} == {n: s["mean"] for n, s in out["nets"].items()}
    bands = seeds.band_curves(records)
    assert bands["plain20"]["train"]["loss"] == pytest.approx(out["nets"]["plain20"]["mean"]["train_loss"])
    fig = seed_band_figure(bands, show_seeds=True, references=seeds.paper_lines()).to_dict()
    assert sum(1 for t in fig["data"] if t.get("fill") == "tonexty") == 4 * 3  # a band per net and panel
    assert sum(1 for t in fig["data"] if " seed " in t.get("name", "")) == 4 * 2 * 3  # each seed faintly
    labels = sorted(a["text"] for a in fig["layout"]["annotations"] if "paper's setting" in a["text"])
    # only the depth-20 nets have published numbers: He et al. (ResNet-20) and Li et al. (with and without skip)
    assert labels == ["He et al. 2015, Table 6: resnet20 8.75% (paper's setting)",
                      "Li et al. 2018, Table 1: plain20 8.18% (paper's setting)",
                      "Li et al. 2018, Table 1: resnet20 7.37% (paper's setting)"]
    text = seeds.describe_seeds(summary)
    assert len(text) == 2 and all("over 2 seed(s)" in line for line in text)
    log_panel = [y for t in fig["data"] if t.get("yaxis", "y") == "y" for y in values(t["y"]) if y and y > 0]
    axis = fig["layout"]["yaxis"]
    if "range" in axis:  # the axis shows every band edge and every seed's curve
        assert 10 ** axis["range"][0] <= min(log_panel) and max(log_panel) <= 10 ** axis["range"][1]


def literal_run(losses: list[float], test_acc: float) -> list:
    """A run's records: train losses logged at steps 50, 95 and 100, then one evaluation at step 100."""
    train = [TrainRecord(step=step, epoch=step / 100, time=step / 10, images=16 * step, loss=loss, acc=0.5, lr=0.1,
                         images_per_sec=100.0, eta_sec=0.0, total_steps=100)
             for step, loss in zip((50, 95, 100), losses)]
    return [*train, TestRecord(step=100, epoch=1.0, time=10.0, test_loss=1.0, test_acc=test_acc, train_loss=1.0,
                               train_acc=0.5, lr=0.1, images_per_sec=100.0)]


# net -> seed -> (train losses at steps 50, 95, 100; test accuracy). The final train loss is the mean over the last
# 10% of the steps (steps > 90): the mean of the last two losses. Finals by hand: plain8 0.8, 0.9, 1.0;
# plain14 1.0, 0.7, 1.3; resnet8 0.5, 0.6, 0.7; resnet14 0.4, 0.5, 0.6. plain14 ends on a rise, so its last losses
# alone (1.2, 0.9, 1.5) would all be above plain8's (0.7, 0.8, 0.9): the sentences below tell the two rules apart.
LITERAL_SET = {
    "plain8": {5: ([2.0, 0.9, 0.7], 0.5), 6: ([2.1, 1.0, 0.8], 0.6), 7: ([2.2, 1.1, 0.9], 0.7)},
    "plain14": {5: ([2.5, 0.8, 1.2], 0.3), 6: ([2.3, 0.5, 0.9], 0.5), 7: ([2.7, 1.1, 1.5], 0.4)},
    "resnet8": {5: ([1.6, 0.6, 0.4], 0.7), 6: ([1.7, 0.7, 0.5], 0.7), 7: ([1.8, 0.8, 0.6], 0.7)},
    "resnet14": {5: ([1.5, 0.5, 0.3], 0.8), 6: ([1.6, 0.6, 0.4], 0.9), 7: ([1.7, 0.7, 0.5], 0.85)},
}


def test_seed_summary_and_its_sentences_from_literal_records():
    """Mean and sample standard deviation (n - 1) over three seeds, worked out by hand from the literal runs above."""
    records = {net: {seed: (f"{net}-seed{seed}", literal_run(*run)) for seed, run in by_seed.items()}
               for net, by_seed in LITERAL_SET.items()}
    summary = seeds.seed_summary(records)
    assert list(summary) == ["plain8", "plain14", "resnet8", "resnet14"]
    plain14 = summary["plain14"]
    assert (plain14["skip"], plain14["depth"], plain14["steps"]) == (False, 14, [50, 95, 100])
    assert plain14["seeds"] == [dict(seed=5, run_dir="plain14-seed5", train_loss=[2.5, 0.8, 1.2], test_acc=0.3),
                                dict(seed=6, run_dir="plain14-seed6", train_loss=[2.3, 0.5, 0.9], test_acc=0.5),
                                dict(seed=7, run_dir="plain14-seed7", train_loss=[2.7, 1.1, 1.5], test_acc=0.4)]
    # per step: (2.5 + 2.3 + 2.7) / 3 = 2.5 with deviations 0, -0.2, +0.2, so std sqrt(0.08 / 2) = 0.2; then
    # 0.8 and 1.2, each with deviations 0, -0.3, +0.3: std 0.3
    assert plain14["mean"]["train_loss"] == pytest.approx([2.5, 0.8, 1.2], abs=1e-12)
    assert plain14["std"]["train_loss"] == pytest.approx([0.2, 0.3, 0.3], abs=1e-12)
    # finals 1.0, 0.7, 1.3: mean 1.0, std sqrt((0 + 0.09 + 0.09) / 2) = 0.3; accuracies 0.3, 0.5, 0.4: 0.4 ± 0.1
    assert (plain14["mean"]["final_train_loss"], plain14["std"]["final_train_loss"]) == (
        pytest.approx(1.0, abs=1e-12), pytest.approx(0.3, abs=1e-12))
    assert (plain14["mean"]["test_acc"], plain14["std"]["test_acc"]) == (
        pytest.approx(0.4, abs=1e-12), pytest.approx(0.1, abs=1e-12))
    expected = {  # net: (final train loss mean, std; test accuracy mean, std), by hand from LITERAL_SET
        "plain8": (0.9, 0.1, 0.6, 0.1), "resnet8": (0.6, 0.1, 0.7, 0.0), "resnet14": (0.5, 0.1, 0.85, 0.05)}
    for net, numbers in expected.items():
        got = (summary[net]["mean"]["final_train_loss"], summary[net]["std"]["final_train_loss"],
               summary[net]["mean"]["test_acc"], summary[net]["std"]["test_acc"])
        assert got == pytest.approx(numbers, abs=1e-12), net
    # deeper vs shallower final per seed: plain 1.0 > 0.8, 0.7 < 0.9, 1.3 > 1.0 (2 of 3); residual 0.4 < 0.5,
    # 0.5 < 0.6, 0.6 < 0.7 (0 of 3)
    assert seeds.describe_seeds(summary) == [
        "**Plain**: final train loss plain14 1.000 ± 0.300 vs plain8 0.900 ± 0.100 over 3 seed(s); the deeper net "
        "ended higher in 2 of 3.",
        "**Residual**: final train loss resnet14 0.500 ± 0.100 vs resnet8 0.600 ± 0.100 over 3 seed(s); the deeper "
        "net ended higher in 0 of 3."]


def test_paper_lines_hold_li_et_al_table_1():
    li = {(r["net"]): r["test_error"] for r in seeds.paper_lines() if r["paper"].startswith("Li")}
    assert li == {"resnet20": 7.37, "plain20": 8.18, "resnet56": 5.89, "plain56": 13.31, "resnet110": 5.79,
                  "plain110": 16.44}
    assert all(r["setting"] for r in seeds.paper_lines())


def test_cli_bad_seed_count_is_one_line(capsys):
    assert main(["degradation", "--seeds", "11"]) == 2
    assert capsys.readouterr().err == "error: seeds must be an integer from 1 to 10; got 11\n"


def test_degradation_page_with_two_seeds_draws_bands(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGES / "6_Degradation.py"), default_timeout=60).run()
    for key, value in dict(degr_shallow=1, degr_deep=2, degr_steps=3, degr_batch_size=16, degr_width=4,
                           degr_image_size=8, degr_seeds=2).items():
        at.session_state[key] = value
    at.run()
    at.button(key="degr_start").click().run()
    assert not at.exception and not at.error
    assert [len(g.job_ids) for g in at.session_state["degr_group"].other_seeds] == [4]  # the second seed's nets

    def finished(a) -> bool:  # both seeds' four nets on disk and ended (a queued net has no folder yet)
        sets = seeds.list_seed_sets(tmp_path / "runs")
        by_seed = next(iter(sets.values()), {})
        return [len(nets) for nets in by_seed.values()] == [4, 4] and all(
            info.status == "finished" for nets in by_seed.values() for info in nets.values())

    rerun_until(at, finished, 120, 0.5)
    at.run()
    table = next(d.value for d in at.dataframe if "final_train_loss_std" in d.value.columns)
    assert list(table.seeds) == [2, 2, 2, 2]
    band = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "tonexty" in el.proto.spec)
    assert sum(1 for t in band["data"] if t.get("fill") == "tonexty") == 12
    assert not at.exception


def test_lesion_over_the_seeds_of_a_set(seed_run, monkeypatch):
    out, root = seed_run
    seed_set = seeds.list_seed_sets(root)[out["set_id"]]
    rows = [seeds.seed_lesion_row(seed, name, info.path, limit=40) for seed, name, info in seeds.set_runs(seed_set)]
    summary = seeds.lesion_summary([seeds.SeedLesion.from_row(r) for r in rows])
    assert list(summary) == ["plain20", "plain26", "resnet20", "resnet26"]
    net = summary["resnet20"]
    assert (net.skip, net.depth) == (True, 20)
    assert list(net.seeds) == [5, 6] and net.deletable == [True] * 3 + [False, True, True] * 2
    assert net.blocks == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    by_seed = {r["seed"]: r for r in rows if r["net"] == "resnet20"}
    for i, ok in enumerate(net.deletable):
        accs = [by_seed[s]["blocks"][i]["acc"] for s in (5, 6)]
        assert net.mean[i] == (pytest.approx(statistics.fmean(accs)) if ok else None)
        assert net.std[i] == (pytest.approx(statistics.stdev(accs)) if ok else None)
    intact = [by_seed[s]["baseline_acc"] for s in (5, 6)]
    assert net.intact_mean == pytest.approx(statistics.fmean(intact))

    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    at = AppTest.from_file(str(PAGES / "7_Lesion.py"), default_timeout=60).run()
    at.select_slider(key="lesion_limit").set_value(100).run()
    at.button(key="lesion_seedset_start").click().run()
    rerun_until(at, lambda a: any("lesion_seedset_fig" in str(el.proto.id) for el in a.get("plotly_chart"))
                and not a.get("progress"), 60, 0.3)
    figure = next(json.loads(el.proto.spec) for el in at.get("plotly_chart")
                  if "lesion_seedset_fig" in str(el.proto.id))
    means = [t for t in figure["data"] if "(mean over 2 seeds)" in t["name"]]
    assert len(means) == 4 and all(t["error_y"]["visible"] for t in means)
    assert not at.exception and not at.error


def test_train_page_repeats_a_run_with_n_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path / "runs"))
    config = TrainConfig(model="resnet20", overrides={"width": 4, "layers": (1, 1, 1)}, train_subset=128,
                         max_steps=3, batch_size=32, test_subset=32, seed=3, probe_every=0)
    set_id, jobs = seeds.start_repeats(config, 2, JobRunner(max_concurrent=1), root=tmp_path / "runs")
    assert all(job.wait(120) for job in jobs)
    repeat_set = seeds.list_repeat_sets(tmp_path / "runs")[set_id]
    assert list(repeat_set) == [3, 4] and [i.config.train.seed for i in repeat_set.values()] == [3, 4]
    assert [i.status for i in repeat_set.values()] == ["finished"] * 2
    bands = seeds.repeat_curves(repeat_set)["resnet20"]
    losses = [list(c["train"].loss) for c in bands["seeds"].values()]
    assert losses[0] != losses[1] and bands["train"]["loss"] == pytest.approx([statistics.fmean(v)
                                                                                for v in zip(*losses)])

    at = AppTest.from_file(str(PAGES / "4_Train.py"), default_timeout=120)
    for key, value in dict(model_choice={"model": "resnet20", "overrides": {"width": 4, "layers": (1, 1, 1)}},
                           train_train_subset=128, train_max_steps=100_000, train_threads=1, train_repeats=3).items():
        at.session_state[key] = value
    at.run()
    band = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if "train_repeatset" in str(el.proto.id))
    assert sum(1 for t in band["data"] if t.get("fill") == "tonexty") == 3  # train loss, test loss, test error
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    mine = default_runner().jobs(owner=at.session_state[OWNER_KEY])
    try:
        assert [j.config.seed for j in mine] == [0, 1, 2] and mine[0].id == at.session_state["train_job"]
    finally:
        for job in mine:
            job.stop()
            job.wait(30)
