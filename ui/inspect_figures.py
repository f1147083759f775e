"""Pure plotly figure builders for the Inside-a-trained-net page: an `Inspection` (resnet_core/analysis/inspect.py) in,
figures out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.analysis.inspect import Inspection, StageView

from .colors import path_colour
from .figure_layout import layout


def top_figure(result: Inspection, k: int = 5) -> go.Figure:
    """The k most probable classes, most probable on top."""
    top = result.top(k)
    names = [result.classes[i] for i, _ in top][::-1]
    probabilities = [p for _, p in top][::-1]
    fig = go.Figure(go.Bar(x=probabilities, y=names, orientation="h", text=[f"{p:.1%}" for p in probabilities],
                           textposition="auto", marker_color=path_colour(result.skip),
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability (softmax)")
    return layout(fig, 60 + 34 * len(names), title=f"Top {len(names)}")


def picture_figure(rgb: np.ndarray, title: str) -> go.Figure:
    """An uint8 (H, W, 3) image at its pixels."""
    fig = go.Figure(go.Image(z=rgb, hovertemplate="x %{x}, y %{y}: %{z}<extra></extra>"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return layout(fig, 300, title=title)


def examples_figure(examples: dict[str, np.ndarray], columns: int = 5) -> go.Figure:
    """A few training images per class: one panel per class (uint8 (n, H, W, 3) side by side), titled with its name."""
    names = list(examples)
    rows = max(1, math.ceil(len(names) / columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=names, horizontal_spacing=0.02,
                        vertical_spacing=0.1 / rows)
    for i, name in enumerate(names):
        strip = np.concatenate(list(examples[name]), axis=1) if len(examples[name]) else np.zeros((1, 1, 3), np.uint8)
        fig.add_trace(go.Image(z=strip, hovertemplate=f"{name}<extra></extra>"), row=i // columns + 1,
                      col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for annotation in fig.layout.annotations:
        annotation.font = dict(size=12)
    return layout(fig, 90 * rows + 40)


def normalized_figure(normalized: np.ndarray) -> go.Figure:
    """The normalised input (C, H, W), one heatmap per channel on a shared symmetric scale: what the first conv
    receives."""
    channels = normalized.shape[0]
    names = ["grey"] if channels == 1 else ["red", "green", "blue"][:channels]
    bound = float(np.abs(normalized).max()) or 1.0
    fig = make_subplots(rows=1, cols=channels, subplot_titles=[f"{n} (normalised)" for n in names],
                        horizontal_spacing=0.03)
    for c in range(channels):
        fig.add_trace(go.Heatmap(z=normalized[c], zmin=-bound, zmax=bound, colorscale="RdBu", reversescale=True,
                                 showscale=c == channels - 1, hovertemplate="%{z:.3f}<extra></extra>"),
                      row=1, col=c + 1)
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    return layout(fig, 260)


def gradcam_figure(rgb: np.ndarray, cam: np.ndarray, title: str) -> go.Figure:
    """The model's input with the Grad-CAM map (in [0, 1], same size) laid over it, half transparent."""
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=cam, zmin=0, zmax=1, colorscale="Jet", opacity=0.45, showscale=True,
                             hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return layout(fig, 320, title=title)


def feature_maps_figure(stage: StageView, columns: int = 4) -> go.Figure:
    """The stage's strongest channels, each on its own colour scale, titled with channel and mean |activation|."""
    n = len(stage.channels)
    rows = max(1, math.ceil(n / columns))
    titles = [f"ch {c}: {np.abs(m).mean():.3g}" for c, m in zip(stage.channels, stage.maps)]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.12 / rows)
    for i, channel_map in enumerate(stage.maps):
        fig.add_trace(go.Heatmap(z=channel_map, colorscale="Viridis", showscale=False,
                                 hovertemplate="%{z:.3f}<extra></extra>"), row=i // columns + 1, col=i % columns + 1)
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    for annotation in fig.layout.annotations:
        annotation.font = dict(size=11)
    c, h, w = stage.shape
    return layout(fig, 130 * rows + 60, title=f"{stage.name}: {c}×{h}×{w}, mean |activation| {stage.mean_abs:.3g}")


def residual_ratio_figure(series: Sequence[tuple[str, Inspection]]) -> go.Figure:
    """‖F(x)‖/‖x‖ per block, one bar group per net (the residual net and its plain twin); blocks that change the
    shape are hatched."""
    fig = go.Figure()
    for label, result in series:
        names = [b.name for b in result.blocks]
        fig.add_trace(go.Bar(x=names, y=[b.residual_ratio for b in result.blocks], name=label,
                             marker=dict(color=path_colour(result.skip),
                                         pattern_shape=["/" if b.changes_shape else "" for b in result.blocks]),
                             hovertemplate="%{x}: %{y:.3f}<extra>" + label + "</extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#808495")
    fig.update_yaxes(title_text="‖F(x)‖ / ‖x‖", rangemode="tozero")
    return layout(fig, 360, barmode="group", legend=dict(orientation="h", y=-0.2),
                  title="Residual ratio per block (hatched: the block changes the shape)")
