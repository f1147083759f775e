"""Plotly builder for shattered gradients: the neighbouring-gradient correlation against depth, plain and
residual stacks on the same axes (resnet_core.experiments.shattered)."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from .colors import PLAIN, RESIDUAL
from .figure_layout import layout


def shattered_figure(result: Mapping) -> go.Figure:
    """`result` is ShatteredResult.to_dict(): depth, plain, residual."""
    fig = go.Figure()
    for label, key, colour in (("plain", "plain", PLAIN), ("residual", "residual", RESIDUAL)):
        fig.add_trace(go.Scatter(x=result["depth"], y=result[key], name=label, mode="lines+markers",
                                 line=dict(color=colour), marker=dict(size=5)))
    fig.add_hline(y=0, line=dict(color="#999999", width=1))
    fig.update_xaxes(title_text="depth (blocks)")
    fig.update_yaxes(title_text="correlation of neighbouring input gradients", range=[-0.3, 1.05])
    return layout(fig, height=360)
