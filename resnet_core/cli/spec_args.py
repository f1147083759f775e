"""Spec-override flags shared by every sub-command that builds a model; values parse as the pages parse them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..models.spec import (
    ANTI_ALIASES,
    ATTENTION_PLACEMENTS,
    ATTENTIONS,
    AVG_DOWNSAMPLES,
    BLOCKS,
    CLEARABLE,
    NORMS,
    SHORTCUTS,
    STEM_POOLS,
    STEMS,
    STRIDE_PLACEMENTS,
    field_from_text,
)
from ..validation import shown

_UNSET = object()  # a list flag not given (its value may be None: "none" clears the preset's list)


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
    g.add_argument("--se", action="store_true", help="squeeze-and-excitation in every block (= --attention se)")
    g.add_argument("--attention", help=f"channel attention in every block: one of {', '.join(ATTENTIONS)}")
    g.add_argument("--attention-reduction", type=_field("attention_reduction"), help="SE hidden = channels / this")
    g.add_argument("--attention-divisor", type=_field("attention_divisor"),
                   help="SE hidden width rounded to a multiple of this (1: channels // reduction)")
    g.add_argument("--attention-placement", help=f"one of {', '.join(ATTENTION_PLACEMENTS)}")
    g.add_argument("--stem-mid", type=_field("stem_mid"), help="inner width of the deep stems")
    g.add_argument("--stem-pool", help=f"one of {', '.join(STEM_POOLS)}")
    g.add_argument("--anti-alias", help=f"anti-aliased downsampling: one of {', '.join(ANTI_ALIASES)}")
    g.add_argument("--norm", help=f"one of {', '.join(NORMS)}")
    g.add_argument("--norm-groups", type=_field("norm_groups"), help="groups of the group norm")
    g.add_argument("--stem-norm", type=_field("stem_norm"), help="true|false: norm + ReLU after the stem conv")
    g.add_argument("--stride-placement", help=f"bottleneck stride: one of {', '.join(STRIDE_PLACEMENTS)}")
    g.add_argument("--sk-reduction", type=_field("sk_reduction"), help="SK attention hidden = channels / this")
    g.add_argument("--sk-divisor", type=_field("sk_divisor"), help="SK attention hidden rounded to a multiple of this")
    g.add_argument("--sk-split", type=_field("sk_split"), help="true|false: each SK path takes half the input channels")
    g.add_argument("--res2net-scale", type=_field("res2net_scale"),
                   help="res2net_bottleneck: groups of the inner width in the 3x3 stage (2 to 8)")
    g.add_argument("--radix", type=_field("radix"), help="split_attention_bottleneck: maps per group (1 to 8)")
    g.add_argument("--avg-downsample", help=f"split_attention_bottleneck: a 3x3 average pool takes the stride: one "
                   f"of {', '.join(AVG_DOWNSAMPLES)}")
    g.add_argument("--weight-standardization", type=_field("weight_standardization"),
                   help="true|false: convs standardise their weights per output channel (BiT)")
    g.add_argument("--shortcut-kernel", type=_field("shortcut_kernel"),
                   help="1 or 3: the kernel of a strided projection shortcut (SENet-154: 3)")
    g.add_argument("--reduce-first", type=_field("reduce_first"),
                   help="the first conv of a block outputs its inner width / this (SENet-154: 2)")
    g.add_argument("--stage-blocks", type=_field("stage_blocks"), default=_UNSET,
                   help="a block type per stage, e.g. basic,basic,bottleneck,basic; none: --block everywhere")
    g.add_argument("--stage-widths", type=_field("stage_widths"), default=_UNSET,
                   help="planes per stage, e.g. 32,48,48,96; none: width * 2**i")
    g.add_argument("--block-widths", type=_field("block_widths"), default=_UNSET,
                   help="per bottleneck: first 1x1:3x3:output widths, e.g. 47:18:19,52:22:19,...; none: from the "
                        "planes")
    g.add_argument("--in-channels", type=_field("in_channels"))
    g.add_argument("--num-classes", type=_field("num_classes"))
    g.add_argument("--zero-init-residual", action="store_true")


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides the user actually gave (None/False flags leave the preset's value)."""
    overrides = dict(
        layers=args.layers, block=args.block, width=args.width, stem_width=args.stem_width, groups=args.groups,
        width_per_group=args.width_per_group, stem=args.stem, shortcut=args.shortcut,
        in_channels=args.in_channels, num_classes=args.num_classes, attention=args.attention,
        attention_reduction=args.attention_reduction, attention_divisor=args.attention_divisor,
        attention_placement=args.attention_placement, stem_mid=args.stem_mid, stem_pool=args.stem_pool,
        anti_alias=args.anti_alias, norm=args.norm, norm_groups=args.norm_groups,
        stride_placement=args.stride_placement, stem_norm=args.stem_norm, sk_reduction=args.sk_reduction,
        sk_divisor=args.sk_divisor, sk_split=args.sk_split, res2net_scale=args.res2net_scale, radix=args.radix,
        avg_downsample=args.avg_downsample, weight_standardization=args.weight_standardization,
        shortcut_kernel=args.shortcut_kernel, reduce_first=args.reduce_first,
    )
    given = {name: getattr(args, name) for name in CLEARABLE if getattr(args, name) is not _UNSET}  # none clears
    if args.no_skip:
        overrides["skip"] = False
    if args.se:
        overrides["attention"] = "se"
    if args.zero_init_residual:
        overrides["zero_init_residual"] = True
    return {**{k: v for k, v in overrides.items() if v is not None}, **given}


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


def _converter(flag: str, parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """argparse `type=`: `parse(text)`, or one error line naming the flag."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {what}; got {shown(text)}") from None

    return convert
