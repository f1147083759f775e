"""Where a degradation group stands: which nets were queued, which finished, stopped or never started, and
each net's progress and time left.

`start` (degradation.py) records the queued nets in `<runs root>/<group id>.queued.json`, next to the run
folders, because a net stopped while still queued never gets a folder; without that file (groups started
before it existed, or by the command line) the nets are those with a folder. Time left comes from the runs'
own train records (their measured ETA) and, for a net not started yet, from an estimate (estimate.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .format import format_seconds
from .records import Record, RunState, Status, TrainRecord, final_of, of_kind
from .runstore import runs_root

QUEUED_SUFFIX = ".queued.json"
MAX_NETS = 16  # a queued file naming more nets than this is not ours


def queued_file(group_id: str, root: str | Path | None = None) -> Path:
    return (Path(root) if root else runs_root()) / f"{group_id}{QUEUED_SUFFIX}"


def write_queued(group_id: str, names: Iterable[str], root: str | Path | None = None) -> None:
    path = queued_file(group_id, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(nets=list(names))), encoding="utf-8")


def read_queued(group_id: str, root: str | Path | None = None) -> list[str] | None:
    """The nets queued for the group, or None when the file is missing or is not a short list of net names."""
    from .degradation import NET_NAME  # degradation imports this module to write the file

    try:
        data = json.loads(queued_file(group_id, root).read_text(encoding="utf-8", errors="replace"))
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
    seconds_left: float | None  # measured ETA while running; the estimate while queued; 0 once ended

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
            parts.append(f"about {format_seconds(self.seconds_left)} left"
                         + (" (estimated)" if self.status == Status.QUEUED else ""))
        return ", ".join(parts)


def net_progress(name: str, state: RunState | None, records: Sequence[Record],
                 estimate: Mapping | None = None) -> NetProgress:
    """A net's progress from its state, its records so far and, until it has any, its estimate
    ({"steps", "seconds"} as estimate.RunEstimate.to_dict gives)."""
    status = state.status if state else None
    train = of_kind(records, TrainRecord)
    final = final_of(records)
    if final is not None:
        return NetProgress(name, state.label if state else final.status, status, final.steps,
                           train[-1].total_steps if train else final.steps, 0.0)
    if train:
        last = train[-1]
        left = last.eta_sec if status is not None and status.live else 0.0
        return NetProgress(name, state.label, status, last.step, last.total_steps, left)
    if status is not None and status.live:
        return NetProgress(name, state.label, status, 0, estimate["steps"] if estimate else None,
                           estimate["seconds"] if estimate else None)
    never = status is None or status == Status.STOPPED  # stopped with no record: it never trained a step
    return NetProgress(name, NOT_STARTED if never else state.label, status, 0, None, 0.0)


def seconds_left(progress: Iterable[NetProgress]) -> float | None:
    """Time left for the whole group (its nets run one after another); None while some live net has no figure."""
    live = [p for p in progress if p.status is not None and p.status.live]
    if any(p.seconds_left is None for p in live):
        return None
    return math.fsum(p.seconds_left for p in live)


def overall(progress: Sequence[NetProgress]) -> tuple[float, str]:
    """The whole group's share done and its line: "Overall: 1 of 4 nets done · about 3 min 10 s left"."""
    live = [p for p in progress if p.status is not None and p.status.live]
    left = seconds_left(progress)
    text = f"Overall: {len(progress) - len(live)} of {len(progress)} nets done" + (
        f" · about {format_seconds(left)} left" if left is not None else "")
    return sum(p.fraction for p in progress) / max(1, len(progress)), text


def group_text(queued: Sequence[str], progress: Sequence[NetProgress]) -> str:
    """"Queued together: a, b, c, d. Finished: a; Stopped: b at step 130 of 600; Not started (…): c, d." from the
    states (a net still waiting for its turn is "waiting in the queue")."""
    by_status: dict[str, list[str]] = {}
    for p in progress:
        if p.label == NOT_STARTED:
            by_status.setdefault(NOT_STARTED, []).append(p.name)
        elif p.status in (Status.STOPPED, Status.INTERRUPTED, Status.RUNNING) and p.step:
            of = f" of {p.total}" if p.total else ""
            by_status.setdefault(p.status.value, []).append(f"{p.name} at step {p.step}{of}")
        else:
            by_status.setdefault(p.status.value, []).append(p.name)
    order = ["finished", "running", "queued", "stopped", "interrupted", "diverged", "failed", NOT_STARTED]
    names = {"queued": "waiting in the queue"}
    parts = [f"{names.get(status, status).capitalize()}: {', '.join(by_status[status])}"
             for status in order if status in by_status]
    return f"Queued together: {', '.join(queued)}. " + ("; ".join(parts) + "." if parts else "")
