"""Plotly builders for loss-surface slices: 1-D curves on shared axes, 2-D contours and 3-D surfaces side by
side on one colour scale. Results are resnet_core.experiments.landscape.LandscapeResult; plain in PLAIN, residual in
RESIDUAL."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.experiments.landscape import LandscapeResult
from resnet_core.runs.contract import short_label

from .colors import path_colour
from .figure_layout import layout


def _label(r: LandscapeResult) -> str:
    return f"{short_label(r.name)} ({'residual' if r.skip else 'plain'})"


def slice_1d_figure(results: Sequence[LandscapeResult]) -> go.Figure:
    """Training loss (left) and accuracy on the subset (right) along α, every run on the same axes."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss along α", "accuracy on the subset (%)"))
    for r in results:
        style = dict(mode="lines+markers", line=dict(color=path_colour(r.skip)), marker=dict(size=5),
                     legendgroup=r.name)
        fig.add_trace(go.Scatter(x=r.alpha, y=r.loss, name=_label(r), **style), row=1, col=1)
        fig.add_trace(go.Scatter(x=r.alpha, y=[100 * a for a in r.acc], name=_label(r), showlegend=False, **style),
                      row=1, col=2)
    fig.update_xaxes(title_text="α (filter-normalised direction)")
    return layout(fig, height=380)


def _z_range(results: Sequence[LandscapeResult]) -> tuple[float, float]:
    values = [v for r in results for row in r.loss for v in row]
    return min(values), max(values)


def contour_figure(results: Sequence[LandscapeResult]) -> go.Figure:
    """One contour panel per 2-D result, the same α, β axes and one colour scale for all."""
    zmin, zmax = _z_range(results)
    fig = make_subplots(rows=1, cols=max(1, len(results)), subplot_titles=[_label(r) for r in results],
                        shared_yaxes=True)
    for i, r in enumerate(results, start=1):
        fig.add_trace(go.Contour(x=r.alpha, y=r.beta, z=r.loss, coloraxis="coloraxis", ncontours=30,
                                 hovertemplate="α %{x:.2f}, β %{y:.2f}: loss %{z:.4g}<extra></extra>"), row=1, col=i)
        fig.update_xaxes(title_text="α", row=1, col=i)
    fig.update_yaxes(title_text="β", row=1, col=1)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=zmin, cmax=zmax, colorbar=dict(title="loss")))
    return layout(fig, height=420)


def surface_figure(results: Sequence[LandscapeResult]) -> go.Figure:
    """One 3-D surface per 2-D result, side by side, the same z range and colour scale."""
    zmin, zmax = _z_range(results)
    n = max(1, len(results))
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "surface"}] * n], subplot_titles=[_label(r) for r in results])
    for i, r in enumerate(results, start=1):
        fig.add_trace(go.Surface(x=r.alpha, y=r.beta, z=r.loss, coloraxis="coloraxis"), row=1, col=i)
    scene = dict(xaxis_title="α", yaxis_title="β", zaxis=dict(title="loss", range=[zmin, zmax]))
    fig.update_scenes(**scene)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=zmin, cmax=zmax, colorbar=dict(title="loss")))
    return layout(fig, height=480)
