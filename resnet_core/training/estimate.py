"""How long a training run will take on this machine, from a few of its own steps timed here and now.

`time_run` builds the run's model on its own data, times TIMED_STEPS optimizer steps after one warm-up step
and one evaluation of up to EVAL_SAMPLE of the run's test images, and scales them to the run: steps × median
step time + evaluations × evaluation time per image × test images (the trainer evaluates at each epoch's end
and at the end of the budget). `time_runs` times several runs in turns, so that a change in the machine's load
touches them alike. Model building, data loading and the probes are not included, and the page says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F

from ..data.transforms import normalize
from .budget import steps_per_epoch, total_steps
from .config import TrainConfig
from .engine import build_seeded_model, evaluate, load_data, make_optimizer, model_spec
from .hardware import torch_threads

TIMED_STEPS = 3  # after one warm-up step (the first pays for allocation)
EVAL_SAMPLE = 256  # test images timed; an evaluation's time grows with the number of images


@dataclass(frozen=True)
class RunEstimate:
    step_seconds: float  # one optimizer step, measured
    eval_seconds: float  # one evaluation on the run's test images (timed on up to EVAL_SAMPLE of them)
    steps: int
    evaluations: int
    seconds: float  # steps × step_seconds + evaluations × eval_seconds


def time_run(config: TrainConfig, threads: int | None = None) -> RunEstimate:
    """Time `config`'s own step and evaluation with `threads` torch threads (None: as now) and scale them."""
    return time_runs({"run": config}, threads)["run"]


def time_runs(configs: Mapping[str, TrainConfig], threads: int | None = None) -> dict[str, RunEstimate]:
    """`time_run` for several runs, their steps timed in turns (a, b, c, a, b, c, …) so that a change in the
    machine's load while timing touches every run alike and their estimates stay comparable."""
    configs = {name: config.validate() for name, config in configs.items()}
    with torch_threads(threads):
        timers = {name: _StepTimer(config) for name, config in configs.items()}
        for _ in range(1 + TIMED_STEPS):
            for timer in timers.values():
                timer.step()
        return {name: timer.estimate() for name, timer in timers.items()}


class _StepTimer:
    """One run's model, optimizer and first batch, ready to time its training steps and an evaluation."""

    def __init__(self, config: TrainConfig) -> None:
        self.config, self.data = config, load_data(config)
        self.model = build_seeded_model(model_spec(config, self.data), config.seed).train()
        self.optimizer = make_optimizer(config, self.model)
        batch = min(config.batch_size, len(self.data.train_labels))
        self.x = normalize(self.data.train_images[:batch], self.data.mean, self.data.std)
        self.y = self.data.train_labels[:batch]
        self.durations: list[float] = []

    def step(self) -> None:
        tick = time.perf_counter()
        loss = F.cross_entropy(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.durations.append(time.perf_counter() - tick)

    def estimate(self) -> RunEstimate:
        config, data = self.config, self.data
        train_size = len(data.train_labels)
        steps, per_epoch = total_steps(config, train_size), steps_per_epoch(config, train_size)
        evaluations = steps // per_epoch + (steps % per_epoch != 0)
        timed_steps = sorted(self.durations[1:])  # the first step pays for allocation
        step_seconds = timed_steps[len(timed_steps) // 2]  # their median
        test_images = min(config.test_subset or len(data.test_labels), len(data.test_labels))
        timed = evaluate(self.model, data, batch_size=max(256, config.batch_size),
                         limit=min(EVAL_SAMPLE, test_images))
        eval_seconds = timed.seconds * test_images / len(timed.labels)
        seconds = steps * step_seconds + evaluations * eval_seconds
        return RunEstimate(step_seconds, eval_seconds, steps, evaluations, seconds)
