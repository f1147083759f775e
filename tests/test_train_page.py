"""AppTest of the Train page: Start training → live curve → Stop, then the stored run in the overlay."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from resnet_core.runs import background
from resnet_core.runs import runner as jobs
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.runner import default_runner
from resnet_core.training.config import TrainConfig
from resnet_core.training.precision import Rates, precision_key
from resnet_core.training.records import Status, TestRecord, TrainRecord
from resnet_core.training.verdicts import remember
from tests.conftest import rerun_until, wait_until
from ui.train_figures import (
    EMPTY_CURVES,
    confusion_figure,
    has_points,
    overlay_figure,
    prediction_grid,
    run_title,
    training_curves,
)
from ui.widgets import OWNER_KEY

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "4_Train.py")
SMALL_MODEL = {"model": "resnet20", "overrides": {"width": 8, "layers": (1, 1, 1)}}


def _charts(at: AppTest):
    return [json.loads(e.proto.spec) for e in at.main if e.type == "plotly_chart"]


def _values(data):
    """A plotly trace's x or y, plain or base64 typed-array encoded."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def _train_steps(at: AppTest):
    for spec in _charts(at):
        for trace in spec["data"]:
            if trace.get("name") == "train":
                return _values(trace["x"])
    return []


def _tiny_page(tmp_path, monkeypatch, steps: int = 8) -> AppTest:
    """The page on a small resnet20, set for a short run (256 images, `steps` steps, one thread)."""
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["model_choice"] = SMALL_MODEL
    at.session_state["train_train_subset"] = 256
    at.session_state["train_max_steps"] = steps
    at.session_state["train_threads"] = 1
    return at.run()


def _finished(at: AppTest) -> bool:
    return any(s.value.startswith("Finished") for s in at.success)


def _progress_text(at: AppTest) -> str:
    return " ".join(p.proto.text for p in at.get("progress"))


@pytest.fixture
def served_bytes(monkeypatch):
    """url -> the bytes a download button serves (AppTest keeps only the URL, its media store is per run)."""
    stores = []

    class RecordingStorage(MemoryMediaFileStorage):
        def __init__(self, media_endpoint: str) -> None:
            super().__init__(media_endpoint)
            stores.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", RecordingStorage)
    return lambda url: stores[-1].get_file(url.rsplit("/", 1)[-1]).content


@pytest.fixture(autouse=True)
def _stop_jobs_after():
    yield
    for job in default_runner().jobs():
        job.stop()
        job.wait(10)


