"""How far off are the time estimates? Real short runs through the job runner, estimated against actual.

The runs: the degradation experiment's four nets (its defaults but --steps each) as batch jobs, then --train runs
of the Train page's defaults (resnet20 on the synthetic set, the auto budget), one after another on 2 threads.
Three estimates are scored, each as estimated / actual − 1:
- running, at 10% and 50% of a run: the time left its train record said (measured on its own steps), against the
  time that was left (each run's `estimates.json`, runs/estimate_log.py); the issue's goal is within ±25% at 10%;
- queued, learned: when the net before it had trained 10%, a queued net's run time scaled from that net's measured
  pace by their mult-adds (runs/forecast.py), against its actual run time (its final record's seconds);
- queued, prior: the page's "Expected time" before Start (training/estimate.py: a few steps timed), against the same.
Printed: each run's figures, then the median and 90th percentile of the absolute errors, with load averages.

Run from the repo root: .venv/bin/python -m benchmarks.bench_estimates [--steps 200] [--train 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from resnet_core.experiments import degradation
from resnet_core.runs.estimate_log import read_estimates
from resnet_core.runs.forecast import measured_rate, scaled
from resnet_core.runs.runner import Job, JobRunner
from resnet_core.runs.scheduler import Priority
from resnet_core.training.config import TrainConfig
from resnet_core.training.estimate import time_runs
from resnet_core.training.hardware import describe_cpu


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def learned_forecasts(jobs: dict[str, Job]) -> dict[str, float]:
    """Each queued job's run time, scaled from the pace of the job before it once that one has trained 10%."""
    forecasts: dict[str, float] = {}
    names = list(jobs)
    while not all(job.done for job in jobs.values()):
        for before, name in zip(names, names[1:]):
            snap = jobs[before].snapshot()
            if name not in forecasts and snap.total_steps and snap.step >= 0.1 * snap.total_steps:
                forecasts[name] = scaled(jobs[name].config, measured_rate(snap.config, snap.records)).seconds
        time.sleep(0.2)
    return forecasts


def percentiles(errors: list[float]) -> str:
    absolute = sorted(abs(e) for e in errors)
    p90 = absolute[min(len(absolute) - 1, round(0.9 * (len(absolute) - 1)))]
    return f"median {statistics.median(absolute):.0%}, p90 {p90:.0%} absolute error over {len(absolute)} runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps of each degradation net")
    parser.add_argument("--train", type=int, default=2, help="Train-page runs after the nets")
    args = parser.parse_args()
    os.environ.setdefault("RESNET_EXPLORER_RUNS", tempfile.mkdtemp(prefix="bench-estimates-runs-"))
    print(f"CPU: {describe_cpu()}; {load()}", flush=True)
    config = degradation.DegradationConfig(steps=args.steps)
    runner = JobRunner(max_concurrent=1)
    priors = {name: e.seconds for name, e in time_runs(config.train_configs(), runner.threads_per_run).items()}
    print(f"prior (timed before the start): {', '.join(f'{n} {s:.0f} s' for n, s in priors.items())}; {load()}")
    _, nets = degradation.start(config, runner, owner="bench")
    for seed in range(args.train):
        nets[f"train{seed}"] = runner.submit(TrainConfig(seed=seed), owner="bench", priority=Priority.BATCH)  # after
    learned = learned_forecasts(nets)
    scores: dict[str, list[float]] = {"running at 10%": [], "running at 50%": [], "queued, learned": [],
                                      "queued, prior": []}
    for name, job in nets.items():
        snap = job.snapshot()
        actual = snap.final.seconds
        marks = {m["at"]: m for m in read_estimates(snap.run_dir)["marks"]}
        line = [f"{name}: {actual:.1f} s"]
        for at in (0.1, 0.5):
            scores[f"running at {at:.0%}"].append(marks[at]["error"])
            line.append(f"at {at:.0%} {marks[at]['eta_sec']:.1f} s left of {marks[at]['actual_sec']:.1f} "
                        f"({marks[at]['error']:+.0%})")
        for kind, forecast in (("learned", learned.get(name)), ("prior", priors.get(name))):
            if forecast is not None:
                scores[f"queued, {kind}"].append(forecast / actual - 1)
                line.append(f"queued {kind} {forecast:.1f} s ({forecast / actual - 1:+.0%})")
        print("; ".join(line) + f"; {load()}", flush=True)
    print(f"\n{load()}")
    for kind, errors in scores.items():
        print(f"{kind}: {percentiles(errors)}" if errors else f"{kind}: no runs")


if __name__ == "__main__":
    main()
