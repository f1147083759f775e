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

from .checkpoint import CHECKPOINT, TrainState, load_checkpoint
from .model import ResNet
from .records import FinalRecord, Record, Status, TestRecord, record_from_dict
from .runstore import METRICS, RunInfo, read_run
from .train import make_optimizer
from .transfer import freeze

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
    state = load_checkpoint(run_dir)
    check_fits(info, state)
    return Resume(info, state, kept_records(info.path, state))


def check_fits(info: RunInfo, state: TrainState) -> None:
    """A ValueError, before anything is written, when the checkpoint's model or optimizer state does not load into
    the run's model and optimizer."""
    model = ResNet(info.config.spec)
    if info.config.train.init_from is not None:  # its optimizer holds only the parameters fine-tuning trains
        freeze(model, info.config.train.finetune)
    try:
        model.load_state_dict(state.model, strict=True)
        make_optimizer(info.config.train, model).load_state_dict(state.optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise ValueError(f"run {info.run_id}: {CHECKPOINT} does not fit the run's model and optimizer ({first})") \
            from None


def kept_records(run_dir: str | Path, state: TrainState) -> list[Record]:
    """The run's records that the checkpoint had seen: steps up to its step, no final record, and a test record at
    its step only if that test was part of the checkpoint."""
    kept = []
    try:
        lines = (Path(run_dir) / METRICS).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
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