def test_start_then_stop(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    start, stop = at.button(key="train_start"), at.button(key="train_stop")
    assert start.label == "Start training" and not start.disabled
    assert stop.label == "Stop" and stop.disabled
    assert at.selectbox(key="train_model").value == "resnet20"

    at.session_state["train_train_subset"] = 2000  # keep the test's run short; defaults are checked above
    at.session_state["train_threads"] = 1  # robust on a busy 2-core machine
    at.session_state["train_precision"] = "fp32"  # auto's bf16 timing: 37 of this test's 65 s on a first-gen Zen
    at.button(key="train_start").click().run()
    assert not at.exception
    assert at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
    assert default_runner().get(at.session_state["train_job"]).owner == at.session_state[OWNER_KEY]
    rerun_until(at, lambda a: len(_train_steps(a)) >= 2, timeout=90)
    assert _train_steps(at)[0] == 1

    at.button(key="train_stop").click().run()
    rerun_until(at, lambda a: any("Stopped" in w.value for w in a.warning))
    assert not at.button(key="train_start").disabled and at.button(key="train_stop").disabled
    runs = runstore.list_runs(tmp_path / "runs")
    assert [r.status for r in runs] == [Status.STOPPED]
    assert runs[0].config.train.model == "resnet20" and runs[0].config.train.train_subset == 2000
    assert runs[0].config.train.precision == "fp32"
    assert at.multiselect(key="train_overlay_runs").value == [runs[0].run_id]
    assert any(b.label == "Metrics (CSV)" for b in at.get("download_button"))


def test_finished_run_shows_results_for_the_architecture_pages_choice(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["model_choice"] = {"model": "resnet20", "overrides": {"width": 8, "layers": (1, 1, 1)}}
    at.run()
    at.session_state["train_train_subset"] = 256
    at.session_state["train_max_steps"] = 8
    at.session_state["train_threads"] = 1
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: any(s.value.startswith("Finished 8 steps") for s in a.success))
    assert [m.label for m in at.metric][:3] == ["Test accuracy", "Test loss", "Steps"]
    run = runstore.list_runs(tmp_path / "runs")[0]
    assert run.config.spec.width == 8 and run.config.spec.layers == (1, 1, 1)
    assert at.metric[0].value == f"{run.final.test_acc:.1%}"
    titles = {spec["layout"]["title"]["subtitle"]["text"]: spec["layout"]["title"]["text"] for spec in _charts(at)
              if spec["layout"].get("title", {}).get("subtitle")}
    assert titles["Confusion matrix (2000 test images)"] == run_title(run.run_id, run.config.train)  # on the export too
    assert run.run_id in titles["Confusion matrix (2000 test images)"] and "width=8" in titles[
        "Confusion matrix (2000 test images)"]
    configs = [json.loads(e.proto.config) for e in at.main if e.type == "plotly_chart"]
    assert all(c["toImageButtonOptions"]["format"] == "png" for c in configs)
    assert f"{run.run_id}-resnet20-width=8" in configs[0]["toImageButtonOptions"]["filename"]
    at.session_state["chart_image_format"] = "svg"  # the sidebar's "Chart downloads" control
    at.run()
    assert {json.loads(e.proto.config)["toImageButtonOptions"]["format"] for e in at.main
            if e.type == "plotly_chart"} == {"svg"}
    grid = next(spec for spec in _charts(at) if any(t["type"] == "image" for t in spec["data"]))
    assert sum(t["type"] == "image" for t in grid["data"]) == 24
    labels = [b.label for b in at.get("download_button")]
    assert "Metrics (CSV)" in labels and "Weights (.pt state_dict)" in labels


def test_bad_settings_show_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.selectbox(key="train_dataset").set_value("imagefolder").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["data_dir is required for dataset imagefolder: a folder of class "
                                           "folders (or with train/ and test/ or val/ subfolders)"]
    assert at.button(key="train_stop").disabled  # nothing was started


def test_figure_builders():
    records = [TrainRecord(step=s, epoch=s / 3, time=0.1 * s, images=16 * s, loss=2.0 / s, acc=0.1 * s, lr=0.1,
                           images_per_sec=500.0, eta_sec=0.1 * (3 - s), total_steps=3) for s in (1, 2, 3)]
    records.append(TestRecord(step=3, epoch=1.0, time=0.4, test_loss=1.0, test_acc=0.5, train_loss=1.2, train_acc=0.2,
                              lr=0.1, images_per_sec=500.0))
    fig = training_curves(records)
    assert [t.name for t in fig.data] == ["train", "train", "lr", "images/s", "test", "test"]
    assert EMPTY_CURVES not in [a.text for a in fig.layout.annotations]
    empty = training_curves([])
    assert len(empty.data) == 0 and empty.layout.annotations[-1].text == EMPTY_CURVES
    assert list(fig.data[0].y) == [2.0, 1.0, 2.0 / 3]
    overlay = overlay_figure([dict(label="a", records=records), dict(label="b", records=records, skip=False)],
                             "train loss")
    assert [t.line.dash for t in overlay.data] == ["solid", "dash"]
    stopped_early = records[:1]  # stopped before its first evaluation: train records only
    assert not has_points(stopped_early, "test accuracy") and has_points(stopped_early, "train loss")
    assert has_points(records, "test accuracy") and not has_points([], "train loss")
    accuracy = overlay_figure([dict(label="a", records=records)], "test accuracy")
    assert [t.name for t in accuracy.data] == ["a"] and list(accuracy.layout.yaxis.range) == [0, 1.02]
    assert not accuracy.layout.annotations  # runs without points are named by the page, in a line of their own
    assert accuracy.data[0].mode == "lines+markers" and accuracy.data[0].marker.size >= 8  # one point still shows
    assert overlay_figure([dict(label="early", records=stopped_early)]).data[0].name == "early"  # the default
    two_by_two = (fig.layout.xaxis.domain == fig.layout.xaxis3.domain  # loss above learning rate
                  and fig.layout.yaxis3.domain[1] < fig.layout.yaxis.domain[0])
    assert two_by_two and fig.layout.yaxis.type == "log" and fig.layout.yaxis.title.text == "loss"
    confusion = confusion_figure([[3, 1], [0, 4]], ["x", "y"])
    assert confusion.layout.title.text == "Confusion matrix (8 test images)"
    grid = prediction_grid(np.zeros((3, 1, 8, 8), dtype=np.uint8), [0, 1, 1], [0, 0, 1], ["x", "y"], columns=2)
    assert [a.text for a in grid.layout.annotations] == ["✓ x", "✗ x<br>true: y", "✓ y"]
    assert [a.font.color for a in grid.layout.annotations] == ["#2ca02c", "#d62728", "#2ca02c"]


def test_current_run_can_be_inspected_as_a_stored_run(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch)
    at.button(key="train_start").click().run()
    rerun_until(at, _finished)
    run_id = runstore.list_runs(tmp_path / "runs")[0].run_id
    at.selectbox(key="train_inspect").set_value(run_id).run()
    assert not at.exception  # both panels' download buttons used to share the run folder's key
    assert [s.value for s in at.subheader][:3] == ["Results", "Past runs", f"Stored run {run_id}"]
    assert [b.label for b in at.download_button] == ["Metrics (CSV)", "Weights (.pt state_dict)"] * 2


def test_toast_when_the_run_finishes(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch)
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: len(a.toast) > 0)
    assert at.toast[0].value.startswith("Finished 8 steps") and _finished(at)
    at.run()
    assert not at.toast  # once per run


