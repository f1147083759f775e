"""The one way a page polls background work: a fragment that re-runs while the work is live, then stops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from resnet_core.jobs import BackgroundRows


def live_fragment(draw: Callable[[], bool], live: bool, every: float) -> None:
    """Run `draw()` now and, while `live`, again every `every` seconds (`st.fragment(run_every=…)`).

    `draw` shows the current state and returns whether anything it shows is still live. When a polling
    fragment sees the work end, the whole page reruns once: polling stops, and what waits for the end
    (results, enabled buttons, a toast) appears.
    """

    @st.fragment(run_every=every if live else None)
    def fragment() -> None:
        still_live = draw()
        if live and not still_live:
            st.rerun()

    fragment()


def measured_rows(task: BackgroundRows, done_text: str) -> tuple[list[dict[str, Any]], bool]:
    """A BackgroundRows job of one row per run on the page: its error, a bar while it works ("2 of 4 runs
    lesioned…" for `done_text` "runs lesioned"), one error line per run that failed. Returns the rows that did
    not fail, and whether the job is done."""
    rows, done, error = task.snapshot()
    if error:
        st.error(error, icon="⚠️")
    if not done:
        st.progress(len(rows) / task.total, text=f"{len(rows)} of {task.total} {done_text}…")
    for failed in (r for r in rows if "error" in r):
        st.error(failed["error"], icon="⚠️")
    return [r for r in rows if "error" not in r], done
