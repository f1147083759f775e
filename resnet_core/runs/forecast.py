"""How long a run will take, learned from runs measured on this machine: seconds per unit of work.

A unit is one multiply-add of the model's forward pass on one image (`work_of`, from the model summary on the meta
device, before anything is loaded). A training image costs TRAIN_FACTOR units per forward mult-add (the backward
is about twice the forward), a test image one. A running job measures its own rate (`measured_rate`, from its
latest train records' images/s); a run not started yet is its work × a rate measured on another run (`scaled`),
so plain56 queued behind plain20 is estimated from plain20's pace scaled by their mult-adds, not from a prior.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..data.sets import NATIVE_SETS, NATIVE_SIZE, NATIVE_TRAIN, train_size
from ..introspect.summary import summarize
from ..models.presets import resolve_spec
from ..models.spec import natural_input_size
from ..training.budget import run_budget
from ..training.config import TrainConfig
from ..training.records import Record, TrainRecord, of_kind

TRAIN_FACTOR = 3.0  # forward + backward ≈ three forward passes
RATE_WINDOW = 3  # the latest train records a running job's rate is the median of
_MULT_ADDS: dict[str, int] = {}  # per image, by model, overrides and input; a summary takes ~10 ms


class Basis(StrEnum):
    MEASURED = "measured"  # the run's own pace so far
    SCALED = "scaled"  # another run's measured pace, scaled by the two runs' mult-adds
    PRIOR = "prior"  # a few steps timed before anything ran (training/estimate.py)


@dataclass(frozen=True)
class Forecast:
    seconds: float
    basis: Basis


@dataclass(frozen=True)
class Work:
    """A run's work in units: per optimizer step and per evaluation, and how many of each."""

    step_units: float
    eval_units: float
    steps: int
    steps_per_epoch: int
    batch: int

    def units_left(self, step: int = 0) -> float:
        """The steps after `step` and the evaluations still due (each epoch's end and the budget's end)."""
        per = self.steps_per_epoch
        evaluations = self.steps // per - step // per + (self.steps % per != 0)
        return (self.steps - step) * self.step_units + evaluations * self.eval_units


def work_of(config: TrainConfig) -> Work:
    """`config`'s work, known before its data are loaded (as the memory guard knows its size)."""
    spec = resolve_spec(config.model, **config.overrides)
    side = config.image_size or NATIVE_SIZE.get(config.dataset, natural_input_size(spec)[1])
    key = repr((config.model, sorted(config.overrides.items()), side))
    if key not in _MULT_ADDS:
        _MULT_ADDS[key] = summarize(spec, (spec.in_channels, side, side), 1).mult_adds
    per_image = _MULT_ADDS[key]
    train_images = train_size(config.dataset, config.data_dir)
    if config.train_subset:
        train_images = min(train_images, config.train_subset)
    budget = run_budget(config, max(1, train_images))
    batch = min(config.batch_size, max(1, train_images))
    native_test = NATIVE_SETS[config.dataset][0] - NATIVE_TRAIN[config.dataset] if config.dataset in NATIVE_TRAIN else 0
    test_images = min(config.test_subset or native_test, native_test) if native_test else config.test_subset or 0
    return Work(TRAIN_FACTOR * per_image * batch, per_image * test_images, budget.steps, budget.steps_per_epoch, batch)


def measured_rate(config: TrainConfig, records: Sequence[Record]) -> float | None:
    """Seconds per unit of a run that has trained: the median images/s of its latest RATE_WINDOW train records
    (training only; the first step's, which pays for allocation, only while it is the only one)."""
    train = [r for r in of_kind(records, TrainRecord) if r.images_per_sec > 0]
    if len(train) > 1:
        train = [r for r in train if r.step > 1]
    if not train:
        return None
    images_per_sec = statistics.median(r.images_per_sec for r in train[-RATE_WINDOW:])
    work = work_of(config)
    return work.batch / images_per_sec / work.step_units


def scaled(config: TrainConfig, rate: float, step: int = 0) -> Forecast:
    """`config`'s time left after `step` at another run's measured `rate` (seconds per unit)."""
    return Forecast(rate * work_of(config).units_left(step), Basis.SCALED)