def test_progress_bar_shows_step_time_left_and_speed(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch, steps=2000)  # long enough to be seen running; stopped below
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: " left" in _progress_text(a) and "images/s" in _progress_text(a))
    assert _progress_text(at).startswith("Step ") and " of 2000 · about " in _progress_text(at)
    at.button(key="train_stop").click().run()
    rerun_until(at, lambda a: any("Stopped" in w.value for w in a.warning))


def test_second_run_waits_in_the_shared_queue(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch)
    runner = default_runner()
    busy = TrainConfig(model="resnet20", overrides=SMALL_MODEL["overrides"], train_subset=256, max_steps=2000,
                       threads=1)
    others = [runner.submit(busy, owner="someone-else") for _ in range(runner.max_concurrent)]
    wait_until(lambda: all(j.snapshot().status == Status.RUNNING for j in others),
               message="the other owner's runs did not start")
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(i.value.startswith("Queued at position 1 of 1, waiting ") for i in at.info)
    assert not at.button(key="train_stop").disabled
    at.button(key="train_stop").click().run()
    rerun_until(at, lambda a: any(w.value.startswith("Cancelled before it started, after ") for w in a.warning))
    assert any(w.value.endswith(" in the queue") for w in at.warning)
    for job in others:
        job.stop()


