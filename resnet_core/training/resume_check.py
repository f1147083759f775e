"""Whether a checkpoint (a TrainState, valid on its own) fits the run it is to continue, checked before anything is
written: its step within the run's budget, its batch order over the run's training images, its model state loading
into the run's model, and its optimizer state into the run's optimizer with the config's own hyperparameters and
a tensor of each parameter's shape. A checkpoint that fails is one ValueError naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..models.resnet import ResNet
from ..models.spec import ModelSpec
from ..validation import is_int, shown
from .checkpoint import TrainState
from .config import TrainConfig
from .engine import make_optimizer, total_steps
from .freeze import freeze

# Set by the trainer on every step (lr), or by the optimizer as it runs: not the config's to check.
_SET_WHILE_TRAINING = ("params", "lr", "initial_lr")


def check_state_fits(state: TrainState, config: TrainConfig, spec: ModelSpec, train_size: int, where: str) -> None:
    """A ValueError starting with `where` when `state` cannot continue the run of `config` and `spec` on
    `train_size` training images."""
    total = total_steps(config, train_size)
    if not 0 <= state.step <= total:
        raise ValueError(f"{where}: step must be from 0 to {total}, the run's total steps; got {shown(state.step)}")
    order = state.order
    if order.numel() != train_size:
        raise ValueError(f"{where}: order must be a permutation of the run's {train_size} training images; got "
                         f"{order.numel()} indices")
    if not torch.equal(order.sort().values, torch.arange(train_size)):
        raise ValueError(f"{where}: order must be a permutation of the run's {train_size} training images; got "
                         f"{order.numel()} indices with repeats or gaps")
    model = ResNet(spec)
    if config.init_from is not None:  # its optimizer holds only the parameters fine-tuning trains
        freeze(model, config.finetune)
    optimizer = make_optimizer(config, model)
    fresh = [{k: v for k, v in group.items() if k not in _SET_WHILE_TRAINING} for group in optimizer.param_groups]
    try:
        model.load_state_dict(state.model, strict=True)
        optimizer.load_state_dict(state.optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise ValueError(f"{where} does not fit the run's model and optimizer ({first})") from None
    _check_groups(optimizer, fresh, where)
    _check_optimizer_state(state.optimizer, optimizer, model, where)


def _check_groups(optimizer: torch.optim.Optimizer, fresh: list[dict[str, Any]], where: str) -> None:
    """Every hyperparameter the config sets (momentum, weight decay, each group's lr_scale, …) as the config says:
    loading a state_dict replaces them with the checkpoint's."""
    for i, (loaded, wanted) in enumerate(zip(optimizer.param_groups, fresh)):
        for key, value in wanted.items():
            got = loaded.get(key)
            if _plain(got) != _plain(value):
                raise ValueError(f"{where}: optimizer param group {i} has {key} {shown(got)}; the run's config gives "
                                 f"{shown(value)}")


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # betas come back from a file as a tuple or a list


def _check_optimizer_state(saved: Mapping[str, Any], optimizer: torch.optim.Optimizer, model: nn.Module,
                           where: str) -> None:
    """Each parameter's saved state (momentum buffer, Adam's moments) a tensor of the parameter's shape, and `step` a
    count: loading casts each tensor to its parameter's dtype but checks neither its type nor its shape."""
    names = {id(param): name for name, param in model.named_parameters()}
    saved_ids = [i for group in saved["param_groups"] for i in group["params"]]
    params = dict(zip(saved_ids, (p for group in optimizer.param_groups for p in group["params"])))  # as torch maps
    for key, entries in saved["state"].items():
        param = params.get(key) if is_int(key) else None
        if param is None:
            raise ValueError(f"{where}: optimizer state has an entry {shown(key)} for no parameter of the model")
        name = names[id(param)]
        if not isinstance(entries, Mapping):
            raise ValueError(f"{where}: optimizer state of {name} must be a dict of tensors; got {shown(entries)}")
        for field, value in entries.items():
            if field == "step" and _is_count(value):
                continue
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"{where}: optimizer state {field} of {name} must be a tensor; got {shown(value)}")
            if field != "step" and value.shape != param.shape:
                raise ValueError(f"{where}: optimizer state {field} of {name} has shape {tuple(value.shape)}; the "
                                 f"parameter has {tuple(param.shape)}")
            if field == "step":
                raise ValueError(f"{where}: optimizer state step of {name} must be one count >= 0")


def _is_count(value: Any) -> bool:
    """Adam's `step`: a number, or a one-element tensor, finite and >= 0."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and bool(torch.isfinite(value).all()) and float(value) >= 0
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
