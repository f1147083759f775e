"""Goal: on real handwritten digits nobody tuned to, the default `train` run (its auto budget) reaches >= 97% test
accuracy in <= 1/2 the whole-process time of the classic recipe at the same number of epochs.

The digits are scikit-learn's `load_digits` (1,797 real 8x8 digits from 43 writers, shipped with the
package, so it works offline), written as an ImageFolder with a fixed stratified 80/20 train/test split.
Every command runs as a user runs it, as a whole process, timed from the outside (imports included):

- ours, default settings (the auto budget; auto augmentation: crop, no flip, for digits; auto precision, measured
  on the first run on a machine and remembered in the user's cache after it: each line says which);
- with --variants: ours with the flip forced on (--augment crop+flip), and with no augmentation;
- the classic tutorial recipe (benchmarks/classic_recipe.py: PIL + transforms + DataLoader, fp32, lr 0.1) for as
  many epochs as our default run trained.

    .venv/bin/python -m benchmarks.bench_digits [--epochs N] [--repeats 1] [--variants]
    .venv/bin/python -m benchmarks.bench_digits --sweep 33,55,77,99,121,154 [--seeds 0,1,2] [--precision fp32]
    .venv/bin/python -m benchmarks.bench_digits --sweep 121 --extra "--image-size 32 --pad 4"

--sweep trains the default recipe at each step budget and seed (where the auto budget's minimum of steps comes
from: training/budget.py); --extra adds `train` options to every run of the sweep (the side and padding an image
folder trained at before training/image_side.py: 32×32 with 4 pixels).

Needs scikit-learn (requirements-dev.txt). The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from resnet_core.training.hardware import describe_cpu

ROOT = Path(__file__).resolve().parent.parent


def write_digits(folder: Path, seed: int = 0) -> tuple[int, int]:
    """load_digits as folder/{train,test}/<digit>/<n>.png (0..16 scaled to 0..255), 80/20 per class."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = [0, 0]
    for label in range(10):
        index = rng.permutation(np.flatnonzero(digits.target == label))
        cut = int(round(0.8 * len(index)))
        for split, part in (("train", index[:cut]), ("test", index[cut:])):
            out = folder / split / str(label)
            out.mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray((digits.images[i] * 255 / 16).round().astype(np.uint8)).save(out / f"{i}.png")
            counts[split == "test"] += len(part)
    return counts[0], counts[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[dict, float]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), seconds


