"""One live source of truth for a run's state (issue 23): the board every page reads, and the Train page's widgets
that name runs (their labels never hold a state; the state is drawn apart and follows the job)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from resnet_core.models.presets import resolve_spec
from resnet_core.runs import store as runstore
from resnet_core.runs.board import board_stamp, run_board
from resnet_core.runs.contract import DataFacts, RunConfig
from resnet_core.runs.runner import default_runner
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import Status, TrainRecord
from resnet_core.training.settings import resolve_settings
from tests.conftest import rerun_until, wait_until

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=32, test_subset=200,
            augment="none", threads=1, precision="fp32")
LONG, SHORT = TrainConfig(max_steps=100_000, **TINY), TrainConfig(max_steps=6, **TINY)


def entry_of(runner, job):
    """The job's entry on a fresh board: by its run id once it has a folder, else by its job."""
    board = run_board(runner)
    run_id = job.snapshot().run_id
    return board.runs[run_id] if run_id else next(e for e in board.entries if e.job_id == job.id)


def test_the_board_follows_a_run_queued_running_finished_and_one_cancelled(runner):
    first = runner.submit(LONG, owner="a")
    wait_until(lambda: len(first.snapshot().of_kind(TrainRecord)) >= 1, message="the first job did not train")
    second, third = runner.submit(SHORT, owner="b"), runner.submit(SHORT, owner="c")
    queued = entry_of(runner, second)
    assert (queued.key, queued.run_id, queued.name) == (f"job {second.id}", None,
                                                        f"resnet20 on synthetic (job {second.id})")
    assert re.fullmatch(r"queued · position 1 · waiting \d+ s", queued.status_text), queued.status_text
    assert entry_of(runner, third).status_text.startswith("queued · position 2 · waiting ")
    running = entry_of(runner, first)
    assert running.run_id == first.snapshot().run_id and running.choice_label == f"{running.run_id} · synthetic"
    assert re.fullmatch(r"running · step \d+ of 100000", running.status_text), running.status_text

    stamp = board_stamp(runner)
    third.stop()  # cancelled while queued: its session says so, and it leaves every list
    assert third.snapshot().message.startswith("cancelled before it started, after ")
    assert [e.job_id for e in run_board(runner).entries if e.run_id is None] == [second.id]
    assert board_stamp(runner) != stamp

    first.stop()
    assert first.wait(60) and second.wait(120)
    board = run_board(runner)
    stopped, finished = board.runs[first.snapshot().run_id], board.runs[second.snapshot().run_id]
    stored = runstore.read_run(finished.path)
    assert finished.status_text == f"finished · test acc {stored.final.test_acc:.1%}"
    assert stopped.status_text.startswith("stopped · test acc ")
    assert finished.waited > 0 and board.live == []
    assert board.signature == ((finished.run_id, "finished"), (stopped.run_id, "stopped"))


def test_a_stored_run_of_another_process_reads_from_its_folder(tmp_path):
    config = RunConfig(TrainConfig(**TINY), resolve_spec("resnet20", width=8, layers=(1, 1, 1)),
                       DataFacts("synthetic", "generated", [str(i) for i in range(10)], 3, 32, 256, 200, [0.5] * 3,
                                 [0.25] * 3), resolve_settings(TrainConfig(**TINY)))
    writer = runstore.create_run(config, tmp_path / "runs" / "20261204-120000-resnet20-abcd")
    writer.set_status(Status.RUNNING)
    writer.append(TrainRecord(step=3, epoch=0.5, time=0.3, images=96, loss=2.0, acc=0.1, lr=0.1,
                              images_per_sec=320.0, eta_sec=5.0, total_steps=12))
    writer.close()
    entry = run_board(None, tmp_path / "runs").runs["20261204-120000-resnet20-abcd"]
    assert (entry.job_id, entry.status_text, entry.live) == (None, "running · step 3 of 12", True)


