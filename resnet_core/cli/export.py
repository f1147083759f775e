"""`export`: a preset (with any spec overrides) as one standalone PyTorch file, or as ONNX. `-o` must name a new
file; `--force` replaces a file or a symbolic link (the link, never its target), nothing else."""

from __future__ import annotations

import argparse

from ..models.export import FORMATS, export
from ..models.presets import resolve_spec
from ..models.spec import parse_shape
from .spec_args import add_spec_arguments, spec_overrides


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as one readable PyTorch file (or ONNX)")
    p.add_argument("model", help="a preset name (see `list`)")
    add_spec_arguments(p)
    p.add_argument("--format", default="py", choices=FORMATS, help="py: one torch-only file with build(); onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write: a new file (see --force)")
    p.add_argument("--force", action="store_true",
                   help="replace a file (or a symbolic link itself, never what it points at) already at --output")
    p.add_argument("--input", help="C,H,W of the ONNX graph's input (default: the model's natural input)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    spec = resolve_spec(args.model, **spec_overrides(args))
    input_size = parse_shape(args.input) if args.input is not None else None
    path = export(spec, args.output, args.format, name=args.model, input_size=input_size, force=args.force,
                  what="output (-o)", force_hint="--force")
    print(f"wrote {path}")
    return 0
