"""`list` and `summary`: presets and their stage tables."""

from __future__ import annotations

import argparse
import json
import textwrap

from ..depth import DEPTH_RULE
from ..format import format_count, stage_table_text
from ..presets import PRESETS, resolve_spec
from ..spec import parse_shape
from ..summary import MAX_BATCH, natural_input_size, preset_row, summarize, summary_json
from ..validation import shown
from .spec_args import add_spec_arguments, spec_overrides


def register(sub) -> None:
    p = sub.add_parser("list", help="the presets with their parameter counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_list)

    p = sub.add_parser("summary", help="a model's stage table, params and mult-adds")
    p.add_argument("model", help="a preset name (see `list`)")
    add_spec_arguments(p)
    p.add_argument("--input", help="C,H,W (default: 3,224,224 for ImageNet stems, 3,32,32 for CIFAR)")
    p.add_argument("--batch", default="1", help="batch size (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.set_defaults(func=run_summary)


def run_list(args: argparse.Namespace) -> int:
    rows = [preset_row(name) for name in PRESETS]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'model':<18} {'family':<9} {'block':<18} {'depth':>5} {'params':>13} {'mult-adds':>16}")
    for r in rows:
        named = f" (named {r['published_depth']}*)" if r["published_depth"] != r["depth"] else ""
        print(f"{r['model']:<18} {r['family']:<9} {r['block']:<18} {r['depth']:>5} "
              f"{format_count(r['params']):>13} {format_count(r['mult_adds']):>16}{named}")
    if any(r["published_depth"] != r["depth"] for r in rows):
        print(textwrap.fill(f"* {DEPTH_RULE}.", 120))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    spec = resolve_spec(args.model, **spec_overrides(args))
    input_size = parse_shape(args.input) if args.input is not None else natural_input_size(spec)  # "" is an error
    try:
        batch = int(args.batch)
    except ValueError:  # also for 4,300+ digits, which int() refuses
        raise ValueError(f"batch must be an integer from 1 to {MAX_BATCH}; got {shown(args.batch)}") from None
    summary = summarize(spec, input_size, batch)
    if args.json:
        print(json.dumps(summary_json(summary)))
    else:
        print(stage_table_text(summary))
    return 0
