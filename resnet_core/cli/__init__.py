"""Command-line entry: one sub-command module per capability, each with `register(subparsers)`.

Errors in arguments or specs print a single `error: …` line to stderr and exit 2; a failed run, missing
data or a file that cannot be read or written (RuntimeError, OSError) print one `error: …` line and exit 1. A library's
warning is one `warning: …` line (or none, see `quiet_library_warnings`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

from . import experiments, export, identity, inspect, landscape, models, train


class ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and a second line
        raise ArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m resnet_core", description="ResNet Explorer: build, inspect and train ResNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (models, train, experiments, identity, inspect, export, landscape):
        module.register(sub)
    return parser


# A value that starts like a negative number ("-3,3,3", "-1e-3", "-.5"). argparse only takes "-3" or "-0.5" as a
# value; anything else starting with "-" it reads as an unknown flag and reports "expected one argument".
_NEGATIVE_VALUE = re.compile(r"-\.?\d")


def join_negative_values(argv: list[str]) -> list[str]:
    """["--layers", "-3,3,3"] -> ["--layers=-3,3,3"]: a value that starts like a negative number reaches the
    option's own check (and its one-line error naming the field) instead of argparse's "expected one argument".
    Only a long option without "=" is joined; after a flag that takes no value, argparse then reports the stray
    value in one line as before."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":  # everything after it is positional
            out.extend(argv[i:])
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--") and "=" not in arg and nxt is not None and _NEGATIVE_VALUE.match(nxt):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():
        quiet_library_warnings()
        return _main(argv)


def quiet_library_warnings() -> None:
    """A library's warning is one `warning: …` line, not its source line too; Pillow's DecompressionBombWarning is
    none, since every image it warns about (from 89 megapixels) is over our own limits and refused in one line."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print("warning: " + " ".join(str(message).split()), file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    try:
        argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except (ArgumentError, ValueError) as exc:
        _print_error(exc)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (RuntimeError, OSError) as exc:
        _print_error(exc)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _print_error(exc: BaseException) -> None:
    print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, even for torch's multi-line errors
