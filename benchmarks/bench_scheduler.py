"""An interactive run started behind a 4-net degradation job: pause the batch job, or share the cores?

Each repeat starts the degradation experiment's four nets (its defaults: 600 steps each, fp32) as batch jobs, waits
until the first net has trained --warm steps, then starts an interactive run (the Train page's defaults, with a
--steps budget) and measures, from its submission:
- first point: seconds to its first curve point (its first train record, step 1), the issue's goal being <= 5 s;
- its training images/s over the run (the final record's), and the batch job's images/s meanwhile.

Two ways, alternated so that a change in the machine's load touches both alike:
- pause: the runner as it is (one run at a time on 2 cores, both threads each): the batch net pauses at its next
  block, the interactive run trains alone, the net resumes from its checkpoint afterwards;
- share: the batch nets in one runner and the interactive run in another, both at once with one thread each (the
  threads split, torch.set_num_threads per job).
The precision verdict is measured once before the repeats (a warm-up run alone, whose first point is printed), so
the repeats find it remembered as a user's second run does. Every line carries the 1-minute load average.

Run from the repo root: .venv/bin/python -m benchmarks.bench_scheduler [--repeats 3] [--steps 60] [--warm 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from resnet_core.experiments import degradation
from resnet_core.runs.runner import Job, JobRunner
from resnet_core.training.config import TrainConfig
from resnet_core.training.hardware import describe_cpu
from resnet_core.training.records import TrainRecord


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def first_point(job: Job, timeout: float = 600.0) -> float:
    """Seconds from now until `job` has its first train record."""
    tick = time.perf_counter()
    while not job.snapshot().of_kind(TrainRecord):
        if job.done or time.perf_counter() - tick > timeout:
            raise RuntimeError(f"the interactive run ended or stalled before its first point: {job.snapshot().message}")
        time.sleep(0.005)
    return time.perf_counter() - tick


def batch_images(jobs: dict[str, Job]) -> int:
    """Images the batch nets have trained so far (their latest train records)."""
    return sum(records[-1].images for job in jobs.values() if (records := job.snapshot().of_kind(TrainRecord)))


def one_repeat(mode: str, steps: int, warm: int) -> dict[str, float]:
    batch_runner = JobRunner(max_concurrent=1, threads_per_run=1 if mode == "share" else 2)
    interactive_runner = JobRunner(max_concurrent=1, threads_per_run=1) if mode == "share" else batch_runner
    _, nets = degradation.start(degradation.DegradationConfig(), batch_runner, owner="batch")
    first_net = next(iter(nets.values()))
    while first_net.snapshot().step < warm:
        time.sleep(0.05)
    before = batch_images(nets)
    tick = time.perf_counter()
    job = interactive_runner.submit(TrainConfig(max_steps=steps), owner="interactive")
    first = first_point(job)
    job.wait()
    seconds = time.perf_counter() - tick
    batch_rate = (batch_images(nets) - before) / seconds
    for net in nets.values():
        net.stop()
    for net in nets.values():
        net.wait()
    return dict(first=first, interactive=job.snapshot().final.images_per_sec, batch=batch_rate, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="the interactive run's budget")
    parser.add_argument("--warm", type=int, default=20, help="steps of the first net before the interactive run")
    args = parser.parse_args()
    os.environ.setdefault("RESNET_EXPLORER_RUNS", tempfile.mkdtemp(prefix="bench-scheduler-runs-"))
    os.environ.setdefault("RESNET_EXPLORER_CACHE", tempfile.mkdtemp(prefix="bench-scheduler-cache-"))
    print(f"CPU: {describe_cpu()}; {load()}", flush=True)
    alone = JobRunner(max_concurrent=1).submit(TrainConfig(max_steps=args.steps), owner="warm-up")
    print(f"warm-up, alone (precision measured): first point {first_point(alone):.2f} s; {load()}", flush=True)
    alone.wait()
    results: dict[str, list[dict[str, float]]] = {"pause": [], "share": []}
    for repeat in range(args.repeats):
        for mode in results:
            r = one_repeat(mode, args.steps, args.warm)
            results[mode].append(r)
            print(f"{mode:5} #{repeat + 1}: first point {r['first']:.2f} s, interactive {r['interactive']:.0f} img/s, "
                  f"batch meanwhile {r['batch']:.0f} img/s, {r['seconds']:.1f} s; {load()}", flush=True)
    print(f"\nmedians over {args.repeats} repeat(s); {load()}")
    for mode, rows in results.items():
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print(f"{mode:5}: first point {med['first']:.2f} s (goal <= 5 s), interactive {med['interactive']:.0f} img/s, "
              f"batch meanwhile {med['batch']:.0f} img/s")
    ratio = (statistics.median(r["interactive"] for r in results["pause"])
             / statistics.median(r["interactive"] for r in results["share"]))
    print(f"interactive images/s, pause / share: {ratio:.2f}x")


if __name__ == "__main__":
    main()
