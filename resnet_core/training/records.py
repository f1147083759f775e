"""The lines of a run's metrics.jsonl, and the one status model of stored runs and live jobs.

    TrainRecord, TestRecord, ProbeRecord, FinalRecord
                  one line of metrics.jsonl each; the `kind` key says which
    Status        queued | running | finished | stopped | diverged | failed | interrupted

A run folder's config.json and where a run stands (RunConfig, RunState) are `runs.contract`. Records are read from
disk, so every `from_dict` here validates its input like user input: a bad value is one ValueError naming the field;
keys this code does not know are ignored, so folders written by older or newer code still load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from ..validation import from_fields, shown


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a queued or running run whose process is gone (killed, crashed, restarted)

    @property
    def live(self) -> bool:
        return self in LIVE


LIVE = frozenset({Status.QUEUED, Status.RUNNING})


def parse_status(value: Any) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"status must be one of {', '.join(Status)}; got {value!r}") from None


# ---------------------------------------------------------------- records (metrics.jsonl)


@dataclass(frozen=True)
class _Record:
    kind: ClassVar[str]
    step: int  # optimizer steps taken
    epoch: float  # fractional epochs (step / steps per epoch)
    time: float  # seconds since training started

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        return from_fields(cls, data, f"{cls.kind} record")


@dataclass(frozen=True)
class TrainRecord(_Record):
    """Step 1, then every `log_every` steps: means over the steps since the last record."""

    kind: ClassVar[str] = "train"
    images: int  # seen so far
    loss: float
    acc: float
    lr: float
    images_per_sec: float  # over those steps, training only
    eta_sec: float
    total_steps: int


@dataclass(frozen=True)
class TestRecord(_Record):
    """The end of each epoch, and the end of a step budget."""

    kind: ClassVar[str] = "test"
    __test__: ClassVar[bool] = False  # not a pytest test class, whatever its name
    test_loss: float
    test_acc: float
    train_loss: float  # means over the epoch so far
    train_acc: float
    lr: float
    images_per_sec: float


@dataclass(frozen=True)
class ProbeRecord(_Record):
    """Every `probe_every` steps (see probes.py): one value per unit (stem, each block, head)."""

    kind: ClassVar[str] = "probe"
    units: list[str]  # "stem", "layer1.0", ..., "head"
    stages: list[str]  # the stage of each unit
    grad_norm: list[float]
    act_mean: list[float]
    act_std: list[float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeRecord:
        record = from_fields(cls, data, "probe record")
        lengths = {len(getattr(record, name)) for name in ("units", "stages", "grad_norm", "act_mean", "act_std")}
        if len(lengths) != 1:
            raise ValueError("probe record must hold one value per unit in each list")
        return record


@dataclass(frozen=True)
class FinalRecord(_Record):
    """The last record of a run that ended normally (finished, or stopped by the user)."""

    kind: ClassVar[str] = "final"
    status: Status  # finished | stopped
    steps: int
    epochs: float
    seconds: float  # wall clock
    images_per_sec: float  # training throughput over the run
    test_loss: float | None  # None when stopped before any evaluation
    test_acc: float | None
    train_loss: float | None
    classes: list[str]
    confusion: list[list[int]] | None  # rows = true class, from the last test evaluation

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "status": self.status.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalRecord:
        record = from_fields(cls, data, "final record")
        if record.confusion is not None and (len(record.confusion) != len(record.classes)
                                             or any(len(row) != len(record.classes) for row in record.confusion)):
            raise ValueError("final record.confusion must be a square table with one row per class")
        return record


Record = TrainRecord | TestRecord | ProbeRecord | FinalRecord
RECORD_TYPES: dict[str, type[Record]] = {cls.kind: cls for cls in (TrainRecord, TestRecord, ProbeRecord, FinalRecord)}


def record_from_dict(data: Any) -> Record:
    """One metrics.jsonl line, typed by its `kind`; a ValueError for an unknown kind or a bad field."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or kind not in RECORD_TYPES:  # a list or dict kind is not even hashable
        raise ValueError(f"record kind must be one of {', '.join(RECORD_TYPES)}; got {shown(kind)}")
    return RECORD_TYPES[kind].from_dict(data)


R = TypeVar("R", TrainRecord, TestRecord, ProbeRecord, FinalRecord)


def of_kind(records: Sequence[Record], cls: type[R]) -> list[R]:
    return [r for r in records if isinstance(r, cls)]


def final_of(records: Sequence[Record]) -> FinalRecord | None:
    return records[-1] if records and isinstance(records[-1], FinalRecord) else None
