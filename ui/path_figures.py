"""Plotly builder for the path-length view of the lesion study (Veit et al. 2016): the binomial distribution of
path lengths beside the measured accuracy after deleting k blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.experiments.paths import path_length_distribution
from resnet_core.runs.contract import short_label

from .colors import REFERENCE, SEQUENCE, path_colour
from .figure_layout import layout


def path_length_figure(results: Sequence[Mapping]) -> go.Figure:
    """Left: the share of paths of each length for every block count n among `results`. Right: per run, test
    accuracy (%) after deleting k blocks (mean over draws, ± std as error bars), its intact accuracy dotted,
    and the share of paths left, 100·2^-k, in grey.

    Each result is resnet_core.experiments.paths.k_rows_of_run's dict: name, skip, blocks, intact_acc, rows [{k, acc,
    acc_std, paths_left}]."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("paths by length (Binomial(n, ½))",
                                                        "test accuracy after deleting k blocks"))
    for i, n in enumerate(sorted({r["blocks"] for r in results})):
        dist = path_length_distribution(n)
        fig.add_trace(go.Bar(x=[d["length"] for d in dist], y=[100 * d["share"] for d in dist], name=f"n = {n}",
                             marker_color=SEQUENCE[i % len(SEQUENCE)], opacity=0.7,
                             hovertemplate="length %{x}: %{y:.3g}% of the paths<extra></extra>"), row=1, col=1)
    longest = 0
    for r in results:
        rows, colour = r["rows"], path_colour(r["skip"])
        label = short_label(r["name"])
        longest = max(longest, len(rows))
        fig.add_trace(go.Scatter(
            x=[row["k"] for row in rows], y=[100 * row["acc"] for row in rows], mode="lines+markers", name=label,
            line=dict(color=colour), error_y=dict(type="data", array=[100 * (row["acc_std"] or 0) for row in rows],
                                                  visible=True)), row=1, col=2)
        fig.add_trace(go.Scatter(x=[0, max(1, len(rows))], y=[100 * r["intact_acc"]] * 2, mode="lines",
                                 line=dict(color=colour, dash="dot"), name=f"{label} intact", showlegend=False),
                      row=1, col=2)
    if longest:
        ks = list(range(1, longest + 1))
        fig.add_trace(go.Scatter(x=ks, y=[100 * 2.0**-k for k in ks], mode="lines", name="paths left, 100·2^-k %",
                                 line=dict(color=REFERENCE, dash="dash")), row=1, col=2)
    fig.update_xaxes(title_text="path length (blocks passed through)", row=1, col=1)
    fig.update_xaxes(title_text="blocks deleted (k)", row=1, col=2)
    fig.update_yaxes(title_text="% of paths", row=1, col=1)
    fig.update_yaxes(title_text="%", range=[0, 105], row=1, col=2)
    return layout(fig, height=380)
