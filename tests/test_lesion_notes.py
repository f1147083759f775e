"""The Lesion page pre-selects a plain and a residual run, says which accuracy is which and why they differ,
and warns when a net is too near chance for the study to mean anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_core.experiments import degradation, lesion, lesion_notes
from resnet_core.runs.store import list_runs
from tests.conftest import rerun_until

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "7_Lesion.py")
TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=3, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=0)


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> tuple[Path, dict]:
    """Four tiny nets, three steps each: trained, stored with weights, and (at 3 steps) near chance."""
    root = tmp_path_factory.mktemp("runs")
    degradation.run(TINY, root=root)
    return root, {info.run_id: info for info in list_runs(root)}


def test_default_choice_needs_both_kinds(group):
    root, runs = group
    (full,) = degradation.list_groups(root).values()
    plain_only = {name: info for name, info in full.items() if not info.skip}  # a newer group stopped early
    picks = lesion_notes.default_choice(runs, [plain_only, full])
    assert sorted(picks) == sorted(info.run_id for info in full.values())  # the group with both kinds
    newest = lesion_notes.default_choice(runs, [plain_only])
    assert sorted(runs[rid].skip for rid in newest) == [False, True]  # else the newest plain and residual run
    residual = {rid: info for rid, info in runs.items() if info.skip}
    assert len(lesion_notes.default_choice(residual, [])) == 1
    assert "Only residual runs are stored" in lesion_notes.kinds_note(residual.values())
    assert lesion_notes.kinds_note(runs.values()) is None


def test_intact_accuracy_on_the_runs_own_images_is_its_stored_final_test(group):
    root, runs = group
    for info in runs.values():
        result = lesion.lesion_run(info.path)  # the run's own 64 test images
        assert lesion_notes.stored_test(info) == (result.baseline_acc, 64)
        assert lesion_notes.compare_with_stored(result, info).endswith("the same images, the same accuracy.")
        other = lesion.lesion_run(info.path, limit=32)
        text = lesion_notes.compare_with_stored(other, info, [32, 64])
        assert "on the first 32 test images" in text and "different numbers of test images" in text
        assert "set “Test images” to 64" in text and "set “Test" not in lesion_notes.compare_with_stored(other, info)


def test_near_chance_is_below_twice_one_over_the_classes():
    assert lesion_notes.chance_warning("net", 0.19, 10).startswith("net: intact accuracy 19.0% is near chance "
                                                                    "(10.0% = 1/10 classes")
    assert lesion_notes.chance_warning("net", 0.20, 10) is None
    assert lesion_notes.chance_warning("net", 0.45, 2) is not None and lesion_notes.chance_warning("n", 0.5, 4) is None


def test_page_preselects_both_kinds_labels_the_stored_test_and_warns_near_chance(group, monkeypatch):
    root, runs = group
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    chosen = at.multiselect(key="lesion_runs")
    assert sorted(chosen.value) == sorted(runs)  # the four nets: plain and residual
    stored = {rid: lesion_notes.stored_test(info) for rid, info in runs.items()}
    assert sorted(chosen.options) == sorted(lesion_notes.run_label(info) for info in runs.values())
    assert all(f"final test acc {acc:.1%} on 64 images" in lesion_notes.run_label(runs[rid])
               for rid, (acc, _) in stored.items())
    near = [rid for rid, (acc, _) in stored.items() if acc < 0.2]  # 10 synthetic classes: chance is 10%
    warned = [w.value for w in at.warning if "near chance" in w.value]
    assert near and len(warned) == len(near) and all("final test accuracy (stored)" in w for w in warned)
    at.select_slider(key="lesion_limit").set_value(100).run()
    at.button(key="lesion_start").click().run()
    rerun_until(at, lambda a: sum("Intact accuracy measured now" in c.value for c in a.caption) == 4, 60, 0.3)
    captions = [c.value for c in at.caption if "Intact accuracy measured now" in c.value]
    assert all("on the first 100 test images" in c and "on its first 64 test images" in c
               and "set “Test images”" not in c for c in captions)  # the slider offers no 64
    assert not at.exception and any("near chance" in w.value for w in at.warning)
