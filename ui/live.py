"""The one way a page polls background work: a fragment that re-runs while the work is live, then stops."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


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