def test_downloads_carry_the_metrics_and_the_trained_weights(tmp_path, monkeypatch, served_bytes):
    at = _tiny_page(tmp_path, monkeypatch)
    at.button(key="train_start").click().run()
    rerun_until(at, _finished)
    buttons = {b.label: b for b in at.download_button}
    csv = served_bytes(buttons["Metrics (CSV)"].proto.url).decode()
    assert {"step", "loss", "acc", "lr", "images_per_sec", "test_acc"} <= set(csv.splitlines()[0].split(","))
    state = torch.load(io.BytesIO(served_bytes(buttons["Weights (.pt state_dict)"].proto.url)), weights_only=True)
    trained = default_runner().get(at.session_state["train_job"]).result.model.state_dict()
    assert list(state) == list(trained)
    assert all(torch.equal(state[k], trained[k].cpu()) for k in trained)


def test_channels_last_and_device_reach_the_stored_config(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch)
    assert at.checkbox(key="train_channels_last").value is TrainConfig().channels_last is True
    assert at.selectbox(key="train_device").value == "cpu"
    assert at.selectbox(key="train_device").options == ["cpu", "auto"]
    assert at.number_input(key="train_threads").max == os.cpu_count()
    at.checkbox(key="train_channels_last").uncheck()
    at.selectbox(key="train_device").set_value("auto")
    at.button(key="train_start").click().run()
    rerun_until(at, _finished)
    stored = runstore.list_runs(tmp_path / "runs")[0].config.train
    assert stored.channels_last is False and stored.device == "auto"


def test_bad_max_runs_setting_shows_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(jobs.MAX_RUNS_ENV, "abc")
    # as in a fresh server process: no runner yet (monkeypatch puts the process-wide one back afterwards)
    monkeypatch.delitem(background._REGISTRY.objects, "runner", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["RESNET_EXPLORER_MAX_RUNS must be a whole number >= 1; got 'abc'"]
    assert not at.button and [s.value for s in at.subheader] == ["Past runs"]


def test_page_says_what_auto_chooses_and_why(tmp_path, monkeypatch, own_precision_cache):
    at = _tiny_page(tmp_path, monkeypatch)
    captions = " ".join(c.value for c in at.caption)
    assert "Budget 8 steps (set by the user). Augmentation **crop+flip** (auto: random crops, and flips because " \
           "every synthetic shape" in captions
    unguarded = ("precision **fp32** (auto: fp32; bf16 not measured: its accuracy was never checked on real data for a "
                 "model of this size and input (bf16_guard.json)).")  # this small resnet20: no guard, nothing timed
    assert f"{unguarded} 32×32 images (synthetic's own side); crops padded 4 pixels (auto: an eighth of the side, as " \
           "CIFAR's 4 of 32)." in captions
    at.session_state["train_max_steps"] = 0  # the auto budget
    at.selectbox(key="train_dataset").set_value("mnist").run()
    captions = " ".join(c.value for c in at.caption)
    assert "Auto budget: 120 steps = 60 epochs of 256 images (at least 2 epochs and 120 steps). Augmentation " \
           "**crop** (auto: random crops only; mnist's classes are not known to survive a mirror" in captions
    assert f"{unguarded} 28×28 images (mnist's own side); crops padded 4 pixels" in captions
    assert not at.warning
    at.radio(key="train_precision").set_value("bf16").run()
    assert not at.warning  # nothing measured here: nothing claimed from the CPU's flags
    config = TrainConfig(model="resnet20", overrides=SMALL_MODEL["overrides"], dataset="mnist", train_subset=256)
    remember(precision_key(config, torch.device("cpu"), 1, 128), Rates(627.0, 488.0, 3, 2.0, 1.75e9, 1.0))
    at.run()
    assert [w.value for w in at.warning] == ["Precision bf16: measured 0.78× as fast as fp32 for this model and batch "
                                             "on this machine (fp32 627 vs bf16 488 images/s); auto would train in "
                                             "fp32"]


def test_a_run_stopped_on_the_page_shows_its_test_accuracy(tmp_path, monkeypatch):
    at = _tiny_page(tmp_path, monkeypatch, steps=100_000)
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: len(_train_steps(a)) >= 2, timeout=90)
    at.button(key="train_stop").click().run()
    rerun_until(at, lambda a: any("Stopped" in w.value for w in a.warning))
    run = runstore.list_runs(tmp_path / "runs")[0]
    assert run.status == Status.STOPPED and run.final.test_acc is not None
    assert at.metric[0].label == "Test accuracy" and at.metric[0].value == f"{run.final.test_acc:.1%}"
    assert any(c.value.startswith("Budget 100,000 steps (set by the user). Augmentation **crop+flip**")
               for c in at.caption)


