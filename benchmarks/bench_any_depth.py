"""Goal: a never-seen configuration up to ResNet-1202 depth summarized in <= 250 ms.

`summarize` builds and traces at most two blocks per stage and repeats the second block's rows; the baseline
is the full trace of every block (`repeat=False`), measured in the same run on the same never-seen specs (odd
widths nobody has cached). Prints both, the ratio and the load average (the machine is shared).
Run from the repo root: .venv/bin/python -m benchmarks.bench_any_depth [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

from resnet_core import ModelSpec, summarize
from resnet_core.summary import _summarize_spec

CASES = [  # (label, spec, input)
    ("ResNet-1202 depth, width 17, shortcut A", ModelSpec(stem="cifar", width=17, shortcut="A",
                                                          layers=(200, 200, 200), num_classes=10), (3, 32, 32)),
    ("ResNet-1202 depth, width 15, shortcut B", ModelSpec(stem="cifar", width=15, shortcut="B",
                                                          layers=(200, 200, 200), num_classes=10), (3, 32, 32)),
    ("ecaresnet269d-like, width 63", ModelSpec(block="bottleneck", width=63, layers=(3, 30, 48, 8), stem="deep",
                                               attention="eca", shortcut="D"), (3, 224, 224)),
    ("2,000 blocks (the bound), width 9", ModelSpec(stem="cifar", width=9, layers=(1000, 1000), num_classes=10),
     (3, 32, 32)),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    summarize("resnet20", (3, 32, 32))  # warm imports and meta kernels
    for label, spec, dims in CASES:
        ours, full = [], []
        for _ in range(args.repeats):
            _summarize_spec.cache_clear()
            t = time.perf_counter()
            a = summarize(spec, dims, 1)
            ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = _summarize_spec(spec, dims, 1, repeat=False)
        full.append(time.perf_counter() - t)
        assert (a.total_params, a.mult_adds, a.activation_bytes) == (b.total_params, b.mult_adds, b.activation_bytes)
        best = min(ours)
        print(f"{label}: {best * 1e3:.0f} ms (best of {args.repeats}) [goal <= 250 ms]; full trace "
              f"{full[0] * 1e3:.0f} ms; {full[0] / best:.1f}x; {a.total_params:,} params; "
              f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
