"""The identity experiment's goal: on the default settings the residual block ends with a loss at least 10× lower
than the plain block, for basic and bottleneck blocks, with and without BatchNorm; and how long each pair takes.

Prints, per setting, both final losses (held-out batch), their ratio against the goal, the residual block's
‖F(x)‖/‖x‖ and the seconds for both blocks, then the load average (the machine may be shared, which changes the
seconds but, at one thread count, not the losses).

Run from the repo root: .venv/bin/python -m benchmarks.bench_identity [--steps 300]
"""

from __future__ import annotations

import argparse
import os

from resnet_core.experiments.identity import GOAL_RATIO, IdentityConfig, format_times, run_identity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=IdentityConfig().steps)
    args = parser.parse_args()
    print(f"{'block':<11} {'BN':<4} {'plain':>10} {'residual':>10} {'ratio':>10}  goal  {'F ratio':>8} {'seconds':>8}")
    for block in ("basic", "bottleneck"):
        for batch_norm in (True, False):
            result = run_identity(IdentityConfig(block=block, batch_norm=batch_norm, steps=args.steps))
            p, r = result.plain, result.residual
            print(f"{block:<11} {'yes' if batch_norm else 'no':<4} {p.final_loss:>10.3g} {r.final_loss:>10.3g} "
                  f"{format_times(result.loss_ratio):>10}  {'met ' if result.reaches_goal else 'MISS'}  "
                  f"{r.residual_ratio:>8.3g} {p.seconds + r.seconds:>8.1f}")
    print(f"goal: residual loss {GOAL_RATIO:g}× lower; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
