"""AppTest of the Signal-flow, Degradation and Lesion pages on real (tiny) measurements and runs; and of every
page that lists stored runs (these and Train) on a run folder written by older code and on malformed folders."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.experiments.degradation_group import NetGroup, ShownGroup
from resnet_core.runs.runner import default_runner
from tests.conftest import rerun_until
from ui.widgets import OWNER_KEY

PAGES = Path(__file__).resolve().parent.parent / "pages"
OLD_RUN_FILES = Path(__file__).resolve().parent / "fixtures" / "run-v1"  # a finished run folder of the first format
OLD_RUN = "20261130-075200-resnet20-fix1"
OLD_LABEL = f"{OLD_RUN} · synthetic"  # as the Train page's selectors label it: no state, which is drawn apart
SMALL_MODEL = {"model": "resnet20", "overrides": {"width": 4, "layers": (1, 1, 1)}}  # the Signal flow model tab's
GROUP = "20261130-075300-degradation-fix2"  # a degradation group: its resnet8 is the old run, its other nets broken
BROKEN = {"20261130-075400-resnet20-array": "config", "20261130-075500-resnet20-bogus": "status",
          f"{GROUP}-plain8": "config", f"{GROUP}-resnet14": "status"}


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    return root


def charts(at: AppTest) -> list:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def text(at: AppTest) -> str:
    return "\n".join(md.value for md in at.markdown)


def values(data) -> list:
    """A plotly trace's x or y, plain or base64 typed-array encoded."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def old_run_lines(kind: str) -> list[dict]:
    lines = [json.loads(line) for line in (OLD_RUN_FILES / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["kind"] == kind]


def copy_old_run(root: Path, name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(OLD_RUN_FILES, root / name))


@pytest.fixture
def old_run(runs_root) -> Path:
    return copy_old_run(runs_root, OLD_RUN)


@pytest.fixture
def broken_runs(runs_root, old_run) -> list[str]:
    """Next to the old run: copies of it whose config.json holds a JSON array or whose status is unknown, and a
    degradation group whose only readable net is another copy of the old run (a resnet20 of 1,1,1 blocks: 8 layers)."""
    copy_old_run(runs_root, f"{GROUP}-resnet8")
    for name, broken in BROKEN.items():
        folder = copy_old_run(runs_root, name)
        if broken == "config":
            (folder / "config.json").write_text(json.dumps([1, 2, 3]))
        else:
            (folder / "status.json").write_text(json.dumps({"status": "bogus"}))
    return list(BROKEN)


def train_page() -> AppTest:
    at = AppTest.from_file(str(PAGES / "4_Train.py"), default_timeout=120).run()
    assert not at.exception
    return at


def signal_flow_page() -> AppTest:
    """The Signal flow page open on its "During training" tab, which reads the stored runs (only the open tab is
    computed), with small settings in the other two."""
    at = AppTest.from_file(str(PAGES / "5_Signal_flow.py"), default_timeout=180)
    at.session_state["flow_blocks"] = 5
    at.session_state["model_choice"] = SMALL_MODEL
    at.session_state["flow_tab"] = "During training"
    at.run()
    assert not at.exception
    return at


def lesion_page() -> AppTest:
    at = AppTest.from_file(str(PAGES / "7_Lesion.py"), default_timeout=60).run()
    assert not at.exception
    return at


def test_signal_flow_page_measures_and_finds_vanishing(runs_root):
    at = AppTest.from_file(str(PAGES / "5_Signal_flow.py"), default_timeout=180)
    at.session_state["flow_blocks"] = 30
    at.run()
    assert not at.exception and not at.error
    stack = charts(at)[0]
    grads = {t["name"]: t["y"] for t in stack["data"] if "‖∇W‖" in t["name"]}
    assert len(grads["plain: ‖∇W‖"]) == len(grads["residual: ‖∇W‖"]) == 30
    assert grads["plain: ‖∇W‖"][0] / grads["plain: ‖∇W‖"][-1] > 100  # grows toward the input
    assert "grows" in text(at)
    at.button(key="flow_try_No BatchNorm, sigmoid, normal(0.05)").click().run()
    assert not at.exception and at.session_state["flow_activation"] == "sigmoid"
    assert "vanish" in text(at)
    assert "layer1.0" not in text(at)  # the whole-model tab is measured only when it is opened
    at.session_state["flow_tab"] = "A whole model"
    at.run()
    assert not at.exception and "layer1.0" in text(at) and "Gradient-norm spread" not in text(at)  # one tab drawn
    at.session_state["flow_tab"] = "During training"
    at.run()
    assert "No run with probes yet" in "\n".join(i.value for i in at.info)


def test_degradation_page_runs_four_nets_and_lesion_and_heatmap_pages_read_them(runs_root):
    at = AppTest.from_file(str(PAGES / "6_Degradation.py"), default_timeout=60)
    at.run()
    assert not at.exception and "8.75" in at.dataframe[0].value.to_string()  # He et al. ResNet-20 reference
    tiny = dict(degr_shallow=1, degr_deep=2, degr_steps=40, degr_batch_size=16, degr_width=4, degr_image_size=8)
    for key, value in tiny.items():
        at.session_state[key] = value
    at.run()
    assert "plain8, plain14, resnet8, resnet14" in at.caption[0].value
    at.button(key="degr_start").click().run()
    assert not at.exception and not at.error
    owners = {default_runner().get(job_id).owner for job_id in at.session_state["degr_group"].group.job_ids.values()}
    assert owners == {at.session_state[OWNER_KEY]}  # the session owner key the Train page uses too
    rerun_until(at, lambda a: a.dataframe and set(a.dataframe[0].value.status) == {"finished"}, 120, 0.5)
    at.run()
    names = {t["name"] for t in charts(at)[0]["data"] if t.get("showlegend") is not False}
    assert names == {"plain8", "plain14", "resnet8", "resnet14"}
    assert "Final train loss" in text(at)

    flow = AppTest.from_file(str(PAGES / "5_Signal_flow.py"), default_timeout=180)
    flow.session_state["flow_tab"] = "During training"
    flow.run()
    assert not flow.exception
    heatmap = next(c for c in charts(flow) if any(t["type"] == "heatmap" for t in c["data"]))
    panels = [t for t in heatmap["data"] if t["type"] == "heatmap"]
    assert len(panels) == 2 and all(t["coloraxis"] == "coloraxis" for t in panels)  # one shared colour scale
    assert "block gradient norms span" in text(flow)

    lesion = AppTest.from_file(str(PAGES / "7_Lesion.py"), default_timeout=60)
    lesion.run()
    assert not lesion.exception
    assert len(lesion.session_state["lesion_runs"]) == 4  # the four nets of the newest degradation group
    lesion.button(key="lesion_start").click().run()
    rerun_until(lesion, lambda a: text(a).count("intact") == 4, 120, 0.5)
    figure = charts(lesion)[0]
    crosses = [t for t in figure["data"] if t.get("marker", {}).get("symbol") == "x"]
    assert len(crosses) == 4 and all(len(t["x"]) == 2 for t in crosses)  # layer2.0 and layer3.0 of each net
    assert not lesion.exception and not lesion.error


def test_a_run_of_the_first_format_shows_on_train_signal_flow_and_lesion(old_run):
    at = train_page()
    overlay = at.multiselect(key="train_overlay_runs")
    assert overlay.value == [OLD_RUN] and overlay.options == [OLD_LABEL]
    at.selectbox(key="train_overlay_metric").set_value("test accuracy").run()  # the default is train loss
    overlay_chart = next(c for c in charts(at) if c["layout"]["yaxis"].get("title", {}).get("text") == "test accuracy")
    assert [(t["name"], values(t["x"]), values(t["y"])) for t in overlay_chart["data"]] == [
        (OLD_RUN, [r["step"] for r in old_run_lines("test")], [r["test_acc"] for r in old_run_lines("test")])]
    at.selectbox(key="train_inspect").set_value(OLD_RUN).run()
    assert not at.exception and not at.warning  # its weights were re-evaluated
    assert [s.value for s in at.subheader] == ["Past runs", f"Stored run {OLD_RUN}"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy"] == "12.0%" and shown["Steps"] == "6"
    titles = [c["layout"].get("title", {}).get("subtitle", {}).get("text", "") for c in charts(at)]
    assert "Confusion matrix (50 test images)" in titles  # the stored confusion of its 50 test images
    grid = next(c for c in charts(at) if any(t["type"] == "image" for t in c["data"]))
    assert sum(t["type"] == "image" for t in grid["data"]) == 24
    assert [b.label for b in at.download_button] == ["Metrics (CSV)", "Weights (.pt state_dict)"]

    flow = signal_flow_page()
    assert [t.label for t in flow.tabs] == ["Plain vs residual stacks", "A whole model", "During training"]
    training = flow.tabs[2]
    assert training.multiselect(key="flow_runs").value == [OLD_RUN]
    heatmap = json.loads(training.get("plotly_chart")[0].proto.spec)
    assert [a["text"] for a in heatmap["layout"]["annotations"]] == ["resnet20-fix1"]
    panel = next(t for t in heatmap["data"] if t["type"] == "heatmap")
    probes = old_run_lines("probe")
    assert values(panel["y"]) == probes[0]["units"] and values(panel["x"]) == [r["step"] for r in probes]
    assert "**resnet20-fix1**: at step 3 the block gradient norms span" in text(flow)

    lesion = lesion_page()
    assert lesion.multiselect(key="lesion_runs").value == [OLD_RUN]
    assert lesion.multiselect(key="lesion_runs").options == [
        "resnet20-fix1 · residual · final test acc 12.0% on 50 images"]
    lesion.button(key="lesion_start").click().run()
    rerun_until(lesion, lambda a: "intact" in text(a), 120, 0.5)
    assert f"**{OLD_RUN}** (residual): intact" in text(lesion)  # its weights loaded and evaluated
    assert not lesion.exception and not lesion.error


def test_malformed_run_folders_leave_the_pages_working(old_run, broken_runs):
    at = train_page()
    listed = at.multiselect(key="train_overlay_runs").options
    assert OLD_LABEL in listed and len(listed) == 2  # the old run and the group's copy of it
    assert not any(name in label for name in broken_runs for label in listed)
    at.selectbox(key="train_inspect").set_value(OLD_RUN).run()
    assert not at.exception and {m.label: m.value for m in at.metric}["Test accuracy"] == "12.0%"

    flow = signal_flow_page()
    runs = flow.multiselect(key="flow_runs")
    assert set(runs.options) == {OLD_RUN, f"{GROUP}-resnet8"} and len(runs.value) == 1
    runs.set_value([OLD_RUN, f"{GROUP}-resnet8"]).run()
    assert not flow.exception
    heatmap = json.loads(flow.tabs[2].get("plotly_chart")[0].proto.spec)
    assert [a["text"] for a in heatmap["layout"]["annotations"]] == ["resnet20-fix1", "degradation-fix2-resnet8"]

    lesion = lesion_page()
    assert set(lesion.multiselect(key="lesion_runs").options) == {
        "resnet20-fix1 · residual · final test acc 12.0% on 50 images",
        "degradation-fix2-resnet8 · residual · final test acc 12.0% on 50 images"}
    assert len(lesion.multiselect(key="lesion_runs").value) == 1  # only residual runs: the newest one
    assert "Only residual runs are stored" in lesion.info[0].value

    degr = AppTest.from_file(str(PAGES / "6_Degradation.py"), default_timeout=60).run()
    assert not degr.exception
    assert degr.selectbox(key="degr_shown").options == [GROUP]
    table = degr.dataframe[0].value
    assert table[["net", "status"]].values.tolist() == [["resnet8", "finished"]]
    # a session that started the group still names its broken nets: they read as failed, with the reason
    degr = AppTest.from_file(str(PAGES / "6_Degradation.py"), default_timeout=60)
    degr.session_state["degr_group"] = ShownGroup(NetGroup(GROUP, ("plain8", "resnet8", "resnet14")))
    degr.run()
    assert not degr.exception
    table = degr.dataframe[0].value
    assert table[["net", "status"]].values.tolist() == [["plain8", "failed"], ["resnet8", "finished"],
                                                        ["resnet14", "failed"]]
