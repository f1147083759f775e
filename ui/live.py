"""The one way a page polls background work: a fragment that re-runs while the work is live, then stops; and the
one way a page follows the server's runs (`follow_runs`, reading `resnet_core.runs.board`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.board import RunBoard, board_stamp, run_board
from resnet_core.runs.runner import JobRunner, default_runner


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


def wait_for(ready: Callable[[], bool], seconds: float, interval: float = 0.02) -> None:
    """Return once `ready()` holds, or after `seconds`: a poll that draws news (a run's first point) as soon as it
    comes instead of at the fragment's next tick. Keep `seconds` under the fragment's interval."""
    deadline = time.monotonic() + seconds
    while not ready() and time.monotonic() < deadline:
        time.sleep(interval)


def measured_rows(task: BackgroundRows[dict[str, Any]], done_text: str) -> tuple[list[dict[str, Any]], bool]:
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


RUNS_POLL, IDLE_POLL = 1.0, 5.0  # seconds between looks at the runs: while one is live, and while none is
LISTED_WHEN = "A run is listed here once it has ended with its weights (finished or stopped)."


def server_runner() -> JobRunner | None:
    """The process-wide job runner, or None where it cannot be made (a bad $RESNET_EXPLORER_MAX_RUNS)."""
    try:
        return default_runner()
    except ValueError:
        return None


def current_board() -> RunBoard:
    return run_board(server_runner())


def follow_runs(board: RunBoard, draw: Callable[[RunBoard], None] | None = None) -> None:
    """`draw(board)` now and, while a run is live, again with a fresh board every RUNS_POLL seconds; the whole page
    reruns once the runs listed or their states differ from `board`, the one its widgets were drawn from, so that no
    selector, label or result shows a state that has passed. With nothing live it looks every IDLE_POLL seconds at
    `board_stamp` alone (a job submitted, a run folder added) and reads a board only when that changed."""
    runner = server_runner()
    seen = [board_stamp(runner)]  # the last stamp read, once its board matched `board`

    @st.fragment(run_every=RUNS_POLL if board.live else IDLE_POLL)
    def fragment() -> None:
        stamp = board_stamp(runner)
        now = run_board(runner) if board.live or stamp != seen[0] else board
        if draw is not None:
            draw(now)
        if now.signature != board.signature:
            st.rerun()
        seen[0] = stamp

    fragment()


def training_now(board: RunBoard, after: str = "") -> None:
    """One caption naming every queued or running run of the server with where it stands ("`id` running · step 3
    of 10; `resnet20 on synthetic (job …)` queued · position 1 · waiting 5 s"), then `after`; nothing when no run
    is live."""
    live = board.live
    if live:
        st.caption(f"Training on this server now: {'; '.join(f'`{e.name}` {e.status_text}' for e in live)}."
                   + (f" {after}" if after else ""))


def runs_strip(after: str = "") -> None:
    """A page that lists runs: `training_now`, followed live; the page reruns when a run appears or changes state."""
    follow_runs(current_board(), lambda now: training_now(now, after))
