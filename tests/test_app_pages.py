"""AppTest: Home, Architecture, Block anatomy and Compare run without exceptions and show the engine's numbers."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from streamlit.source_util import page_icon_and_name
from streamlit.testing.v1 import AppTest

from pages.ui.widgets import ModelChoice, choice_from_query_params
from resnet_core import PRESETS, resolve_spec, summarize
from resnet_core.anatomy import trace_block
from resnet_core.format import format_bytes, format_count

ROOT = Path(__file__).resolve().parent.parent
OWN_PAGES = ["app.py", "pages/1_Architecture.py", "pages/2_Block_anatomy.py", "pages/3_Compare.py"]
ARCHITECTURE = "pages/1_Architecture.py"


def run(path: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.code])


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly figures, by their first subplot title."""
    specs = [json.loads(e.proto.spec) for e in at.main if e.type == "plotly_chart"]
    return {s["layout"]["annotations"][0]["text"]: s for s in specs if s["layout"].get("annotations")}


def values(data: Any) -> list[float]:
    """A plotly trace's x or y, plain or base64-typed-array encoded."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def torchvision_params(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in getattr(torchvision.models, name)().parameters())


@pytest.mark.parametrize("path", OWN_PAGES)
def test_page_runs_without_exception(path):
    at = run(path)
    assert not at.exception
    assert not at.error


def test_home_links_every_page_file():
    at = run("app.py")
    names = [page_icon_and_name(p)[1].replace("_", " ") for p in sorted((ROOT / "pages").glob("*.py"))]
    assert sorted(link.proto.label for link in at.get("page_link")) == sorted(names)
    assert len(names) >= 3


def test_home_model_link_opens_resnet50():
    at = run("app.py", model="resnet50")
    assert not at.exception
    assert metrics(at)["Parameters"] == "25,557,032"


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d", "wide_resnet50_2"])
def test_torchvision_badge_count_is_torchvisions_count(name):
    at = run(ARCHITECTURE, model=name)
    expected = torchvision_params(name)
    assert f"= torchvision.models.{name}: {expected:,} parameters" in texts(at)
    assert metrics(at)["Parameters"] == f"{expected:,}"
    assert f"tv_model = torchvision.models.{name}()" in texts(at)
    if name == "resnet50":
        assert expected == 25_557_032


def test_choose_preset_then_change_block():
    at = run(ARCHITECTURE)
    assert metrics(at)["Parameters"] == format_count(summarize("resnet18").total_params)
    at.selectbox(key="arch_model").set_value("resnet50").run()
    assert metrics(at)["Parameters"] == "25,557,032"
    assert at.text_input(key="arch_layers").value == "3,4,6,3"
    assert at.selectbox(key="arch_block").value == "bottleneck"

    at.selectbox(key="arch_block").set_value("basic").run()
    expected = summarize("resnet50", block="basic")
    shown = metrics(at)
    assert shown["Parameters"] == format_count(expected.total_params) == "21,797,672"
    assert shown["Depth"] == "34"
    assert shown["Activation memory"] == format_bytes(expected.activation_bytes)
    assert f"{format_count(expected.mult_adds)} mult-adds" in texts(at)
    assert "same network as the preset resnet34" in texts(at)
    assert "= torchvision.models.resnet34: 21,797,672 parameters" in texts(at)
    assert at.session_state["model_choice"] == {"model": "resnet50", "overrides": {"block": "basic"}}
    assert at.query_params["block"] == "basic"
    assert "resnet_core.build_model(\"resnet50\", block='basic')" in texts(at)


def test_bad_values_show_the_engines_error_and_keep_the_page():
    at = run(ARCHITECTURE, model="resnet50", block="basic")
    at.number_input(key="arch_groups").set_value(2).run()
    with pytest.raises(ValueError) as engine:
        resolve_spec("resnet50", block="basic", groups=2)
    assert [e.value for e in at.error] == [str(engine.value)]
    assert not at.exception
    assert metrics(at)["Parameters"] == "21,797,672"  # the last valid view stays
    assert "Showing the last valid configuration: resnet50 (block=basic)" in texts(at)

    at.number_input(key="arch_groups").set_value(1).run()
    at.text_input(key="arch_layers").set_value("3,x").run()
    assert len(at.error) == 1 and at.error[0].value.startswith("layers must be comma-separated whole numbers")
    at.text_input(key="arch_layers").set_value("2,2").run()
    assert not at.error
    assert metrics(at)["Parameters"] == format_count(summarize("resnet50", block="basic", layers=(2, 2)).total_params)

    at.text_input(key="arch_input").set_value("3,224").run()
    assert at.error[0].value.startswith("input must be three positive integers C,H,W")


def test_the_url_reproduces_the_view():
    at = run(ARCHITECTURE, model="resnet50", block="basic", batch="8", input="3,128,128")
    expected = summarize("resnet50", input_size=(3, 128, 128), batch_size=8, block="basic")
    shown = metrics(at)
    assert shown["Parameters"] == format_count(expected.total_params)
    assert shown["Output shape"] == "8×1000"
    assert shown["Training memory"] == format_bytes(expected.training_memory_bytes)
    assert at.number_input(key="arch_batch").value == 8


def test_cifar_preset_shows_the_papers_numbers_beside_ours():
    at = run(ARCHITECTURE, model="resnet20")
    table = at.table[0].value
    assert table.loc["parameters", "published"] == "0.27M"
    assert table.loc["parameters", "computed here"] == format_count(summarize("resnet20", (3, 32, 32)).total_params)
    assert table.loc["CIFAR-10 test error", "published"] == "8.75%"
    assert "Source: He, Zhang, Ren, Sun" in texts(at)


def test_query_param_codec_round_trips_and_names_bad_fields():
    choice = choice_from_query_params({"model": "resnet50", "layers": "2,2", "skip": "false", "batch": "4"})
    assert choice == ModelChoice("resnet50", {"layers": (2, 2), "skip": False})
    assert choice_from_query_params(choice.to_query_params()) == choice
    assert choice.spec() == resolve_spec("resnet50", layers=(2, 2), skip=False)
    with pytest.raises(ValueError, match="groups"):
        choice_from_query_params({"model": "resnet50", "groups": "many"})
    with pytest.raises(ValueError, match="model"):
        choice_from_query_params({"model": "resnet7"})


def test_block_anatomy_counts_and_errors():
    at = run("pages/2_Block_anatomy.py")
    shown = metrics(at)
    assert shown["Two 3×3 convs at 256"] == "1,180,672"
    assert shown["Bottleneck 256-64-64-256"] == "70,400"
    assert shown["Ratio"] == "16.8×"

    at.number_input(key="anat_out").set_value(512).run()
    at.radio(key="anat_stride").set_value(2).run()
    table = at.dataframe[0].value.set_index("block")
    for key in ("basic", "bottleneck", "resnext", "se"):
        anatomy = trace_block(key, 256, 512, stride=2, size=56)
        assert table.loc[anatomy.variant.label, "params"] == anatomy.params
        assert table.loc[anatomy.variant.label, "output"] == "512×28×28"

    at.number_input(key="anat_out").set_value(510).run()
    assert any("out_channels of a Bottleneck block must be a multiple of 4" in e.value for e in at.error)
    assert metrics(at)["Ratio"] == "16.8×"
    assert not at.exception


def test_compare_table_and_the_whole_family():
    at = run("pages/3_Compare.py")
    table = at.dataframe[0].value.set_index("label")
    for name in ("resnet18", "resnet50", "plain50"):
        assert table.loc[name, "params"] == summarize(name).total_params
        assert table.loc[name, "mult_adds"] == summarize(name).mult_adds

    deadline = time.monotonic() + 120
    while any(e.type == "progress" for e in at.main) and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert not at.error and not at.exception
    family = charts(at)["Parameters against depth"]
    points = {}
    for trace in family["data"]:
        if trace["xaxis"] == "x":
            points.update(zip(trace["text"], zip(values(trace["x"]), values(trace["y"]))))
    assert set(points) == set(PRESETS)
    assert points["resnet50"] == (50, 25_557_032)
    assert points["resnet1202"][0] == 1202

    at.text_input(key="cmp_input").set_value("3,x").run()
    assert at.error[0].value.startswith("input must be three positive integers")
    at.multiselect(key="cmp_configs").set_value(["resnet18"]).run()
    assert "at least two" in at.info[0].value
    assert not at.exception


def test_a_link_with_bad_settings_falls_back_to_the_preset():
    at = run(ARCHITECTURE, model="resnet18", width="0")
    with pytest.raises(ValueError) as engine:
        resolve_spec("resnet18", width=0)
    assert not at.exception
    assert [e.value for e in at.error] == [f"The link's model settings were ignored: {engine.value}"]
    assert metrics(at)["Parameters"] == "11,689,512"
    assert "width" not in at.query_params
