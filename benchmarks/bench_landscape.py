"""Loss-surface speed: a 21×21 slice of ResNet-20 on 512 training images, against the naive per-point rebuild.

The measured way is `landscape.slice_model`: one model, its weights moved in place from point to point, the
subset normalised once, inference mode; it is timed on the whole grid (skip with --no-grid). The naive
baseline rebuilds the model at each point (ResNet(spec), load the trained state_dict, add α·d1 + β·d2) and
evaluates it with `train.evaluate`, which normalises the uint8 images batch by batch. The ratio is of seconds
per point on the first --naive-points points of the grid, the two ways interleaved point by point so that both
see the same load (the machine may be shared; the load average is printed), and their losses are compared.

With --pair PLAIN_RUN RESIDUAL_RUN it instead slices two stored runs (1-D, --points, --subset), prints each
one's time against the 60 s goal and the curvature at α = 0 of both.

Run from the repo root: .venv/bin/python -m benchmarks.bench_landscape [--run-dir RUN] [--points 21]
[--subset 512] [--naive-points 21] [--no-grid] [--pair PLAIN_RUN RESIDUAL_RUN]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

from resnet_core.experiments.landscape import (
    LandscapeConfig,
    curvature_text,
    filter_normalized_direction,
    grid_points,
    make_slicer,
    slice_model,
    slice_run,
    subset_indices,
)
from resnet_core.models.resnet import ResNet
from resnet_core.runs.execute import execute
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.runs.pairing import run_differences
from resnet_core.runs.store import read_run
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import evaluate

GOAL_SECONDS = 60.0


def interleaved(model: ResNet, data, config: LandscapeConfig, count: int) -> tuple[float, float, float]:
    """Seconds per point of the slicer and of the naive rebuild on the first `count` grid points, timed
    alternately, and the largest relative difference of their losses."""
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    slicer = make_slicer(model, data, config)
    generator = torch.Generator().manual_seed(config.seed)
    directions = [filter_normalized_direction(model, generator) for _ in range(config.dims)]
    pick = subset_indices(len(data.train_labels), config.subset, config.seed)
    images = data.train_images[pick]
    # evaluate() reads the test split: the subset goes there, as uint8, to be normalised per batch
    sliced = dataclasses.replace(data, test_images=images, test_labels=data.train_labels[pick])
    alphas, fast, naive, worst = config.alphas, 0.0, 0.0, 0.0
    for index in grid_points(config)[:count]:
        coords = [alphas[i] for i in index]
        start = time.perf_counter()
        loss = slicer.loss_at(coords)[0]
        fast += time.perf_counter() - start
        start = time.perf_counter()
        fresh = ResNet(model.spec)
        fresh.load_state_dict(trained)
        with torch.no_grad():
            for coord, dirs in zip(coords, directions):
                for p, d in zip(fresh.parameters(), dirs):
                    if d is not None:
                        p.add_(d, alpha=coord)
        naive_loss = evaluate(fresh, sliced, batch_size=config.batch_size).loss
        naive += time.perf_counter() - start
        worst = max(worst, abs(loss - naive_loss) / abs(naive_loss))
    slicer.restore()
    return fast / count, naive / count, worst


def train_resnet20(root: Path) -> Path:
    """A ResNet-20 trained briefly on the synthetic set at 32×32 (the slice's cost does not depend on how long)."""
    run_dir = root / "resnet20"
    execute(TrainConfig(model="resnet20", image_size=32, max_steps=100, batch_size=64, test_subset=500,
                        probe_every=0), run_dir=run_dir)
    return run_dir


def grid_benchmark(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else train_resnet20(Path(tmp))
        model, data = load_model(run_dir), load_run_data(run_dir)
        config = LandscapeConfig(points=args.points, dims=2, subset=args.subset).validate()
        print(f"model: {model.spec.depth}-layer {'residual' if model.spec.skip else 'plain'}, "
              f"{data.image_size}×{data.image_size} images; torch threads: {torch.get_num_threads()}")
        print(f"load average before: {os.getloadavg()}", flush=True)
        fast, naive, worst = interleaved(model, data, config, args.naive_points)
        print(f"interleaved on {args.naive_points} points of the {config.points}×{config.points} grid, "
              f"{config.subset} images: slicer {fast * 1e3:.1f} ms per point, naive rebuild {naive * 1e3:.1f} ms per "
              f"point; ratio naive / slicer {naive / fast:.2f}×; largest relative difference of the losses "
              f"{worst:.1e}", flush=True)
        if args.grid:
            result = slice_model(model, data, config, name=str(run_dir))
            print(f"slice_model, whole grid of {config.evaluations} points: {result.seconds:.1f} s "
                  f"({result.seconds / config.evaluations * 1e3:.1f} ms per point); the naive way at its rate above: "
                  f"{naive * config.evaluations:.1f} s (extrapolated)")
        print(f"load average after: {os.getloadavg()}")


def pair_benchmark(args: argparse.Namespace) -> None:
    config = LandscapeConfig(points=args.points, dims=1, subset=args.subset).validate()
    print(f"load average before: {os.getloadavg()}; torch threads: {torch.get_num_threads()}")
    results = []
    for run_dir in args.pair:
        start = time.perf_counter()
        result = slice_run(run_dir, config)
        seconds = time.perf_counter() - start
        results.append(result)
        verdict = "within" if seconds <= GOAL_SECONDS else "over"
        print(f"{result.name}: 1-D, {config.points} points, {config.subset} images: {seconds:.1f} s including "
              f"loading ({result.seconds:.1f} s slicing), {verdict} the {GOAL_SECONDS:.0f} s goal; curvature at "
              f"α = 0: {result.curvature['alpha']:.4g}; loss at α = 0: {result.origin_loss:.4g}")
    print(f"load average after: {os.getloadavg()}")
    differences = run_differences(*(read_run(d) for d in args.pair)) if len(args.pair) == 2 else []
    for line in curvature_text(results, differences):
        print(line.replace("**", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a trained run to slice (default: train a ResNet-20 briefly)")
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--subset", type=int, default=512)
    parser.add_argument("--naive-points", type=int, default=21)
    parser.add_argument("--no-grid", dest="grid", action="store_false", help="skip timing the whole grid")
    parser.add_argument("--pair", nargs=2, metavar=("PLAIN_RUN", "RESIDUAL_RUN"))
    args = parser.parse_args()
    if args.pair:
        pair_benchmark(args)
    else:
        grid_benchmark(args)


if __name__ == "__main__":
    main()
