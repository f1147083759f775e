"""The typed run contract: what a run folder holds, and the one status model of stored runs and live jobs.

    RunConfig     config.json: the TrainConfig, the resolved ModelSpec, the data facts, what the config's
                  "auto" settings became (RunSettings), run id, created
    TrainRecord, TestRecord, ProbeRecord, FinalRecord
                  one line of metrics.jsonl each; the `kind` key says which
    Status        queued | running | finished | stopped | diverged | failed | interrupted
    RunState      a status with its message (and a live job's queue position), from a stored run or a job

Run folders are read from disk, so every `from_dict` here validates its input like user input: a bad
value is one ValueError naming the field; keys this code does not know are ignored, so folders written
by older or newer code still load. Pages and the CLI read runs only through these types.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar, get_type_hints

from .config import TrainConfig
from .settings import RunSettings
from .spec import ModelSpec
from .validation import check_bool, check_choice, check_int, is_int, shown


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


@dataclass(frozen=True)
class RunState:
    """Where a run stands: what `jobs.run_state` reports for a live job and a stored run alike."""

    status: Status
    message: str = ""  # progress note, stop reason, or the error with its cause
    queue_position: int | None = None  # 1 = next to start; only for a job queued in this process

    @property
    def live(self) -> bool:
        return self.status.live

    @property
    def label(self) -> str:
        """"queued (queue position 2)", "running", "interrupted", ..."""
        return self.status.value + (f" (queue position {self.queue_position})" if self.queue_position else "")


# ---------------------------------------------------------------- run ids

RUN_ID = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9_.-]+")  # <date>-<time>-<name>, the folder's name


def new_run_id(name: str) -> str:
    """<YYYYMMDD-HHMMSS>-<name>-<4 hex digits>: sorts by start time, unique across processes."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def short_label(run_id: str) -> str:
    """A run id without its date-time stamp, for legends and titles."""
    return run_id.split("-", 2)[2] if RUN_ID.fullmatch(run_id) else run_id


# ---------------------------------------------------------------- validation of stored values


