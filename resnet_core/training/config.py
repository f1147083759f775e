"""`TrainConfig`: everything one training run is asked to do, validated; and the devices it can run on.

A run folder's config.json stores it (see `records.RunConfig`), so `from_dict` treats its input as
untrusted: a bad value is one ValueError naming the field, an unknown key is ignored so that run
folders written by older code still load.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.sets import DATASETS, check_source
from ..introspect.summary import MAX_BATCH
from ..models.presets import resolve_spec
from ..validation import check_int, shown
from .options import Option, Widget, check_option, declared_options, option

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "multistep", "constant")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where it measured faster here and kept its accuracy (precision.py)
AUGMENTS = ("auto", "none", "crop", "crop+flip")  # auto: crop, and flip only data known to be mirror-invariant
DEFAULT_LR = {"sgd": 0.1, "adam": 2e-3, "adamw": 2e-3}  # used when lr is None
FINETUNES = ("head", "last-stage", "all")  # what trains when a run starts from other weights (runs/transfer.py)


def available_devices() -> list[str]:
    """The device names this machine can train on: cpu, then one cuda:N per visible GPU."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def device_choices() -> list[str]:
    """What the Train page offers: this machine's devices, and auto (CUDA where there is one)."""
    return [*available_devices(), "auto"]


def cores() -> int:
    return os.cpu_count() or 1


