"""How many torch threads a run of one process takes when it leaves `threads` open: torch's default (one per core),
less one for each core that other processes held while the run got ready (data, model), read from /proc/stat.

Why (cpu_share.py): a step waits for its slowest thread, and a thread sharing its core with another busy process
runs only in that process's time slices. Measured with `train resnet20 --steps 50` beside a spinning process: on a
Zen 4 in bf16, 2 threads kept 35% of their quiet speed and 1 thread 68% (845 against 1,238 images/s quiet on 2);
on an AVX2 EPYC in fp32, 1 thread kept as much as 2. The choice is made once, before step 1, and stored in the
run's settings, so its steps all run alike and a resume goes on with the same count (results depend on it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .config import cores
from .cpu_share import StepClock

WINDOW_SECONDS = 0.25  # the shortest reading: 25 clock ticks a core at Linux's 100 Hz
HELD = 0.75  # other processes' average use from which a core counts as held (a spinning process reads 0.9–1.0)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str


def choose_threads(default: int, cores: int, others: float | None) -> ThreadChoice:
    """`default` threads (torch's), less the cores other processes held (`others`: the cores they used on average;
    None where unread), keeping at least one."""
    if others is None:
        return ThreadChoice(default, f"auto: {default} (torch's default; other processes' load unread here)")
    held = math.floor(others + 1 - HELD)
    threads = max(1, min(default, cores - held))
    if threads == default:
        return ThreadChoice(default, f"auto: {default}, torch's default (other processes used {others:.1f} of "
                                     f"{cores} cores as the run got ready)")
    return ThreadChoice(threads, f"auto: {threads}, not {default}: other processes used {others:.1f} of {cores} "
                                 "cores as the run got ready, and a step waits for a thread that shares its core")


class LoadReading:
    """Other processes' CPU use from construction to `others()` (cpu_share.StepClock: the machine's CPU time from
    /proc/stat less this process's), over at least WINDOW_SECONDS of wall time (waiting out the rest if less passed)."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.clock = StepClock()
        self.clock.start()

    def others(self) -> float | None:
        time.sleep(max(0.0, WINDOW_SECONDS - (time.perf_counter() - self.began)))
        self.clock.stop()
        return self.clock.reading(torch.get_num_threads()).others_cores


def run_threads(reading: LoadReading) -> ThreadChoice:
    """The thread count for a run whose reading began as it started getting ready."""
    return choose_threads(torch.get_num_threads(), cores(), reading.others())