def sweep(budgets: list[int], seeds: list[int], precision: str, extra: list[str]) -> None:
    """The default recipe at each step budget and seed, whole processes: where the auto budget's minimum comes from."""
    print(f"CPU: {describe_cpu()}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "digits"
        train_n, test_n = write_digits(data)
        print(f"scikit-learn load_digits as an ImageFolder: {train_n} train, {test_n} test images; precision "
              f"{precision}; seeds {seeds}; options {' '.join(extra) or 'the defaults'}")
        env = dict(os.environ, RESNET_EXPLORER_RUNS=str(Path(tmp) / "runs"))
        for steps in budgets:
            accs = []
            for seed in seeds:
                cmd = [sys.executable, "-m", "resnet_core", "train", "resnet20", "--dataset", "imagefolder",
                       "--data-dir", str(data), "--steps", str(steps), "--seed", str(seed), "--precision",
                       precision, "--json", *extra]
                final, seconds = timed(cmd, env)
                accs.append(final["test_acc"])
                print(f"  {steps:4d} steps, seed {seed}: test accuracy {final['test_acc']:.2%}, whole process "
                      f"{seconds:5.1f} s, load average {os.getloadavg()[0]:.2f}", flush=True)
            print(f"{steps:4d} steps: min {min(accs):.2%}, mean {np.mean(accs):.2%} over {len(seeds)} seed(s)",
                  flush=True)


def compare(epochs: int | None, repeats: int, variants: bool) -> None:
    """The default `train` (and, with `variants`, its augmentation variants) against the classic recipe at the same
    number of epochs, each a whole process."""
    print(f"CPU: {describe_cpu()}; load average {os.getloadavg()[0]:.2f}")
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "digits"
        train_n, test_n = write_digits(data)
        print(f"scikit-learn load_digits as an ImageFolder: {train_n} train, {test_n} test images (8x8, grey)")
        env = dict(os.environ, RESNET_EXPLORER_RUNS=str(Path(tmp) / "runs"))
        ours = [sys.executable, "-m", "resnet_core", "train", "resnet20", "--dataset", "imagefolder",
                "--data-dir", str(data), "--json", *(["--epochs", str(epochs)] if epochs else [])]
        commands = {"ours, default (auto)": ours}
        if variants:
            commands |= {"ours, --augment crop+flip": [*ours, "--augment", "crop+flip"],
                         "ours, --augment none": [*ours, "--augment", "none"]}
        for _ in range(repeats):
            for name, cmd in commands.items():
                final, seconds = timed(cmd, env)
                results.setdefault(name, []).append((final["test_acc"], seconds))
                epochs = epochs or round(final["epochs"])  # the classic recipe gets the default's budget
                print(f"  {name:<28} test accuracy {final['test_acc']:.2%}  whole process {seconds:6.1f} s; "
                      f"{final['budget']}; precision {final['precision']} ({final['precision_reason']}); augment "
                      f"{final['augment']}; load average {os.getloadavg()[0]:.2f}", flush=True)
            classic = [sys.executable, "-m", "benchmarks.classic_recipe", str(data), "--epochs", str(epochs)]
            final, seconds = timed(classic, env)
            results.setdefault("classic recipe", []).append((final["test_acc"], seconds))
            print(f"  {'classic recipe':<28} test accuracy {final['test_acc']:.2%}  whole process {seconds:6.1f} s; "
                  f"{epochs} epochs; load average {os.getloadavg()[0]:.2f}", flush=True)
    summary(results, epochs, repeats)


def summary(results: dict[str, list[tuple[float, float]]], epochs: int, repeats: int) -> None:
    classic = np.median([s for _, s in results["classic recipe"]])
    print(f"\n{epochs} epochs, medians over {repeats} repeat(s); load average now {os.getloadavg()[0]:.2f}")
    for name, rows in results.items():
        acc, seconds = np.median([a for a, _ in rows]), np.median([s for _, s in rows])
        print(f"  {name:<28} {acc:7.2%}  {seconds:6.1f} s  ({seconds / classic:.2f}x the classic recipe's time)")
    default_acc = np.median([a for a, _ in results["ours, default (auto)"]])
    default_s = np.median([s for _, s in results["ours, default (auto)"]])
    print(f"goal >= 97% test accuracy: {'met' if default_acc >= 0.97 else 'MISSED'} ({default_acc:.2%}); "
          f"goal <= 1/2 the classic recipe's time: {'met' if default_s <= classic / 2 else 'MISSED'} "
          f"({default_s / classic:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, help="every run's epochs (default: ours at its auto budget, the "
                                                   "classic recipe at as many epochs)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", action="store_true", help="also --augment crop+flip and --augment none")
    parser.add_argument("--sweep", help="comma-separated step budgets: accuracy of the default recipe at each")
    parser.add_argument("--seeds", default="0,1,2", help="with --sweep: comma-separated seeds")
    parser.add_argument("--precision", default="fp32", help="with --sweep: the precision of every run")
    parser.add_argument("--extra", default="", help="with --sweep: more train options for every run, one string")
    args = parser.parse_args()
    if args.sweep:
        sweep([int(s) for s in args.sweep.split(",")], [int(s) for s in args.seeds.split(",")], args.precision,
              shlex.split(args.extra))
    else:
        compare(args.epochs, args.repeats, args.variants)


if __name__ == "__main__":
    main()
