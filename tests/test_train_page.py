"""AppTest of the Train page: Start training → live curve → Stop, then the stored run in the overlay."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from streamlit.testing.v1 import AppTest

from tests.conftest import rerun_until

from pages.ui.train_figures import confusion_figure, overlay_figure, prediction_grid, training_curves
from resnet_core import runstore
from resnet_core.jobs import default_runner

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "4_Train.py")


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

    at.session_state["train_subset"] = 2000  # keep the test's run short; defaults are checked above
    at.session_state["train_threads"] = 1  # robust on a busy 2-core machine
    at.button(key="train_start").click().run()
    assert not at.exception
    assert at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
    rerun_until(at, lambda a: len(_train_steps(a)) >= 2, timeout=90)
    assert _train_steps(at)[0] == 1

    at.button(key="train_stop").click().run()
    rerun_until(at, lambda a: any("Stopped" in w.value for w in a.warning))
    assert not at.button(key="train_start").disabled and at.button(key="train_stop").disabled
    runs = runstore.list_runs(tmp_path / "runs")
    assert [r.status for r in runs] == ["stopped"]
    assert runs[0].config["train"]["model"] == "resnet20" and runs[0].config["train"]["train_subset"] == 2000
    assert at.multiselect(key="train_overlay_runs").value == [runs[0].run_id]
    assert any(b.label == "Metrics (CSV)" for b in at.get("download_button"))


def test_finished_run_shows_results_for_the_architecture_pages_choice(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["model_choice"] = {"model": "resnet20", "overrides": {"width": 8, "layers": (1, 1, 1)}}
    at.run()
    at.session_state["train_subset"] = 256
    at.session_state["train_steps"] = 8
    at.session_state["train_threads"] = 1
    at.button(key="train_start").click().run()
    rerun_until(at, lambda a: any(s.value.startswith("Finished 8 steps") for s in a.success))
    assert [m.label for m in at.metric][:3] == ["Test accuracy", "Test loss", "Steps"]
    run = runstore.list_runs(tmp_path / "runs")[0]
    assert run.config["spec"]["width"] == 8 and run.config["spec"]["layers"] == [1, 1, 1]
    assert at.metric[0].value == f"{run.final['test_acc']:.1%}"
    titles = [spec["layout"].get("title", {}).get("text", "") for spec in _charts(at)]
    assert "Confusion matrix (2000 test images)" in titles
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
    records = [dict(kind="train", step=s, loss=2.0 / s, acc=0.1 * s, lr=0.1, images_per_sec=500.0) for s in (1, 2, 3)]
    records.append(dict(kind="test", step=3, test_loss=1.0, test_acc=0.5))
    fig = training_curves(records)
    assert [t.name for t in fig.data] == ["train", "train", "lr", "images/s", "test", "test"]
    assert list(fig.data[0].y) == [2.0, 1.0, 2.0 / 3]
    overlay = overlay_figure([dict(label="a", records=records), dict(label="b", records=records, skip=False)],
                             "train loss")
    assert [t.line.dash for t in overlay.data] == ["solid", "dash"]
    confusion = confusion_figure([[3, 1], [0, 4]], ["x", "y"])
    assert confusion.layout.title.text == "Confusion matrix (8 test images)"
    grid = prediction_grid(np.zeros((3, 1, 8, 8), dtype=np.uint8), [0, 1, 1], [0, 0, 1], ["x", "y"], columns=2)
    assert [a.text for a in grid.layout.annotations] == ["✓ x", "✗ x<br>true: y", "✓ y"]
    assert [a.font.color for a in grid.layout.annotations] == ["#2ca02c", "#d62728", "#2ca02c"]