def test_data_folder_outside_the_fence_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("RESNET_EXPLORER_DATA_ROOTS", raising=False)
    at = _tiny_page(tmp_path, monkeypatch)
    at.selectbox(key="train_dataset").set_value("imagefolder").run()
    assert any(f"This server reads data only inside `{(tmp_path / 'data').resolve()}`" in c.value for c in at.caption)
    too_long = str(tmp_path / "data" / ("x" * 300))
    for outside in ("/etc", "/", str(tmp_path / "data" / ".." / "elsewhere"), "~", "~nosuchuser/x", too_long):
        at.text_input(key="train_data_dir").set_value(outside).run()
        at.button(key="train_start").click().run()
        assert not at.exception
        expected = (f"data_dir must be inside the server's data folders ({(tmp_path / 'data').resolve()}); the "
                    "server's operator can allow more with RESNET_EXPLORER_DATA_ROOTS")
        if outside == too_long:  # inside the fence, but no folder can have that name: one line naming data_dir
            assert len(at.error) == 1 and at.error[0].value.startswith("data_dir ") and too_long in at.error[0].value
            assert at.error[0].value.endswith(("is not a folder", "File name too long"))
            continue
        assert [e.value for e in at.error] == [expected], outside
        assert not at.button(key="train_start").disabled and "train_job" not in at.session_state
    link = tmp_path / "data" / "link-out"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/etc")
    at.text_input(key="train_data_dir").set_value(str(link)).run()
    at.button(key="train_start").click().run()
    assert at.error[0].value.startswith("data_dir must be inside the server's data folders")
    assert runstore.list_runs(tmp_path / "runs") == []


def test_data_roots_let_the_operator_allow_a_folder(tmp_path, monkeypatch):
    shapes = tmp_path / "shared" / "shapes"
    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (shapes / cls).mkdir(parents=True)
        for i in range(40):
            Image.new("RGB", (12, 12), colour).save(shapes / cls / f"{i}.png")
    monkeypatch.setenv("RESNET_EXPLORER_DATA_ROOTS", str(tmp_path / "shared"))
    at = _tiny_page(tmp_path, monkeypatch, steps=2)
    at.selectbox(key="train_dataset").set_value("imagefolder").run()
    at.text_input(key="train_data_dir").set_value(str(shapes)).run()
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: any(s.value.startswith("Finished 2 steps") for s in a.success))
    assert runstore.list_runs(tmp_path / "runs")[0].config.data.classes == ["blue", "red"]


def test_a_reload_or_a_second_tab_reattaches_to_the_live_run(tmp_path, monkeypatch):
    first = _tiny_page(tmp_path, monkeypatch, steps=100_000)
    first.session_state["train_seed"] = 7
    first.button(key="train_start").click().run()
    job_id = first.session_state["train_job"]
    assert first.query_params["job"] == job_id
    rerun_until(first, lambda a: len(_train_steps(a)) >= 1, timeout=90)
    reloaded = AppTest.from_file(PAGE, default_timeout=120)  # a new browser session, the same URL
    reloaded.query_params.update(dict(first.query_params))
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.session_state["train_job"] == job_id and reloaded.session_state["train_seed"] == 7
    assert reloaded.session_state["train_train_subset"] == 256 and reloaded.session_state["train_max_steps"] == 100_000
    assert reloaded.button(key="train_start").disabled and not reloaded.button(key="train_stop").disabled
    rerun_until(reloaded, lambda a: len(_train_steps(a)) >= 2, timeout=90)
    reloaded.button(key="train_stop").click().run()
    rerun_until(reloaded, lambda a: any("Stopped" in w.value for w in a.warning))
    assert default_runner().get(job_id).snapshot().status == Status.STOPPED


