"""Loss-surface slices of a trained run (Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss
Landscape of Neural Nets"): the training loss along one or two filter-normalised random directions.

A direction d has one random normal entry per weight; each filter of d (a slice along the first axis: one
output channel of a conv, one row of the fc layer) is rescaled to the norm of the same filter of the trained
weights, so the slice has the same scale for every layer and every net (Li et al. §4). Biases and BatchNorm
parameters get no direction (they stay at their trained values), as in Li et al.'s code (`ignore="biasbn"`).

The loss is the mean cross-entropy on a fixed subset of the run's own training images (a seeded draw, no
augmentation), with BatchNorm in eval mode (its trained running statistics). `Slicer` moves the weights of one
model in place from point to point; nothing is rebuilt or re-normalised per point (see
benchmarks/bench_landscape.py for what that saves against the naive per-point rebuild).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ImageData, normalize
from .runstore import load_model, load_run_data, read_run
from .validation import check_float, check_int, is_int, shown

LI2018 = ("Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018 "
          "(arXiv:1712.09913)")
DIMS = (1, 2)
MAX_POINTS = 101


@dataclass(frozen=True)
class LandscapeConfig:
    points: int = 21  # grid points per direction, odd so that α = 0 (the trained weights) is on the grid
    dims: int = 1  # 1: a line through the trained weights; 2: a plane (points × points evaluations)
    subset: int = 512  # training images the loss is measured on (the same ones at every point)
    span: float = 1.0  # α (and β) run from -span to +span, in units of the filter-normalised direction
    seed: int = 0  # the random directions and the subset drawn
    batch_size: int = 256  # images per forward pass (memory only; the loss is the same)

    def validate(self) -> LandscapeConfig:
        check_int("points", self.points, 3, MAX_POINTS)
        if self.points % 2 == 0:
            raise ValueError(f"points must be odd, so that α = 0 (the trained weights) is on the grid; "
                             f"got {self.points}")
        if not is_int(self.dims) or self.dims not in DIMS:
            raise ValueError(f"dims must be 1 or 2; got {shown(self.dims)}")
        check_int("subset", self.subset, 1, 10**6)
        check_float("span", self.span, 0.0, 100.0, low_open=True)
        check_int("seed", self.seed, 0, 2**31 - 1)
        check_int("batch_size", self.batch_size, 1, 8192)
        return self

    @property
    def evaluations(self) -> int:
        return self.points ** self.dims

    @property
    def alphas(self) -> list[float]:
        return [self.span * (2 * i / (self.points - 1) - 1) for i in range(self.points)]


@dataclass
class LandscapeResult:
    name: str  # the run id
    skip: bool  # residual (True) or plain (False)
    dims: int
    alpha: list[float]
    beta: list[float] | None  # 2-D only
    loss: list[float] | list[list[float]]  # 1-D: one per α; 2-D: loss[j][i] at (α_i, β_j)
    acc: list[float] | list[list[float]]  # the same grid, accuracy on the subset
    subset: int
    seconds: float
    curvature: dict[str, float] = field(default_factory=dict)  # second difference at the origin, per axis

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.dims == 1:
            del out["beta"]
        return out

    @property
    def origin_loss(self) -> float:
        mid = len(self.alpha) // 2
        return self.loss[mid] if self.dims == 1 else self.loss[mid][mid]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> list[Tensor | None]:
    """One entry per parameter of `model`: a random direction with each filter scaled to the trained filter's
    norm, or None for a bias or a BatchNorm parameter (anything of one dimension), which is left out."""
    directions: list[Tensor | None] = []
    for p in model.parameters():
        if p.dim() <= 1:
            directions.append(None)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device)
        filter_norms = p.detach().flatten(1).norm(dim=1)
        d_norms = d.flatten(1).norm(dim=1)
        scale = filter_norms / (d_norms + 1e-10)
        directions.append(d * scale.view(-1, *([1] * (p.dim() - 1))))
    return directions


def subset_indices(train_size: int, subset: int, seed: int) -> Tensor:
    """The fixed training images of a slice: the first `subset` of a seeded permutation."""
    check_int("subset", subset, 1, train_size)
    return torch.randperm(train_size, generator=torch.Generator().manual_seed(seed))[:subset]


class Slicer:
    """One model whose weights are moved in place to θ* + α·d1 (+ β·d2); `loss_at` measures the loss there.

    The subset is normalised once; BatchNorm stays in eval mode; `restore` puts the trained weights back.
    """

    def __init__(self, model: nn.Module, images: Tensor, labels: Tensor, directions: Sequence[list[Tensor | None]],
                 batch_size: int = 256) -> None:
        self.model = model.eval()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        params = list(model.parameters())
        moving = [i for i, d in enumerate(directions[0]) if d is not None]
        self.params = [params[i] for i in moving]
        self.origin = [params[i].detach().clone() for i in moving]
        self.directions = [[dirs[i] for i in moving] for dirs in directions]

    @torch.no_grad()
    def move(self, coords: Sequence[float]) -> None:
        torch._foreach_copy_(self.params, self.origin)
        for c, dirs in zip(coords, self.directions):
            if c:
                torch._foreach_add_(self.params, dirs, alpha=c)

    @torch.inference_mode()
    def loss_at(self, coords: Sequence[float]) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on the subset with the weights at `coords`."""
        self.move(coords)
        total, correct = 0.0, 0
        for start in range(0, len(self.labels), self.batch_size):
            logits = self.model(self.images[start:start + self.batch_size]).float()
            y = self.labels[start:start + self.batch_size]
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        n = len(self.labels)
        return total / n, correct / n

    def restore(self) -> None:
        self.move([])


