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

For a page: `run_choices` (the plain and residual runs to offer, and which to pick first: a pair trained alike,
see runs/pairing.py; `pair_note` when none is), `estimate_cost` (a SliceCost before Start, fitted from measured
per-point times) and `SliceJob` (slices of the chosen runs measured point by point in the background, with the
estimates to set against the time they took: `estimate_text`). `curvature_text` draws no verdict from runs that
were not trained alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.image_data import ImageData
from ..data.transforms import normalize
from ..formatting import format_seconds
from ..runs import pairing
from ..runs.background import BackgroundRows
from ..runs.contract import short_label
from ..runs.loading import load_model, load_run_data
from ..runs.pairing import Difference, differences_text
from ..runs.store import RunInfo, read_run
from ..validation import check_float, check_int, is_int, shown
from .degradation import newest_deep_pair

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


@dataclass(frozen=True)
class SliceCost:
    """What slicing one run will take: its evaluations, the images they put through the model, and the seconds,
    fitted from measured time: the setup (the run's model and images loaded, the directions drawn), the first
    point (torch's warm-up included) and the points after it, each of this run's model on its own images."""

    evaluations: int
    subset: int  # images per evaluation
    images: int
    setup: float  # seconds before the first point
    first_point: float
    per_point: float  # each point after the first
    basis: str = "two points timed now"  # or "the 21 points of its last slice here"

    @property
    def seconds(self) -> float:
        return self.setup + self.first_point + (self.evaluations - 1) * self.per_point

    def text(self, run_id: str) -> str:
        """"resnet20-ab12: 21 evaluations × 512 images = 10,752 images through the model, about 9 s (…)"."""
        return (f"{short_label(run_id)}: {self.evaluations:,} evaluations × {self.subset} images = {self.images:,} "
                f"images through the model, about {seconds_text(self.seconds)}: {seconds_text(self.setup)} to "
                f"load, then {self.per_point * 1000:,.0f} ms a point (measured on this run's own model and images: "
                f"{self.basis}).")


# Per-point times of slices measured in this process, per (run folder, subset, batch size): what the next estimate
# of the same slice learns from (a slice in the background shares the cores with the page, as the next one will).
_MEASURED: dict[tuple[str, int, int], tuple[float, float, float, int]] = {}  # setup, first, per point, points


