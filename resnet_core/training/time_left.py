"""A running run's time left, from what it has measured of itself: the pace of its latest steps, and each kind of
work outside a plain step (probe steps, evaluations, checkpoints) priced per occurrence as this run measured it.

The pace follows the shared machine's load (the latest half of the steps); probe steps and the forward passes are
priced by their measured share of the step time, so a load change moves every figure alike. A one-off cost, such as
auto precision's measurement after step 1, is outside the steps and never enters the pace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Tally:
    """A run's cumulative timings at one step, this process's own."""

    step: int = 0
    train_seconds: float = 0.0  # every optimizer step
    probe_steps: int = 0
    probe_seconds: float = 0.0  # the steps that also recorded probes
    forward_seconds: float = 0.0  # the forward passes and losses within the steps

    @property
    def plain_steps(self) -> int:
        return self.step - self.probe_steps

    @property
    def plain_seconds(self) -> float:
        return self.train_seconds - self.probe_seconds


@dataclass(frozen=True)
class Plan:
    """What a run does in all: its steps and the periodic work among them."""

    total: int
    steps_per_epoch: int
    probe_every: int  # 0: no probes
    checkpoint_every: int | None  # None: no checkpoints are written
    batch: int  # images per step
    test_images: int  # per evaluation


def multiples(every: int, low: int, high: int) -> int:
    """How many multiples of `every` lie in (low, high]."""
    return high // every - low // every if every > 0 and high > low else 0


def evaluations_left(step: int, plan: Plan) -> int:
    """Evaluations still to come once step `step` is trained (its epoch's, if it ends one, comes after its record):
    each epoch's end and the budget's end."""
    per = plan.steps_per_epoch
    return multiples(per, step - 1, plan.total) + (plan.total % per != 0 and step <= plan.total)


def checkpoints_left(step: int, plan: Plan) -> int:
    """Checkpoints still to come: every `checkpoint_every` steps (this one's included), except at an epoch's or the
    budget's end, where one follows the evaluation instead."""
    every, per, total = plan.checkpoint_every, plan.steps_per_epoch, plan.total
    if every is None:
        return 0
    periodic = multiples(every, step - 1, total) - multiples(math.lcm(every, per), step - 1, total)
    at_budget_end = total % every == 0 and total % per != 0 and step <= total
    return periodic - at_budget_end + evaluations_left(step, plan)


def probe_steps_left(step: int, plan: Plan) -> int:
    return multiples(plan.probe_every, step, plan.total)


def plain_pace(history: Sequence[Tally], now: Tally) -> float:
    """Seconds per step without probes, over the latest half of the steps (a shared machine's load changes; the
    first step pays for allocation). `history`: the tallies at earlier train records."""
    earlier = [t for t in history if t.step <= now.step / 2] or [t for t in history if t.step < now.step]
    since = earlier[-1] if earlier else Tally()
    steps = now.plain_steps - since.plain_steps
    if steps > 0:
        return (now.plain_seconds - since.plain_seconds) / steps
    return now.train_seconds / max(1, now.step)  # only probe steps so far


def probe_ratio(first: Tally, now: Tally) -> float:
    """A probe step's time over a plain step's, both measured after `first` (step 1's tally: it pays for
    allocation); 1 before a probe step is measured."""
    plain = (now.plain_seconds - first.plain_seconds) / max(1, now.plain_steps - first.plain_steps)
    probe = (now.probe_seconds - first.probe_seconds) / max(1, now.probe_steps - first.probe_steps)
    return _ratio(probe, plain)


def seconds_left(history: Sequence[Tally], now: Tally, plan: Plan, eval_seconds: float | None = None,
                 checkpoint_seconds: float | None = None) -> float:
    """The time left after `now`: plain and probe steps at the latest pace, evaluations at the last one's measured
    time (before one, the test images at the forward time the steps measured per image), checkpoints at their
    measured mean (none measured: not counted)."""
    pace = plain_pace(history, now)
    probe_pace = pace * probe_ratio(history[0] if history else now, now)
    if eval_seconds is None:
        forward_per_step = pace * _ratio(now.forward_seconds, now.train_seconds)
        eval_seconds = forward_per_step * plan.test_images / plan.batch
    probes = probe_steps_left(now.step, plan)
    return ((plan.total - now.step - probes) * pace + probes * probe_pace
            + evaluations_left(now.step, plan) * eval_seconds
            + checkpoints_left(now.step, plan) * (checkpoint_seconds or 0.0))


def _ratio(part: float, whole: float) -> float:
    """part / whole, or 1 before both are measured."""
    return part / whole if part > 0 and whole > 0 else 1.0
