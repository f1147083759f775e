"""Command-line entry: one sub-command module per capability, each with `register(subparsers)`.

Errors in arguments or specs print a single `error: …` line to stderr and exit 2; a failed run, missing
data or a file that cannot be read or written (RuntimeError, OSError) print one `error: …` line and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import experiments, models, train


class ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and a second line
        raise ArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m resnet_core", description="ResNet Explorer: build, inspect and train ResNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (models, train, experiments):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
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