def make_slicer(model: nn.Module, data: ImageData, config: LandscapeConfig) -> Slicer:
    """A Slicer of `model` on the config's subset of `data`'s training images, with the config's directions."""
    config.validate()
    pick = subset_indices(len(data.train_labels), config.subset, config.seed)
    device = next(model.parameters()).device
    images = normalize(data.train_images[pick].to(device), data.mean, data.std)
    generator = torch.Generator().manual_seed(config.seed)
    directions = [filter_normalized_direction(model, generator) for _ in range(config.dims)]
    return Slicer(model, images, data.train_labels[pick].to(device), directions, config.batch_size)


def grid_points(config: LandscapeConfig) -> list[tuple[int, ...]]:
    """Grid indices in evaluation order: (i,) for 1-D, (i, j) for 2-D with α fastest."""
    n = config.points
    return [(i,) for i in range(n)] if config.dims == 1 else [(i, j) for j in range(n) for i in range(n)]


def assemble(name: str, skip: bool, config: LandscapeConfig, values: dict[tuple[int, ...], tuple[float, float]],
             seconds: float) -> LandscapeResult:
    """The measured grid as a result, with the curvature at the origin along each direction."""
    n, alphas = config.points, config.alphas
    if config.dims == 1:
        loss = [values[(i,)][0] for i in range(n)]
        acc = [values[(i,)][1] for i in range(n)]
        curvature = dict(alpha=second_difference(loss, alphas))
        beta = None
    else:
        loss = [[values[(i, j)][0] for i in range(n)] for j in range(n)]
        acc = [[values[(i, j)][1] for i in range(n)] for j in range(n)]
        mid = n // 2
        curvature = dict(alpha=second_difference(loss[mid], alphas),
                         beta=second_difference([row[mid] for row in loss], alphas))
        beta = list(alphas)
    return LandscapeResult(name, skip, config.dims, list(alphas), beta, loss, acc, config.subset, seconds, curvature)


def second_difference(loss: Sequence[float], alphas: Sequence[float]) -> float:
    """(L(h) - 2 L(0) + L(-h)) / h²: the curvature of the slice at α = 0, from the grid's central three points."""
    mid = len(loss) // 2
    h = alphas[mid + 1] - alphas[mid]
    return (loss[mid + 1] - 2 * loss[mid] + loss[mid - 1]) / h**2


def slice_model(model: nn.Module, data: ImageData, config: LandscapeConfig, name: str = "model",
                on_point: Callable[[int, int], None] | None = None) -> LandscapeResult:
    """The slice of `model` (its trained weights are put back afterwards); `on_point(done, total)` reports
    progress after each evaluation."""
    start = time.perf_counter()
    slicer = make_slicer(model, data, config)
    alphas, points, values = config.alphas, grid_points(config), {}
    try:
        for k, index in enumerate(points, start=1):
            values[index] = slicer.loss_at([alphas[i] for i in index])
            if on_point is not None:
                on_point(k, len(points))
    finally:
        slicer.restore()
    skip = bool(getattr(getattr(model, "spec", None), "skip", True))
    return assemble(name, skip, config, values, time.perf_counter() - start)


def load_for_slice(run_dir: str | Path, config: LandscapeConfig, device: str = "cpu") -> tuple[nn.Module, ImageData,
                                                                                            str]:
    """A stored run's model (final weights) and data, checked against the config: (model, data, run id).

    A run without weights, or a subset larger than its training set, is one ValueError naming the field."""
    config.validate()
    info = read_run(run_dir)
    model = load_model(run_dir, device)
    data = load_run_data(run_dir)
    if config.subset > len(data.train_labels):
        raise ValueError(f"subset must be at most the run's {len(data.train_labels)} training images; "
                         f"got {config.subset}")
    return model, data, info.run_id


