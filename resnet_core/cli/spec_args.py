"""Spec-override flags shared by every sub-command that builds a model."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Tuple

from ..spec import BLOCKS, SHORTCUTS, STEMS


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("spec overrides (any preset field)")
    g.add_argument("--layers", help="blocks per stage, e.g. 3,4,6,3")
    g.add_argument("--block", help=f"one of {', '.join(BLOCKS)}")
    g.add_argument("--width", type=_int("width"), help="planes of the first stage")
    g.add_argument("--stem-width", type=_int("stem-width"), help="channels out of the stem")
    g.add_argument("--groups", type=_int("groups"))
    g.add_argument("--width-per-group", type=_int("width-per-group"))
    g.add_argument("--stem", help=f"one of {', '.join(STEMS)}")
    g.add_argument("--shortcut", help=f"one of {', '.join(SHORTCUTS)}")
    g.add_argument("--no-skip", action="store_true", help="the plain twin: no identity additions")
    g.add_argument("--se", action="store_true", help="squeeze-and-excitation in every block")
    g.add_argument("--in-channels", type=_int("in-channels"))
    g.add_argument("--num-classes", type=_int("num-classes"))
    g.add_argument("--zero-init-residual", action="store_true")


def spec_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The overrides the user actually gave (None/False flags leave the preset's value)."""
    overrides = dict(
        layers=args.layers, block=args.block, width=args.width, stem_width=args.stem_width, groups=args.groups,
        width_per_group=args.width_per_group, stem=args.stem, shortcut=args.shortcut,
        in_channels=args.in_channels, num_classes=args.num_classes,
    )
    if args.no_skip:
        overrides["skip"] = False
    if args.se:
        overrides["se"] = True
    if args.zero_init_residual:
        overrides["zero_init_residual"] = True
    return {k: v for k, v in overrides.items() if v is not None}


def parse_shape(text: str, field: str = "input") -> Tuple[int, ...]:
    """"3,224,224" -> (3, 224, 224); a ValueError naming the field otherwise."""
    try:
        dims = tuple(int(p) for p in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"{field} must be three positive integers C,H,W (e.g. 3,224,224); got {text!r}")
    return dims


def _int(field: str):
    def convert(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field} must be a whole number, got {text!r}") from None

    return convert
