"""Text about where runs stand, from a `resnet_core.runs.board.RunBoard`: the lines pages redraw while runs are live."""

from __future__ import annotations

from collections.abc import Sequence

from resnet_core.runs.board import RunBoard
from resnet_core.training.records import Status

LISTED = 8  # stored runs listed by name with their state (the newest, and every live one)


def stored_runs_note(board: RunBoard) -> str:
    """"3 run(s) stored on this server, from every session.", with what "interrupted" means when a run is, and the
    runs training in other processes."""
    runs = board.runs.values()
    interrupted = sum(e.state.status is Status.INTERRUPTED for e in runs)
    elsewhere = [e.run_id for e in runs if e.live and e.job_id is None]
    return (f"{len(runs)} run(s) stored on this server, from every session."
            + (f" {interrupted} interrupted: the process training it ended before the run finished; its curves "
               "are kept." if interrupted else "")
            + (f" Training now in other processes (the command line, torchrun, another machine): "
               f"{', '.join(f'`{r}`' for r in elsewhere)}; inspect one below to watch its curves grow."
               if elsewhere else ""))


def run_lines(board: RunBoard) -> str:
    """A markdown list of the newest LISTED stored runs and every live one: "- `id` · resnet20 on synthetic ·
    finished · test acc 91.2%"; then how many more there are."""
    runs = list(board.runs.values())
    shown = [e for i, e in enumerate(runs) if i < LISTED or e.live]
    lines = [f"- `{e.run_id}` · {e.model} on {e.dataset} · {e.status_text}" for e in shown]
    more = len(runs) - len(shown)
    return "\n".join(lines + ([f"- … and {more} older run(s), in the lists below"] if more else []))


def no_points_note(missing: Sequence[tuple[str, str, bool]], metric: str) -> str:
    """One line for the runs (run id, status text, live) a chart of `metric` has no points of: a live run has
    none yet, an ended one recorded none."""
    live = [f"`{run}` ({status})" for run, status, is_live in missing if is_live]
    ended = [f"`{run}` ({status})" for run, status, is_live in missing if not is_live]
    parts = ([f"no {metric} points yet for {', '.join(live)}"] if live else []) + (
        [f"no {metric} recorded for {', '.join(ended)}"] if ended else [])
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
