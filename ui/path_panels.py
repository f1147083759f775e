"""The path-length section of the Lesion page (Veit et al. 2016): runs chosen there, k blocks deleted at once,
measured in the background with progress; the numbers come from resnet_core.experiments.paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from resnet_core.experiments import paths
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.store import RunInfo

from .charts import show_chart
from .live import live_fragment, measured_rows
from .path_figures import path_length_figure

TASK_KEY = "paths_task"  # {"key": (run ids, limit, samples), "task": BackgroundRows}


def path_length_section(runs: Mapping[str, RunInfo], chosen: Sequence[str], limit: int) -> None:
    st.subheader("Path lengths")
    st.markdown("Veit et al. read a ResNet of n blocks as 2ⁿ paths: each block is passed through or skipped, so "
                "the number of blocks on a path follows Binomial(n, ½), and most paths are of middle length. "
                "Deleting k blocks leaves the 2ⁿ⁻ᵏ paths that avoid them. Here k random blocks that can be "
                "deleted are replaced by the identity at once, for every k, a few draws each, on the runs chosen "
                "above.")
    c = st.columns([1, 1, 3])
    samples = c[0].select_slider("Draws per k", [1, 2, 3, 5], value=3, key="paths_samples")
    start = c[1].button("Delete k blocks", disabled=not chosen, key="paths_start")
    key = (tuple(chosen), limit, samples)
    if start:
        st.session_state[TASK_KEY] = dict(key=key, task=BackgroundRows(
            lambda rid: _row(runs[rid], samples, limit), list(chosen)))
    job = st.session_state.get(TASK_KEY)

    def draw() -> bool:
        if not job:
            st.caption("Pick runs above and press “Delete k blocks”.")
            return False
        measured, done = measured_rows(job["task"], "runs measured")
        if measured:
            show_chart(path_length_figure(measured), key="paths_fig", width="stretch",
                       name="path lengths " + " ".join(str(r.get("name", "")) for r in measured),
                       title="Path lengths and deleting k blocks")
            st.markdown("\n".join(f"- {paths.describe(r)}" for r in measured))
        if done and job["key"] != key:
            st.caption("The results above are for an earlier choice; press the button to measure this one.")
        return not done

    live_fragment(draw, bool(job) and not job["task"].snapshot()[1], 1.0)


def _row(run: RunInfo, samples: int, limit: int) -> dict:
    try:
        return paths.k_rows_of_run(run.path, samples=samples, limit=limit)
    except (ValueError, RuntimeError, OSError) as exc:  # one bad run never stops the others
        return dict(name=run.run_id, error=str(exc))
