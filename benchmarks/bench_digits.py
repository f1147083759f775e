"""Goal: on real handwritten digits nobody tuned to, the default `train` run (2 epochs) reaches >= 97% test
accuracy in <= 1/2 the classic recipe's whole-process time.

The digits are scikit-learn's `load_digits` (1,797 real 8x8 digits from 43 writers, shipped with the
package, so it works offline), written as an ImageFolder with a fixed stratified 80/20 train/test split.
Every command runs as a user runs it, as a whole process, timed from the outside (imports included):

- ours, default settings (auto augmentation: crop, no flip, for digits; auto precision);
- ours with the flip forced on (--augment crop+flip): what the old default cost on digits;
- ours with no augmentation;
- the classic tutorial recipe (benchmarks/classic_recipe.py: PIL + transforms + DataLoader, fp32, lr 0.1).

    .venv/bin/python -m benchmarks.bench_digits [--epochs 2] [--repeats 1]

Needs scikit-learn (requirements-dev.txt). The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from resnet_core.hardware import describe_cpu

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"CPU: {describe_cpu()}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data, runs = Path(tmp) / "digits", Path(tmp) / "runs"
        train_n, test_n = write_digits(data)
        print(f"scikit-learn load_digits as an ImageFolder: {train_n} train, {test_n} test images (8x8, grey)")
        env = dict(os.environ, RESNET_EXPLORER_RUNS=str(runs))
        ours = [sys.executable, "-m", "resnet_core", "train", "resnet20", "--dataset", "imagefolder",
                "--data-dir", str(data), "--epochs", str(args.epochs), "--json"]
        commands = {
            "ours, default (auto)": ours,
            "ours, --augment crop+flip": [*ours, "--augment", "crop+flip"],
            "ours, --augment none": [*ours, "--augment", "none"],
            "classic recipe": [sys.executable, "-m", "benchmarks.classic_recipe", str(data), "--epochs",
                               str(args.epochs)],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                final, seconds = timed(cmd, env)
                results[name].append((final["test_acc"], seconds))
                extra = f", precision {final['precision']}, augment {final['augment']}" if "precision" in final else ""
                print(f"  {name:<28} test accuracy {final['test_acc']:.2%}  whole process {seconds:6.1f} s{extra}",
                      flush=True)
    classic = np.median([s for _, s in results["classic recipe"]])
    print(f"\n{args.epochs} epochs, medians over {args.repeats} repeat(s); load average now {os.getloadavg()[0]:.2f}")
    for name, rows in results.items():
        acc, seconds = np.median([a for a, _ in rows]), np.median([s for _, s in rows])
        print(f"  {name:<28} {acc:7.2%}  {seconds:6.1f} s  ({seconds / classic:.2f}x the classic recipe's time)")
    default_acc = np.median([a for a, _ in results["ours, default (auto)"]])
    default_s = np.median([s for _, s in results["ours, default (auto)"]])
    print(f"goal >= 97% test accuracy: {'met' if default_acc >= 0.97 else 'MISSED'} ({default_acc:.2%}); "
          f"goal <= 1/2 the classic recipe's time: {'met' if default_s <= classic / 2 else 'MISSED'} "
          f"({default_s / classic:.2f}x)")


if __name__ == "__main__":
    main()
