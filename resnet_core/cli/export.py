"""`export`: a preset (with any spec overrides) as one standalone PyTorch file, or as ONNX."""

from __future__ import annotations

import argparse

from ..export import FORMATS, export
from ..presets import resolve_spec
from ..spec import parse_shape
from .spec_args import add_spec_arguments, spec_overrides


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as one readable PyTorch file (or ONNX)")
    p.add_argument("model", help="a preset name (see `list`)")
    add_spec_arguments(p)
    p.add_argument("--format", default="py", choices=FORMATS, help="py: one torch-only file with build(); onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--input", help="C,H,W of the ONNX graph's input (default: the model's natural input)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    spec = resolve_spec(args.model, **spec_overrides(args))
    input_size = parse_shape(args.input) if args.input is not None else None
    path = export(spec, args.output, args.format, name=args.model, input_size=input_size)
    print(f"wrote {path}")
    return 0
