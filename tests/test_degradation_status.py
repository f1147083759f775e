"""The Degradation page says what was queued, what finished and what never started, shows progress and an
expected time measured on this machine, and reads test accuracy in % everywhere; the log axes it shares
with Signal flow carry several labelled ticks."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.experiments import degradation
from resnet_core.experiments.degradation_status import (
    group_text,
    net_progress,
    overall,
    queued_file,
    read_queued,
    seconds_left,
)
from resnet_core.formatting import format_seconds
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.contract import RunState
from resnet_core.runs.forecast import Basis, Forecast
from resnet_core.runs.store import list_runs
from resnet_core.training.estimate import RunEstimate, time_run
from resnet_core.training.records import Status, TrainRecord
from tests.conftest import rerun_until, wait_until
from tests.test_flow_pages import values
from ui.figure_layout import log_axis

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "6_Degradation.py")
TINY_WIDGETS = dict(degr_shallow=1, degr_deep=2, degr_batch_size=16, degr_width=4, degr_image_size=8)
TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=3, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=0)


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    return root


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in {**TINY_WIDGETS, **state}.items():
        at.session_state[key] = value
    return at.run()


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


class Clock:
    """time.perf_counter for estimate.py and engine.py: literal readings, in the order they are taken."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def perf_counter(self) -> float:
        return self.readings.pop(0)


def test_estimate_is_the_nets_own_timed_step_and_evaluation_scaled_to_the_run(monkeypatch):
    """The median of the 3 timed steps (after a warm-up) × the steps, plus the evaluation's time per image × the test
    images × the evaluations, from literal clock readings."""
    config = TINY.train_configs()["plain14"]
    measured = time_run(config, threads=1)  # on this machine's clock: real, positive times
    assert measured.step_seconds > 0 and measured.eval_seconds > 0
    assert (measured.steps, measured.evaluations) == (3, 1)
    cases = [  # (config, steps, evaluations, eval_seconds, seconds), each worked out by hand
        # 3 steps, less than an epoch: one evaluation, at the end; 64 test images, all of them timed (1.5 s):
        # 3 × 0.5 + 1 × 1.5
        (config, 3, 1, 1.5, 3.0),
        # 10 steps of 4 per epoch (64 train images, batch 16): evaluations after steps 4 and 8 and at the end; 512
        # test images, 256 timed (EVAL_SAMPLE) in 1.5 s, so 3.0 s for all: 10 × 0.5 + 3 × 3.0
        (config.replace(max_steps=10, train_subset=64, test_subset=512), 10, 3, 3.0, 14.0),
    ]
    for run_config, steps, evaluations, eval_seconds, seconds in cases:
        # warm-up 2 s (not counted), timed steps 0.5, 0.25 and 0.75 s (median 0.5), then the evaluation 1.5 s
        clock = Clock(0.0, 2.0, 10.0, 10.5, 20.0, 20.25, 30.0, 30.75, 40.0, 41.5)
        monkeypatch.setattr("resnet_core.training.estimate.time", clock)
        monkeypatch.setattr("resnet_core.training.engine.time", clock)
        estimate = time_run(run_config, threads=1)
        assert clock.readings == []  # every reading taken: 4 steps and one evaluation, nothing else timed
        assert estimate == RunEstimate(step_seconds=0.5, eval_seconds=eval_seconds, steps=steps,
                                       evaluations=evaluations, seconds=seconds)


def test_first_load_says_what_will_run_and_the_expected_time(runs_root):
    at = page(degr_steps=50)
    assert not at.exception
    assert "“What runs”" in at.info[0].value and "plain8, plain14, resnet8, resnet14" in captions(at)
    rerun_until(at, lambda a: any("Expected time: about" in m.value for m in a.markdown), 60, 0.3)
    line = next(m.value for m in at.markdown if "Expected time" in m.value)
    assert all(name in line for name in ("plain8", "plain14", "resnet8", "resnet14"))
    assert "50 steps × its own step time" in captions(at) and "load average" in captions(at)


