"""Goal: `inspect` on a 32×32 image for ResNet-20 in <= 0.5 s; on a 224×224 image for ResNet-50 in <= 3 s.

Two run folders are written with the run store (seeded weights: the time does not depend on their values), and a
PNG of each size. Timed, in this process: the whole `inspect RUN_DIR --image PNG --json` command (read the run,
load the weights, decode the image, one forward pass with the hooks, Grad-CAM, the JSON), best and median of
several; against a baseline measured in the same run: one plain forward pass of the same model (no_grad, no
hooks), the least any prediction costs. Also one `python -m resnet_core inspect` subprocess, wall clock, which adds
the interpreter's start and torch's import. The machine is shared: the load average is printed, and the in-process
figures are taken with all cores (--threads 2 here) and with one thread, the command's default (a busy machine
delays a parallel region's second thread; one thread does not wait for it).
Run from the repo root: .venv/bin/python -m benchmarks.bench_inspect [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from resnet_core.cli import main as cli
from resnet_core.data.synthetic import SYNTHETIC_CLASSES
from resnet_core.models.presets import resolve_spec
from resnet_core.models.resnet import ResNet
from resnet_core.runs.contract import DataFacts, RunConfig
from resnet_core.runs.store import RunWriter
from resnet_core.training.config import TrainConfig
from resnet_core.training.settings import resolve_settings

CASES = (("resnet20", 32, 0.5), ("resnet50", 224, 3.0))  # model, image side, goal in seconds


def write_run(root: Path, model: str, side: int) -> Path:
    config = TrainConfig(model=model, image_size=side)
    spec = resolve_spec(model).replace(num_classes=len(SYNTHETIC_CLASSES))
    facts = DataFacts("synthetic", "generated", list(SYNTHETIC_CLASSES), 3, side, 10_000, 2_000, [0.5] * 3,
                      [0.25] * 3)
    writer = RunWriter(root / model, RunConfig(config, spec, facts, resolve_settings(config)))
    torch.manual_seed(0)
    writer.save_weights(ResNet(spec))
    writer.close()
    return writer.path


def write_image(root: Path, side: int) -> Path:
    path = root / f"image{side}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def timed(repeats: int, fn, *args) -> list[float]:
    """fn(*args) once to warm up (first-call allocations), then `repeats` times: the sorted seconds."""
    fn(*args)
    seconds = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn(*args)
        seconds.append(time.perf_counter() - tick)
    return sorted(seconds)


def inspect_command(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(argv) == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    all_threads = torch.get_num_threads()
    print(f"load average before {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for model, side, goal in CASES:
            run_dir, image = write_run(root, model, side), write_image(root, side)
            argv = ["inspect", str(run_dir), "--image", str(image), "--json"]  # the command's default: one thread
            net, x = ResNet(resolve_spec(model).replace(num_classes=10)).eval(), torch.randn(1, 3, side, side)
            for threads in sorted({all_threads, 1}, reverse=True):
                ours = timed(args.repeats, inspect_command, [*argv, "--threads", str(threads)])
                with torch.no_grad():
                    forward = timed(args.repeats, net, x)
                best, median = ours[0], ours[len(ours) // 2]
                print(f"{model} on a {side}×{side} PNG, {threads} thread(s): inspect best {best:.3f} s, median "
                      f"{median:.3f} s of {args.repeats} [goal <= {goal:g} s: {'met' if median <= goal else 'MISSED'}]"
                      f"; one plain forward pass {forward[0]:.3f} s (inspect / forward {best / forward[0]:.1f}x)")
            torch.set_num_threads(all_threads)
            tick = time.perf_counter()
            subprocess.run([sys.executable, "-m", "resnet_core", *argv], check=True, capture_output=True)
            print(f"{model}: as a new process (interpreter, imports, inspect) {time.perf_counter() - tick:.2f} s")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
