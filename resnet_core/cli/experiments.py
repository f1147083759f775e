"""`flow`, `degradation`, `lesion`: the signal-flow experiments from the command line.

    python -m resnet_core flow --blocks 50 [--width 16] [--no-bn] [--init normal --std 0.05]
                               [--activation tanh] [--json]
    python -m resnet_core flow --shattered [--blocks 50] [--points 64] [--radius 0.5] [--json]
    python -m resnet_core degradation [--steps N] [--seeds K] [--json]
    python -m resnet_core lesion RUN_DIR [RUN_DIR ...] [--limit N] [--json] [--allow-data-dir]

lesion reads each run's data_dir (from its config.json) only inside the data folders, unless --allow-data-dir is given
(run_data.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..data.sets import DATASETS
from ..experiments import degradation, lesion, seeds
from ..experiments.flow import run_flow
from ..experiments.flow_stack import ACTIVATIONS, INITS, LOSSES, MODES, FlowConfig
from ..experiments.flow_text import describe_stacks, format_ratio
from ..experiments.shattered import ShatteredConfig, measure_shattering
from ..experiments.shattered import describe as describe_shattering
from ..training.options import declared_options
from .option_args import add_options, option_values
from .run_data import add_allow_data_dir, fenced_run

_FLOW = FlowConfig()
_SHATTERED = ShatteredConfig()


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
    p.add_argument("--shattered", action="store_true",
                   help="instead: correlation of the input gradients of nearby inputs against depth, at init "
                        "(Balduzzi et al. 2017)")
    p.add_argument("--points", type=int, default=_SHATTERED.points, help="--shattered: inputs on the line")
    p.add_argument("--radius", type=float, default=_SHATTERED.radius,
                   help="--shattered: the line runs over ±radius × the image's norm")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=_flow)

    p = sub.add_parser("degradation", help="train plain and residual nets of two depths on the same batches")
    add_options(p, declared_options(degradation.DegradationConfig))
    p.add_argument("--seeds", type=int, help=f"run every net with K seeds (--seed, --seed + 1, ...; at most "
                   f"{seeds.MAX_SEEDS}); the last JSON line then holds each net's seeds, mean and std")
    p.add_argument("--run-root", help="folder for the four run folders (default: the run store)")
    p.add_argument("--json", action="store_true", help="one JSON line per finished net, then {\"runs\": ...}")
    p.set_defaults(func=_degradation)
    _register_lesion(sub)


def _register_lesion(sub) -> None:
    p = sub.add_parser("lesion", help="delete each block of trained nets at test time; accuracy per deleted block")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--limit", type=int, help="evaluate on the first N test images (default: the run's own setting)")
    p.add_argument("--json", action="store_true")
    add_allow_data_dir(p)
    p.set_defaults(func=_lesion)


def _flow(args: argparse.Namespace) -> int:
    config = FlowConfig(blocks=args.blocks, width=args.width, batch_norm=not args.no_bn, mode=args.mode,
                        init=args.init, init_std=args.std, activation=args.activation, batch_size=args.batch_size,
                        resolution=args.resolution, loss=args.loss, seed=args.seed).validate()
    if args.shattered:
        return _shattered(config, args)
    result = run_flow(config, dataset=args.dataset, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{'block':>5}  {'plain |grad|':>12}  {'resid |grad|':>12}  {'plain std':>10}  {'resid std':>10}")
    p, r = result.plain, result.residual
    for i in range(config.blocks):
        print(f"{i + 1:>5}  {p.grad_norm[i]:>12.3e}  {r.grad_norm[i]:>12.3e}  "
              f"{p.act_std[i]:>10.3e}  {r.act_std[i]:>10.3e}")
    print(f"{'spread':>5}  {format_ratio(p.grad_spread):>12}  {format_ratio(r.grad_spread):>12}  "
          f"{format_ratio(p.act_std_spread):>10}  {format_ratio(r.act_std_spread):>10}")
    print()
    for line in describe_stacks(result):
        print(line.replace("**", ""))
    return 0


def _shattered(config: FlowConfig, args: argparse.Namespace) -> int:
    grid = ShatteredConfig(points=args.points, radius=args.radius).validate()
    result = measure_shattering(config, grid, dataset=args.dataset, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{'block':>5}  {'plain corr':>10}  {'resid corr':>10}")
    for depth, p, r in zip(result.depth, result.plain, result.residual):
        print(f"{depth:>5}  {p:>10.4f}  {r:>10.4f}")
    print()
    for line in describe_shattering(result):
        print(line.replace("**", "").replace("`", ""))
    return 0


def _degradation(args: argparse.Namespace) -> int:
    config = degradation.DegradationConfig(**option_values(args, declared_options(degradation.DegradationConfig)))
    config.validate()
    if args.seeds is not None:
        return _degradation_seeds(config, args)
    if not args.json:
        print(f"training {config.describe()}".replace("`", ""), flush=True)

    def finished(name, result, run_dir) -> None:
        summary = degradation.summarize_records(result.records)
        if args.json:
            print(json.dumps(dict(name=name, run_dir=str(run_dir), **summary)), flush=True)
        else:
            print(f"{name}: final train loss {summary['final_train_loss']:.4f}, test accuracy "
                  f"{summary['test_acc']:.1%}, {summary['seconds']:.0f} s  ({run_dir})", flush=True)

    summaries = degradation.run(config, root=args.run_root, on_result=finished)
    if args.json:
        print(json.dumps(dict(runs=summaries)))
    else:
        for line in degradation.describe(summaries):
            print(line.replace("**", ""))
    return 0


def _degradation_seeds(config: degradation.DegradationConfig, args: argparse.Namespace) -> int:
    seed_values = seeds.seed_list(config, args.seeds)
    if not args.json:
        print(f"training with seeds {', '.join(map(str, seed_values))}: {config.describe()}".replace("`", ""),
              flush=True)

    def finished(seed, name, result, run_dir) -> None:
        summary = degradation.summarize_records(result.records)
        if args.json:
            print(json.dumps(dict(seed=seed, name=name, run_dir=str(run_dir), **summary)), flush=True)
        else:
            print(f"seed {seed} {name}: final train loss {summary['final_train_loss']:.4f}, test accuracy "
                  f"{summary['test_acc']:.1%}, {summary['seconds']:.0f} s  ({run_dir})", flush=True)

    result = seeds.run_seeds(config, args.seeds, root=args.run_root, on_result=finished)
    if args.json:
        print(json.dumps(result))
    else:
        for line in seeds.describe_seeds(result["nets"]):
            print(line.replace("**", ""))
    return 0


def _lesion(args: argparse.Namespace) -> int:
    """Every run in turn; one that cannot be studied is an error line, and the others are still measured."""
    failed = 0
    for run_dir in args.run_dirs:
        try:
            fenced_run(run_dir, args.allow_data_dir)  # its test images are read again
            result = lesion.lesion_run(run_dir, limit=args.limit)
        except (ValueError, RuntimeError, OSError) as exc:  # RuntimeError: the run's data set is missing
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
            failed += 1
            continue
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
            continue
        print(f"{result.name}: intact test accuracy {result.baseline_acc:.2%} on {result.test_images} images")
        for block in result.blocks:
            print(f"  without {block.block:<10} " + (f"{block.acc:.2%}" if block.deletable
                                                      else "not deletable (changes the shape)"))
        print(lesion.describe(result).replace("**", ""))
    return 2 if failed else 0
