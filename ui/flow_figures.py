"""Plotly builders for the Signal-flow page: measured numbers in, figure out.

Plain is always drawn in PLAIN and residual in RESIDUAL. Log axes cannot show exact zeros; the
text under each figure (written by resnet_core.experiments.flow) reports them instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.experiments.flow import spread
from resnet_core.experiments.flow_text import format_ratio

from .colors import PLAIN, RESIDUAL, path_colour
from .figure_layout import LOG_FLOOR, layout, log_axis, positive


def stack_flow_figure(plain: Mapping, residual: Mapping) -> go.Figure:
    """Per-block first-conv gradient norm (left) and activation std and |mean| (right), log y, both stacks."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "gradient norm of each block's first conv", "activation after each block"))
    for label, stack, color in (("plain", plain, PLAIN), ("residual", residual, RESIDUAL)):
        blocks = list(range(1, len(stack["grad_norm"]) + 1))
        fig.add_trace(go.Scatter(x=blocks, y=positive(stack["grad_norm"]), name=f"{label}: ‖∇W‖",
                                 mode="lines+markers", line=dict(color=color), marker=dict(size=4),
                                 legendgroup=label), row=1, col=1)
        fig.add_trace(go.Scatter(x=blocks, y=positive(stack["act_std"]), name=f"{label}: std",
                                 mode="lines", line=dict(color=color), legendgroup=label), row=1, col=2)
        fig.add_trace(go.Scatter(x=blocks, y=positive([abs(m) for m in stack["act_mean"]]), name=f"{label}: |mean|",
                                 mode="lines", line=dict(color=color, dash="dot"), legendgroup=label), row=1, col=2)
    grads = [g for stack in (plain, residual) for g in stack["grad_norm"]]
    acts = [a for stack in (plain, residual) for key in ("act_std", "act_mean") for a in stack[key]]
    fig.update_yaxes(title_text="‖∂loss/∂W‖ of conv1", row=1, col=1, **log_axis(grads))
    fig.update_yaxes(title_text="std (solid), |mean| (dotted)", row=1, col=2, **log_axis(acts))
    fig.update_xaxes(title_text="block (1 = next to the input)")
    return layout(fig, height=420)


def spread_figure(plain: Mapping, residual: Mapping) -> go.Figure:
    """max/min over blocks of the gradient norm and of the activation std; unbounded spreads are labelled."""
    metrics = (("gradient norm", "grad_norm"), ("activation std", "act_std"))
    fig = go.Figure()
    for label, stack, color in (("plain", plain, PLAIN), ("residual", residual, RESIDUAL)):
        values = [spread(stack[key]) for _, key in metrics]
        fig.add_trace(go.Bar(x=[m for m, _ in metrics], y=[v if math.isfinite(v) else None for v in values],
                             name=label, marker_color=color, offsetgroup=label,
                             text=[format_ratio(v) for v in values], textposition="outside"))
        unbounded = [m for (m, _), v in zip(metrics, values) if math.isinf(v)]
        if unbounded:  # a log axis cannot draw it: say so where the bar would stand
            fig.add_trace(go.Scatter(x=unbounded, y=[1] * len(unbounded), mode="text",
                                     text=["∞: exact zeros"] * len(unbounded),
                                     textposition="top center", textfont=dict(color=color), showlegend=False,
                                     offsetgroup=label))
    spreads = [spread(stack[key]) for stack in (plain, residual) for _, key in metrics]
    fig.update_yaxes(title_text="max / min over blocks", **log_axis([1.0] + spreads))
    fig.update_xaxes(title_text="measured per block")
    return layout(fig, height=320, barmode="group", scattermode="group")


def model_flow_figure(models: Mapping[str, Mapping]) -> go.Figure:
    """Per block of whole models: first-conv gradient norm and output std, log y, one line per model.

    Each model maps to {"blocks": DataFrame(block, grad_norm, act_std), "skip": bool}.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "gradient norm of each block's first conv", "activation std after each block"))
    for name, model in models.items():
        blocks, color = model["blocks"], path_colour(model["skip"])
        style = dict(mode="lines+markers", line=dict(color=color), marker=dict(size=5), legendgroup=name)
        fig.add_trace(go.Scatter(x=blocks.block, y=positive(blocks.grad_norm), name=name, **style), row=1, col=1)
        fig.add_trace(go.Scatter(x=blocks.block, y=positive(blocks.act_std), name=name, showlegend=False, **style),
                      row=1, col=2)
    for col, key, title in ((1, "grad_norm", "‖∂loss/∂W‖ of conv1"), (2, "act_std", "std of the block's output")):
        values = [v for model in models.values() for v in model["blocks"][key]]
        fig.update_yaxes(title_text=title, row=1, col=col, **log_axis(values))
    fig.update_xaxes(type="category", title_text="block (stage.index, input end on the left)")
    return layout(fig, height=400)


def gradient_heatmap(panels: Mapping[str, pd.DataFrame], value: str = "grad_norm") -> go.Figure:
    """Depth × step heatmaps of log10(value), one panel per run, on one shared colour scale.

    Each frame is long-format with columns step, unit and `value` (resnet_core.experiments.flow.probe_frame);
    units keep their order, so the input end is at the bottom.
    """
    names = list(panels)
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names, shared_yaxes=False)
    logs = {name: _log_pivot(frame, value) for name, frame in panels.items()}
    finite = [v for grid in logs.values() for v in grid.to_numpy().ravel() if math.isfinite(v)]
    zmin, zmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    for i, name in enumerate(names, start=1):
        grid = logs[name]
        fig.add_trace(go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=list(grid.index), coloraxis="coloraxis",
                                 hovertemplate="step %{x}<br>%{y}<br>log10 " + value + " %{z:.2f}<extra>" + name
                                 + "</extra>"), row=1, col=i)
        fig.update_xaxes(title_text="step", row=1, col=i)
    fig.update_yaxes(title_text="unit (input end at the bottom)", col=1)
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=zmin, cmax=zmax,
                                      colorbar=dict(title=f"log10 {value}")))
    return layout(fig, height=360)


def activation_curves(runs: Mapping[str, pd.DataFrame], skip: Mapping[str, bool],
                      stat: str = "act_std") -> go.Figure:
    """One line per (run, stage) of an activation statistic of the stage's output over steps.

    Frames come from resnet_core.experiments.flow.stage_activations; colour by plain/residual, dash by stage."""
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
    for name, frame in runs.items():
        for j, (stage, rows) in enumerate(frame.groupby("stage", sort=False)):
            fig.add_trace(go.Scatter(x=rows.step, y=rows[stat], mode="lines", name=f"{name} · {stage}",
                                     line=dict(color=path_colour(skip[name]), dash=dashes[j % len(dashes)])))
    fig.update_xaxes(title_text="step")
    values = [v for frame in runs.values() for v in frame[stat]]
    fig.update_yaxes(title_text=f"{stat.replace('_', ' ')} of the stage's output", **log_axis(values))
    return layout(fig, height=360)


def _log_pivot(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    units = list(dict.fromkeys(frame.unit))
    grid = frame.pivot_table(index="unit", columns="step", values=value, aggfunc="mean").reindex(units)
    return grid.apply(lambda col: col.map(lambda v: math.log10(max(v, LOG_FLOOR)) if v == v else math.nan))
