"""How many steps a run trains: the user's `--steps` or `--epochs`, else the auto budget.

Two epochs are enough on a large set and nothing on a small one: on scikit-learn's 1,797 real digits (1,437
training images, 11 steps an epoch at batch 128) two epochs are 22 steps and ended at 32% test accuracy. So the
auto budget is whole epochs, at least AUTO_MIN_EPOCHS of them and at least AUTO_MIN_STEPS steps; the step minimum
was chosen on load_digits (`python -m benchmarks.bench_digits --sweep …`, see the README), never on the synthetic
set, where 2 epochs are 156 steps anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TrainConfig

AUTO_MIN_EPOCHS = 2
AUTO_MIN_STEPS = 120


@dataclass(frozen=True)
class Budget:
    steps: int
    steps_per_epoch: int
    train_images: int
    reason: str  # "auto budget: 121 steps = 11 epochs of 1,437 images (at least 2 epochs and 120 steps)"


def steps_per_epoch(config: TrainConfig, train_size: int) -> int:
    """Full batches an epoch (the remainder of the shuffled images is left for the next epoch's order)."""
    return max(1, train_size // max(1, min(config.batch_size, train_size)))


def run_budget(config: TrainConfig, train_size: int) -> Budget:
    """The run's step budget on `train_size` training images, and how it was chosen."""
    per_epoch = steps_per_epoch(config, train_size)
    if config.max_steps:
        return Budget(config.max_steps, per_epoch, train_size, f"budget {config.max_steps:,} steps (set by the user)")
    if config.epochs:
        steps = config.epochs * per_epoch
        return Budget(steps, per_epoch, train_size, f"budget {steps:,} steps = {config.epochs:,} epochs of "
                                                    f"{train_size:,} images (set by the user)")
    epochs = max(AUTO_MIN_EPOCHS, math.ceil(AUTO_MIN_STEPS / per_epoch))
    steps = epochs * per_epoch
    return Budget(steps, per_epoch, train_size,
                  f"auto budget: {steps:,} steps = {epochs:,} epochs of {train_size:,} images (at least "
                  f"{AUTO_MIN_EPOCHS} epochs and {AUTO_MIN_STEPS} steps)")


def total_steps(config: TrainConfig, train_size: int) -> int:
    return run_budget(config, train_size).steps
