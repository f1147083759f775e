"""`--resume RUN_DIR`: a stopped, failed or killed run continues from its last checkpoint, in the same folder.

`prepare_resume` checks the folder (never a live, finished or diverged run) and its checkpoint without changing
anything; `continue_metrics` then cuts metrics.jsonl back to what the checkpoint had seen, so the curves go on with
no gap and no duplicate step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..training.checkpoint import CHECKPOINT, TrainState, load_checkpoint
from ..training.records import FinalRecord, Record, Status, TestRecord, record_from_dict
from ..training.resume_check import check_state_fits
from .store import METRICS, RunInfo, metrics_lines, read_run

RESUMABLE = (Status.STOPPED, Status.FAILED, Status.INTERRUPTED)


@dataclass
class Resume:
    """A run folder checked for resuming: its stored run, its checkpoint, and the records it keeps."""

    info: RunInfo
    state: TrainState
    records: list[Record]  # the metrics lines up to the checkpoint, in order

    @property
    def path(self) -> Path:
        return self.info.path


def prepare_resume(run_dir: str | Path) -> Resume:
    """The run at `run_dir`, if it can go on: stopped, failed or interrupted, with a readable checkpoint."""
    info = read_run(run_dir)
    if info.status not in RESUMABLE:
        why = {Status.FINISHED: "it has finished", Status.DIVERGED: "it diverged (start a new run with a lower "
               "learning rate)"}.get(info.status, f"it is still {info.status} (its process is alive)")
        raise ValueError(f"resume must name a stopped, failed or interrupted run; run {info.run_id}: {why}")
    return _resume(info)


def resume_paused(run_dir: str | Path) -> Resume:
    """A run this process paused for an interactive run (runs/scheduler.py): queued again, with its checkpoint."""
    info = read_run(run_dir)
    if info.status != Status.QUEUED:
        raise ValueError(f"a paused run must be queued; run {info.run_id} is {info.status}")
    return _resume(info)


def _resume(info: RunInfo) -> Resume:
    state = load_checkpoint(info.path)
    check_fits(info, state)
    return Resume(info, state, kept_records(info.path, state))


def check_fits(info: RunInfo, state: TrainState) -> None:
    """A ValueError, before anything is written, when the checkpoint does not fit the run: its step, batch order,
    model and optimizer state against the run's config (training.resume_check)."""
    check_state_fits(state, info.config.train, info.config.spec, info.config.data.train_size,
                     f"run {info.run_id}: {CHECKPOINT}")


def kept_records(run_dir: str | Path, state: TrainState) -> list[Record]:
    """The run's records that the checkpoint had seen: steps up to its step, no final record, and a test record at
    its step only if that test was part of the checkpoint."""
    kept = []
    for line in metrics_lines(run_dir):  # a FIFO or an oversized file there: one ValueError
        try:
            record = record_from_dict(json.loads(line))
        except (ValueError, RecursionError):
            continue
        if isinstance(record, FinalRecord) or record.step > state.step:
            continue
        if isinstance(record, TestRecord) and record.step == state.step and state.tested_at != state.step:
            continue  # the test of a stop, taken after the checkpoint
        kept.append(record)
    return kept


def continue_metrics(run_dir: str | Path, records: list[Record]) -> None:
    """Rewrite metrics.jsonl to hold exactly `records` (atomically), so appending goes on from them."""
    path = Path(run_dir) / METRICS
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r.to_dict(), allow_nan=True) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)
