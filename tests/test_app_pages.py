"""AppTest: Home, Architecture, Block anatomy and Compare run without exceptions and show the engine's numbers."""

from __future__ import annotations

import ast
import base64
import json
import time
import tokenize
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_
from streamlit.testing.v1 import AppTest

from resnet_core import PRESETS, resolve_spec, summarize
from resnet_core.formatting import format_bytes
from resnet_core.introspect.anatomy import trace_block
from resnet_core.introspect.summary import largest_batch_within
from tests.conftest import rerun_until
from ui.charts import export_config
from ui.widgets import FAMILY_LABELS, ModelChoice, choice_from_query_params

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


def docstring_summary(path: Path) -> str:
    """The first line of a page's module docstring, after its "Title:"."""
    first = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))).splitlines()[0]
    return first.split(":", 1)[1].strip()


def test_home_links_every_page_file_in_order():
    at = run("app.py")
    files = sorted((ROOT / "pages").glob("*.py"))
    names = ["Architecture", "Block_anatomy", "Compare", "Train", "Signal_flow", "Degradation", "Lesion",
             "Inside_a_trained_net", "Loss_landscape"]  # the URL path of each page file, in file order
    expected = [(name, name.replace("_", " "), docstring_summary(path).lower()) for path, name in zip(files, names)]
    assert len(files) == len(names)
    columns = [list(zip([link.proto for link in c.get("page_link")], [cap.value for cap in c.caption]))
               for c in at.columns]
    assert [len(c) for c in columns] == [len(files[i::len(columns)]) for i in range(len(columns))]
    # Home lays the links out row by row across its columns: the i-th file is in column i % n, row i // n
    shown = [columns[i % len(columns)][i // len(columns)] for i in range(len(files))]
    assert [(link.page, link.label, caption.lower()) for link, caption in shown] == expected


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
    assert metrics(at)["Parameters"] == "11,689,512"  # torchvision.models.resnet18's parameters
    at.selectbox(key="arch_model").set_value("resnet50").run()
    assert metrics(at)["Parameters"] == "25,557,032"
    assert at.text_input(key="arch_layers").value == "3,4,6,3"
    assert at.selectbox(key="arch_block").value == "bottleneck"

    at.selectbox(key="arch_block").set_value("basic").run()
    expected = summarize("resnet50", block="basic")  # only for the activation estimate, which has no outside figure
    shown = metrics(at)
    assert shown["Parameters"] == "21,797,672"  # torchvision.models.resnet34's parameters
    assert shown["Depth"] == "34"
    assert shown["Activation memory"] == format_bytes(expected.activation_bytes)
    assert "3,663,779,432 mult-adds" in texts(at)  # torchinfo 1.8.0 on torchvision.models.resnet34 at 224×224
    assert "same network as the preset resnet34" in texts(at)
    assert "= torchvision.models.resnet34: 21,797,672 parameters" in texts(at)
    assert at.session_state["model_choice"] == {"model": "resnet50", "overrides": {"block": "basic"}}
    assert at.query_params["block"] == "basic"
    assert "resnet_core.build_model(\"resnet50\", block='basic')" in texts(at)


def test_families_group_the_presets_and_basic_blocks_lock_groups():
    at = run(ARCHITECTURE)
    assert at.selectbox(key="arch_family").value == "imagenet"
    options = at.selectbox(key="arch_model").options
    assert "resnet20" not in options and "resnet18" in options
    at.selectbox(key="arch_family").set_value("cifar").run()
    assert at.selectbox(key="arch_model").value == "resnet20"
    # He et al. 2015 Table 6: 0.27M; by hand: stem 464 + stages 14,016 + 51,072 + 203,520 + fc 650
    assert metrics(at)["Parameters"] == "269,722"
    cifar = [n for n, p in PRESETS.items() if p.family == "cifar"]  # residual nets, each with its plain twin after it
    options = at.selectbox(key="arch_model").options
    assert options[:4] == ["resnet20", "plain20 (no skips)", "resnet32", "plain32 (no skips)"]
    assert len(options) == len(cifar)

    at = run(ARCHITECTURE, model="resnext50_32x4d")
    assert at.selectbox(key="arch_family").value == "imagenet"
    assert not at.number_input(key="arch_groups").disabled and at.number_input(key="arch_groups").value == 32
    at.selectbox(key="arch_block").set_value("basic").run()  # groups 32 would be an error: back to 1 × 64, locked
    assert (at.number_input(key="arch_groups").value, at.number_input(key="arch_wpg").value) == (1, 64)
    assert at.number_input(key="arch_groups").disabled and at.number_input(key="arch_wpg").disabled
    assert not at.error
    at.selectbox(key="arch_block").set_value("bottleneck").run()
    assert not at.number_input(key="arch_groups").disabled


def test_layer_table_fits_kernel_stride_padding_and_the_output_size_formula():
    at = run(ARCHITECTURE, model="resnet50")
    [layers] = [d.value for d in at.dataframe if "k / s / p" in d.value.columns]
    conv1 = layers.set_index("name").loc["conv1"]
    assert (conv1["k / s / p"], conv1["output_size"]) == ("7 / 2 / 3", "⌊(224+2·3−7)/2⌋+1 = 112")
    assert layers.set_index("name").loc["bn1", "k / s / p"] == ""


def test_a_wide_resnet_says_why_its_name_counts_more_layers():
    at = run(ARCHITECTURE, model="wrn28_10")
    assert metrics(at)["Depth"] == "26"
    assert "wrn28_10 is named for 28 layers: its paper counts every conv layer, the 1×1 shortcut convs included " \
           "(28 here)" in texts(at)
    assert "is named for" not in texts(run(ARCHITECTURE, model="resnet50"))


def test_training_memory_over_the_machines_budget_is_a_warning(monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_MEMORY_BUDGET", "2G")
    at = run(ARCHITECTURE, model="resnet50", batch="256")
    summary = summarize("resnet50", batch_size=256)
    assert summary.training_memory_bytes > 2 * 2**30
    fits = largest_batch_within(summary, 2 * 2**30)
    assert summarize("resnet50", batch_size=fits).training_memory_bytes <= 2 * 2**30
    assert summarize("resnet50", batch_size=fits + 1).training_memory_bytes > 2 * 2**30
    [warning] = [w.value for w in at.warning]
    assert f"Training memory {format_bytes(summary.training_memory_bytes)} is over" in warning
    assert "set by RESNET_EXPLORER_MEMORY_BUDGET" in warning and f"a batch of at most {fits:,} fits" in warning
    at.number_input(key="arch_batch").set_value(fits).run()
    assert not at.warning


def test_train_this_model_opens_the_train_page_with_the_configuration():
    at = run("app.py", model="resnet20", block="bottleneck")  # from Home, so that pages/ exists around the page
    assert at.title[0].value == "Architecture"
    at.button(key="arch_train").click().run()
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train_model").value == "resnet20"
    assert "With the Architecture page's changes: resnet20 (block=bottleneck)" in texts(at)


def test_bad_values_show_the_engines_error_and_keep_the_page():
    at = run(ARCHITECTURE, model="resnet50", block="basic")
    at.number_input(key="arch_width").set_value(100_000).run()
    with pytest.raises(ValueError) as engine:
        resolve_spec("resnet50", block="basic", width=100_000)
    assert [e.value for e in at.error] == [str(engine.value)]
    assert not at.exception
    assert metrics(at)["Parameters"] == "21,797,672"  # the last valid view stays
    assert "Showing the last valid configuration: resnet50 (block=basic)" in texts(at)

    at.number_input(key="arch_width").set_value(64).run()
    at.text_input(key="arch_layers").set_value("3,x").run()
    assert len(at.error) == 1 and at.error[0].value.startswith("layers must be comma-separated whole numbers")
    at.text_input(key="arch_layers").set_value("2,2").run()
    assert not at.error
    # two stages of two basic blocks, by hand: stem 9,536 + layer1 147,968 + layer2 525,568 + fc 129,000
    assert metrics(at)["Parameters"] == "812,072"

    at.text_input(key="arch_input").set_value("3,224").run()
    assert at.error[0].value.startswith("input must be three positive integers C,H,W")


def test_the_url_reproduces_the_view():
    at = run(ARCHITECTURE, model="resnet50", block="basic", batch="8", input="3,128,128")
    expected = summarize("resnet50", input_size=(3, 128, 128), batch_size=8, block="basic")  # the memory estimate
    shown = metrics(at)
    assert shown["Parameters"] == "21,797,672"  # torchvision.models.resnet34's parameters
    assert shown["Output shape"] == "8×1000"
    assert shown["Training memory"] == format_bytes(expected.training_memory_bytes)
    assert at.number_input(key="arch_batch").value == 8


def test_cifar_preset_shows_the_papers_numbers_beside_ours():
    at = run(ARCHITECTURE, model="resnet20")
    table = at.dataframe[0].value  # a dataframe: its toolbar downloads it as CSV
    assert table.loc["parameters", "published"] == "0.27M"
    assert table.loc["parameters", "computed here"] == "269,722"  # by hand, as in the families test above
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
    basic_64 = trace_block("basic", 64, 64).params  # He et al.'s Fig. 5 pairing, built
    assert basic_64 == 73_984
    assert (f"Built here: 73,984 parameters for that basic block against 70,400 for the bottleneck "
            f"({70_400 / basic_64:.2f}×)") in texts(at)
    assert "The shortcut options when the shape does not change" in [h.value for h in at.subheader]

    at.number_input(key="anat_out").set_value(512).run()
    at.radio(key="anat_stride").set_value(2).run()
    assert "The shortcut options for 256 → 512 channels, stride 2" in [h.value for h in at.subheader]
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
    # torchvision's models through torchinfo 1.8.0 at 224×224; plain50 is torchvision's resnet50 with every
    # shortcut removed (no addition, no projection), counted the same way
    for name, params, mult_adds in (("resnet18", 11_689_512, 1_814_083_944), ("resnet50", 25_557_032, 4_089_238_376),
                                    ("plain50", 22_780_456, 3_729_569_128)):
        assert (table.loc[name, "params"], table.loc[name, "mult_adds"]) == (params, mult_adds), name

    rerun_until(at, lambda a: not any(e.type == "progress" for e in a.main), timeout=120, interval=1.0)
    assert not at.error and not at.exception
    family = charts(at)["Parameters against depth"]
    points = {}
    for trace in family["data"]:
        if trace["xaxis"] == "x":
            points.update(zip(trace["text"], zip(values(trace["x"]), values(trace["y"]))))
    assert set(points) == set(PRESETS)  # every preset is on the chart, named on hover
    assert points["resnet50"] == (50, 25_557_032)
    assert points["resnet1202"][0] == 1202
    # only the four picked configurations are labelled (resnet34: torchvision's, through torchinfo 1.8.0 too)
    assert labelled(family) == {"x": [("resnet18", 18, 11_689_512), ("resnet34", 34, 21_797_672),
                                      ("resnet50", 50, 25_557_032), ("plain50", 50, 22_780_456)],
                                "x2": [("resnet18", 18, 1_814_083_944), ("resnet34", 34, 3_663_779_432),
                                       ("resnet50", 50, 4_089_238_376), ("plain50", 50, 3_729_569_128)]}
    [variants] = [t for t in family["data"] if t["name"].startswith("other variants") and t["xaxis"] == "x"]
    assert variants["mode"] == "markers" and "wide_resnet50_2" in variants["text"]  # named on hover only
    at.multiselect(key="cmp_configs").set_value(["resnet18", "wide_resnet50_2"]).run()
    assert [label for label, _, _ in labelled(charts(at)["Parameters against depth"])["x"]] == [
        "resnet18", "wide_resnet50_2"]

    at.text_input(key="cmp_input").set_value("3,x").run()
    assert at.error[0].value.startswith("input must be three positive integers")
    at.multiselect(key="cmp_configs").set_value(["resnet18"]).run()
    assert "at least two" in at.info[0].value
    assert not at.exception


def labelled(figure: dict) -> dict[str, list[tuple[str, float, float]]]:
    """The points that carry a text label on the chart (mode with "text"), per x axis: (label, x, y)."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for trace in figure["data"]:
        if "text" in trace["mode"]:
            out.setdefault(trace["xaxis"], []).extend(zip(trace["text"], values(trace["x"]), values(trace["y"])))
    return out


def test_a_link_with_bad_settings_falls_back_to_the_preset():
    at = run(ARCHITECTURE, model="resnet18", width="0")
    with pytest.raises(ValueError) as engine:
        resolve_spec("resnet18", width=0)
    assert not at.exception
    assert [e.value for e in at.error] == [f"The link's model settings were ignored: {engine.value}"]
    assert metrics(at)["Parameters"] == "11,689,512"
    assert "width" not in at.query_params


# ---------------------------------------------------------------- what the pages may not do (read as source text)

PAGE_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
UI_FILES = sorted((ROOT / "ui").glob("*.py"))
IN_CODE = ["st.set_page_config", "build_model(", "torch.manual_seed", ".config.get("]  # outside strings and comments
ANYWHERE = ["noqa", '"config.json"', '"weights.pt"']  # also in strings and comments


def code_without_strings(path: Path) -> str:
    """The file's source with string literals and comments dropped (a code sample shown to the user is text)."""
    with path.open("rb") as f:
        tokens = [t for t in tokenize.tokenize(f.readline) if t.type not in (tokenize.STRING, tokenize.COMMENT)]
    return tokenize.untokenize(tokens).decode("utf-8")


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, with `from a import b` counted as both a and a.b."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_static_checks_see_every_file():
    assert len(PAGE_FILES) == 1 + len(list((ROOT / "pages").glob("*.py"))) and len(PAGE_FILES) > 1
    assert {p.name for p in UI_FILES} >= {"page.py", "widgets.py", "live.py"}
    assert "build_model(" not in code_without_strings(ROOT / "pages" / "1_Architecture.py")
    assert "build_model(" in (ROOT / "pages" / "1_Architecture.py").read_text()  # the code sample it shows


@pytest.mark.parametrize("path", PAGE_FILES + UI_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_page_or_ui_module_imports_the_cli(path):
    cli = {m for m in imported_modules(path) if m == "resnet_core.cli" or m.startswith("resnet_core.cli.")}
    assert not cli, f"{path.name} imports {sorted(cli)}"


@pytest.mark.parametrize("path", PAGE_FILES + UI_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_chart_goes_through_show_chart(path):
    """So that every chart carries the export config (PNG/SVG, a file name saying what it shows)."""
    if path.name == "charts.py":
        return
    assert ".plotly_chart(" not in code_without_strings(path), f"{path.name}: use ui.charts.show_chart"


def test_export_config_names_the_file_and_the_format():
    config = export_config("20261130-1 · resnet20 on synthetic<br>2 epochs, lr 0.1", "svg", 580)
    assert config["toImageButtonOptions"] == {
        "format": "svg", "filename": "20261130-1-resnet20-on-synthetic-2-epochs-lr-0.1", "width": 1200, "height": 580,
        "scale": 1}
    assert export_config("x", "png", None)["toImageButtonOptions"]["height"] == 400
    with pytest.raises(ValueError, match="chart format must be one of png, svg; got 'gif'"):
        export_config("x", "gif", None)


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_pages_leave_setup_models_and_run_files_to_the_library(path):
    """Pages call ui.page.setup_page, and read and build runs and models only through resnet_core."""
    code, text = code_without_strings(path), path.read_text(encoding="utf-8")
    assert [s for s in IN_CODE if s in code] == []
    assert [s for s in ANYWHERE if s in text] == []
    body = ast.parse(text).body
    calls = [i for i, node in enumerate(body) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
             and getattr(node.value.func, "id", None) == "setup_page"]
    assert len(calls) == 1, "setup_page() must be called once, at the top level"
    before = [n for node in body[:calls[0]] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == "st"]
    assert not before, "nothing may use streamlit before setup_page()"


def test_the_server_listens_on_this_machine_only_by_default():
    """Reachable from elsewhere only when its operator passes --server.address (README)."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_compare_follows_the_links_settings():
    at = AppTest.from_file(str(ROOT / "pages" / "3_Compare.py"), default_timeout=120)
    at.query_params.update({"model": "resnet20", "layers": "2,2,2"})
    at.run()
    assert not at.exception
    assert at.multiselect(key="cmp_configs").value[0] == "resnet20 (layers=2,2,2)"
    table = at.dataframe[0].value
    row = table[table["label"] == "resnet20 (layers=2,2,2)"].iloc[0]
    assert row["params"] == 172_506  # by hand: stem 464 + stages 9,344 + 32,512 + 129,536 + fc 650
    rerun_until(at, lambda a: not any(e.type == "progress" for e in a.main), timeout=120, interval=1.0)
    family = charts(at)["Parameters against depth"]
    assert labelled(family)["x"][0] == ("resnet20 (layers=2,2,2)", 14, 172_506)  # the link's own configuration
    at.multiselect(key="cmp_configs").set_value(["resnet18", "resnet34"]).run()
    assert [label for label, _, _ in labelled(charts(at)["Parameters against depth"])["x"]] == [
        "resnet18", "resnet34", "resnet20 (layers=2,2,2) (current)"]


QUERY_VALUES = st_.one_of(st_.sampled_from(["999999", "1" * 40, "-3,3,3", "3," * 3000, "", "x", "true", "0",
                                            "bottleneck", "A", "4096", "1e9"]),
                          st_.text(max_size=12))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st_.dictionaries(st_.sampled_from(["layers", "width", "block", "groups", "shortcut", "stem", "skip",
                                          "num_classes", "batch", "input"]), QUERY_VALUES, max_size=4))
def test_any_link_to_architecture_is_an_error_line_or_a_view(params):
    """Random query strings on the Architecture page: a view or one-line errors, never an exception, fast."""
    at = AppTest.from_file(str(ROOT / "pages" / "1_Architecture.py"), default_timeout=60)
    at.query_params.update({"model": "resnet20", **params})
    start = time.perf_counter()
    at.run()
    assert not at.exception, (params, at.exception)
    assert time.perf_counter() - start < 10, params
    assert all("\n" not in e.value for e in at.error)


def test_timm_options_are_controls_and_the_file_downloads():
    at = run(ARCHITECTURE, model="resnet50d")
    assert metrics(at)["Parameters"] == "25,576,264"  # timm's resnet50d, checked in test_timm_oracle
    assert (at.number_input(key="arch_stem_mid").value, at.selectbox(key="arch_shortcut").value,
            at.selectbox(key="arch_stem").value) == (32, "D", "deep")
    at.selectbox(key="arch_attention").set_value("eca").run()
    assert metrics(at)["Parameters"] == "25,576,350"  # timm 1.0.31's ecaresnet50d
    assert "same network as the preset ecaresnet50d" in texts(at)
    assert at.query_params["attention"] == "eca"
    downloads = [e.proto.label for e in at.get("download_button")]
    assert "This network as one PyTorch file (.py)" in downloads
    at.selectbox(key="arch_norm").set_value("group")
    at.number_input(key="arch_norm_groups").set_value(48).run()
    assert any("norm_groups: 48 groups do not divide" in e.value for e in at.error)
    assert not at.exception


def test_an_old_link_with_se_still_means_squeeze_and_excitation():
    at = run(ARCHITECTURE, model="resnet50", se="true")
    assert metrics(at)["Parameters"] == "28,088,024"  # timm 1.0.31's legacy_seresnet50; Hu et al. 2018: 28.1M
    assert "se" not in at.query_params and at.query_params["attention"] == "se"
    assert not at.exception


def test_block_anatomy_draws_res2net_split_attention_and_bit():
    at = run("pages/2_Block_anatomy.py")
    at.multiselect(key="anat_variants").set_value(["res2net", "split_attention", "bit"]).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value.set_index("block")
    # timm 1.0.31's own blocks at 256 -> 256 channels: Bottle2neck(256, 64, base_width=26, scale=4),
    # ResNestBottleneck(256, 64, radix=2, avd=True), BiT's PreActBottleneck(256, 256) with StdConv2d and GroupNormAct
    assert table["params"].to_dict() == {"Res2Net bottleneck (26w·4s)": 72_376,
                                         "Split-attention bottleneck (ResNeSt)": 76_896,
                                         "Weight-standardised pre-act bottleneck (BiT)": 70_400}
    assert sum(e.type == "plotly_chart" for e in at.main) >= 3  # a path figure per block
    steps = "\n".join(str(d.value.to_string()) for d in at.dataframe[1:])
    assert "split the channels into 4 groups" in steps and "add the previous group's output" in steps
    assert "softmax across the paths, per channel" in steps and "weight-standardised conv 3×3, 64→64" in steps


def test_architecture_lists_the_timm_families_with_their_new_fields():
    at = run(ARCHITECTURE, model="res2net50_26w_4s")
    assert at.selectbox(key="arch_family").value == "res2net"
    assert at.selectbox(key="arch_model").options == ["res2net50_26w_4s", "res2net101_26w_4s", "res2net50_26w_6s",
                                                      "res2net50_26w_8s", "res2net50_48w_2s", "res2net50_14w_8s",
                                                      "res2next50", "res2net50d", "res2net101d"]
    assert metrics(at)["Parameters"] == "25,699,120"  # timm 1.0.31's res2net50_26w_4s
    assert "= timm's res2net50_26w_4s (timm 1.0.31, models/res2net.py)" in texts(at).replace("\\'", "'")
    at.number_input(key="arch_res2net_scale").set_value(6).run()
    assert metrics(at)["Parameters"] == "37,051,448" and at.query_params["res2net_scale"] == "6"  # res2net50_26w_6s
    families = at.selectbox(key="arch_family").options
    assert {FAMILY_LABELS[f] for f in ("timm", "resnetv2", "res2net", "resnest", "senet", "sknet")} <= set(families)
    at = run(ARCHITECTURE, model="ecaresnet50d_pruned", layers="1,1,1,1")
    assert any("block_widths must give 3 widths for each of the 4 blocks" in e.value for e in at.error)
    at = run(ARCHITECTURE, model="ecaresnet50d_pruned", layers="1,1,1,1", block_widths="none")
    assert not at.error and metrics(at)["Parameters"] == "10,084,190"  # timm's ecaresnet50d, one block per stage
    assert not at.exception


def test_the_stage_figure_is_drawn_when_opened_with_torchvisions_parameters_per_stage():
    at = run(ARCHITECTURE)  # resnet18
    (expander,) = [e for e in at.expander if e.label.startswith("Stage figure")]
    assert not expander.proto.expanded and not [e for e in at.main if e.type == "plotly_chart"]  # nothing to draw
    at.session_state["arch_stage_figure"] = True  # what opening it does
    (expander,) = [e for e in at.run().expander if e.label.startswith("Stage figure")]
    (spec,) = [json.loads(e.proto.spec) for e in expander if e.type == "plotly_chart"]
    tv = torchvision.models.resnet18()
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    expected = [count(tv.conv1, tv.bn1), *(count(getattr(tv, f"layer{i}")) for i in range(1, 5)), count(tv.fc)]
    assert values(spec["data"][2]["y"]) == expected
    assert sum(expected) == 11_689_512