@dataclass
class TrainConfig:
    """Every option is declared once, here: its bounds or choices, its flag, its help and its widget (options.py).
    The CLI, the command the Train page shows, the page's widgets and `validate` are generated from them."""

    # model
    model: str = option("resnet20", help="a preset name (see `list`)")
    overrides: dict[str, Any] = option(default_factory=dict,
                                       help="ModelSpec field overrides; num_classes follows the data")
    # data
    dataset: str = option(
        "synthetic", choices=DATASETS, flag="--dataset", widget=Widget("select", "Data set"),
        help="synthetic: 10 classes of shapes, generated here (works offline)")
    data_dir: str | None = option(
        None, flag="--data-dir", widget=Widget("text", "Data folder", none_as=""),
        help="where data sets are (or are downloaded to); for imagefolder (required) a folder of class folders, or "
             "with train/ and test/ (or val/)")
    image_size: int | None = option(
        None, low=8, high=512, flag="--image-size", widget=Widget("number", "Image side (0: auto)", none_as=0),
        help="resize images to this side (default: built-in sets' own; for imagefolder the images' own side, at "
             "least a quarter of the model's natural side and at most all of it)")
    train_subset: int | None = option(
        None, low=1, high=10**9, flag="--train-subset",
        widget=Widget("number", "Train subset (0: all)", step=500, none_as=0),
        help="train on a seeded random subset of N images")
    test_subset: int | None = option(
        None, low=1, high=10**9, flag="--test-subset",
        widget=Widget("number", "Test subset (0: all)", step=500, none_as=0),
        help="evaluate on the first N test images")
    augment: str = option(
        "auto", choices=AUGMENTS, flag="--augment", aliases={"--no-augment": "none"},
        widget=Widget("select", "Augmentation"),
        help="auto: random crops, and horizontal flips only for data sets whose classes survive a mirror "
             "(CIFAR-10, the synthetic shapes); a flipped digit is not a digit")
    pad: int | None = option(
        None, low=0, high=64, flag="--pad", widget=Widget("number", "Crop padding (pixels, -1: auto)", none_as=-1),
        help="zero padding of the random crops (default: an eighth of the image side, CIFAR's 4 pixels of 32)")
    # budget
    epochs: int | None = option(
        None, low=1, high=10_000, flag="--epochs", widget=Widget("number", "Epochs (0: auto)", none_as=0),
        help="passes over the training images (default auto: whole epochs, at least 2 of them and at least 120 "
             "steps; training/budget.py)")
    max_steps: int | None = option(
        None, low=1, high=10**9, flag="--steps",
        widget=Widget("number", "Step budget (0: epochs or auto)", none_as=0),
        help="a step budget instead of epochs (it wins over --epochs)")
    batch_size: int = option(
        128, low=1, high=MAX_BATCH, flag="--batch-size",
        widget=Widget("select", "Batch size", choices=(16, 32, 64, 128, 256, 512)),
        help="images per optimizer step (the whole job's, under torchrun)")
    # optimisation
    optimizer: str = option("sgd", choices=OPTIMIZERS, flag="--optimizer", widget=Widget("select", "Optimizer"))
    lr: float | None = option(
        None, low=0.0, high=100.0, open="low", flag="--lr",
        widget=Widget("number", "Peak learning rate", format="%.4g", per="optimizer", per_defaults=DEFAULT_LR),
        help="peak learning rate (default 0.1 for sgd, 2e-3 for adam/adamw)")
    momentum: float = option(0.9, low=0.0, high=1.0, open="high", flag="--momentum", help="sgd only",
                             widget=Widget("number", "Momentum (SGD)", step=0.01, format="%.3g"))
    nesterov: bool = option(True, flag="--no-nesterov", widget=Widget("checkbox", "Nesterov momentum (SGD)"),
                            help="plain momentum for sgd")
    weight_decay: float = option(5e-4, low=0.0, high=1.0, flag="--weight-decay",
                                 widget=Widget("number", "Weight decay", step=1e-4, format="%.4g"))
    schedule: str = option("onecycle", choices=SCHEDULES, flag="--schedule", widget=Widget("select", "Schedule"),
                           help="onecycle: rise for the first quarter (or the warmup), then cosine down")
    warmup: float = option(
        0.0, low=0.0, high=1.0, open="high", flag="--warmup",
        widget=Widget("number", "Warmup (fraction of steps)", step=0.05, format="%.3g"),
        help="fraction of all steps spent warming up linearly (one-cycle: 0 means 0.25)")
    milestones: tuple[float, ...] = option(
        (0.5, 0.75), flag="--milestones", widget=Widget("text", "Milestones (multistep)"),
        help="multistep: fractions of all steps where the lr is multiplied by gamma, e.g. 0.5,0.75")
    gamma: float = option(0.1, low=0.0, high=1.0, open="low", flag="--gamma",
                          widget=Widget("number", "Gamma (multistep)", step=0.05, format="%.3g"),
                          help="multistep: the lr factor at each milestone")
    label_smoothing: float = option(0.0, low=0.0, high=1.0, open="high", flag="--label-smoothing",
                                    widget=Widget("number", "Label smoothing", step=0.05, format="%.3g"))
    # reproducibility and speed
    seed: int = option(
        0, low=0, high=2**63 - 1, flag="--seed", widget=Widget("number", "Seed", high=2**31 - 1),
        help="fixes the initial weights, the train subset, the batch order and every augmentation draw")
    precision: str = option(
        "auto", choices=PRECISIONS, flag="--precision", widget=Widget("radio", "Precision"),
        help="auto: bf16 autocast where it measured at least 1.15x faster than fp32 for this model and batch on "
             "this machine (timed after step 1, which trains in fp32, then remembered) and kept its accuracy on real "
             "digits; fp32 elsewhere")
    channels_last: bool = option(
        True, flag="--no-channels-last", widget=Widget("checkbox", "Channels-last memory format"),
        help="NCHW instead of channels-last (NHWC) tensors, which usually give faster convolutions on CPUs and "
             "recent GPUs")
    threads: int | None = option(
        None, low=1, high=1024, flag="--threads",
        widget=Widget("number", "Threads (0: the server's share)", high=cores, none_as=0),
        help="torch threads for this run, at most the machine's cores (default: torch's, one a core, less one for "
             "each core other processes hold as the run gets ready; on a server, its share for each run)")
    device: str = option("cpu", flag="--device", widget=Widget("select", "Device", choices=device_choices),
                         help="cpu, cuda, cuda:N or auto")
    # logging
    log_every: int = option(5, low=1, high=1_000_000, flag="--log-every",
                            widget=Widget("number", "Log every (steps)"),
                            help="steps between train records (step 1 is always logged)")
    probe_every: int = option(
        20, low=0, high=1_000_000, flag="--probe-every", widget=Widget("number", "Probe every (steps, 0: off)"),
        help="steps between per-block gradient norms and activation statistics (the Signal flow page reads them); "
             "0 turns probes off")
    checkpoint_every: int = option(
        50, low=1, high=1_000_000, flag="--checkpoint-every", widget=Widget("number", "Checkpoint every (steps)"),
        help="steps between checkpoints, besides each epoch's end and a stop")
    # transfer learning (runs/transfer.py)
    init_from: str | None = option(
        None, flag="--init-from", widget=Widget("select", "Start from", none_as=""),
        help="start from a run folder (its final weights), torchvision[:WEIGHTS] (from the torch hub cache when "
             "offline) or a state_dict file; a new classifier is made when the class count differs")
    finetune: str = option(
        "all", choices=FINETUNES, needs="init_from", flag="--finetune", widget=Widget("radio", "Fine-tune"),
        help="with --init-from, what trains: head (the classifier), last-stage (the last stage and the "
             "classifier) or all")
    backbone_lr_scale: float = option(
        1.0, low=0.0, high=10.0, open="low", needs="init_from", flag="--backbone-lr-scale",
        widget=Widget("number", "Backbone lr scale", format="%.4g"),
        help="the lr of every trainable parameter outside the classifier, as a fraction of the peak lr (the "
             "tutorials use 0.1)")

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
        for opt in TRAIN_OPTIONS:
            check_option(opt, getattr(self, opt.name))
        if not all(isinstance(m, (int, float)) and 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be fractions of the run between 0 and 1; got {shown(self.milestones)}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {shown(self.device)}")
        if check_device:
            self._check_this_machine()
        self._check_transfer()
        resolve_spec(self.model, **self.overrides)
        return self

    def _check_this_machine(self) -> None:
        if self.threads is not None:
            check_int("threads", self.threads, 1, cores())  # more threads than cores only thrash
        device = resolve_device(self.device)
        if self.precision == "bf16" and device.type == "mps":
            raise ValueError("precision bf16 is not supported on mps; use fp32")

    def _check_transfer(self) -> None:
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ValueError("init_from must be a run folder, torchvision[:WEIGHTS] or a file; "
                             f"got {shown(self.init_from)}")
        if self.init_from is None and self.finetune != "all":
            raise ValueError(f"finetune {self.finetune} needs init_from: the weights to start from")
        if self.init_from is None and self.backbone_lr_scale != 1.0:
            raise ValueError(f"backbone_lr_scale {self.backbone_lr_scale:g} needs init_from: a fresh model has no "
                             "backbone to slow down (leave it at 1)")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def canonical(self) -> TrainConfig:
        """The same run with a learning rate equal to the optimizer's default written as None (the default): the
        form the command line and the page give back."""
        return self.replace(lr=None) if self.lr == DEFAULT_LR.get(self.optimizer) else self

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


TRAIN_OPTIONS: tuple[Option, ...] = declared_options(TrainConfig)  # in declaration order
