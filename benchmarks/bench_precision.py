"""bf16 against fp32 on real data nobody tuned to: the accuracy guard of precision "auto", and its speed here.

scikit-learn's `load_digits` (1,797 real 8x8 digits, written as an ImageFolder by bench_digits.write_digits: 1,438
train / 359 test images, so one test image is 0.28 points) trains with the default recipe at the auto budget
(121 steps), once in fp32 and once in bf16 autocast for every seed, the two interleaved so that a change in the
machine's load touches both. It prints each seed's test accuracy, the mean gap (fp32 − bf16, in points) and whether
the guard holds (gap <= 0.5 points). The images/s it prints are no speed comparison: each switch of precision inside
one process makes oneDNN set its kernels up again, which costs bf16 seconds (bench_train compares the precisions'
speed, each in a fresh process). The seeds' trajectories part after the first rounding, so a
single seed's gap is mostly chance; the mean over seeds is what the guard uses.

    .venv/bin/python -m benchmarks.bench_precision [--models resnet20,resnet56] [--seeds 0,1,2] [--write]

--write records each model's result in resnet_core/training/bf16_guard.json under its size class (log2 of its
forward mult-adds per image), with the date, the CPU and the load average: the table precision "auto" reads. The
machine may be shared: the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_digits import write_digits
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import fit, load_data
from resnet_core.training.hardware import cpu_name, describe_cpu
from resnet_core.training.precision import GUARD_FILE, GUARD_POINTS, size_class


def run_model(model: str, data_dir: Path, seeds: list[int]) -> dict:
    """Every seed in fp32 and bf16: accuracies, images/s and the guard entry for the model's size class."""
    base = TrainConfig(model=model, dataset="imagefolder", data_dir=str(data_dir), probe_every=0)
    data = load_data(base)
    accs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    steps = 0
    for seed in seeds:
        for precision in ("fp32", "bf16"):
            result = fit(base.replace(seed=seed, precision=precision), data=data)
            accs[precision].append(result.final.test_acc)
            steps = result.final.steps
            print(f"  {model} seed {seed} {precision}: test accuracy {result.final.test_acc:.2%}, "
                  f"{result.final.images_per_sec:.0f} images/s, {result.final.seconds:.1f} s, "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
    fp32, bf16 = statistics.fmean(accs["fp32"]), statistics.fmean(accs["bf16"])
    gap = 100 * (fp32 - bf16)
    print(f"{model} (size class {size_class(base)}): fp32 {fp32:.2%}, bf16 {bf16:.2%} mean over {len(seeds)} seeds; "
          f"gap {gap:+.2f} points (guard <= {GUARD_POINTS}: {'holds' if gap <= GUARD_POINTS else 'FAILS'}); "
          f"per seed {', '.join(f'{100 * (a - b):+.2f}' for a, b in zip(accs['fp32'], accs['bf16']))}")
    return dict(size_class=size_class(base), model=model, data="load_digits", steps=steps, seeds=len(seeds),
                fp32_acc=round(fp32, 6), bf16_acc=round(bf16, 6), date=time.strftime("%Y-%m-%d"), cpu=cpu_name(),
                load=round(os.getloadavg()[0], 2))


def write_guards(entries: list[dict]) -> None:
    table = json.loads(GUARD_FILE.read_text(encoding="utf-8"))
    kept = [g for g in table.get("guards", []) if g.get("size_class") not in {e["size_class"] for e in entries}]
    table["guards"] = sorted(kept + entries, key=lambda g: g["size_class"])
    GUARD_FILE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} guard(s) to {GUARD_FILE}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--write", action="store_true", help="record the results in the guard table")
    args = parser.parse_args()
    print(f"CPU: {describe_cpu()}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "digits"
        train_n, test_n = write_digits(data_dir)
        print(f"load_digits: {train_n} train, {test_n} test images; default recipe at the auto budget")
        entries = [run_model(model, data_dir, [int(s) for s in args.seeds.split(",")])
                   for model in args.models.split(",")]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.write:
        write_guards(entries)


if __name__ == "__main__":
    main()
