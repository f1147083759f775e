"""Lesion study (Veit et al. 2016): delete one block of a trained net at test time, for every block."""

from __future__ import annotations

from typing import Dict, List

import streamlit as st

st.set_page_config(page_title="Lesion study · ResNet Explorer", page_icon="🧱", layout="wide")

from pages.ui.flow_figures import lesion_figure, short_label  # noqa: E402  (set_page_config must come first)
from pages.ui.widgets import BackgroundRows  # noqa: E402
from resnet_core import degradation, lesion  # noqa: E402
from resnet_core.runstore import RunInfo, list_runs  # noqa: E402

TASK_KEY = "lesion_task"  # {"key": (run ids, limit), "task": BackgroundRows}


def finished_runs() -> Dict[str, RunInfo]:
    return {r.run_id: r for r in list_runs()
            if r.status in ("finished", "stopped") and (r.path / "weights.pt").is_file()}


def default_choice(runs: Dict[str, RunInfo]) -> List[str]:
    """The newest degradation group's nets, else the newest plain and the newest residual run."""
    for group in degradation.list_groups().values():
        picks = [info.run_id for info in group.values() if info.run_id in runs]
        if picks:
            return picks
    picks = []
    for skip in (False, True):
        rid = next((rid for rid, r in runs.items() if r.config.get("spec", {}).get("skip", True) == skip), None)
        if rid:
            picks.append(rid)
    return picks


def label(run: RunInfo) -> str:
    spec = run.config.get("spec", {})
    kind = "residual" if spec.get("skip", True) else "plain"
    acc = (run.final or {}).get("test_acc")
    return f"{short_label(run.run_id)} · {kind}" + (f" · test acc {acc:.1%}" if acc is not None else "")


st.title("Lesion study")
st.markdown("Veit, Wilber and Belongie (2016) deleted single blocks from trained nets at test time: a ResNet "
            "loses little, as if it were an ensemble of shallower paths, while a plain net collapses. Here each "
            "block of a stored run is replaced by the identity in turn and the test accuracy measured. A block whose "
            "output shape differs from its input's (the first block of a downsampling stage) cannot be deleted.")
runs = finished_runs()
if not runs:
    st.info("No trained run with weights yet: train on the Train page or start the Degradation runs.")
    st.stop()
if "lesion_runs" not in st.session_state:
    st.session_state.lesion_runs = default_choice(runs)
c = st.columns([4, 1, 1])
chosen = c[0].multiselect("Trained runs", list(runs), key="lesion_runs", max_selections=4,
                          format_func=lambda rid: label(runs[rid]))
limit = c[1].select_slider("Test images", [100, 250, 500, 1000, 2000], value=250, key="lesion_limit",
                           help="each deletion is one evaluation on this many test images")
start = c[2].button("Run the lesion study", type="primary", disabled=not chosen, key="lesion_start")
key = (tuple(chosen), limit)
if start:
    st.session_state[TASK_KEY] = dict(key=key, task=BackgroundRows(
        lambda rid: lesion.lesion_run(runs[rid].path, limit=limit).to_dict(), list(chosen)))
job = st.session_state.get(TASK_KEY)
live = bool(job) and not job["task"].snapshot()[1]


@st.fragment(run_every=1.0 if live else None)
def results() -> None:
    if not job:
        st.caption("Pick trained runs and press “Run the lesion study”.")
        return
    rows, done, error = job["task"].snapshot()
    if error:
        st.error(error, icon="⚠️")
    if not done:
        st.progress(len(rows) / job["task"].total, text=f"{len(rows)} of {job['task'].total} runs lesioned…")
    if rows:
        st.plotly_chart(lesion_figure({r["name"]: r for r in rows}), width="stretch", key="lesion_fig")
        for r in rows:
            st.markdown("- " + lesion.describe(lesion.LesionResult(**r)))
        st.caption(f"Source of the method: {lesion.VEIT2016}.")
    if done and job["key"] != key:
        st.caption("The results above are for an earlier choice of runs; press the button to measure this one.")
    if live and done:
        st.rerun()  # finished: redraw once without polling


results()
