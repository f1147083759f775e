"""AppTest of Block anatomy's identity experiment and "break it" switches: what the page shows is what the core
measured or what PyTorch raised, never a canned message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.experiments.identity import GOAL_RATIO, IdentityConfig, describe, format_times, run_identity
from resnet_core.experiments.mistakes import bn_on_shortcut, bn_train_mode_eval, relu_placement, skip_mismatch
from tests.conftest import rerun_until
from tests.test_quick_checks import check_answers
from ui.block_lab import ZERO_INIT_MODEL, identity_result
from ui.quick_check import load_checks

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "2_Block_anatomy.py")
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "run-v1"


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUN, root / "20261130-075200-resnet20-fix1")
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    return root


def test_identity_experiment_runs_in_the_background_and_says_when_it_misses_the_goal():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.number_input(key="idexp_steps").set_value(12).run()
    at.toggle(key="idexp_bn").set_value(False).run()
    at.button(key="idexp_start").click().run()
    rerun_until(at, lambda a: identity_result(a.session_state) is not None, timeout=60)
    at.run()
    result = identity_result(at.session_state)
    assert result.config == IdentityConfig(batch_norm=False, steps=12)
    again = run_identity(result.config)  # seeded: the page's numbers are reproduced outside the page
    assert again.plain.loss == result.plain.loss and again.residual.loss == result.residual.loss
    shown = {m.label: m.value for m in at.metric}
    assert shown["‖F(x)‖/‖x‖, residual"] == f"{result.residual.residual_ratio:.3g}"
    text = "\n".join(m.value for m in at.markdown)
    assert all(line in text for line in describe(result))
    verdict = (f"The residual block reached a loss {format_times(result.loss_ratio)} lower" if result.reaches_goal
               else f"The residual block did not reach a {GOAL_RATIO:g}× lower loss here: plain "
                    f"{result.plain.final_loss:.3g}")
    assert any(a.value.startswith(verdict) for a in (at.success if result.reaches_goal else at.warning))
    assert not at.exception and not at.error
    identity_check = next(c for c in load_checks() if c.figure == "identity_residual_ratio")
    assert check_answers(at, identity_check) == shown["‖F(x)‖/‖x‖, residual"]  # the quick check cites the metric


def test_every_break_it_switch_shows_the_real_behaviour(runs_root):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.toggle(key="break_mismatch").set_value(True).run()
    broken = skip_mismatch(64, 128, 2, size=16)
    assert f"RuntimeError: {broken.error}" in [c.value for c in at.code]
    at.button(key="break_fix_A").click().run()
    assert any("returns 2×128×8×8, with 0 parameters in the shortcut" in s.value for s in at.success)
    at.button(key="break_fix_C").click().run()
    assert any("with 8,448 parameters" in s.value for s in at.success)

    for key in ("break_relu", "break_bn_shortcut", "break_train_mode", "break_zero_init"):
        at.toggle(key=key).set_value(True).run()
    assert not at.exception and not at.error
    frames = [d.value for d in at.dataframe]
    placement = next(f for f in frames if "clipped_share" in f.columns)
    assert placement.identity_error.tolist() == [r.identity_error for r in relu_placement()]
    norm = next(f for f in frames if "input_grad_norm" in f.columns)
    assert norm.identity_error.tolist() == [r.identity_error for r in bn_on_shortcut()]
    modes = next(f for f in frames if "mode" in f.columns)
    assert modes.acc.tolist() == [r.acc for r in bn_train_mode_eval(runs_root / "20261130-075200-resnet20-fix1")]
    totals = next(f for f in frames if "branch_conv_grad" in f.columns).set_index("zero_init")
    assert totals.loc[True, "branch_conv_grad"] == 0.0 < totals.loc[False, "branch_conv_grad"]
    assert f"First step of {ZERO_INIT_MODEL[0]}" in "\n".join(m.value for m in at.markdown)
