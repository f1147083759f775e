"""`list` and `summary`: presets and their stage tables."""

from __future__ import annotations

import argparse
import json
import textwrap

from ..formatting import format_count
from ..introspect.depth import DEPTH_RULE
from ..introspect.summary import MAX_BATCH, preset_row, summarize, summary_json
from ..introspect.tables import stage_table_text
from ..models.presets import PRESETS, resolve_spec
from ..models.spec import natural_input_size, parse_shape
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
    m, b = max(len(r["model"]) for r in rows), max(len(r["block"]) for r in rows)  # resnest: split_attention_...
    print(f"{'model':<{m}} {'family':<9} {'block':<{b}} {'depth':>5} {'params':>13} {'mult-adds':>17}")
    for r in rows:
        named = f" (named {r['published_depth']}*)" if r["published_depth"] != r["depth"] else ""
        print(f"{r['model']:<{m}} {r['family']:<9} {r['block']:<{b}} {r['depth']:>5} "
              f"{format_count(r['params']):>13} {format_count(r['mult_adds']):>17}{named}")
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
