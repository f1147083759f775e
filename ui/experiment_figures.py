"""Plotly builders for the Degradation and Lesion pages: measured curves and accuracies in, figure out.

Plain is always drawn in PLAIN and residual in RESIDUAL (see colors.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.experiments.degradation_nets import Net
from resnet_core.experiments.lesion import LesionResult
from resnet_core.runs.contract import short_label

from .colors import path_colour
from .figure_layout import layout, log_axis


def degradation_figure(runs: Mapping[Net, Mapping[str, pd.DataFrame]]) -> go.Figure:
    """Train loss, test loss and test accuracy (%) over steps for every net.

    Each net maps to its curves as resnet_core.experiments.degradation.curves gives them: {"train":
    DataFrame(step, loss), "test": DataFrame(step, loss, acc)}. The deeper net of each kind is drawn solid, the
    shallower dashed.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("train loss", "test loss", "test accuracy (%)"),
                        horizontal_spacing=0.12)
    depths = sorted({net.depth for net in runs})
    for net, run in runs.items():
        name = net.name
        line = dict(color=path_colour(net.skip), dash="solid" if net.depth == depths[-1] else "dash")
        train, test = run["train"], run["test"]
        fig.add_trace(go.Scatter(x=train.step, y=train.loss, name=name, mode="lines+markers" if len(train) < 3
                                 else "lines", line=line, legendgroup=name), row=1, col=1)
        for col, values in ((2, test.loss), (3, 100 * test.acc)):
            fig.add_trace(go.Scatter(x=test.step, y=values, name=name, showlegend=False, mode="lines+markers",
                                     line=line, legendgroup=name, cliponaxis=False), row=1, col=col)
    last = max([int(run[kind].step.max()) for run in runs.values() for kind in ("train", "test") if len(run[kind])]
               or [1])
    fig.update_xaxes(title_text="step", range=[0, last * 1.05])  # from step 0, so one point still has ticks
    if not any(len(run["test"]) for run in runs.values()):
        for col in (2, 3):
            fig.add_annotation(text="no evaluation yet:<br>the first comes at an<br>epoch's end or at the stop",
                               showarrow=False, xref=f"x{col} domain", yref=f"y{col} domain", x=0.5, y=0.5)
            fig.update_yaxes(showticklabels=False, row=1, col=col)
    losses = [v for run in runs.values() for v in run["train"].loss]
    fig.update_yaxes(title_text="train loss (log)", row=1, col=1, **log_axis(losses))
    fig.update_yaxes(title_text="test loss", row=1, col=2)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=3)
    return layout(fig, height=420)


def lesion_figure(results: Mapping[str, LesionResult]) -> go.Figure:
    """One panel per net: test accuracy after deleting each block, the intact accuracy as a dashed line; blocks
    that are not deletable (their deletion changes the shape) are marked with an x at zero.
    """
    names = list(results)
    cols = min(2, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows_n, cols=cols, subplot_titles=[short_label(n) for n in names],
                        vertical_spacing=0.3 / rows_n, horizontal_spacing=0.06)
    for i, name in enumerate(names):
        row, col = i // cols + 1, i % cols + 1
        res = results[name]
        color = path_colour(res.skip)
        names = [b.block for b in res.blocks]
        acc = [100 * b.acc if b.deletable else None for b in res.blocks]
        fig.add_trace(go.Scatter(x=names, y=acc, mode="lines+markers", line=dict(color=color),
                                 name=short_label(name), connectgaps=False), row=row, col=col)
        fixed = [b.block for b in res.blocks if not b.deletable]
        fig.add_trace(go.Scatter(x=fixed, y=[0] * len(fixed), mode="markers", showlegend=False,
                                 marker=dict(symbol="x", size=9, color=color),
                                 hovertemplate="%{x}: not deletable (changes the shape)<extra></extra>"),
                      row=row, col=col)
        fig.add_hline(y=100 * res.baseline_acc, line=dict(color=color, dash="dash"), row=row, col=col,
                      annotation_text=f"intact {100 * res.baseline_acc:.1f}%", annotation_position="bottom right")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, row=row, col=col)
    fig.update_yaxes(title_text="test accuracy (%)", range=[-5, 105], col=1)
    fig.update_yaxes(range=[-5, 105])
    fig.update_xaxes(title_text="deleted block (× = not deletable)", row=rows_n)
    return layout(fig, height=330 * rows_n, showlegend=False)