def record_measured(run_dir: str | Path, config: LandscapeConfig, setup: float,
                    point_seconds: Sequence[float]) -> None:
    """Keep a finished slice's measured times for the next `estimate_cost` of the same run, subset and batch."""
    if len(point_seconds) >= 2:
        later = sorted(point_seconds[1:])
        _MEASURED[(str(Path(run_dir)), config.subset, config.batch_size)] = (
            setup, point_seconds[0], later[len(later) // 2], len(point_seconds))


def measured_version() -> int:
    """Changes whenever a slice's times are recorded: a page's cached estimates key on it."""
    return len(_MEASURED) + sum(points for *_, points in _MEASURED.values())


def estimate_cost(run_dir: str | Path, config: LandscapeConfig, device: str = "cpu") -> SliceCost:
    """The cost before Start: from this run's last slice with the same subset and batch in this process, if there
    was one (its setup, first point and median later point); else measured now: the run loaded and its slicer made,
    then two points of the slice timed (α = −span and the next), and scaled to the slice's evaluations."""
    config.validate()
    images = config.evaluations * config.subset
    known = _MEASURED.get((str(Path(run_dir)), config.subset, config.batch_size))
    if known is not None:
        setup, first, per_point, points = known
        return SliceCost(config.evaluations, config.subset, images, setup, first, per_point,
                         f"the {points} points of its last slice here")
    tick = time.perf_counter()
    model, data, _ = load_for_slice(run_dir, config, device)
    slicer = make_slicer(model, data, config)
    setup = time.perf_counter() - tick
    try:
        times = []
        for alpha in config.alphas[:2]:
            tick = time.perf_counter()
            slicer.loss_at([alpha] * config.dims)
            times.append(time.perf_counter() - tick)
    finally:
        slicer.restore()
    return SliceCost(config.evaluations, config.subset, images, setup, times[0], times[1])


def estimate_text(estimated: float, actual: float) -> str:
    """"estimated 28 s before Start, took 55 s (1.96× the estimate)"."""
    return (f"estimated {seconds_text(estimated)} before Start, took {seconds_text(actual)} "
            f"({actual / estimated:.2f}× the estimate)" if estimated > 0 else
            f"took {seconds_text(actual)}")


def seconds_text(seconds: float) -> str:
    """"0.4 s", "9.7 s" below ten seconds; "28 s", "1 min 15 s" from there."""
    return f"{seconds:.1f} s" if seconds < 9.95 else format_seconds(seconds)


def curvature_text(results: Sequence[LandscapeResult], differences: Sequence[Difference] = ()) -> list[str]:
    """Sentences from the numbers: each run's curvature at the origin, and whether the plain one is the sharper;
    `differences` (runs.pairing) say how the plain and the residual run were trained differently: then no verdict."""
    lines = [f"**{r.name}** ({'residual' if r.skip else 'plain'}): loss {r.origin_loss:.4g} at the trained weights; "
             + _curvature(r) + "." for r in results]
    plain = [r for r in results if not r.skip]
    residual = [r for r in results if r.skip]
    if plain and residual and differences:
        lines.append(f"**Not compared**: these runs were not trained alike ({differences_text(differences)}), so a "
                     "difference in curvature cannot be put down to the shortcuts. Li et al. compare nets trained "
                     "alike; pick a plain and a residual run that match to compare them.")
    elif plain and residual:
        lines.append(_verdict(plain[0].curvature["alpha"], residual[0].curvature["alpha"]))
    return lines


def _curvature(r: LandscapeResult) -> str:
    """"curvature at α = 0 (second difference): 2.281", or along α and β at the origin of a 2-D slice."""
    if set(r.curvature) == {"alpha"}:
        return f"curvature at α = 0 (second difference): {r.curvature['alpha']:.4g}"
    symbols = dict(alpha="α", beta="β")
    return "curvature at the origin (second difference): " + ", ".join(
        f"{value:.4g} along {symbols.get(axis, axis)}" for axis, value in r.curvature.items())


def _verdict(p: float, q: float) -> str:
    if p > q and q > 0:
        return (f"The plain net's slice is **sharper** at α = 0: {p:.4g} vs {q:.4g} "
                f"({p / q:.3g}× the residual net's curvature), as Li et al. found.")
    if p > q:
        return f"The plain net's slice has the larger curvature at α = 0 ({p:.4g} vs {q:.4g})."
    return (f"Here the plain net's slice is **not sharper** at α = 0: curvature {p:.4g} (plain) vs {q:.4g} (residual). "
            "Li et al. report the opposite for their fully trained CIFAR-10 nets; this measurement is what these runs "
            "give.")


class SliceTask:
    """The slices of several runs as one list of points, computed one point per call (for `BackgroundRows`,
    which gives the page its progress): each run's model and subset are prepared at its first point (its row says
    how long that took: `setup`), and its trained weights are put back after its last, when its times are kept
    for the next estimate (`record_measured`)."""

    def __init__(self, run_dirs: Sequence[str | Path], config: LandscapeConfig, device: str = "cpu") -> None:
        self.run_dirs, self.config, self.device = [Path(d) for d in run_dirs], config.validate(), device
        self.points = grid_points(config)
        self._slicers: dict[int, tuple[Slicer, str, bool, float, list[float]]] = {}

    def items(self) -> list[tuple[int, tuple[int, ...]]]:
        return [(run, index) for run in range(len(self.run_dirs)) for index in self.points]

    def __call__(self, item: tuple[int, tuple[int, ...]]) -> dict[str, Any]:
        run, index = item
        setup = 0.0
        if run not in self._slicers:
            tick = time.perf_counter()
            model, data, run_id = load_for_slice(self.run_dirs[run], self.config, self.device)
            slicer = make_slicer(model, data, self.config)
            setup = time.perf_counter() - tick
            self._slicers[run] = (slicer, run_id, bool(model.spec.skip), setup, [])
        slicer, run_id, skip, run_setup, times = self._slicers[run]
        tick = time.perf_counter()
        loss, acc = slicer.loss_at([self.config.alphas[i] for i in index])
        times.append(time.perf_counter() - tick)
        if index == self.points[-1]:
            slicer.restore()
            del self._slicers[run]
            record_measured(self.run_dirs[run], self.config, run_setup, times)
        return dict(run=run, name=run_id, skip=skip, index=list(index), loss=loss, acc=acc, seconds=times[-1],
                    setup=setup)

    def results(self, rows: Sequence[dict[str, Any]]) -> list[LandscapeResult]:
        """The runs whose every point is among `rows`, assembled, in the order of the run folders given; a run's
        seconds are its setup and all its points."""
        out = []
        for run in range(len(self.run_dirs)):
            mine = [r for r in rows if r["run"] == run]
            if len(mine) == len(self.points):
                values = {tuple(r["index"]): (r["loss"], r["acc"]) for r in mine}
                out.append(assemble(mine[0]["name"], mine[0]["skip"], self.config, values,
                                    sum(r["seconds"] + r.get("setup", 0.0) for r in mine)))
        return out


def default_pair(runs: Mapping[str, RunInfo]) -> dict[bool, str]:
    """skip -> the run id to pick first (runs.pairing.default_pair): the deep pair of the newest degradation group
    if its two runs were trained alike; else the newest plain and residual pair that was; else, when only one kind
    is stored, the newest run of that kind; else nothing (no pair matches: `pair_note` says so)."""
    group = [runs[rid] for rid in newest_deep_pair(runs).values()]
    return {info.skip: info.run_id for info in pairing.default_pair(runs.values(), group)}


def pair_note(runs: Mapping[str, RunInfo]) -> str | None:
    """A line when plain and residual runs are stored but no pair of them was trained alike."""
    return pairing.no_pair_note(runs.values())


def run_choices(runs: Mapping[str, RunInfo]) -> dict[bool, tuple[list[str], str | None]]:
    """skip -> (the run ids of that kind among `runs`, in their order; the one to pick first, `default_pair`'s, or
    None), plain (False) first."""
    pair = default_pair(runs)
    return {skip: ([rid for rid, r in runs.items() if r.skip == skip], pair.get(skip)) for skip in (False, True)}


@dataclass(frozen=True)
class SliceJob:
    """The slices of chosen runs, measured point by point in the background for a page (`task` polls), with the
    estimates shown before Start (run id -> seconds) to set against the time each slice took."""

    run_ids: tuple[str, ...]
    config: LandscapeConfig
    slices: SliceTask
    task: BackgroundRows[dict[str, Any]]
    estimates: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, runs: Mapping[str, RunInfo], run_ids: Sequence[str], config: LandscapeConfig,
              estimates: Mapping[str, float] | None = None) -> SliceJob:
        slices = SliceTask([runs[rid].path for rid in run_ids], config)
        return cls(tuple(run_ids), config, slices, BackgroundRows(slices, slices.items()), dict(estimates or {}))

    def is_for(self, run_ids: Sequence[str], config: LandscapeConfig) -> bool:
        """Whether it measures these runs with these settings (a page's widgets may have moved on)."""
        return (self.run_ids, self.config) == (tuple(run_ids), config)

    @property
    def done(self) -> bool:
        return self.task.snapshot()[1]
