"""Numbers and errors as text: counts, sizes, shapes, durations, and an error with its causes in one line."""

from __future__ import annotations

from collections.abc import Sequence


def format_count(n: int) -> str:
    return f"{n:,}"


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_shape(shape: Sequence[int]) -> str:
    return "×".join(str(d) for d in shape)


def format_seconds(seconds: float) -> str:
    """12 s, or 3 min 05 s."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def describe_error(exc: BaseException) -> str:
    """One line: the error, and the chain of causes behind it."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or (exc.__context__ if not exc.__suppress_context__ else None)
    while cause is not None and len(parts) < 4:
        parts.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or (cause.__context__ if not cause.__suppress_context__ else None)
    return "; ".join(parts)
