"""Checkpoints: what a run needs to go on from a step exactly as it would have without a break.

    runs/<run id>/checkpoint.pt   model, optimizer, step, the current epoch's batch order, the batch generator's
                                  state, the running epoch and log-window sums, clocks; replaced atomically

A checkpoint is taken every `checkpoint_every` steps (TrainConfig), at every epoch's end (after its test) and when
the user stops a run, always at a step boundary, so a resumed run draws the same batches and augmentations, and
takes the same updates, as the run would have without the break (runs/resume.py continues a run folder from it).
Checkpoints are loaded with weights_only=True, from a regular file only, and validated like any file from disk: each
field on its own here, against the run it continues in `resume_check`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import open_regular
from ..models.weights import MAX_STATE_FILE_BYTES
from ..validation import is_int, shown

CHECKPOINT = "checkpoint.pt"
_SUMS = ("loss", "correct", "images", "seconds")
GENERATOR_STATE_BYTES = torch.Generator().get_state().numel()  # the CPU generator's (Mersenne Twister) state


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
        """Validated on its own (types, and ranges one field sets for another); a bad or missing entry is one
        ValueError naming it. Checks against the run it continues are in `training.resume_check`."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must hold a dict of training state; got {type(data).__name__}")
        missing = [name for name in cls.__dataclass_fields__ if name not in data]
        if missing:
            raise ValueError(f"{where} has no {missing[0]!r}")
        if not is_int(data["step"]) or data["step"] < 0:
            raise ValueError(f"{where}: step must be a whole number >= 0; got {shown(data['step'])}")
        if not isinstance(data["model"], Mapping) or not all(isinstance(v, torch.Tensor)
                                                             for v in data["model"].values()):
            raise ValueError(f"{where}: model must be a state_dict of tensors")
        problem = _optimizer_problem(data["optimizer"])
        if problem:
            raise ValueError(f"{where}: optimizer must be an optimizer's state_dict (a dict of 'state' and "
                             f"'param_groups'); got {problem}")
        _check_tensors(data, where)
        _check_sums(data, where)
        _check_clocks(data, where)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _optimizer_problem(optimizer: Any) -> str | None:
    """What is wrong with an optimizer state_dict's structure (its fit to the run's optimizer is checked later)."""
    if not isinstance(optimizer, Mapping):
        return type(optimizer).__name__
    if not isinstance(optimizer.get("state"), Mapping):
        return "a dict without a dict of state"
    groups = optimizer.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) and isinstance(g.get("params"), list)
                                               for g in groups):
        return "a dict without a list of param_groups"
    return None


def _check_tensors(data: Mapping[str, Any], where: str) -> None:
    order, generator = data["order"], data["generator"]
    if not isinstance(order, torch.Tensor) or order.dim() != 1 or order.dtype != torch.int64 or (
            order.numel() and int(order.min()) < 0):
        raise ValueError(f"{where}: order must be a 1-D tensor of image indices")
    if not isinstance(generator, torch.Tensor) or generator.dim() != 1 or generator.dtype != torch.uint8:
        raise ValueError(f"{where}: generator must be a generator state (a 1-D uint8 tensor)")
    size = GENERATOR_STATE_BYTES
    if generator.numel() != size:
        raise ValueError(f"{where}: generator must be a CPU generator's state ({size} bytes); got "
                         f"{generator.numel()} bytes")
    try:
        torch.Generator().set_state(generator)
    except RuntimeError:
        raise ValueError(f"{where}: generator must be a CPU generator's state; torch refuses this one") from None


def _check_sums(data: Mapping[str, Any], where: str) -> None:
    for name in ("epoch_sum", "window"):
        sums = data[name]
        if not isinstance(sums, Mapping) or set(sums) != set(_SUMS) or not all(_is_number(v) for v in sums.values()):
            raise ValueError(f"{where}: {name} must hold the numbers {', '.join(_SUMS)}")
        if min(sums.values()) < 0 or sums["correct"] > sums["images"]:
            raise ValueError(f"{where}: {name} must have loss, images and seconds >= 0 and correct from 0 to images; "
                             "got " + ", ".join(f"{k} {sums[k]!r}" for k in _SUMS))


def _check_clocks(data: Mapping[str, Any], where: str) -> None:
    step, tested_at = data["step"], data["tested_at"]
    if tested_at is not None and (not is_int(tested_at) or not 0 <= tested_at <= step):
        raise ValueError(f"{where}: tested_at must be a step from 0 to {step} or None; got {shown(tested_at)}")
    if not _is_number(data["elapsed"]) or data["elapsed"] < 0:
        raise ValueError(f"{where}: elapsed must be a number of seconds >= 0; got {shown(data['elapsed'])}")
    if not _is_number(data["train_seconds"]) or not 0 <= data["train_seconds"] <= data["elapsed"]:
        raise ValueError(f"{where}: train_seconds must be a number of seconds from 0 to elapsed "
                         f"({data['elapsed']!r}); got {shown(data['train_seconds'])}")
    if not isinstance(data["eval_seconds"], list) or not all(_is_number(v) and v >= 0 for v in data["eval_seconds"]):
        raise ValueError(f"{where}: eval_seconds must be a list of numbers >= 0")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def save_checkpoint(run_dir: str | Path, state: TrainState) -> None:
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state.to_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(run_dir: str | Path) -> TrainState:
    """The run's checkpoint, from a regular file (never a FIFO or a device), validated by `TrainState.from_dict`."""
    path = Path(run_dir) / CHECKPOINT
    name = Path(run_dir).name
    try:
        file = open_regular(path, f"run {name}: {CHECKPOINT}", MAX_STATE_FILE_BYTES)
    except FileNotFoundError:
        raise ValueError(f"run {name} has no {CHECKPOINT} to resume from (one is written every "
                         "checkpoint_every steps, at each epoch's end and on a stop)") from None
    with file:
        try:
            data = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # see runstore.load_weights: torch's own text may suggest unsafe loading
            raise ValueError(f"run {name}: {CHECKPOINT} cannot be read ({type(exc).__name__})") from None
    return TrainState.from_dict(data, f"run {name}: {CHECKPOINT}")
