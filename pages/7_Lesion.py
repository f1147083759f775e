"""Lesion study (Veit et al. 2016): delete one block of a trained net at test time, for every block."""

from __future__ import annotations

import streamlit as st

from resnet_core.experiments import degradation, lesion, lesion_notes
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.pairing import no_pair_note, unlike_pairs, unlike_text
from resnet_core.runs.store import trained_runs
from ui.charts import show_chart
from ui.experiment_figures import lesion_figure
from ui.live import LISTED_WHEN, live_fragment, measured_rows, runs_strip
from ui.page import setup_page
from ui.path_panels import path_length_section
from ui.quick_check import quick_check
from ui.seed_panels import lesion_seed_panel
from ui.widgets import skipped_runs_note

setup_page("Lesion study")

TASK_KEY = "lesion_task"  # {"key": (run ids, limit), "task": BackgroundRows}
TEST_IMAGES = [100, 250, 500, 1000, 2000]  # the choices of the "Test images" slider


def chance_warning(name: str, acc: float, what: str = "intact accuracy") -> None:
    final = runs[name].final
    warning = lesion_notes.chance_warning(name, acc, len(final.classes), what) if final else None
    if warning:
        st.warning(warning, icon="⚠️")


st.title("Lesion study")
st.markdown("Veit, Wilber and Belongie (2016) deleted single blocks from trained nets at test time: a ResNet "
            "loses little, as if it were an ensemble of shallower paths, while a plain net collapses. Here each "
            "block of a stored run is replaced by the identity in turn and the test accuracy measured. A block whose "
            "output shape differs from its input's (the first block of a downsampling stage) cannot be deleted.")
runs_strip(LISTED_WHEN)
runs, skipped = trained_runs()
skipped_runs_note(skipped)
if not runs:
    st.info("No trained run with weights yet: train on the Train page or start the Degradation runs.")
    quick_check("Lesion study")
    st.stop()
if "lesion_runs" not in st.session_state:
    st.session_state.lesion_runs = lesion_notes.default_choice(runs, degradation.list_groups().values())
if note := lesion_notes.kinds_note(runs.values()) or no_pair_note(runs.values()):
    st.info(note)
c = st.columns([4, 1, 1])
chosen = c[0].multiselect("Trained runs", list(runs), key="lesion_runs", max_selections=4,
                          format_func=lambda rid: lesion_notes.run_label(runs[rid]))
limit = c[1].select_slider("Test images", TEST_IMAGES, value=250, key="lesion_limit",
                           help="each deletion is one evaluation on this many test images")
start = c[2].button("Run the lesion study", type="primary", disabled=not chosen, key="lesion_start")
if unlike := unlike_pairs([runs[rid] for rid in chosen]):
    st.warning(f"These runs were not trained alike: {unlike_text(unlike)} Each is measured, but the drops of unlike "
               "runs are not like with like: pick runs that match to compare them.", icon="⚠️")
key = (tuple(chosen), limit)
if start:
    st.session_state[TASK_KEY] = dict(key=key, task=BackgroundRows(
        lambda rid: lesion.lesion_row(runs[rid].path, limit=limit), list(chosen)))
job = st.session_state.get(TASK_KEY)
if not job or job["key"] != key:  # before a study, from the runs' own final tests
    for rid in chosen:
        if stored := lesion_notes.stored_test(runs[rid]):
            chance_warning(rid, stored[0], "final test accuracy (stored)")


def results() -> bool:
    if not job:
        st.caption("Pick trained runs and press “Run the lesion study”.")
        return False
    measured, done = measured_rows(job["task"], "runs lesioned")
    if measured:
        results = [lesion.LesionResult.from_dict(r) for r in measured]
        show_chart(lesion_figure({r.name: r for r in results}), key="lesion_fig",
                   name="lesion " + " ".join(r.name for r in results),
                   title="Deleting one block at a time: " + ", ".join(r.name for r in results), width="stretch")
        for r in results:
            st.markdown("- " + lesion.describe(r))
            if r.name in runs:
                st.caption(lesion_notes.compare_with_stored(r, runs[r.name], TEST_IMAGES))
                chance_warning(r.name, r.baseline_acc)
        st.caption(f"Source of the method: {lesion.VEIT2016}.")
    if done and job["key"] != key:
        st.caption("The results above are for an earlier choice of runs; press the button to measure this one.")
    return not done


live_fragment(results, bool(job) and not job["task"].snapshot()[1], 1.0)
st.divider()
lesion_seed_panel(limit)
st.divider()
path_length_section(runs, chosen, limit)


quick_check("Lesion study")
