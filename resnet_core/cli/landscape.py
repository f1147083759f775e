"""`landscape`: a loss-surface slice of a trained run along filter-normalised random directions (Li et al. 2018).

    python -m resnet_core landscape RUN_DIR [--points N] [--dims 1|2] [--subset N] [--span S] [--seed S] [--json]
                                    [--allow-data-dir]

The run's data_dir (from its config.json) must be inside the data folders unless --allow-data-dir is given
(run_data.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from ..experiments.landscape import LandscapeConfig, curvature_text, slice_run
from .run_data import add_allow_data_dir, fenced_run

_DEFAULT = LandscapeConfig()


def register(sub) -> None:
    p = sub.add_parser("landscape", help="training loss along filter-normalised random directions of a trained run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--points", type=int, default=_DEFAULT.points,
                   help=f"grid points per direction, odd (default {_DEFAULT.points})")
    p.add_argument("--dims", type=int, default=_DEFAULT.dims, help="1: a line, 2: a plane (default 1)")
    p.add_argument("--subset", type=int, default=_DEFAULT.subset,
                   help=f"training images the loss is measured on (default {_DEFAULT.subset})")
    p.add_argument("--span", type=float, default=_DEFAULT.span, help="α runs from -span to +span (default 1)")
    p.add_argument("--seed", type=int, default=_DEFAULT.seed, help="directions and subset (default 0)")
    p.add_argument("--batch-size", type=int, default=_DEFAULT.batch_size)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    add_allow_data_dir(p)
    p.set_defaults(func=_landscape)


def _landscape(args: argparse.Namespace) -> int:
    config = LandscapeConfig(points=args.points, dims=args.dims, subset=args.subset, span=args.span, seed=args.seed,
                             batch_size=args.batch_size).validate()
    fenced_run(args.run_dir, args.allow_data_dir)  # its training images are read again
    bar = tqdm(total=config.evaluations, unit="point", file=sys.stderr, disable=None, mininterval=0.5,
               desc="slicing")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = slice_run(args.run_dir, config, on_point=progress)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"{result.name}: {config.dims}-D slice, {config.evaluations} evaluations on {result.subset} training "
          f"images, {result.seconds:.1f} s")
    if config.dims == 1:
        print(f"{'alpha':>8}  {'loss':>10}  {'acc':>7}")
        for a, loss, acc in zip(result.alpha, result.loss, result.acc):
            print(f"{a:>8.3f}  {loss:>10.4f}  {acc:>7.2%}")
    for line in curvature_text([result]):
        print(line.replace("**", ""))
    return 0
