"""Checkpoints: what a run needs to go on from a step exactly as it would have without a break.

    runs/<run id>/checkpoint.pt   model, optimizer, step, the current epoch's batch order, the batch generator's
                                  state, the running epoch and log-window sums, clocks; replaced atomically

A checkpoint is taken every `checkpoint_every` steps (TrainConfig), at every epoch's end (after its test) and when
the user stops a run, always at a step boundary, so a resumed run draws the same batches and augmentations, and
takes the same updates, as the run would have without the break (resume.py continues a run folder from it).
Checkpoints are loaded with weights_only=True and validated like any file from disk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .validation import is_int

CHECKPOINT = "checkpoint.pt"
_SUMS = ("loss", "correct", "images", "seconds")


@dataclass
class TrainState:
    """Everything `fit` needs to go on from `step` exactly as it would have without a break."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    order: torch.Tensor  # the current epoch's permutation of the training images
    generator: torch.Tensor  # the batch-order/augmentation generator's state at this step boundary
    epoch_sum: dict[str, float]  # the epoch's running sums (loss, correct, images, seconds)
    window: dict[str, float]  # the same since the last train record
    tested_at: int | None  # the step of the last test evaluation
    train_seconds: float
    elapsed: float  # wall clock since the run started (records' `time` goes on from here)
    eval_seconds: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainState:
        """Validated: a bad or missing entry is one ValueError naming it."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must hold a dict of training state; got {type(data).__name__}")
        missing = [name for name in cls.__dataclass_fields__ if name not in data]
        if missing:
            raise ValueError(f"{where} has no {missing[0]!r}")
        if not is_int(data["step"]) or data["step"] < 0:
            raise ValueError(f"{where}: step must be a whole number >= 0; got {data['step']!r}")
        for name in ("order", "generator"):
            if not isinstance(data[name], torch.Tensor):
                raise ValueError(f"{where}: {name} must be a tensor")
        if not isinstance(data["model"], Mapping) or not all(isinstance(v, torch.Tensor)
                                                             for v in data["model"].values()):
            raise ValueError(f"{where}: model must be a state_dict of tensors")
        for name in ("epoch_sum", "window"):
            if not isinstance(data[name], Mapping) or set(data[name]) != set(_SUMS) or not all(
                    _is_number(v) for v in data[name].values()):
                raise ValueError(f"{where}: {name} must hold the numbers {', '.join(_SUMS)}")
        order, generator = data["order"], data["generator"]
        if order.dim() != 1 or order.dtype != torch.int64 or (order.numel() and int(order.min()) < 0):
            raise ValueError(f"{where}: order must be a 1-D tensor of image indices")
        if generator.dim() != 1 or generator.dtype != torch.uint8:
            raise ValueError(f"{where}: generator must be a generator state (a 1-D uint8 tensor)")
        if data["tested_at"] is not None and (not is_int(data["tested_at"]) or not 0 <= data["tested_at"] <=
                                               data["step"]):
            raise ValueError(f"{where}: tested_at must be a step from 0 to {data['step']} or None; "
                             f"got {data['tested_at']!r}")
        for name in ("train_seconds", "elapsed"):
            if not _is_number(data[name]) or data[name] < 0:
                raise ValueError(f"{where}: {name} must be a number of seconds >= 0; got {data[name]!r}")
        if not isinstance(data["eval_seconds"], list) or not all(_is_number(v) for v in data["eval_seconds"]):
            raise ValueError(f"{where}: eval_seconds must be a list of numbers")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def save_checkpoint(run_dir: str | Path, state: TrainState) -> None:
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state.to_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(run_dir: str | Path) -> TrainState:
    path = Path(run_dir) / CHECKPOINT
    name = Path(run_dir).name
    if not path.is_file():
        raise ValueError(f"run {name} has no {CHECKPOINT} to resume from (one is written every "
                         "checkpoint_every steps, at each epoch's end and on a stop)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # see runstore.load_weights: torch's own text may suggest unsafe loading
        raise ValueError(f"run {name}: {CHECKPOINT} cannot be read ({type(exc).__name__})") from None
    return TrainState.from_dict(data, f"run {name}: {CHECKPOINT}")
