"""Path lengths (Veit, Wilber, Belongie 2016): a ResNet of n blocks unrolls into 2^n paths, and the number
of blocks a path passes through is Binomial(n, 1/2); deleting k blocks leaves the 2^(n-k) paths that avoid
them. Beside that distribution, the measured test accuracy after deleting k blocks at once (k random
identity-shaped blocks, replaced by the identity, several draws per k), for k = 1 ... the deletable blocks.

A block whose output shape differs from its input's (the first block of a downsampling stage, as the model's
feature index tells) cannot be replaced by the identity; those stay, so k runs up to the number of deletable
blocks.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.image_data import ImageData
from ..models.features import BlockInfo, blocks_deleted
from ..models.resnet import ResNet
from ..runs.loading import load_model, load_run_data
from ..runs.store import read_run
from ..training.engine import evaluate
from ..validation import check_int


def path_length_distribution(n: int) -> list[dict[str, float]]:
    """For a net of n blocks: per path length k = 0 ... n, the number of paths C(n, k) and their share C(n, k)/2^n."""
    check_int("n", n, 0, 10_000)
    return [dict(length=k, paths=math.comb(n, k), share=math.comb(n, k) / 2**n) for k in range(n + 1)]


def deletable_blocks(model: ResNet) -> list[BlockInfo]:
    """The feature-index entries of every block that can be replaced by the identity, in forward order."""
    return [info for info in model.feature_info if not info.changes_shape]


def delete_blocks(model: ResNet, data: ImageData, blocks: Sequence[BlockInfo | str],
                  limit: int | None = None) -> float:
    """Test accuracy with the given blocks replaced by the identity at once; the model is restored after."""
    with blocks_deleted(model, blocks):
        return evaluate(model, data, limit=limit).acc


def delete_k(model: ResNet, data: ImageData, k: int, samples: int = 3, seed: int = 0,
             limit: int | None = None) -> dict[str, Any]:
    """Accuracy after deleting k random deletable blocks, over `samples` seeded draws: k, acc (mean), acc_std
    (sample std, None for one draw), accs, and the share of paths left, 2^-k."""
    candidates = deletable_blocks(model)
    check_int("k", k, 1, max(1, len(candidates)))
    check_int("samples", samples, 1, 100)
    rng = random.Random(seed * 100_003 + k)
    accs = [delete_blocks(model, data, rng.sample(candidates, k), limit) for _ in range(samples)]
    return dict(k=k, acc=statistics.fmean(accs), acc_std=statistics.stdev(accs) if len(accs) > 1 else None,
                accs=accs, paths_left=2.0**-k)


def k_rows_of_run(run_dir: str | Path, samples: int = 3, limit: int | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """For a stored run: name, skip, blocks (n), deletable, intact accuracy, chance (1 / classes), and a
    `delete_k` row per k."""
    info = read_run(run_dir)
    model, data = load_model(run_dir), load_run_data(run_dir)
    limit = limit if limit is not None else info.config.train.test_subset
    deletable = deletable_blocks(model)
    rows = [delete_k(model, data, k, samples, seed, limit) for k in range(1, len(deletable) + 1)]
    return dict(name=info.run_id, skip=info.skip, blocks=len(model.feature_info), deletable=len(deletable),
                intact_acc=evaluate(model, data, limit=limit).acc, chance=1 / data.num_classes, rows=rows)


def describe(result: dict[str, Any]) -> str:
    """One sentence from the numbers: how the accuracy falls with k, beside the share of paths left."""
    rows = result["rows"]
    kind = "residual" if result["skip"] else "plain"
    if not rows:
        return f"**{result['name']}** ({kind}): no block can be deleted without changing the shape."
    chance = result["chance"]
    half = next((r["k"] for r in rows if r["acc"] < (result["intact_acc"] + chance) / 2), None)
    return (f"**{result['name']}** ({kind}, {result['blocks']} blocks, {result['deletable']} deletable): intact "
            f"{result['intact_acc']:.1%}; deleting 1 block {rows[0]['acc']:.1%}, deleting {rows[-1]['k']} "
            f"{rows[-1]['acc']:.1%} (2^-{rows[-1]['k']} = {rows[-1]['paths_left']:.2g} of the paths left)"
            + (f"; below halfway to chance ({chance:.0%}) from k = {half} on." if half is not None else "."))