def test_stop_says_what_was_queued_what_ran_and_what_never_started(runs_root):
    at = page(degr_steps=5000)
    rerun_until(at, lambda a: any("Expected time: about" in m.value for m in a.markdown), 60, 0.3)
    at.button(key="degr_start").click().run()
    assert not at.exception
    rerun_until(at, lambda a: any(p.proto.text.startswith("plain8: running, step") for p in a.get("progress")),
                60, 0.3)
    bars = [p.proto.text for p in at.get("progress")]
    assert bars[0].startswith("Overall: 0 of 4 nets done") and "left" in bars[0]
    assert any(b.startswith("plain14: queued") and "to run (scaled from the pace measured on this group's nets)" in b
               for b in bars)  # plain8 has trained: its pace, not the prior
    at.button(key="degr_stop").click().run()
    rerun_until(at, lambda a: a.dataframe and "running" not in set(a.dataframe[0].value.status), 60, 0.3)
    at.run()
    text = captions(at)
    assert "Queued together: plain8, plain14, resnet8, resnet14." in text
    assert "Stopped: plain8 at step" in text
    assert "Not started (stopped while queued): plain14, resnet8, resnet14." in text
    # a stopped run is still evaluated: its accuracy in % in the table, as the run stored it
    (stopped,) = [r for r in list_runs() if r.run_id.endswith("plain8")]
    table = at.dataframe[0].value.set_index("net")
    assert table.loc["plain8", "test accuracy %"] == round(100 * stopped.final.test_acc, 1)

    assert table.loc["plain8", "step"] == stopped.final.steps
    assert table.status.tolist() == ["stopped"] + ["not started (stopped while queued)"] * 3
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    (test_point,) = [t for t in figure["data"] if t["xaxis"] == "x3"]  # its evaluation at the stop
    assert values(test_point["x"]) == [stopped.final.steps] <= [figure["layout"]["xaxis3"]["range"][1]]

    again = page()  # another session, after a reload: the queued file still names the four
    assert "Queued together: plain8, plain14, resnet8, resnet14." in captions(again)
    assert "Not started (stopped while queued): plain14, resnet8, resnet14." in captions(again)


def test_several_seeds_are_timed_as_k_times_the_four_and_followed_until_the_last_run_ends(runs_root):
    at = page(degr_steps=150, degr_seeds=2)
    rerun_until(at, lambda a: any("Expected time: about" in m.value for m in a.markdown), 60, 0.3)
    line = next(m.value for m in at.markdown if "Expected time" in m.value)
    estimate = at.session_state["degr_estimate"]
    assert estimate["key"] == (degradation.DegradationConfig(shallow=1, deep=2, steps=150, batch_size=16, width=4,
                                                             image_size=8), 2)
    one_seed = sum(e.seconds for e in estimate["task"].snapshot()[0][0].values())
    assert line.startswith(f"**Expected time: about {format_seconds(2 * one_seed)}** for the 8 runs — the 4 nets × "
                           "2 seeds, one after another (each seed: plain8 ")
    assert at.button(key="degr_start").label == "Start the 8 runs"
    at.button(key="degr_start").click().run()
    assert not at.exception
    # seed 0's four have ended and seed 1's still train: the page keeps following the set
    following = re.compile(r"Overall: [4-7] of 8 nets done.*")
    rerun_until(at, lambda a: any(following.fullmatch(p.proto.text) for p in a.get("progress")), 120, 0.3)
    (bar,) = [p.proto.text for p in at.get("progress") if p.proto.text.startswith("Overall")]
    assert bar.endswith("(2 seeds; the bars below: seed 0)")
    at.button(key="degr_stop").click().run()
    rerun_until(at, lambda a: not a.get("progress"), 60, 0.3)


def test_finished_group_reads_test_accuracy_in_percent_and_its_axes_have_ticks(runs_root):
    summaries = degradation.run(TINY, root=runs_root)
    at = page()
    assert not at.exception
    table = at.dataframe[0].value.set_index("net")
    verdict = next(m.value for m in at.markdown if "Test accuracy (last evaluation)" in m.value)
    for name, summary in summaries.items():
        shown = round(100 * summary["test_acc"], 1)
        assert table.loc[name, "test accuracy %"] == shown and f"{name} {shown:.1f}%" in verdict
    assert "Test error" not in verdict
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    layout = figure["layout"]
    assert layout["yaxis3"]["title"]["text"] == "test accuracy (%)" and layout["xaxis"]["range"][0] == 0
    assert len(layout["yaxis"]["tickvals"]) >= 3  # the train-loss log axis: several labels, not one
    tests = [t for t in figure["data"] if t["xaxis"] == "x3"]
    assert len(tests) == 4 and all("markers" in t["mode"] and len(values(t["x"])) == 1 for t in tests)  # one point
    for trace in tests:
        assert values(trace["y"]) == [pytest.approx(100 * summaries[trace["legendgroup"]]["test_acc"])]
    assert read_queued(next(iter(degradation.list_groups()))) is None  # the command line queues nothing


