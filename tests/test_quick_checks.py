"""Quick checks: the data file is complete, and every question's figure is shown on its page (AppTest) and cited,
as shown there, by the feedback to both a right and a wrong answer."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from torch import nn

from resnet_core import build_model
from resnet_core.experiments import degradation
from resnet_core.introspect.summary import summarize
from tests.conftest import rerun_until
from ui import quick_check
from ui.quick_check import FIGURES, Check, feedback, load_checks

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "run-v1"  # a finished residual run with weights
CHECKS = load_checks()


def page_titles() -> dict[str, Path]:
    """Page title (its setup_page argument) -> page file."""
    titles = {}
    for path in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup_page":
                titles[node.args[0].value] = path
    return titles


PAGES = page_titles()
ASKED = ["Architecture", "Block anatomy", "Train", "Signal flow", "Degradation", "Lesion study"]


def test_the_data_file_is_complete():
    assert len({c.id for c in CHECKS}) == len(CHECKS)
    assert sorted({c.page for c in CHECKS}) == sorted(ASKED)
    for check in CHECKS:
        assert check.page in PAGES, check.id
        assert 2 <= len(check.options) <= 5 and len(set(check.options)) == len(check.options), check.id
        assert 0 <= check.answer < len(check.options), check.id
        assert check.figure in FIGURES, check.id
        assert "{figure}" in check.explain and check.missing, check.id
    for page in ASKED:  # each page asks its own questions, as its last call
        assert f'quick_check("{page}")' in PAGES[page].read_text(encoding="utf-8")


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    return root


def page_text(at: AppTest) -> str:
    """Everything a reader sees as text: metric values, markdown, captions, alerts, code."""
    parts = [m.value for m in at.metric]
    parts += [str(e.value) for e in [*at.markdown, *at.caption, *at.success, *at.warning, *at.info, *at.code]]
    return "\n".join(parts)


def check_answers(at: AppTest, check: Check) -> str:
    """The figure is on the page before any answer; both answers' feedback cites it. Returns the figure."""
    text, figure = feedback(check, at.session_state)
    assert figure is not None, f"{check.id}: the page has not computed its figure"
    assert figure in page_text(at), f"{check.id}: {figure!r} is not shown on {check.page}"
    radio = at.radio(key=check.key)
    assert radio.value is None and list(radio.options) == list(check.options)
    radio.set_value(check.options[check.answer]).run()
    assert [s.value for s in at.success if s.value.startswith("Right.")] == [f"Right. {text}"]
    assert figure in text
    wrong = next(i for i in range(len(check.options)) if i != check.answer)
    at.radio(key=check.key).set_value(check.options[wrong]).run()
    right = check.options[check.answer]
    notes = [w.value for w in at.warning if w.value.startswith(f"Not quite: the answer is “{right}”")]
    assert len(notes) == 1 and figure in notes[0]
    assert not at.exception
    return figure


def checks_of(page: str) -> list[Check]:
    return [c for c in CHECKS if c.page == page]


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(str(PAGES[page]), default_timeout=120).run()
    assert not at.exception
    return at


def test_architecture_cites_the_depth_metric():
    at = run_page("Architecture")
    assert check_answers(at, checks_of("Architecture")[0]) == "18"  # resnet18, the default


def test_block_anatomy_cites_the_ratio():
    """The identity experiment's question is answered in tests/test_block_lab.py, after the experiment has run."""
    at = run_page("Block anatomy")
    bottleneck, identity = checks_of("Block anatomy")
    assert check_answers(at, bottleneck) == "16.8×"
    assert feedback(identity, at.session_state) == (identity.missing, None)  # nothing trained yet


def test_train_cites_the_memory_estimate(runs_root):
    at = run_page("Train")
    figure = check_answers(at, checks_of("Train")[0])
    assert f"Estimated training memory {figure}," in page_text(at)


