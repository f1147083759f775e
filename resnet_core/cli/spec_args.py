"""Spec-override flags shared by every sub-command that builds a model; values parse as the pages parse them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..spec import BLOCKS, SHORTCUTS, STEMS, field_from_text
from ..validation import shown


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("spec overrides (any preset field)")
    g.add_argument("--layers", type=_field("layers"), help="blocks per stage, e.g. 3,4,6,3")
    g.add_argument("--block", help=f"one of {', '.join(BLOCKS)}")
    g.add_argument("--width", type=_field("width"), help="planes of the first stage")
    g.add_argument("--stem-width", type=_field("stem_width"), help="channels out of the stem")
    g.add_argument("--groups", type=_field("groups"))
    g.add_argument("--width-per-group", type=_field("width_per_group"))
    g.add_argument("--stem", help=f"one of {', '.join(STEMS)}")
    g.add_argument("--shortcut", help=f"one of {', '.join(SHORTCUTS)}")
    g.add_argument("--no-skip", action="store_true", help="the plain twin: no identity additions")
    g.add_argument("--se", action="store_true", help="squeeze-and-excitation in every block")
    g.add_argument("--in-channels", type=_field("in_channels"))
    g.add_argument("--num-classes", type=_field("num_classes"))
    g.add_argument("--zero-init-residual", action="store_true")


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
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


def _field(name: str) -> Callable[[str], Any]:
    """argparse `type=`: the spec field parsed from text by the core's one parser."""
    def convert(text: str) -> Any:
        try:
            return field_from_text(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def whole_number(flag: str) -> Callable[[str], int]:
    return _converter(flag, int, "a whole number")


def number(flag: str) -> Callable[[str], float]:
    return _converter(flag, float, "a number")


def _converter(flag: str, parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """argparse `type=`: `parse(text)`, or one error line naming the flag."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {what}; got {shown(text)}") from None

    return convert
