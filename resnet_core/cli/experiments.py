"""`flow`, `degradation`, `lesion`: the signal-flow experiments from the command line.

    python -m resnet_core flow --blocks 50 [--width 16] [--no-bn] [--init normal --std 0.05] [--activation tanh] [--json]
    python -m resnet_core degradation [--steps N] [--json]
    python -m resnet_core lesion RUN_DIR [RUN_DIR ...] [--json]
"""

from __future__ import annotations

import argparse
import json

from ..data import DATASETS
from ..flow import ACTIVATIONS, INITS, LOSSES, MODES, FlowConfig, describe_stacks, format_ratio, run_flow

_FLOW = FlowConfig()


def register(sub) -> None:
    p = sub.add_parser("flow", help="gradient and activation magnitudes per block, plain vs residual stack")
    p.add_argument("--blocks", type=int, default=_FLOW.blocks, help=f"blocks per stack (default {_FLOW.blocks})")
    p.add_argument("--width", type=int, default=_FLOW.width, help=f"channels (default {_FLOW.width})")
    p.add_argument("--no-bn", action="store_true", help="no BatchNorm")
    p.add_argument("--mode", choices=MODES, default=_FLOW.mode, help="BatchNorm statistics (default train)")
    p.add_argument("--init", choices=INITS, default=_FLOW.init)
    p.add_argument("--std", type=float, default=_FLOW.init_std, help="std of --init normal")
    p.add_argument("--activation", choices=ACTIVATIONS, default=_FLOW.activation)
    p.add_argument("--batch-size", type=int, default=_FLOW.batch_size)
    p.add_argument("--resolution", type=int, default=_FLOW.resolution, help="images pooled to this side")
    p.add_argument("--loss", choices=LOSSES, default=_FLOW.loss)
    p.add_argument("--dataset", choices=DATASETS, default="synthetic")
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=_FLOW.seed)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=_flow)


def _flow(args: argparse.Namespace) -> int:
    config = FlowConfig(blocks=args.blocks, width=args.width, batch_norm=not args.no_bn, mode=args.mode,
                        init=args.init, init_std=args.std, activation=args.activation, batch_size=args.batch_size,
                        resolution=args.resolution, loss=args.loss, seed=args.seed).validate()
    result = run_flow(config, dataset=args.dataset, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{'block':>5}  {'plain |grad|':>12}  {'resid |grad|':>12}  {'plain std':>10}  {'resid std':>10}")
    p, r = result.plain, result.residual
    for i in range(config.blocks):
        print(f"{i + 1:>5}  {p.grad_norm[i]:>12.3e}  {r.grad_norm[i]:>12.3e}  {p.act_std[i]:>10.3e}  {r.act_std[i]:>10.3e}")
    print(f"{'spread':>5}  {format_ratio(p.grad_spread):>12}  {format_ratio(r.grad_spread):>12}  "
          f"{format_ratio(p.act_std_spread):>10}  {format_ratio(r.act_std_spread):>10}")
    print()
    for line in describe_stacks(result):
        print(line.replace("**", ""))
    return 0
