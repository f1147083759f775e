"""Small pieces every figure module shares: log-axis ticks, values a log axis can show, the common layout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
LOG_FLOOR = 1e-300  # below any float64 value a measurement can produce; keeps log10 finite


def log_axis(values: Sequence[float]) -> dict:
    """Properties of a log axis over `values`, so that it always carries several labelled ticks: powers of ten in
    exponent format (about 8) over two decades or more; below that, 1, 2 and 5 × 10^k (one to two decades) or
    evenly spaced round values (a loss from 1.5 to 2.3 gets 1.4, 1.6, …, 2.4), with the axis running from the
    round value just below the data to the one just above, so that both ends are labelled."""
    magnitudes = [abs(v) for v in values if v and math.isfinite(v)]
    axis: dict = dict(type="log", exponentformat="power")
    if not magnitudes:
        return axis
    low, high = min(magnitudes), max(magnitudes)
    if high / low < 1.01:  # (nearly) one value: label a few round values around it
        low, high = low / 1.02, high * 1.02
    decades = math.log10(high / low)
    if decades >= 2:
        return dict(axis, dtick=max(1, math.ceil(decades / 8)))
    if decades >= 1:
        ticks = [m * 10.0**k for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                 for m in (1, 2, 5)]
    else:
        ticks = _round_ticks(low, high)
    below = max((t for t in ticks if t <= low * 1.0001), default=low)
    above = min((t for t in ticks if t >= high / 1.0001), default=high)
    ticks = [float(f"{t:.6g}") for t in ticks if below <= t <= above]
    pad = 0.02 * max(math.log10(above / below), 0.1)
    return dict(axis, tickmode="array", tickvals=ticks, ticktext=[tick_text(t) for t in ticks],
                range=[math.log10(below) - pad, math.log10(above) + pad])


def _round_ticks(low: float, high: float, least: int = 4) -> list[float]:
    """Multiples of the largest step of 1, 2 or 5 × 10^k that puts at least `least` of them in [low, high], from
    the one just below `low` to the one just above `high`."""
    top = math.floor(math.log10(high))
    for step in (m * 10.0**k for k in range(top, top - 6, -1) for m in (5, 2, 1)):
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)  # 2.36 / 0.02 is 117.99…
        if last - first + 1 >= least:
            return [i * step for i in range(first - (first * step > low), last + (last * step < high) + 1) if i > 0]
    return [low, high]


def tick_text(value: float) -> str:
    """1, 0.02, 500 in full; 2×10⁻⁵ and 5×10⁶ beyond."""
    if 1e-3 <= value < 1e4:
        return f"{value:.4g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = "10" + str(int(exponent)).translate(SUPERSCRIPTS)
    return power if mantissa == "1" else f"{mantissa}×{power}"


def positive(values: Sequence[float | None]) -> list[float | None]:
    """The values a log axis can draw; zeros, negatives and non-finite values become gaps."""
    return [v if v is not None and v > 0 and math.isfinite(v) else None for v in values]


def layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **extra)
    return fig