def test_anyone_can_open_and_stop_an_orphaned_run(tmp_path, monkeypatch):
    owner = _tiny_page(tmp_path, monkeypatch, steps=100_000)
    owner.button(key="train_start").click().run()
    job = default_runner().get(owner.session_state["train_job"])
    wait_until(lambda: job.snapshot().run_id is not None, timeout=90)
    stranger = AppTest.from_file(PAGE, default_timeout=120).run()  # closed tab, new visitor: no URL, no session
    assert "Training on this server now" in [h.value for h in stranger.subheader]
    assert any(job.snapshot().run_id in m.value for m in stranger.markdown)
    stranger.button(key=f"train_open_{job.id}").click().run()
    assert stranger.session_state["train_job"] == job.id and not stranger.button(key="train_stop").disabled
    stranger.button(key="train_stop").click().run()
    assert job.wait(60) and job.snapshot().status == Status.STOPPED


def test_a_spoilt_run_folder_is_listed_with_its_reason(tmp_path, monkeypatch):
    bad = tmp_path / "runs" / "20261130-000000-resnet20-dead"
    bad.mkdir(parents=True)
    (bad / runstore.CONFIG).write_text("[]")
    at = _tiny_page(tmp_path, monkeypatch)
    assert not at.exception
    note = next(e for e in at.expander if "could not be read" in e.label)
    assert note.label == "1 folder(s) in the runs folder could not be read and are not listed"
    assert "run 20261130-000000-resnet20-dead: config.json: config.json must hold a JSON object; got list" in \
        note.markdown[0].value


def test_a_stored_run_whose_data_lie_outside_the_fence_is_not_read_again(tmp_path, monkeypatch):
    """A command-line run trained on a folder outside the fence: listed, but never re-evaluated or lesioned."""
    outside = tmp_path / "private"
    for cls, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (outside / cls).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (12, 12), colour).save(outside / cls / f"{i}.png")
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    execute(TrainConfig(dataset="imagefolder", data_dir=str(outside), max_steps=2, batch_size=8, threads=1,
                             overrides=dict(width=4, layers=(1, 1, 1))), run_dir=tmp_path / "runs" / "cli-run")
    at = _tiny_page(tmp_path, monkeypatch)
    at.selectbox(key="train_inspect").set_value("cli-run").run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "Cannot re-evaluate this run: data_dir must be inside the server's data folders "
        f"({Path(os.environ.get('RESNET_EXPLORER_DATA', 'data')).resolve()}); the server's operator can "
        "allow more with RESNET_EXPLORER_DATA_ROOTS"]
    assert not any(spec["data"] and spec["data"][0]["type"] == "image" for spec in _charts(at))
    lesion_page = AppTest.from_file(str(ROOT / "pages" / "7_Lesion.py"), default_timeout=120).run()
    assert not lesion_page.exception and not lesion_page.multiselect
    note = next(e for e in lesion_page.expander if "could not be read" in e.label)
    assert "run cli-run: its data_dir must be inside the server's data folders" in note.markdown[0].value


def test_a_stored_command_line_run_shows_the_threads_it_chose(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "cli-run"
    execute(TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=64, batch_size=32,
                        max_steps=2, probe_every=0, precision="fp32"), run_dir=run)  # threads left open, as on the CLI
    settings = runstore.read_run(run).config.settings
    assert settings.threads is not None and settings.threads_reason.startswith(f"auto: {settings.threads}")
    at = _tiny_page(tmp_path, monkeypatch)
    at.selectbox(key="train_inspect").set_value("cli-run").run()
    assert not at.exception
    assert any(c.value.endswith(f" Threads **{settings.threads}** ({settings.threads_reason}).") for c in at.caption)
