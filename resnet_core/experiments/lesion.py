"""Lesion study (Veit, Wilber, Belongie 2016): delete one block at test time and measure the test accuracy.

A deleted block is replaced by the identity, so it can only be deleted where its output has the
shape of its input; the blocks that change the shape (the first block of a downsampling stage, as the model's
feature index tells) are reported as not deletable. Residual nets are expected to degrade gracefully and plain
nets to collapse; `describe` states what was measured.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.image_data import ImageData
from ..models.features import blocks_deleted
from ..models.resnet import ResNet
from ..runs.loading import load_model, load_run_data
from ..runs.store import read_run
from ..training.engine import evaluate
from ..validation import check_int

VEIT2016 = ("Veit, Wilber, Belongie. Residual Networks Behave Like Ensembles of Relatively Shallow Networks. "
            "NeurIPS 2016 (arXiv:1605.06431), Fig. 3")


@dataclass(frozen=True)
class BlockLesion:
    block: str  # "layer2.1"
    deletable: bool  # its output has its input's shape, so the identity can stand in for it
    acc: float | None  # test accuracy without the block; None when it is not deletable
    loss: float | None


@dataclass
class LesionResult:
    name: str  # the run id (or a label)
    skip: bool  # residual (True) or plain (False)
    baseline_acc: float  # the intact net
    baseline_loss: float
    blocks: list[BlockLesion]  # one per block, in forward order
    test_images: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON row (the Lesion page's background rows too); `from_dict` reads it back."""
        return dict(name=self.name, skip=self.skip, baseline_acc=self.baseline_acc, baseline_loss=self.baseline_loss,
                    blocks=[dataclasses.asdict(b) for b in self.blocks], test_images=self.test_images,
                    seconds=self.seconds)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> LesionResult:
        return cls(**{**row, "blocks": [BlockLesion(**b) for b in row["blocks"]]})

    def deletion_accs(self) -> list[float]:
        """The accuracies after deleting each deletable block, lowest first."""
        return sorted(b.acc for b in self.blocks if b.deletable)


def lesion(model: ResNet, data: ImageData, name: str = "model", limit: int | None = None,
           batch_size: int = 500) -> LesionResult:
    """Test accuracy of `model` on `data` intact, then with each deletable block (one that keeps the shape, from
    the model's feature index) replaced by the identity.

    The model is restored afterwards. `limit` evaluates on the first N test images.
    """
    _check_limit(limit)
    start = time.perf_counter()
    base = evaluate(model, data, batch_size=batch_size, limit=limit)
    rows = []
    for info in model.feature_info:
        if info.changes_shape:
            rows.append(BlockLesion(info.name, False, None, None))
            continue
        with blocks_deleted(model, [info]):
            ev = evaluate(model, data, batch_size=batch_size, limit=limit)
        rows.append(BlockLesion(info.name, True, ev.acc, ev.loss))
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
    accs = result.deletion_accs()
    kind = "residual" if result.skip else "plain"
    fixed = sum(1 for b in result.blocks if not b.deletable)
    if not accs:
        return f"**{result.name}** ({kind}): no block can be deleted without changing the shape."
    median = accs[len(accs) // 2]
    return (f"**{result.name}** ({kind}): intact {result.baseline_acc:.1%}; deleting one of {len(accs)} blocks gives "
            f"between {accs[0]:.1%} and {accs[-1]:.1%} (median {median:.1%}, a median drop of "
            f"{100 * (result.baseline_acc - median):.1f} points)"
            + (f"; {fixed} blocks change the shape and cannot be deleted." if fixed else "."))