def slice_run(run_dir: str | Path, config: LandscapeConfig, device: str = "cpu",
              on_point: Callable[[int, int], None] | None = None) -> LandscapeResult:
    """`slice_model` on a stored run's final weights and its own training images."""
    model, data, run_id = load_for_slice(run_dir, config, device)
    return slice_model(model, data, config, name=run_id, on_point=on_point)


def estimate_seconds(run_dir: str | Path, config: LandscapeConfig, device: str = "cpu") -> dict[str, float]:
    """The cost before Start: evaluations, images through the model, and seconds from one timed forward pass of
    up to one batch of the subset at the trained weights (the first call pays torch's warm-up too)."""
    model, data, _ = load_for_slice(run_dir, config, device)
    probe = LandscapeConfig(points=3, dims=1, subset=min(config.subset, config.batch_size), seed=config.seed,
                            batch_size=config.batch_size)
    slicer = make_slicer(model, data, probe)
    slicer.loss_at([0.0])
    tick = time.perf_counter()
    slicer.loss_at([0.0])
    per_image = (time.perf_counter() - tick) / probe.subset
    images = config.evaluations * config.subset
    return dict(evaluations=config.evaluations, images=images, seconds=images * per_image)


def curvature_text(results: Sequence[LandscapeResult]) -> list[str]:
    """Sentences from the numbers: each run's curvature at α = 0, and whether the plain one is the sharper."""
    lines = [f"**{r.name}** ({'residual' if r.skip else 'plain'}): loss {r.origin_loss:.4g} at the trained weights; "
             f"curvature at α = 0 (second difference) "
             + ", ".join(f"{axis} {value:.4g}" for axis, value in r.curvature.items()) + "."
             for r in results]
    plain = [r for r in results if not r.skip]
    residual = [r for r in results if r.skip]
    if plain and residual:
        p, q = plain[0].curvature["alpha"], residual[0].curvature["alpha"]
        if p > q and q > 0:
            lines.append(f"The plain net's slice is **sharper** at α = 0: {p:.4g} vs {q:.4g} "
                         f"({p / q:.3g}× the residual net's curvature), as Li et al. found.")
        elif p > q:
            lines.append(f"The plain net's slice has the larger curvature at α = 0 ({p:.4g} vs {q:.4g}).")
        else:
            lines.append(f"Here the plain net's slice is **not sharper** at α = 0: curvature {p:.4g} (plain) vs "
                         f"{q:.4g} (residual). Li et al. report the opposite for their fully trained CIFAR-10 nets; "
                         "this measurement is what these runs give.")
    return lines



class SliceTask:
    """The slices of several runs as one list of points, computed one point per call (for `jobs.BackgroundRows`,
    which gives the page its progress): each run's model and subset are prepared at its first point, and its
    trained weights are put back after its last."""

    def __init__(self, run_dirs: Sequence[str | Path], config: LandscapeConfig, device: str = "cpu") -> None:
        self.run_dirs, self.config, self.device = [Path(d) for d in run_dirs], config.validate(), device
        self.points = grid_points(config)
        self._slicers: dict[int, tuple[Slicer, str, bool]] = {}

    def items(self) -> list[tuple[int, tuple[int, ...]]]:
        return [(run, index) for run in range(len(self.run_dirs)) for index in self.points]

    def __call__(self, item: tuple[int, tuple[int, ...]]) -> dict[str, Any]:
        run, index = item
        if run not in self._slicers:
            model, data, run_id = load_for_slice(self.run_dirs[run], self.config, self.device)
            self._slicers[run] = (make_slicer(model, data, self.config), run_id, bool(model.spec.skip))
        slicer, run_id, skip = self._slicers[run]
        tick = time.perf_counter()
        loss, acc = slicer.loss_at([self.config.alphas[i] for i in index])
        if index == self.points[-1]:
            slicer.restore()
            del self._slicers[run]
        return dict(run=run, name=run_id, skip=skip, index=list(index), loss=loss, acc=acc,
                    seconds=time.perf_counter() - tick)

    def results(self, rows: Sequence[dict[str, Any]]) -> list[LandscapeResult]:
        """The runs whose every point is among `rows`, assembled, in the order of the run folders given."""
        out = []
        for run in range(len(self.run_dirs)):
            mine = [r for r in rows if r["run"] == run]
            if len(mine) == len(self.points):
                values = {tuple(r["index"]): (r["loss"], r["acc"]) for r in mine}
                out.append(assemble(mine[0]["name"], mine[0]["skip"], self.config, values,
                                    sum(r["seconds"] for r in mine)))
        return out
