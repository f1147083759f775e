"""Training probes: per-unit gradient norms and activation mean/std, every K steps.

A unit is the stem, each residual block of the model's feature index ("layer1.0", "layer1.1", ...) or the
head. On a probed step the forward hooks (one HookSet, kept for the run) record the mean and std of each unit's
output and, after backward, `collect()` takes the L2 norm of the gradients of each unit's parameters. On other
steps each hook is a single attribute check, so probes can stay on (see benchmarks/bench_train.py for the cost).

`stage_view(record)` folds a probe record's per-unit values into per-stage ones; `probe_frame` and
`stage_activations` turn a run's probe records into tables for the Signal-flow page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from ..introspect.hooks import HookSet
from ..models.resnet import ResNet
from .records import ProbeRecord, Record, of_kind


class Probes:
    def __init__(self, model: ResNet, every: int) -> None:
        """Hooks on `model`'s units (its blocks from `model.feature_info`), kept until `close()`; `every` = 0
        disables probing (no hooks at all)."""
        self.every = every
        self.active = False
        self.units: list[str] = []
        self.stages: list[str] = []
        self._params: list[list[nn.Parameter]] = []
        self._stats: dict[int, tuple[float, float]] = {}
        self._hooks = HookSet()
        if every <= 0:
            return
        stage_names = set(model.stage_names)
        stem = [p for name, p in model.named_parameters()
                if name.split(".")[0] not in stage_names and not name.startswith(("fc.", "final_norm."))]
        self._add("stem", "stem", stem)
        self._hooks.pre_forward(model.stages()[0], self._pre_hook(0))
        for info in model.feature_info:
            block = model.block(info)
            index = self._add(info.name, info.stage, list(block.parameters()))
            self._hooks.forward(block, self._hook(index))
        head = list(model.fc.parameters()) + (list(model.final_norm.parameters()) if model.final_norm else [])
        index = self._add("head", "head", head)
        self._hooks.forward(model.fc, self._hook(index))

    def _add(self, unit: str, stage: str, params: list[nn.Parameter]) -> int:
        self.units.append(unit)
        self.stages.append(stage)
        self._params.append(params)
        return len(self.units) - 1

    def _pre_hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if self.active:
                self._store(index, args[0])
        return hook

    def _hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
            if self.active:
                self._store(index, out)
        return hook

    def _store(self, index: int, x: Tensor) -> None:
        with torch.no_grad():
            std, mean = torch.std_mean(x.detach().float())
        self._stats[index] = (mean, std)

    def arm(self, step: int) -> bool:
        """Turn recording on for the coming forward pass if `step` (1-based) is a probe step."""
        self.active = self.every > 0 and step % self.every == 0
        if self.active:
            self._stats.clear()
        return self.active

    def collect(self) -> dict[str, Any]:
        """After backward on an armed step: units, stages, grad_norm, act_mean, act_std (lists, one per unit)."""
        self.active = False
        grad_norms = []
        for params in self._params:
            grads = [p.grad for p in params if p.grad is not None]
            grad_norms.append(float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
                              if grads else 0.0)
        stats = [self._stats.get(i, (math.nan, math.nan)) for i in range(len(self.units))]
        return dict(units=list(self.units), stages=list(self.stages), grad_norm=grad_norms,
                    act_mean=[float(m) for m, _ in stats], act_std=[float(s) for _, s in stats])

    def close(self) -> None:
        self._hooks.close()


def stage_view(record: ProbeRecord) -> dict[str, dict[str, float]]:
    """Per stage: grad_norm (L2 over its units) and act_mean/act_std of its last unit's output."""
    out: dict[str, dict[str, float]] = {}
    for stage, g, m, s in zip(record.stages, record.grad_norm, record.act_mean, record.act_std):
        prev = out.get(stage, {}).get("grad_norm", 0.0)
        out[stage] = dict(grad_norm=math.hypot(prev, g), act_mean=m, act_std=s)
    return out


def probe_frame(records: Sequence[Record]) -> pd.DataFrame:
    """A run's probe records in long format: step, unit, stage, grad_norm, act_mean, act_std."""
    rows = [dict(step=r.step, unit=unit, stage=stage, grad_norm=g, act_mean=m, act_std=sd)
            for r in of_kind(records, ProbeRecord)
            for unit, stage, g, m, sd in zip(r.units, r.stages, r.grad_norm, r.act_mean, r.act_std)]
    return pd.DataFrame(rows, columns=["step", "unit", "stage", "grad_norm", "act_mean", "act_std"])


def stage_activations(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each stage's last unit: the stage's output statistics at every probe step."""
    return frame.groupby(["step", "stage"], sort=False).tail(1).reset_index(drop=True)
