"""Where a degradation group stands: which nets were queued, which finished, stopped or never started, and
each net's progress and time left.

`start` (degradation.py) records the queued nets in `<runs root>/<group id>.queued.json`, next to the run
folders, because a net stopped while still queued never gets a folder; without that file (groups started
before it existed, or by the command line) the nets are those with a folder. Time left comes from the runs'
own train records (their measured ETA) and, for a net not started yet, from a Forecast (runs/forecast.py): the pace
measured on the group's nets that trained, scaled to its mult-adds, else a prior (training/estimate.py). Each figure
says which it is, and a queued net's start counts the wait in front of it (the runner's, every session's jobs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..files import read_regular
from ..formatting import format_seconds
from ..runs.contract import RunState
from ..runs.forecast import Basis, Forecast
from ..runs.store import runs_root
from ..training.records import Record, Status, TrainRecord, final_of, of_kind
from .degradation_nets import NET_NAME

QUEUED_SUFFIX = ".queued.json"
MAX_NETS = 16  # a queued file naming more nets than this is not ours
MAX_QUEUED_BYTES = 2**16  # MAX_NETS short names: a few hundred bytes


def queued_file(group_id: str, root: str | Path | None = None) -> Path:
    return (Path(root) if root else runs_root()) / f"{group_id}{QUEUED_SUFFIX}"


def write_queued(group_id: str, names: Iterable[str], root: str | Path | None = None) -> None:
    path = queued_file(group_id, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(nets=list(names))), encoding="utf-8")


def read_queued(group_id: str, root: str | Path | None = None) -> list[str] | None:
    """The nets queued for the group, or None when the file is missing or is not a short list of net names."""

    try:
        text = read_regular(queued_file(group_id, root), "queued file", MAX_QUEUED_BYTES)  # a FIFO: None, no hang
        data = json.loads(text.decode("utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None
    nets = data.get("nets") if isinstance(data, dict) else None
    if (not isinstance(nets, list) or not 0 < len(nets) <= MAX_NETS
            or not all(isinstance(n, str) and NET_NAME.fullmatch(n) for n in nets)):
        return None
    return list(dict.fromkeys(nets))


NOT_STARTED = "not started (stopped while queued)"


@dataclass(frozen=True)
class NetProgress:
    name: str
    label: str  # "running", "queued (queue position 2)", NOT_STARTED, …
    status: Status | None  # None: no job and no folder (stopped while queued, in another session)
    step: int  # optimizer steps done
    total: int | None  # steps planned (None until the first train record, unless estimated)
    seconds_left: float | None  # measured ETA while running; the forecast of its run while queued; 0 once ended
    basis: Basis | None = None  # how seconds_left was estimated
    wait_sec: float | None = None  # queued: the runner's estimate of its wait before it starts

    @property
    def fraction(self) -> float:
        if self.status is not None and not self.status.live:
            return 1.0 if self.status == Status.FINISHED else min(1.0, self.step / self.total) if self.total else 0.0
        return min(1.0, self.step / self.total) if self.total else 0.0

    def text(self) -> str:
        """"plain20: running, step 130 of 600, about 40 s left"."""
        parts = [f"{self.name}: {self.label}"]
        if self.step:
            parts.append(f"step {self.step} of {self.total}" if self.total else f"step {self.step}")
        if self.status is not None and self.status.live and self.seconds_left is not None:
            parts.append(f"about {format_seconds(self.seconds_left)} "
                         + ("to run" if self.status == Status.QUEUED else "left") + f" ({BASIS_NOTES[self.basis]})")
        if self.status == Status.QUEUED and self.wait_sec is not None:
            parts.append(f"starts in about {format_seconds(self.wait_sec)}")
        return ", ".join(parts)


BASIS_NOTES = {Basis.MEASURED: "measured", Basis.SCALED: "scaled from the pace measured on this group's nets",
               Basis.PRIOR: "a prior: a few steps timed before the start", None: "estimated"}


def net_progress(name: str, state: RunState | None, records: Sequence[Record], estimate: Forecast | None = None,
                 steps: int | None = None) -> NetProgress:
    """A net's progress from its state, its records so far and, until it has any, its forecast and planned steps."""
    status = state.status if state else None
    train = of_kind(records, TrainRecord)
    final = final_of(records) if status is None or not status.live else None  # a paused net's stop is not its end
    if final is not None:
        return NetProgress(name, state.label if state else final.status.value, status, final.steps,
                           train[-1].total_steps if train else final.steps, 0.0)
    if train:
        last = train[-1]
        if status == Status.QUEUED:  # paused: the rest of it, at its own measured pace
            return NetProgress(name, state.label, status, last.step, last.total_steps, last.eta_sec, Basis.MEASURED,
                               state.wait_sec)
        left = last.eta_sec if status is not None and status.live else 0.0
        return NetProgress(name, state.label, status, last.step, last.total_steps, left, Basis.MEASURED)
    if status is not None and status.live:
        return NetProgress(name, state.label, status, 0, steps, estimate.seconds if estimate else None,
                           estimate.basis if estimate else None, state.wait_sec)
    never = status is None or status == Status.STOPPED  # stopped with no record: it never trained a step
    return NetProgress(name, NOT_STARTED if never else state.label, status, 0, None, 0.0)


