"""Who runs next on one machine: interactive runs (the Train page) go ahead of batch experiments (degradation nets,
seed sets, fine-tune strategies), and a batch job in an interactive run's way is paused.

Pausing, not sharing the cores: on this 2-core machine an interactive run behind a 4-net degradation job showed its
first curve point sooner and trained faster with the batch job paused than with the two sharing the cores at one
thread each (`benchmarks/bench_scheduler.py`, figures in the README). A paused job stops at a step boundary,
keeps its checkpoint, goes back to the front of the batch jobs, and resumes bit-identically (runs/resume.py).

The functions here are the policy alone, on plain values, so the runner (runner.py) stays about threads and locks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from enum import StrEnum


class Priority(StrEnum):
    INTERACTIVE = "interactive"  # a run a user started and is watching: the Train page
    BATCH = "batch"  # one of many runs of an experiment, started together


PRIORITIES = tuple(Priority)


def queue_key(priority: Priority, seq: int) -> tuple[int, int]:
    """Where a job stands in the queue: interactive ones first, then by submission (`seq`), so a paused batch job
    goes back ahead of the batch jobs submitted after it."""
    return PRIORITIES.index(priority), seq


def to_pause(running: Sequence[tuple[Priority, int]], head: Priority) -> int | None:
    """Every slot taken, the index in `running` (priority, seq of each running job not pausing already) of the
    batch job to pause for the queue's `head`: the latest submitted, so the oldest batch work ends first; None when
    the head is a batch job or no batch job runs."""
    if head != Priority.INTERACTIVE:
        return None
    batch = [(seq, i) for i, (priority, seq) in enumerate(running) if priority == Priority.BATCH]
    return max(batch)[1] if batch else None


def blocks(running: Priority, queued: Priority) -> bool:
    """Whether a running job holds up a queued one: a batch job never holds up an interactive run (it is paused)."""
    return not (running == Priority.BATCH and queued == Priority.INTERACTIVE)


def wait_before(running_left: Iterable[float], ahead: Iterable[float], slots: int) -> float:
    """Seconds until a queued job starts, with `slots` runs at a time: the running jobs in its way end after
    `running_left` seconds each, then each job ahead of it in the queue (`ahead`: their run times, in queue order)
    takes the first slot to come free."""
    held = sorted(running_left)
    # a slot nobody holds is free now; with more running than slots (a paused job winding down), only the
    # latest `slots` ends free a slot
    free = [0.0] * (slots - len(held)) + held if len(held) < slots else held[len(held) - slots:]
    heapq.heapify(free)
    for seconds in ahead:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return free[0]
