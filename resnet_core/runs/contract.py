"""The typed run contract: what a run folder's config.json holds, and where a run stands.

    RunConfig     config.json: the TrainConfig, the resolved ModelSpec, the data facts, what the config's
                  "auto" settings became (RunSettings), run id, created, transfer and distributed facts
    RunState      a status (training.records.Status) with its message (and a live job's queue position), from a
                  stored run or a job
    run ids       <date>-<time>-<name>-<hex>, the folder's name

The lines of metrics.jsonl are `training.records`. Run folders are read from disk, so every `from_dict` here
validates its input like user input: a bad value is one ValueError naming the field; keys this code does not know
are ignored, so folders written by older or newer code still load. Pages and the CLI read runs only through
these types.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..models.spec import ModelSpec
from ..training.config import TrainConfig
from ..training.distributed import MAX_JOB_ID
from ..training.records import Status
from ..training.settings import RunSettings
from ..validation import check_bool, check_choice, check_int, from_fields, shown


@dataclass(frozen=True)
class RunState:
    """Where a run stands: what `jobs.run_state` reports for a live job and a stored run alike."""

    status: Status
    message: str = ""  # progress note, stop reason, or the error with its cause
    queue_position: int | None = None  # 1 = next to start; only for a job queued in this process
    wait_sec: float | None = None  # a job queued in this process: its estimated wait before it starts

    @property
    def live(self) -> bool:
        return self.status.live

    @property
    def label(self) -> str:
        """"queued (queue position 2)", "running", "interrupted", ..."""
        return self.status.value + (f" (queue position {self.queue_position})" if self.queue_position else "")


RUN_ID = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9_.-]+")  # <date>-<time>-<name>, the folder's name


def new_run_id(name: str) -> str:
    """<YYYYMMDD-HHMMSS>-<name>-<4 hex digits>: sorts by start time, unique across processes."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def short_label(run_id: str) -> str:
    """A run id without its date-time stamp, for legends and titles."""
    return run_id.split("-", 2)[2] if RUN_ID.fullmatch(run_id) else run_id


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
        return from_fields(cls, data, "data")


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
        return from_fields(cls, data, "transfer")


@dataclass(frozen=True)
class DistributedFacts:
    """How many processes trained the run (torchrun) and how they shared each batch (see training/distributed.py)."""

    world_size: int = 1
    backend: str = ""  # gloo | nccl; "" for one process
    per_rank_batch: int = 0  # each process's share of the global batch_size
    sync_bn: bool = False  # BatchNorm statistics over the global batch
    job: str = ""  # the torchrun job (TORCHELASTIC_RUN_ID) of its latest start: its restarts find it (runs/elastic.py)

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
        if not isinstance(facts.job, str) or len(facts.job) > MAX_JOB_ID:
            raise ValueError(f"distributed.job must be a torchrun job id (text of at most {MAX_JOB_ID} characters); "
                             f"got {shown(facts.job)}")
        return facts


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig  # what was asked for
    spec: ModelSpec  # the model built: the preset with its overrides and num_classes set to the data's
    data: DataFacts
    settings: RunSettings  # augmentation, precision and step budget as used (TrainConfig may say "auto")
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
