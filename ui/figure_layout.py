"""Small pieces every figure module shares: log-axis ticks, values a log axis can show, the common layout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

LOG_FLOOR = 1e-300  # below any float64 value a measurement can produce; keeps log10 finite


def log_dtick(values: Sequence[float]) -> int | str | None:
    """Powers of ten (about 8 labels) when the data span more than three decades, 1-2-5 ticks over one to three
    decades, and plotly's own ticks (None) inside one decade, where 1-2-5 ticks may leave the axis unlabelled."""
    magnitudes = [abs(v) for v in values if v and math.isfinite(v)]
    decades = math.log10(max(magnitudes) / min(magnitudes)) if magnitudes else 0.0
    if decades > 3:
        return max(1, math.ceil(decades / 8))
    return "D2" if decades >= 1 else None


def positive(values: Sequence[float | None]) -> list[float | None]:
    """The values a log axis can draw; zeros, negatives and non-finite values become gaps."""
    return [v if v is not None and v > 0 and math.isfinite(v) else None for v in values]


def layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **extra)
    return fig
