"""Checks for values that come from users, URLs and files: each raises one ValueError naming the field and
the allowed values or range."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable
from typing import Any

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