def train_page(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "pages" / "4_Train.py"), default_timeout=120)
    at.session_state["model_choice"] = {"model": "resnet20", "overrides": TINY["overrides"]}
    return at.run()


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_a_picked_run_keeps_its_place_while_another_job_starts_and_its_state_is_drawn_apart(tmp_path, monkeypatch):
    at = train_page(tmp_path, monkeypatch)
    done = default_runner().submit(SHORT, owner="someone-else")
    assert done.wait(120)
    finished = done.snapshot().run_id
    at.run()
    overlay = at.multiselect(key="train_overlay_runs")
    assert overlay.value == [finished] and overlay.options == [f"{finished} · synthetic"]
    acc = runstore.read_run(tmp_path / "runs" / finished).final.test_acc
    assert f"- `{finished}` · resnet20 on synthetic · finished · test acc {acc:.1%}" in markdown(at)

    other = default_runner().submit(LONG, owner="someone-else")
    try:
        rerun_until(at, lambda a: other.snapshot().run_id is not None and f"`{other.snapshot().run_id}` · "
                    "resnet20 on synthetic · running · step" in markdown(a))
        started = other.snapshot().run_id
        overlay = at.multiselect(key="train_overlay_runs")
        assert overlay.value == [finished]  # nothing picked disappears because another job started
        assert overlay.options == [f"{started} · synthetic", f"{finished} · synthetic"]
        assert "Training on this server now" in [s.value for s in at.subheader]
        assert at.button(key=f"train_open_{other.id}").label == "Open"
    finally:
        other.stop()
    rerun_until(at, lambda a: f"- `{started}` · resnet20 on synthetic · stopped · test acc " in markdown(a))
    assert at.multiselect(key="train_overlay_runs").value == [finished]
    assert "Training on this server now" not in [s.value for s in at.subheader]


def test_a_live_run_without_points_gets_a_line_not_an_empty_chart(tmp_path, monkeypatch):
    at = train_page(tmp_path, monkeypatch)
    config = RunConfig(TrainConfig(**TINY), resolve_spec("resnet20", width=8, layers=(1, 1, 1)),
                       DataFacts("synthetic", "generated", [str(i) for i in range(10)], 3, 32, 256, 200, [0.5] * 3,
                                 [0.25] * 3), resolve_settings(TrainConfig(**TINY)))
    writer = runstore.create_run(config, tmp_path / "runs" / "20261204-120000-resnet20-abcd")
    writer.set_status(Status.RUNNING)  # live (this process writes it) and without a record yet
    at.run()
    assert at.multiselect(key="train_overlay_runs").value == ["20261204-120000-resnet20-abcd"]
    assert [c.value for c in at.caption if c.value.startswith("No train loss")] == [
        "No train loss points yet for `20261204-120000-resnet20-abcd` (running · step 0 of …)."]
    assert not overlays(at)
    writer.append(TrainRecord(step=1, epoch=0.1, time=0.1, images=32, loss=2.3, acc=0.1, lr=0.1,
                              images_per_sec=320.0, eta_sec=5.0, total_steps=8))
    writer.set_status(Status.FINISHED)
    writer.close()
    at.run()
    assert not [c for c in at.caption if c.value.startswith("No train loss")]
    assert [[t["name"] for t in spec["data"]] for spec in overlays(at)] == [["20261204-120000-resnet20-abcd"]]


def overlays(at: AppTest) -> list[dict]:
    charts = [json.loads(e.proto.spec) for e in at.main if e.type == "plotly_chart"]
    return [c for c in charts if c["layout"].get("yaxis", {}).get("title", {}).get("text") == "train loss"]


def test_pages_that_list_runs_name_the_live_ones_and_list_them_once_they_end(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    pages = {name: AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
             for name in ("7_Lesion", "6_Degradation")}
    job = default_runner().submit(LONG, owner="someone-else")
    try:
        wait_until(lambda: len(job.snapshot().of_kind(TrainRecord)) >= 1, message="the job did not train")
        run_id, runner = job.snapshot().run_id, default_runner()
        lesion, degradation = (pages[name].run() for name in ("7_Lesion", "6_Degradation"))
        live = [c.value for c in lesion.caption if c.value.startswith("Training on this server now: ")]
        assert len(live) == 1 and re.fullmatch(
            rf"Training on this server now: `{run_id}` running · step \d+ of 100000\. A run is listed here once it "
            r"has ended with its weights \(finished or stopped\)\.", live[0]), live
        assert [i.value for i in lesion.info] == ["No trained run with weights yet: train on the Train page or start "
                                                  "the Degradation runs."]
        assert (f"Job runner (shared by all sessions): 1 running, 0 queued, at most {runner.max_concurrent} at a "
                "time. Runs started on the Train page go first, pausing a net here.") in [c.value for c in
                                                                                       degradation.caption]
    finally:
        job.stop()
    assert job.wait(60)
    lesion.run()
    assert not [c for c in lesion.caption if c.value.startswith("Training on this server now")]
    assert lesion.multiselect(key="lesion_runs").value == [run_id]