def seconds_left(progress: Iterable[NetProgress]) -> float | None:
    """Time until the group's last net ends: a queued net ends its wait (the runner's, which counts every job in
    front of it), else the nets before it, plus its own time; None while some live net has no figure."""
    live = [p for p in progress if p.status is not None and p.status.live]
    if any(p.seconds_left is None for p in live):
        return None
    ends, before = [], 0.0
    for p in live:
        start = p.wait_sec if p.status == Status.QUEUED and p.wait_sec is not None else before
        ends.append(start + p.seconds_left)
        before += p.seconds_left
    return max(ends, default=0.0)


def overall(progress: Sequence[NetProgress]) -> tuple[float, str]:
    """The whole group's share done and its line: "Overall: 1 of 4 nets done · about 3 min 10 s left"."""
    live = [p for p in progress if p.status is not None and p.status.live]
    left = seconds_left(progress)
    text = f"Overall: {len(progress) - len(live)} of {len(progress)} nets done" + (
        f" · about {format_seconds(left)} left" if left is not None else "")
    return sum(p.fraction for p in progress) / max(1, len(progress)), text


GROUP_TEXT_ORDER = (Status.FINISHED, Status.RUNNING, Status.QUEUED, Status.STOPPED, Status.INTERRUPTED,
                    Status.DIVERGED, Status.FAILED, None)  # None: not started
GROUP_TEXT_HEADINGS: dict[Status | None, str] = {Status.QUEUED: "waiting in the queue", None: NOT_STARTED}


def group_text(queued: Sequence[str], progress: Sequence[NetProgress]) -> str:
    """"Queued together: a, b, c, d. Finished: a; Stopped: b at step 130 of 600; Not started (…): c, d." from the
    states (a net still waiting for its turn is "waiting in the queue")."""
    by_status: dict[Status | None, list[str]] = {}  # None: not started
    for p in progress:
        if p.label == NOT_STARTED:
            by_status.setdefault(None, []).append(p.name)
        elif p.status in (Status.STOPPED, Status.INTERRUPTED, Status.RUNNING) and p.step:
            of = f" of {p.total}" if p.total else ""
            by_status.setdefault(p.status, []).append(f"{p.name} at step {p.step}{of}")
        else:
            by_status.setdefault(p.status, []).append(p.name)
    parts = [f"{GROUP_TEXT_HEADINGS.get(status, status).capitalize()}: {', '.join(by_status[status])}"
             for status in GROUP_TEXT_ORDER if status in by_status]
    return f"Queued together: {', '.join(queued)}. " + ("; ".join(parts) + "." if parts else "")

