"""Lesion study (Veit, Wilber, Belongie 2016): delete one block at test time and measure the test accuracy.

A deleted block is replaced by the identity, so it can only be deleted where its output has the
shape of its input; the blocks that change the shape (the first block of a downsampling stage)
are reported as not deletable. Residual nets are expected to degrade gracefully and plain nets to
collapse; `describe` states what was measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import ImageData
from .model import ResNet
from .runstore import load_model, load_run_data, read_run
from .train import evaluate
from .validation import check_int

VEIT2016 = ("Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks. "
            "NeurIPS 2016 (arXiv:1605.06431), Fig. 3")


@dataclass
class LesionResult:
    name: str  # the run id (or a label)
    skip: bool  # residual (True) or plain (False)
    baseline_acc: float  # the intact net
    baseline_loss: float
    blocks: list[dict[str, Any]]  # per block: block ("layer2.1"), deletable, acc, loss (None when not deletable)
    test_images: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(name=self.name, skip=self.skip, baseline_acc=self.baseline_acc, baseline_loss=self.baseline_loss,
                    blocks=self.blocks, test_images=self.test_images, seconds=self.seconds)


def block_shapes(model: ResNet, sample: torch.Tensor) -> dict[str, bool]:
    """block name -> whether its output has its input's shape, from one forward pass on `sample`."""
    same: dict[str, bool] = {}
    hooks = []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        for i, block in enumerate(stage):
            def hook(_m: nn.Module, args: Any, out: torch.Tensor, name: str = f"{stage_name}.{i}") -> None:
                same[name] = tuple(args[0].shape) == tuple(out.shape)
            hooks.append(block.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(sample)
    finally:
        for h in hooks:
            h.remove()
    return same


def lesion(model: ResNet, data: ImageData, name: str = "model", limit: int | None = None,
           batch_size: int = 500) -> LesionResult:
    """Test accuracy of `model` on `data` intact, then with each deletable block replaced by the identity.

    The model is restored afterwards. `limit` evaluates on the first N test images.
    """
    _check_limit(limit)
    start = time.perf_counter()
    device = next(model.parameters()).device
    sample = data.test_images[:2].to(device).float()
    deletable = block_shapes(model, sample)
    base = evaluate(model, data, batch_size=batch_size, limit=limit)
    rows = []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        for i in range(len(stage)):
            block_name = f"{stage_name}.{i}"
            row: dict[str, Any] = dict(block=block_name, deletable=deletable[block_name], acc=None, loss=None)
            if row["deletable"]:
                original = stage[i]
                stage[i] = nn.Identity()
                try:
                    ev = evaluate(model, data, batch_size=batch_size, limit=limit)
                finally:
                    stage[i] = original
                row.update(acc=ev.acc, loss=ev.loss)
            rows.append(row)
    return LesionResult(name, model.spec.skip, base.acc, base.loss, rows, len(base.labels),
                        time.perf_counter() - start)


def lesion_run(run_dir: str | Path, limit: int | None = None, device: str = "cpu") -> LesionResult:
    """`lesion` on a stored run's final weights and the exact test images it was evaluated on."""
    _check_limit(limit)
    info = read_run(run_dir)
    model = load_model(run_dir, device)
    data = load_run_data(run_dir)
    limit = limit if limit is not None else info.config.train.test_subset
    return lesion(model, data, name=info.run_id, limit=limit)


def lesion_row(run_dir: str | Path, limit: int | None = None) -> dict[str, Any]:
    """`lesion_run` as a JSON-ready row, or {"name", "error"} for a run that cannot be studied (no weights,
    weights that do not fit, a spoilt folder, data no longer there): one bad run never stops the others."""
    try:
        return lesion_run(run_dir, limit).to_dict()
    except (ValueError, RuntimeError, OSError) as exc:  # RuntimeError: its data set is missing or offline
        return dict(name=Path(run_dir).name, error=str(exc))


def _check_limit(limit: int | None) -> None:
    if limit is not None:
        check_int("limit", limit, 1, 10**9)


def describe(result: LesionResult) -> str:
    """One sentence from the numbers: the intact accuracy, the worst and the median single deletion."""
    accs = sorted(r["acc"] for r in result.blocks if r["deletable"])
    kind = "residual" if result.skip else "plain"
    fixed = sum(1 for r in result.blocks if not r["deletable"])
    if not accs:
        return f"**{result.name}** ({kind}): no block can be deleted without changing the shape."
    median = accs[len(accs) // 2]
    return (f"**{result.name}** ({kind}): intact {result.baseline_acc:.1%}; deleting one of {len(accs)} blocks gives "
            f"between {accs[0]:.1%} and {accs[-1]:.1%} (median {median:.1%}, a median drop of "
            f"{100 * (result.baseline_acc - median):.1f} points)"
            + (f"; {fixed} blocks change the shape and cannot be deleted." if fixed else "."))
