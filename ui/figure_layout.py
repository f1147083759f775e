"""Small pieces every figure module shares: log-axis ticks, values a log axis can show, the common layout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

LOG_FLOOR = 1e-300  # below any float64 value a measurement can produce; keeps log10 finite


def log_dtick(values: Sequence[float]) -> int | str:
    """Powers of ten (about 8 labels) when the data span more than three decades, else also 2 and 5."""
    magnitudes = [abs(v) for v in values if v and math.isfinite(v)]
    decades = math.log10(max(magnitudes) / min(magnitudes)) if magnitudes else 0.0
    return max(1, math.ceil(decades / 8)) if decades > 3 else "D2"


def positive(values: Sequence[float | None]) -> list[float | None]:
    """The values a log axis can draw; zeros, negatives and non-finite values become gaps."""
    return [v if v is not None and v > 0 and math.isfinite(v) else None for v in values]


def layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), **extra)
    return fig
