"""One declaration per option: each field of `TrainConfig` (config.py) and of `DegradationConfig`
(experiments/degradation.py) carries its bounds or choices, its command-line flag, its help text and a hint for
the widget that sets it, in `dataclasses.field(metadata=…)` (see `option`).

Everything that shows, takes or checks an option is generated from that declaration: the commands' argparse
options (cli/option_args.py), the command line the Train page shows (launch.py, `arguments`), the pages' widgets
(ui/options.py) and the configs' range checks (`check_option`). Adding a field is then one edit. A widget hint is
plain data: the core never imports streamlit.

Values go to and from text one way for the command line and the page's text fields (`to_text`, `from_text`):
numbers as Python writes them (so a float comes back bit for bit), tuples as comma-separated lists.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..validation import check_bool, check_choice, check_float, check_int, shown

NO_VALUE = object()  # a widget hint's `none_as` when no widget value stands for None


@dataclass(frozen=True)
class Widget:
    """How a page draws an option (ui/options.py renders it; this is only a description).

    kind     select | radio | select_slider | number | slider | checkbox | toggle | text
    choices  a select's or radio's options: a sequence, a function giving them (devices, cores), or None for the
             option's own `choices`
    none_as  the widget value that stands for None: 0 for "0: all", "" for a blank path
    per      a select option whose every choice keeps its own value of this one (the learning rate of each
             optimizer); `per_defaults` gives each choice's default, which stands for None
    """

    kind: str
    label: str
    low: float | Callable[[], float] | None = None
    high: float | Callable[[], float] | None = None
    step: float | None = None
    format: str | None = None
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    none_as: Any = NO_VALUE
    per: str | None = None
    per_defaults: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Option:
    """One declared field as the command line and the pages know it."""

    name: str  # the field
    kind: str  # int | float | str | bool | floats | overrides (from the field's type)
    default: Any
    flag: str | None  # "--batch-size"; a bool's flag is a switch that sets the opposite of its default
    help: str
    widget: Widget | None
    choices: tuple[str, ...] | None = None
    low: float | None = None  # a number's bounds, checked by `check_option`
    high: float | None = None
    open: str = ""  # "low" or "high": that bound is excluded
    needs: str | None = None  # another option without which this one keeps its default (finetune needs init_from)
    aliases: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # more switches: {"--no-augment": "none"}

    @property
    def optional(self) -> bool:
        """None is a value of this option (an unset budget, a blank folder)."""
        return self.default is None

    @property
    def switch(self) -> bool:
        return self.kind == "bool"


def option(default: Any = dataclasses.MISSING, *, low: float | None = None, high: float | None = None,
           open: str = "", choices: Sequence[str] | None = None, flag: str | None = None, help: str = "",
           widget: Widget | None = None, needs: str | None = None, aliases: Mapping[str, Any] | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field declared as an option: its bounds or choices, flag, help and widget hint ride in the field's
    metadata."""
    meta = dict(flag=flag, help=help, widget=widget, choices=tuple(choices) if choices else None, low=low, high=high,
                open=open, needs=needs, aliases=dict(aliases or {}))
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": meta})


@functools.cache
def declared_options(cls: type) -> tuple[Option, ...]:
    """The options of dataclass `cls`, in declaration order, typed from its fields' annotations."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append(Option(f.name, _kind(f.name, hints[f.name]), default, **meta))
    return tuple(out)


def _kind(name: str, hint: Any) -> str:
    args = typing.get_args(hint)
    base = next(a for a in args if a is not type(None)) if type(None) in args else hint
    if base in (bool, int, float, str):
        return base.__name__
    if typing.get_origin(base) is tuple and typing.get_args(base)[0] is float:
        return "floats"
    if typing.get_origin(base) is dict:
        return "overrides"
    raise TypeError(f"option {name}: no text form for {hint}")  # a field type this module does not handle: a bug


def check_option(option: Option, value: Any) -> None:
    """One ValueError naming the option when `value` is not one of its choices, not a bool for a switch, or a
    number outside its bounds (None passes where the option may be unset)."""
    if value is None and option.optional:
        return
    if option.choices:
        check_choice(option.name, value, option.choices)
    elif option.switch:
        check_bool(option.name, value)
    elif option.kind == "int" and option.low is not None:
        check_int(option.name, value, int(option.low), int(option.high))
    elif option.kind == "float" and option.low is not None:
        check_float(option.name, value, option.low, option.high, low_open=option.open == "low",
                    high_open=option.open == "high")


def arguments(config: Any) -> list[str]:
    """The flags that give `config` (a dataclass of declared options) from the defaults: each option that differs
    from its default, by its flag, with its value's text."""
    args: list[str] = []
    for option in declared_options(type(config)):
        value = getattr(config, option.name)
        if option.flag and value != option.default:
            args += [option.flag] if option.switch else [option.flag, to_text(option, value)]
    return args


def to_text(option: Option, value: Any) -> str:
    """`value` as the command line (and a text widget) writes it; `from_text` gives it back exactly."""
    if option.kind == "floats":
        return ",".join(repr(float(v)) for v in value)
    if option.kind == "float":
        return repr(float(value))
    return str(value)


def from_text(option: Option, text: str) -> Any:
    """The option's value written as `text`; a ValueError naming the option and what it takes."""
    what = {"int": "a whole number", "float": "a number", "floats": "a comma-separated list of numbers"}
    try:
        if option.kind == "int":
            return int(text)
        if option.kind == "float":
            return float(text)
        if option.kind == "floats":
            return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{_label(option)} must be {what[option.kind]}; got {shown(text)}") from None
    return text


def _label(option: Option) -> str:
    """How a parse error names the option: its flag's name ("steps" for --steps), else its field's."""
    return option.flag.lstrip("-") if option.flag else option.name


def help_text(option: Option) -> str:
    """The option's help, its choices and its default, for the command line."""
    parts = [option.help] if option.help else []
    if option.choices:
        parts.append(f"one of {', '.join(option.choices)}")
    if option.default not in (None, "") and not option.switch:
        parts.append(f"default {to_text(option, option.default)}")
    return "; ".join(parts)
