"""How much CPU other processes took while a run's training steps ran here, and what to tell the user then.

A step with T OpenMP threads ends when its slowest thread does. When another process holds a core, the thread that
shares it runs only in its time slices and the whole step waits for it, so fewer threads keep more of the pace.
Measured (`train resnet20 --steps 50`, a spinning process as the busy core): on a Zen 4 in bf16, 2 threads kept
35% of their quiet speed, 1 thread 96%; on an AVX2 EPYC in fp32, 2 threads 101 against 159 images/s quiet (64%),
1 thread 111 busy. A run that leaves its threads open takes fewer when other processes hold cores as it starts
(thread_choice.py); a run's result depends on its thread count, so the count is not changed mid-run, and when the
load comes later (or the count was set) the run says so instead.
The process's own CPU share cannot tell this alone: a small model's steps leave threads idle between operations
(0.76 of 2 threads' time on a quiet machine, measured), so the other processes' CPU time is read from /proc/stat.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .config import cores

BUSY_CORES = 0.5  # other processes using at least this many cores on average, beside the run's threads ...


@dataclass(frozen=True)
class CpuShare:
    wall_seconds: float  # the training steps' wall time
    others_seconds: float | None  # CPU time other processes spent meanwhile (None where /proc/stat is not)
    threads: int  # torch threads the steps ran with
    cores: int

    @property
    def others_cores(self) -> float | None:
        """The cores other processes used on average while the steps ran."""
        if self.others_seconds is None or self.wall_seconds <= 0:
            return None
        return max(0.0, self.others_seconds / self.wall_seconds)

    def note(self) -> str:
        """"" unless other processes took cores the run's several threads needed (... and the two together
        asked for more cores than there are)."""
        others = self.others_cores
        if others is None or self.threads < 2 or others < BUSY_CORES or self.threads + others <= self.cores:
            return ""
        return (f"other processes used {others:.1f} of this machine's {self.cores} cores while the training steps "
                f"ran on {self.threads} threads, and each step waits for its slowest thread; on a machine this busy, "
                f"--threads {self.threads - 1} keeps more of the pace")


def machine_busy_seconds() -> float | None:
    """CPU seconds every process here has spent, from /proc/stat (Linux); None elsewhere."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


class StepClock:
    """Wall time, this process's CPU time and the machine's, summed over the timed steps."""

    def __init__(self) -> None:
        self.wall = self.own = 0.0
        self.machine: float | None = 0.0
        self._start = (0.0, 0.0, None)

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time(), machine_busy_seconds())

    def stop(self) -> None:
        wall, own, machine = self._start
        self.wall += time.perf_counter() - wall
        self.own += time.process_time() - own
        now = machine_busy_seconds()
        self.machine = None if now is None or machine is None or self.machine is None else \
            self.machine + now - machine

    def reading(self, threads: int) -> CpuShare:
        others = None if self.machine is None else self.machine - self.own
        return CpuShare(self.wall, others, threads, cores())