def test_signal_flow_cites_the_plain_spread():
    at = AppTest.from_file(str(PAGES["Signal flow"]), default_timeout=120)
    at.session_state["flow_blocks"] = 12  # the page keeps it (setdefault); the page measures it once, the figure once
    at.run()
    figure = check_answers(at, checks_of("Signal flow")[0])
    assert f"Gradient-norm spread (max/min over blocks): plain {figure}," in page_text(at)


def test_degradation_cites_the_deep_plain_loss(runs_root):
    at = run_page("Degradation")
    check = checks_of("Degradation")[0]
    assert feedback(check, at.session_state) == (check.missing, None)  # no runs yet
    tiny = degradation.DegradationConfig(shallow=1, deep=2, steps=4, batch_size=16, width=4, image_size=8,
                                         test_subset=32)
    degradation.run(tiny, root=runs_root)
    at = run_page("Degradation")
    figure = check_answers(at, check)
    assert f"plain14 {figure}" in page_text(at)


def test_lesion_cites_the_median_drop(runs_root):
    at = run_page("Lesion study")
    check = checks_of("Lesion study")[0]
    at.radio(key=check.key).set_value(check.options[check.answer]).run()  # asked even with no runs to study
    assert [s.value for s in at.success] == [f"Right. {check.missing}"]
    shutil.copytree(FIXTURE_RUN, runs_root / "20261130-075200-resnet20-fix1")
    at = run_page("Lesion study")
    at.button(key="lesion_start").click().run()
    rerun_until(at, lambda a: feedback(check, a.session_state)[1] is not None, timeout=60)
    at.run()
    figure = check_answers(at, check)
    assert f"a median drop of {figure}" in page_text(at)


@pytest.mark.parametrize("model, depth, stem, blocks, convs", [
    ("resnet18", 18, 1, 8, 2),  # He et al. 2015, Table 1: 18 layers, 2+2+2+2 basic blocks
    ("resnet50", 50, 1, 16, 3),  # Table 1: 50 layers, 3+4+6+3 bottlenecks
    ("resnet152", 152, 1, 50, 3),  # Table 1: 152 layers, 3+8+36+3 bottlenecks
    ("resnet20", 20, 1, 9, 2),  # He et al. 2015, section 4.2: 6n+2 layers, n = 3
    ("resnet56", 56, 1, 27, 2),  # section 4.2: n = 9
    ("resnet110", 110, 1, 54, 2),  # section 4.2: n = 18
    ("resnet1202", 1202, 1, 600, 2),  # section 4.2: n = 200
    # timm's name counts a 1-conv stem (1 + 8 + 1 = 10); its deep_tiered stem has 3 convs (timm 1.0 resnet.py, which
    # calls the 26t "technically a 28 layer ResNet" for the same reason): 3 + 4 × 2 + 1
    ("resnet10t", 12, 3, 4, 2),
    # timm's resnetrs50: a 3-conv deep stem and replace_stem_pool (a stride-2 3×3 conv): 4 + 16 × 3 + 1
    ("resnetrs50", 53, 4, 16, 3),
])
def test_the_depth_feedback_adds_up_for_every_stem(model, depth, stem, blocks, convs):
    """stem convs + blocks × convs per block + the classifier = the Depth shown, deep and conv-pool stems too:
    each figure is the paper's (or counted by hand above), and the built model has that many weighted layers on
    its main path (every Conv2d and Linear outside the shortcuts and the attention modules)."""
    figure = quick_check.depth({"arch_last_good": (model, summarize(model))})
    assert figure == dict(figure=str(depth), stem=str(stem), blocks=str(blocks), convs=str(convs))
    built = build_model(model, device="meta")
    side = (".downsample.", ".se.")  # projection shortcuts and channel attention (SE or ECA): off the main path
    main_path = [name for name, m in built.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                 and not any(s in f"{name}." for s in side)]
    assert len(main_path) == depth, main_path
