"""Command-line flags generated from a config's option declarations (training/options.py): each option's flag (a
switch for a bool, which sets the opposite of its default) and its aliases, parsed by the option's own text form,
and the options' values read back from the parsed arguments."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from ..training.options import Option, from_text, help_text, to_text


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    for option in options:
        if option.flag:
            _add_option(parser, option)


def option_values(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """Field -> value of every option with a flag (its default where the flag was not given)."""
    return {option.name: getattr(args, option.name) for option in options if option.flag}


def flags(options: Iterable[Option]) -> dict[str, str]:
    """Field -> flag, for messages that name what the user typed."""
    return {option.name: option.flag for option in options if option.flag}


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    if option.switch:
        parser.add_argument(option.flag, dest=option.name, action="store_const", const=not option.default,
                            default=option.default, help=option.help)
    else:
        parser.add_argument(option.flag, dest=option.name, type=_parser_of(option), default=option.default,
                            metavar=option.flag.lstrip("-").upper().replace("-", "_"), help=help_text(option))
    for alias, value in option.aliases.items():
        parser.add_argument(alias, dest=option.name, action="store_const", const=value,
                            help=f"the same as {option.flag} {to_text(option, value)}")


def _parser_of(option: Option) -> Callable[[str], Any]:
    """argparse `type=`: the option's value from text, or one error line naming the flag."""
    def convert(text: str) -> Any:
        try:
            return from_text(option, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert
