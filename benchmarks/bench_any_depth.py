"""Goal: a never-seen configuration summarized in <= 50 ms at the 2,000-block bound (<= 250 ms up to ResNet-1202).

`summarize` builds and traces each stage's first block and one of each distinct later block (two blocks a stage,
three or more only in a pruned net whose blocks have their own widths) and writes the other blocks' rows from
them; the baseline is the full trace of every block (`repeat=False`), measured in the same run on the same never-seen
specs (odd widths nobody has cached). Prints the best wall time and the CPU time of that run (the machine is
shared: the CPU time is what the summary itself costs), the full trace, the ratio and the load average.
Run from the repo root: .venv/bin/python -m benchmarks.bench_any_depth [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

from resnet_core import ModelSpec, summarize
from resnet_core.introspect.summary import _summarize_spec

BOUND = (1000, 1000)  # 2,000 blocks, the most a spec may have
CASES = [  # (label, spec, input, goal in ms)
    ("ResNet-1202 depth, width 17, shortcut A", ModelSpec(stem="cifar", width=17, shortcut="A",
                                                          layers=(200, 200, 200), num_classes=10), (3, 32, 32), 250),
    ("ResNet-1202 depth, width 15, shortcut B", ModelSpec(stem="cifar", width=15, shortcut="B",
                                                          layers=(200, 200, 200), num_classes=10), (3, 32, 32), 250),
    ("ecaresnet269d-like, width 63", ModelSpec(block="bottleneck", width=63, layers=(3, 30, 48, 8), stem="deep",
                                               attention="eca", shortcut="D"), (3, 224, 224), 250),
    ("2,000 blocks (the bound), width 9", ModelSpec(stem="cifar", width=9, layers=BOUND, num_classes=10),
     (3, 32, 32), 50),
    ("2,000 Res2Net blocks, width 17, 26w x 5 scales", ModelSpec(
        block="res2net_bottleneck", stem="cifar", width=17, width_per_group=26, res2net_scale=5, layers=BOUND,
        num_classes=10), (3, 32, 32), 50),
    ("2,000 split-attention blocks, width 20, radix 4", ModelSpec(
        block="split_attention_bottleneck", stem="cifar", width=20, radix=4, groups=1, avg_downsample="after_conv",
        layers=BOUND, num_classes=10), (3, 32, 32), 50),
    ("2,000 BiT blocks, width 33, weight-standardised, EvoNorm", ModelSpec(
        block="preact_bottleneck", stem="cifar", width=33, stem_width=32, norm="evonorm_s0", norm_groups=1,
        weight_standardization=True, stem_norm=False, layers=BOUND, num_classes=10), (3, 32, 32), 50),
    ("2,000 pruned blocks, two widths alternating", ModelSpec(
        block="bottleneck", stem="cifar", width=8, layers=BOUND, num_classes=10,
        block_widths=tuple((7 + j % 2, 5 + j % 2, 32 * (1 + j // 1000)) for j in range(2000))), (3, 32, 32), 50),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    summarize("resnet20", (3, 32, 32))  # warm imports and meta kernels
    for label, spec, dims, goal in CASES:
        ours = []
        for _ in range(args.repeats):
            _summarize_spec.cache_clear()
            wall, cpu = time.perf_counter(), time.process_time()
            a = summarize(spec, dims, 1)
            ours.append((time.perf_counter() - wall, time.process_time() - cpu))
        start = time.perf_counter()
        b = _summarize_spec(spec, dims, 1, repeat=False)
        full = time.perf_counter() - start
        assert (a.total_params, a.mult_adds, a.activation_bytes) == (b.total_params, b.mult_adds, b.activation_bytes)
        best, cpu = min(ours)
        print(f"{label}: {best * 1e3:.0f} ms (best of {args.repeats}; CPU {cpu * 1e3:.0f} ms) [goal <= {goal} ms]; "
              f"full trace {full * 1e3:.0f} ms; {full / best:.1f}x; {a.total_params:,} params; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
