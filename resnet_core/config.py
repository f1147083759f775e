"""`TrainConfig`: everything one training run is asked to do, validated; and the devices it can run on.

A run folder's config.json stores it (see `records.RunConfig`), so `from_dict` treats its input as
untrusted: a bad value is one ValueError naming the field, an unknown key is ignored so that run
folders written by older code still load.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .data import check_source
from .presets import resolve_spec
from .summary import MAX_BATCH
from .validation import check_bool, check_choice, check_float, check_int, shown

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "multistep", "constant")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the hardware has native bf16 math, else fp32
AUGMENTS = ("auto", "none", "crop", "crop+flip")  # auto: crop, and flip only data known to be mirror-invariant
DEFAULT_LR = {"sgd": 0.1, "adam": 2e-3, "adamw": 2e-3}  # used when lr is None
FINETUNES = ("head", "last-stage", "all")  # what trains when a run starts from other weights (transfer.py)


@dataclass
class TrainConfig:
    # model
    model: str = "resnet20"  # a preset name (see presets.py)
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelSpec field overrides; num_classes follows the data
    # data
    dataset: str = "synthetic"  # synthetic | mnist | fashion_mnist | cifar10 | imagefolder
    data_dir: str | None = None  # None: $RESNET_EXPLORER_DATA or ./data (required for imagefolder)
    image_size: int | None = None  # None: native size of built-in sets; the model's natural side for imagefolder
    train_subset: int | None = None  # train on a seeded random subset of this many images
    test_subset: int | None = None  # evaluate on the first N test images (None: all)
    augment: str = "auto"  # auto | none | crop (zero padding `pad`) | crop+flip (and a random horizontal flip)
    pad: int = 4
    # budget
    epochs: int = 2
    max_steps: int | None = None  # a step budget; when set it replaces `epochs`
    batch_size: int = 128
    # optimisation
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float | None = None  # peak learning rate; None: 0.1 for sgd, 2e-3 for adam/adamw
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | multistep | constant
    warmup: float = 0.0  # fraction of all steps spent warming up linearly (one-cycle: 0 means 0.25)
    milestones: tuple[float, ...] = (0.5, 0.75)  # multistep: fractions of all steps where lr *= gamma
    gamma: float = 0.1
    label_smoothing: float = 0.0
    # reproducibility and speed
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 (autocast)
    channels_last: bool = True
    threads: int | None = None  # torch intra-op threads for this run (None: leave as is)
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    # logging
    log_every: int = 5  # steps between train records (step 1 is always logged)
    probe_every: int = 20  # steps between probe records; 0 turns probes off
    checkpoint_every: int = 50  # steps between checkpoints (also at every epoch's end and on a stop); see checkpoint.py
    # transfer learning (transfer.py)
    init_from: str | None = None  # a run folder, torchvision[:WEIGHTS] or a state_dict file; None: fresh weights
    finetune: str = "all"  # head | last-stage | all: what trains when init_from is set
    backbone_lr_scale: float = 1.0  # trainable parameters outside the classifier train at lr × this

    def validate(self, check_device: bool = True) -> TrainConfig:
        """ValueError naming the first bad field. `check_device=False` accepts a device or a thread count this
        machine lacks (a run stored on a GPU box is still readable on a laptop)."""
        if not isinstance(self.model, str):
            raise ValueError(f"model must be a preset name; got {shown(self.model)}")
        if not isinstance(self.overrides, Mapping):
            raise ValueError(f"overrides must be a mapping of ModelSpec fields; got {shown(self.overrides)}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ValueError(f"data_dir must be a folder path; got {shown(self.data_dir)}")
        check_source(self.dataset, self.data_dir)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("augment", self.augment, AUGMENTS)
        check_int("epochs", self.epochs, 1, 10_000)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_int("pad", self.pad, 0, 64)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_int("log_every", self.log_every, 1, 1_000_000)
        check_int("probe_every", self.probe_every, 0, 1_000_000)
        check_int("checkpoint_every", self.checkpoint_every, 1, 1_000_000)
        for name, upper in (("max_steps", 10**9), ("train_subset", 10**9), ("test_subset", 10**9),
                            ("threads", 1024), ("image_size", 512)):  # threads: this machine's cores, below
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 8 if name == "image_size" else 1, upper)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, 100.0, low_open=True)
        check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_float("warmup", self.warmup, 0.0, 1.0, high_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0, low_open=True)
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        for name in ("nesterov", "channels_last"):
            check_bool(name, getattr(self, name))
        if not all(isinstance(m, (int, float)) and 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be fractions of the run between 0 and 1; got {shown(self.milestones)}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {shown(self.device)}")
        if check_device:
            if self.threads is not None:
                check_int("threads", self.threads, 1, os.cpu_count() or 1)  # more threads than cores only thrash
            device = resolve_device(self.device)
            if self.precision == "bf16" and device.type == "mps":
                raise ValueError("precision bf16 is not supported on mps; use fp32")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ValueError("init_from must be a run folder, torchvision[:WEIGHTS] or a file; "
                             f"got {shown(self.init_from)}")
        check_choice("finetune", self.finetune, FINETUNES)
        if self.init_from is None and self.finetune != "all":
            raise ValueError(f"finetune {self.finetune} needs init_from: the weights to start from")
        check_float("backbone_lr_scale", self.backbone_lr_scale, 0.0, 10.0, low_open=True)
        if self.init_from is None and self.backbone_lr_scale != 1.0:
            raise ValueError(f"backbone_lr_scale {self.backbone_lr_scale:g} needs init_from: a fresh model has no "
                             "backbone to slow down (leave it at 1)")
        resolve_spec(self.model, **self.overrides)
        return self

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["overrides"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.overrides.items()}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The inverse of `to_dict`, validated (but not against this machine's devices); unknown keys are
        ignored so older run folders still load."""
        if not isinstance(data, Mapping):
            raise ValueError(f"train config must be a mapping; got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if "milestones" in kw:
            if not isinstance(kw["milestones"], (list, tuple)):
                raise ValueError(f"milestones must be a list of fractions; got {shown(kw['milestones'])}")
            kw["milestones"] = tuple(kw["milestones"])
        if isinstance(kw.get("augment"), bool):  # written before augment had modes: True was crop+flip
            kw["augment"] = "crop+flip" if kw["augment"] else "none"
        if isinstance(kw.get("overrides"), Mapping):
            kw["overrides"] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw["overrides"].items()}
        return cls(**kw).validate(check_device=False)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def available_devices() -> list[str]:
    """The device names this machine can train on: cpu, then one cuda:N per visible GPU."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {shown(device)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be cpu or auto on this machine (no CUDA available); got {shown(device)}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {shown(device)}")
    return dev