def test_progress_and_group_text_from_states_and_records(tmp_path):
    record = TrainRecord(step=130, epoch=0.5, time=9.0, images=130 * 64, loss=2.0, acc=0.2, lr=0.1,
                         images_per_sec=900.0, eta_sec=40.0, total_steps=600)
    running = net_progress("plain20", RunState(Status.RUNNING), [record])
    queued = net_progress("plain56", RunState(Status.QUEUED, queue_position=1), [], Forecast(300.0, Basis.PRIOR), 600)
    never = net_progress("resnet20", RunState(Status.STOPPED, "stopped before it started"), [])
    assert (running.fraction, running.seconds_left, running.basis) == (130 / 600, 40.0, Basis.MEASURED)
    assert running.text() == "plain20: running, step 130 of 600, about 40 s left (measured)"
    assert (queued.total, queued.seconds_left) == (600, 300.0)
    assert queued.text() == ("plain56: queued (queue position 1), about 5 min 00 s to run (a prior: a few steps timed "
                             "before the start)")
    assert seconds_left([running, queued, never]) == 340.0  # no wait known: after the nets before it
    behind = net_progress("resnet56", RunState(Status.QUEUED, queue_position=3, wait_sec=400.0), [],
                          Forecast(120.0, Basis.SCALED), 600)
    assert behind.text() == ("resnet56: queued (queue position 3), about 2 min 00 s to run (scaled from the pace "
                             "measured on this group's nets), starts in about 6 min 40 s")
    assert seconds_left([running, queued, behind]) == 520.0  # its wait (another session's run in front) + its run
    paused = net_progress("plain20", RunState(Status.QUEUED, "paused at step 130", 1, wait_sec=90.0), [record])
    assert (paused.step, paused.seconds_left, paused.wait_sec, paused.basis) == (130, 40.0, 90.0, Basis.MEASURED)
    assert overall([running, queued, never]) == pytest.approx(
        ((130 / 600 + 0 + 0) / 3, "Overall: 1 of 3 nets done · about 5 min 40 s left"))
    assert seconds_left([running, net_progress("resnet56", RunState(Status.QUEUED), [])]) is None  # no estimate
    assert group_text(["plain20", "plain56", "resnet20"], [running, queued, never]) == (
        "Queued together: plain20, plain56, resnet20. Running: plain20 at step 130 of 600; Waiting in the queue: "
        "plain56; "
        "Not started (stopped while queued): resnet20.")
    for bad in ("[1, 2]", '{"nets": ["rm -rf"]}', '{"nets": []}', "{{{"):
        queued_file("g", tmp_path).write_text(bad)
        assert read_queued("g", tmp_path) is None


def test_log_axes_label_powers_of_ten_or_several_round_values():
    wide = log_axis([3.6e-35, 1.2e-2])
    assert wide["type"] == "log" and wide["exponentformat"] == "power" and wide["dtick"] == 5  # 33 decades / 8
    loss = log_axis([1.5, 2.3])  # a loss over a few hundred steps: labelled from just below to just above
    assert loss["ticktext"] == ["1.4", "1.6", "1.8", "2", "2.2", "2.4"]
    assert 10 ** loss["range"][0] < 1.4 and 10 ** loss["range"][1] > 2.4
    assert log_axis([0.01, 0.5])["ticktext"] == ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5"]
    assert log_axis([0.569, 2.6])["ticktext"] == ["0.5", "1", "1.5", "2", "2.5", "3"]  # a ResNet-56's activation std
    assert log_axis([1.0, 1.0])["ticktext"] == ["0.98", "0.99", "1", "1.01", "1.02"]
    assert log_axis([2.29, 2.36])["ticktext"] == ["2.28", "2.3", "2.32", "2.34", "2.36"]
    assert log_axis([2e-5, 3e-5])["ticktext"] == ["2×10⁻⁵", "2.2×10⁻⁵", "2.4×10⁻⁵", "2.6×10⁻⁵", "2.8×10⁻⁵", "3×10⁻⁵"]


def test_a_cancelled_estimate_computes_no_further_rows():
    started, release = threading.Event(), threading.Event()

    def slow(item: int) -> dict:
        started.set()
        release.wait(10)
        return dict(item=item)

    task = BackgroundRows(slow, [1, 2, 3])
    started.wait(10)
    task.cancel()  # the settings changed while the first row was being computed
    release.set()
    wait_until(lambda: task.snapshot()[1], 10)
    rows, done, error = task.snapshot()
    assert done and error is None and rows == [dict(item=1)]
