"""Estimated against actual, for every run: at 10% and 50% of its steps, the time left its train record estimated
(measured on its own steps so far), and once it has finished, the time that was actually left from there.

Kept in the run folder as `estimates.json`, rewritten at each mark, so the error distribution of the estimates is
read back from real runs (benchmarks/bench_estimates.py). A paused and resumed run keeps the marks it reached; its
clock is the run's own (training/engine.py), so the time it waited paused counts in neither figure.

    {"marks": [{"at": 0.1, "step": 60, "time": 14.2, "eta_sec": 121.0, "actual_sec": 118.4, "error": 0.022}, …],
     "seconds": 132.6}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..files import read_regular
from ..training.records import FinalRecord, Record, Status, TrainRecord

ESTIMATES = "estimates.json"
MARKS = (0.1, 0.5)  # shares of the steps at which the estimate is kept
MAX_BYTES = 2**16


class EstimateLog:
    """Called with each record of a run writing to `run_dir` (execute.py)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ESTIMATES
        self.data: dict[str, Any] = read_estimates(run_dir) or {"marks": []}

    def __call__(self, record: Record) -> None:
        if isinstance(record, TrainRecord):
            reached = {m["at"] for m in self.data["marks"]}
            due = [at for at in MARKS if at not in reached and record.step >= at * record.total_steps]
            for at in due:
                self.data["marks"].append(dict(at=at, step=record.step, time=record.time, eta_sec=record.eta_sec))
            if due:
                self._write()
        elif isinstance(record, FinalRecord) and record.status == Status.FINISHED:
            for mark in self.data["marks"]:
                mark["actual_sec"] = record.seconds - mark["time"]
                mark["error"] = mark["eta_sec"] / mark["actual_sec"] - 1 if mark["actual_sec"] > 0 else None
            self.data["seconds"] = record.seconds
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f"{ESTIMATES}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


def read_estimates(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's estimates.json, or None when it is missing, oversized, not a regular file or not what we write."""
    try:
        data = json.loads(read_regular(Path(run_dir) / ESTIMATES, "estimates file", MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # missing, a FIFO (refused, never blocking), oversized, not JSON
        return None
    marks = data.get("marks") if isinstance(data, dict) else None
    if not isinstance(marks, list) or not all(isinstance(m, dict) and {"at", "step", "time", "eta_sec"} <= m.keys()
                                              for m in marks):
        return None
    return data
