"""Plotly builders for the identity experiment and the "break it" measurements: measured numbers in, figure out.

Plain is drawn in PLAIN and residual in RESIDUAL (see colors.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .colors import PLAIN, RESIDUAL
from .figure_layout import layout, log_axis, positive


def identity_loss_figure(plain: Sequence[float], residual: Sequence[float]) -> go.Figure:
    """MSE(block(x), x) per step of the plain and the residual block, on a log axis (a loss of exactly 0 is a gap)."""
    fig = make_subplots(rows=1, cols=1, subplot_titles=("Reproducing the input: MSE per step",))
    for name, losses, colour in (("plain block", plain, PLAIN), ("residual block", residual, RESIDUAL)):
        fig.add_trace(go.Scatter(x=list(range(1, len(losses) + 1)), y=positive(losses), name=name, mode="lines",
                                 line=dict(color=colour)))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="MSE", **log_axis([v for v in (*plain, *residual) if v is not None]))
    return layout(fig, height=340)
