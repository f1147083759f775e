"""AppTest of the Signal-flow, Degradation and Lesion pages on real (tiny) measurements and runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core import degradation
from tests.conftest import rerun_until

PAGES = Path(__file__).resolve().parent.parent / "pages"
TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=4, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=2)


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    return root


def charts(at: AppTest) -> list:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def text(at: AppTest) -> str:
    return "\n".join(md.value for md in at.markdown)


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
    assert "resnet56" in text(at) or "layer1.0" in text(at)  # the whole-model tab measured too
    assert "No run with probes yet" in "\n".join(i.value for i in at.info)


def test_degradation_page_runs_four_nets_and_lesion_and_heatmap_pages_read_them(runs_root):
    at = AppTest.from_file(str(PAGES / "6_Degradation.py"), default_timeout=60)
    at.run()
    assert not at.exception and "8.75" in at.dataframe[0].value.to_string()  # He et al. ResNet-20 reference
    tiny = dict(degr_shallow=1, degr_deep=2, degr_steps=40, degr_batch=16, degr_width=4, degr_size=8)
    for key, value in tiny.items():
        at.session_state[key] = value
    at.run()
    assert "plain8, plain14, resnet8, resnet14" in at.caption[0].value
    at.button(key="degr_start").click().run()
    assert not at.exception and not at.error
    rerun_until(at, lambda a: a.dataframe and set(a.dataframe[0].value.status) == {"finished"}, 120, 0.5)
    at.run()
    names = {t["name"] for t in charts(at)[0]["data"] if t.get("showlegend") is not False}
    assert names == {"plain8", "plain14", "resnet8", "resnet14"}
    assert "Final train loss" in text(at)

    flow = AppTest.from_file(str(PAGES / "5_Signal_flow.py"), default_timeout=180)
    flow.session_state["flow_blocks"] = 5
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
