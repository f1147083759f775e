"""How long a training run will take on this machine, from a few of its own steps timed here and now.

`time_run` builds the run's model on its own data, times TIMED_STEPS optimizer steps after one warm-up step
and one evaluation of up to EVAL_SAMPLE of the run's test images, and scales them to the run: steps × step time
+ evaluations × evaluation time per image × test images (the trainer evaluates at each epoch's end and at the
end of the budget). Model building, data loading and the probes are not included, and the page says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .data import normalize
from .train import build_seeded_model, evaluate, load_data, make_optimizer, model_spec, steps_per_epoch, total_steps

TIMED_STEPS = 2  # after one warm-up step (the first pays for allocation)
EVAL_SAMPLE = 256  # test images timed; an evaluation's time grows with the number of images


@dataclass(frozen=True)
class RunEstimate:
    step_seconds: float  # one optimizer step, measured
    eval_seconds: float  # one evaluation on the run's test images (timed on up to EVAL_SAMPLE of them)
    steps: int
    evaluations: int
    seconds: float  # steps × step_seconds + evaluations × eval_seconds

    def to_dict(self) -> dict:
        return asdict(self)


def time_run(config: TrainConfig, threads: int | None = None) -> RunEstimate:
    """Time `config`'s own step and evaluation with `threads` torch threads (None: as now) and scale them."""
    config = config.validate()
    data = load_data(config)
    train_size = len(data.train_labels)
    steps, per_epoch = total_steps(config, train_size), steps_per_epoch(config, train_size)
    evaluations = steps // per_epoch + (steps % per_epoch != 0)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = build_seeded_model(model_spec(config, data), config.seed).train()
        optimizer = make_optimizer(config, model)
        batch = min(config.batch_size, train_size)
        x = normalize(data.train_images[:batch], data.mean, data.std)
        y = data.train_labels[:batch]
        durations = []
        for _ in range(1 + TIMED_STEPS):
            tick = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            durations.append(time.perf_counter() - tick)
        step_seconds = sorted(durations[1:])[len(durations[1:]) // 2]  # the median of the timed steps
        test_images = min(config.test_subset or len(data.test_labels), len(data.test_labels))
        timed = evaluate(model, data, batch_size=max(256, config.batch_size), limit=min(EVAL_SAMPLE, test_images))
        eval_seconds = timed.seconds * test_images / len(timed.labels)
    finally:
        torch.set_num_threads(before)
    seconds = steps * step_seconds + evaluations * eval_seconds
    return RunEstimate(step_seconds, eval_seconds, steps, evaluations, seconds)
