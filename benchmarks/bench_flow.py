"""Signal-flow speed: 100 blocks, plain and residual, measured in at most 1 s on this CPU.

Times `measure_stacks` (one seeded stack built, run as plain and as residual: forward + backward
each, every block's gradient norm and activation statistics recorded) and, as the baseline from the
same run, the naive way without any measurement: two seeded stacks built, a bare forward + backward
each. Prints the best of a few interleaved repeats and their ratio (the machine may be shared).

Run from the repo root: .venv/bin/python -m benchmarks.bench_flow [--blocks 100] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from resnet_core.experiments.flow import data_batch, measure_stacks
from resnet_core.experiments.flow_stack import FlowConfig, FlowStack

GOAL_SECONDS = 1.0


def bare_pass(config: FlowConfig, images: torch.Tensor, labels: torch.Tensor, classes: int) -> None:
    x = F.adaptive_avg_pool2d(images, config.resolution)
    for skip in (False, True):
        torch.manual_seed(config.seed)
        stack = FlowStack(config, skip=skip, in_channels=x.shape[1], num_classes=classes)
        h = stack.stem(x)
        for block in stack.blocks:
            h = block(h)
        F.cross_entropy(stack.head(h.mean((2, 3))), labels).backward()


def best_times(repeats: int, *fns) -> list:
    """Best wall time of each function over `repeats` rounds, interleaved so that both see the same load."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    config = FlowConfig(blocks=args.blocks).validate()
    images, labels, classes = data_batch("synthetic", config.batch_size, seed=config.seed)
    measure_stacks(config, images, labels, classes)  # warm-up
    measured, baseline = best_times(args.repeats, lambda: measure_stacks(config, images, labels, classes),
                                    lambda: bare_pass(config, images, labels, classes))
    print(f"config: {config}")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"measure_stacks, plain + residual, {args.blocks} blocks: {measured:.3f} s (best of {args.repeats})")
    print(f"baseline, two stacks built + bare forward/backward: {baseline:.3f} s")
    print(f"ratio measured / baseline: {measured / baseline:.2f}x")
    print(f"goal <= {GOAL_SECONDS:.1f} s: {'met' if measured <= GOAL_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
