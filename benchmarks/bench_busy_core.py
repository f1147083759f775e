"""Goal: with one core busy, a default `train` keeps at least 50% of its quiet images/s (issue 22).

The runs are the issue's own command, `python -m resnet_core train resnet20 --steps 50`, each a whole fresh process,
quiet and beside a process spinning on one core (`while True: pass`), with the threads left to auto (the default:
torch's count, less the cores other processes hold as the run gets ready) and with `--threads` set to torch's count
(the default before auto, the baseline), alternated in each round. images/s is the CLI's own figure (training steps
only; a first run's precision measurement is not in it), with its test accuracy. The load average is printed with
every run. With --digits the runs train on scikit-learn's `load_digits` (real digits nobody here made, written as an
ImageFolder by bench_digits) with the default's auto budget instead of the synthetic set's 50 steps.

Run from the repo root: .venv/bin/python -m benchmarks.bench_busy_core [--rounds 2] [--steps 50] [--digits]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.bench_digits import write_digits

ROOT = Path(__file__).resolve().parent.parent


def train(data: list[str], threads: int | None, busy: bool, runs: str) -> dict:
    """One `train resnet20 DATA` process; its final JSON object."""
    cmd = [sys.executable, "-m", "resnet_core", "train", "resnet20", *data, "--json"]
    cmd += ["--threads", str(threads)] if threads else []
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, RESNET_EXPLORER_RUNS=runs), check=True,
                              capture_output=True, text=True)
    finally:
        if spinner is not None:
            spinner.kill()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="the synthetic set's runs' steps")
    parser.add_argument("--digits", action="store_true", help="train on load_digits, on the default's auto budget")
    args = parser.parse_args()
    full = torch.get_num_threads()
    settings = {"auto": None, f"--threads {full}": full}
    rates: dict[tuple[str, bool], list[float]] = {(name, busy): [] for name in settings for busy in (False, True)}
    with tempfile.TemporaryDirectory() as tmp:
        runs, data = str(Path(tmp) / "runs"), ["--steps", str(args.steps)]
        if args.digits:
            write_digits(Path(tmp) / "digits")
            data = ["--dataset", "imagefolder", "--data-dir", str(Path(tmp) / "digits")]
        for round_ in range(args.rounds):
            for busy in (False, True):
                for name, threads in settings.items():
                    final = train(data, threads, busy, runs)
                    rates[name, busy].append(final["images_per_sec"])
                    print(f"round {round_ + 1}, {'one core busy' if busy else 'quiet'}, {name}: "
                          f"{final['images_per_sec']:.0f} images/s on {final['threads'] or threads} thread(s), "
                          f"precision {final['precision']}, test accuracy {final['test_acc']:.2%}; "
                          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in settings:
        quiet, busy = rates[name, False], rates[name, True]
        kept = sum(busy) / sum(quiet)
        print(f"{name}: quiet {', '.join(f'{r:.0f}' for r in quiet)}; one core busy "
              f"{', '.join(f'{r:.0f}' for r in busy)} images/s: {kept:.0%} kept (goal >= 50%)")


if __name__ == "__main__":
    main()
