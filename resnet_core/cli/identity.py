"""`identity`: train a plain and a residual block to reproduce their input, from the command line.

    python -m resnet_core identity [--block basic|bottleneck] [--no-bn] [--steps N] [--json]
"""

from __future__ import annotations

import argparse
import json

from ..experiments.identity import IDENTITY_BLOCKS, IdentityConfig, describe, run_identity

_DEFAULT = IdentityConfig()
CURVE_POINTS = 6  # steps printed from each loss curve in the text output


def register(sub) -> None:
    d = _DEFAULT
    p = sub.add_parser("identity", help="plain vs residual block trained to reproduce their input (MSE)")
    p.add_argument("--block", choices=IDENTITY_BLOCKS, default=d.block)
    p.add_argument("--no-bn", action="store_true", help="replace every BatchNorm of the block by the identity")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps per block (default {d.steps})")
    p.add_argument("--channels", type=int, help="channels in and out (default 16 basic, 64 bottleneck)")
    p.add_argument("--size", type=int, default=d.size, help=f"feature maps are SIZE x SIZE (default {d.size})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--json", action="store_true",
                   help='one JSON object: {"plain": {"loss": [...], ...}, "residual": {"loss": [...], '
                        '"residual_ratio": ...}, ...}')
    p.set_defaults(func=_identity)


def _identity(args: argparse.Namespace) -> int:
    config = IdentityConfig(block=args.block, batch_norm=not args.no_bn, steps=args.steps, channels=args.channels,
                            size=args.size, batch_size=args.batch_size, lr=args.lr, seed=args.seed).validate()
    result = run_identity(config)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    picks = sorted({round(i * (config.steps - 1) / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)})
    print(f"{'step':>6}  {'plain loss':>11}  {'residual loss':>13}")
    for i in picks:
        print(f"{i + 1:>6}  {result.plain.loss[i]:>11.4g}  {result.residual.loss[i]:>13.4g}")
    print(f"{'final':>6}  {result.plain.final_loss:>11.4g}  {result.residual.final_loss:>13.4g}  (held-out batch)")
    print(f"seconds: plain {result.plain.seconds:.1f}, residual {result.residual.seconds:.1f}")
    print()
    for line in describe(result):
        print(line.replace("**", ""))
    return 0
