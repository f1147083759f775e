"""Checks for values that come from users, URLs and files: each raises one ValueError naming the field and
the allowed values or range."""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, get_type_hints

SHOWN_CHARS = 60  # a bad value is echoed in its error message up to this many characters
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS
_REPR.maxlong = SHOWN_CHARS


def is_int(value: Any) -> bool:
    """A whole number, and not a bool (True would pass isinstance(value, int))."""
    return isinstance(value, int) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """`value` as an error message shows it: one line of at most about SHOWN_CHARS characters, however large the
    value (a string from a URL, a list of millions, an integer whose repr would raise beyond 4,300 digits)."""
    if is_int(value) and value.bit_length() > 3 * SHOWN_CHARS:  # ~0.3 decimal digits per bit
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"<{'a negative' if value < 0 else 'an'} integer of about {digits} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that raises (an int inside a container beyond 4,300 digits, a broken __repr__)
        text = f"<a {type(value).__name__}>"
    if len(text.splitlines()) > 1:
        text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS + 3 else text[:SHOWN_CHARS] + "..."


def check_choice(field: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {shown(value)}")


def check_int(field: str, value: Any, low: int, high: int) -> None:
    if not is_int(value) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer from {low} to {high}; got {shown(value)}")


def check_float(field: str, value: Any, low: float, high: float, low_open: bool = False,
                high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (isinstance(value, int) or math.isfinite(value))  # isfinite(int) overflows beyond the float range
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{field} must be a number in {interval}; got {shown(value)}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false; got {shown(value)}")


def check_typed(name: str, value: Any, hint: Any) -> Any:
    """A stored value checked against its dataclass field's type hint: `value` if it fits (int, float, str, bool,
    list[...] and X | None), or the member of an Enum hint whose value it is; else a ValueError naming `name`."""
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"{name} must be one of {', '.join(str(m.value) for m in hint)}; "
                             f"got {shown(value)}") from None
    text = str(hint)
    if text.endswith(" | None"):
        return None if value is None else check_typed(name, value, text.removesuffix(" | None"))
    if text.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list; got {shown(value)}")
        inner = text[len("list["):-1]
        return [check_typed(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    if text in ("int", "<class 'int'>"):
        if is_int(value):
            return value
        raise ValueError(f"{name} must be a whole number; got {shown(value)}")
    if text in ("float", "<class 'float'>"):
        if is_int(value) or isinstance(value, float):
            try:
                return float(value)
            except OverflowError:  # an integer beyond the float range
                pass
        raise ValueError(f"{name} must be a number; got {shown(value)}")
    if text in ("str", "<class 'str'>"):
        if isinstance(value, str):
            return value
        raise ValueError(f"{name} must be text; got {shown(value)}")
    if text in ("bool", "<class 'bool'>"):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be true or false; got {shown(value)}")
    raise TypeError(f"no check for {hint}")  # a field type this module does not handle: a bug here


def from_fields(cls: type, data: Any, what: str) -> Any:
    """An instance of dataclass `cls` from a JSON object, each field checked by `check_typed`; `what` names the
    object in errors ("final record", "data")."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object; got {type(data).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise ValueError(f"{what} has no {f.name!r}")
        values[f.name] = check_typed(f"{what}.{f.name}", data[f.name], type_hints(cls)[f.name])
    return cls(**values)


_TYPE_HINTS: dict[type, dict[str, Any]] = {}


def type_hints(cls: type) -> dict[str, Any]:
    if cls not in _TYPE_HINTS:
        _TYPE_HINTS[cls] = get_type_hints(cls)
    return _TYPE_HINTS[cls]