def _check(name: str, value: Any, hint: Any) -> Any:
    """`value` if it fits the type hint (int, float, str, bool, list[...] and X | None); else a ValueError."""
    text = str(hint)
    if text.endswith(" | None"):
        return None if value is None else _check(name, value, text.removesuffix(" | None"))
    if text.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list; got {shown(value)}")
        inner = text[len("list["):-1]
        return [_check(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    if text in ("int", "<class 'int'>"):
        if is_int(value):
            return value
        raise ValueError(f"{name} must be a whole number; got {shown(value)}")
    if text in ("float", "<class 'float'>"):
        if is_int(value) or isinstance(value, float):
            try:
                return float(value)
            except OverflowError:  # an integer beyond the float range
                pass
        raise ValueError(f"{name} must be a number; got {shown(value)}")
    if text in ("str", "<class 'str'>"):
        if isinstance(value, str):
            return value
        raise ValueError(f"{name} must be text; got {shown(value)}")
    if text in ("bool", "<class 'bool'>"):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be true or false; got {shown(value)}")
    raise TypeError(f"no check for {hint}")  # a field type this module does not handle: a bug here


def _from_fields(cls: type, data: Any, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object; got {type(data).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise ValueError(f"{what} has no {f.name!r}")
        values[f.name] = _check(f"{what}.{f.name}", data[f.name], _hints(cls)[f.name])
    return cls(**values)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


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
        return _from_fields(cls, data, f"{cls.kind} record")


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
        record = _from_fields(cls, data, "probe record")
        lengths = {len(getattr(record, name)) for name in ("units", "stages", "grad_norm", "act_mean", "act_std")}
        if len(lengths) != 1:
            raise ValueError("probe record must hold one value per unit in each list")
        return record


@dataclass(frozen=True)
class FinalRecord(_Record):
    """The last record of a run that ended normally (finished, or stopped by the user)."""

    kind: ClassVar[str] = "final"
    status: str  # finished | stopped
    steps: int
    epochs: float
    seconds: float  # wall clock
    images_per_sec: float  # training throughput over the run
    test_loss: float | None  # None when stopped before any evaluation
    test_acc: float | None
    train_loss: float | None
    classes: list[str]
    confusion: list[list[int]] | None  # rows = true class, from the last test evaluation

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalRecord:
        record = _from_fields(cls, data, "final record")
        parse_status(record.status)
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


# ---------------------------------------------------------------- config.json


@dataclass(frozen=True)
class DataFacts:
    """What a run trained on, as `ImageData.describe()` gives it."""

    name: str
    source: str
    classes: list[str]
    channels: int
    image_size: int
    train_size: int
    test_size: int
    mean: list[float]
    std: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataFacts:
        return _from_fields(cls, data, "data")


@dataclass(frozen=True)
class TransferFacts:
    """How a run that started from other weights began (see transfer.py)."""

    init_from: str  # as asked: a run folder, torchvision[:WEIGHTS] or a file
    source: str  # what it was: "run <id> (<model>)", "torchvision resnet18 IMAGENET1K_V1", "file <path>"
    finetune: str  # head | last-stage | all
    trainable_params: int
    total_params: int
    new_head: bool  # the classifier was created afresh (the source had another number of classes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TransferFacts:
        return _from_fields(cls, data, "transfer")


@dataclass(frozen=True)
class DistributedFacts:
    """How many processes trained the run (torchrun) and how they shared each batch (see distributed.py)."""

    world_size: int = 1
    backend: str = ""  # gloo | nccl; "" for one process
    per_rank_batch: int = 0  # each process's share of the global batch_size
    sync_bn: bool = False  # BatchNorm statistics over the global batch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DistributedFacts:
        if not isinstance(data, Mapping):
            raise ValueError(f"distributed must be a JSON object; got {type(data).__name__}")
        facts = cls(**{f.name: data.get(f.name, f.default) for f in dataclasses.fields(cls)})
        check_int("distributed.world_size", facts.world_size, 1, 1_000_000)
        check_int("distributed.per_rank_batch", facts.per_rank_batch, 0, 1_000_000)
        check_choice("distributed.backend", facts.backend, ("", "gloo", "nccl"))
        check_bool("distributed.sync_bn", facts.sync_bn)
        return facts


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig  # what was asked for
    spec: ModelSpec  # the model built: the preset with its overrides and num_classes set to the data's
    data: DataFacts
    settings: RunSettings  # augmentation and precision as used (TrainConfig may say "auto")
    run_id: str = ""  # the folder's name
    created: float = 0.0  # epoch seconds
    transfer: TransferFacts | None = None  # a run that started from other weights (train --init-from)
    distributed: DistributedFacts = DistributedFacts()  # the processes of its latest start (one, unless torchrun)

    @property
    def skip(self) -> bool:
        """Residual (True) or the plain twin (False)."""
        return self.spec.skip

    def to_dict(self) -> dict[str, Any]:
        d = dict(train=self.train.to_dict(), spec=self.spec.to_dict(), data=self.data.to_dict(),
                 settings=self.settings.to_dict(), run_id=self.run_id, created=self.created,
                 distributed=self.distributed.to_dict())
        return d | ({"transfer": self.transfer.to_dict()} if self.transfer else {})

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        if not isinstance(data, Mapping):
            raise ValueError(f"config.json must hold a JSON object; got {type(data).__name__}")
        for key in ("train", "spec", "data"):
            if key not in data:
                raise ValueError(f"config.json has no {key!r}")
        created = data.get("created", 0.0)
        try:
            seconds = isinstance(created, (int, float)) and not isinstance(created, bool) and math.isfinite(created)
        except OverflowError:  # an integer beyond the float range
            seconds = False
        if not seconds:
            raise ValueError(f"config.json created must be a time in seconds; got {shown(created)}")
        run_id = data.get("run_id", "")
        if not isinstance(run_id, str):
            raise ValueError(f"config.json run_id must be text; got {shown(run_id)}")
        train = TrainConfig.from_dict(data["train"])
        if "settings" in data:
            settings = RunSettings.from_dict(data["settings"])
        elif "auto" in (train.augment, train.precision):
            raise ValueError("config.json has no 'settings' to say what its auto values became")
        else:  # written before settings were stored: the run used what it asked for
            settings = RunSettings.as_set(train)
        transfer = TransferFacts.from_dict(data["transfer"]) if data.get("transfer") is not None else None
        distributed = (DistributedFacts.from_dict(data["distributed"]) if "distributed" in data
                       else DistributedFacts(per_rank_batch=train.batch_size))  # written before torchrun runs
        return cls(train, ModelSpec.from_dict(data["spec"]), DataFacts.from_dict(data["data"]), settings, run_id,
                   float(created), transfer, distributed)
