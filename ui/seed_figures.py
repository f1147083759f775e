"""Plotly builders for results over several seeds: mean ± std bands, each seed faintly, and published lines.

Plain is drawn in PLAIN and residual in RESIDUAL (see colors.py); the deeper net of each kind solid, the
shallower dashed. A band is the mean ± one sample standard deviation over the seeds at each step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.experiments.seeds import NetLesions

from .colors import REFERENCE, path_colour
from .figure_layout import layout, log_axis, positive


def translucent(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def add_band(fig: go.Figure, x: Sequence, mean: Sequence[float], std: Sequence[float | None], colour: str,
             name: str, dash: str, row: int, col: int, show_legend: bool, log: bool = False) -> None:
    """The mean as a line and mean ± std as a shaded band (no band where the std is undefined: one seed)."""
    if any(s is not None for s in std):
        upper = [m + (s or 0.0) for m, s in zip(mean, std)]
        lower = [m - (s or 0.0) for m, s in zip(mean, std)]
        if log:
            lower = positive(lower)
        fig.add_trace(go.Scatter(x=list(x), y=upper, mode="lines", line=dict(width=0), showlegend=False,
                                 hoverinfo="skip", legendgroup=name), row=row, col=col)
        fig.add_trace(go.Scatter(x=list(x), y=lower, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=translucent(colour, 0.18), showlegend=False, hoverinfo="skip",
                                 legendgroup=name), row=row, col=col)
    fig.add_trace(go.Scatter(x=list(x), y=list(mean), mode="lines", name=f"{name} (mean)", legendgroup=name,
                             line=dict(color=colour, dash=dash), showlegend=show_legend), row=row, col=col)


def seed_band_figure(nets: Mapping[str, Mapping], show_seeds: bool = False,
                     references: Sequence[Mapping] = ()) -> go.Figure:
    """Train loss, test loss and test error over steps: per net the mean over seeds with a ± std band.

    Each net maps to resnet_core.experiments.seeds.band_curves' entry: {"skip", "depth", "seeds": {seed: {"train",
    "test"}}, "train": {"step", "loss", "loss_std"}, "test": {"step", "loss", "loss_std", "acc", "acc_std"}}.
    `show_seeds` adds each seed's own curves faintly. `references` (rows of resnet_core.experiments.seeds.paper_lines)
    whose depth and kind match a net shown are drawn as dotted lines on the test-error panel, labelled as the paper's
    setting.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("train loss", "test loss", "test error (%)"))
    depths = sorted({n["depth"] for n in nets.values()})
    for name, net in nets.items():
        colour = path_colour(net["skip"])
        dash = "solid" if net["depth"] == depths[-1] else "dash"
        if show_seeds:
            for seed, c in net["seeds"].items():
                faint = dict(color=translucent(colour, 0.35), width=1, dash=dash)
                label = f"{name} seed {seed}"
                fig.add_trace(go.Scatter(x=c["train"].step, y=c["train"].loss, mode="lines", line=faint, name=label,
                                         showlegend=False, legendgroup=name), row=1, col=1)
                fig.add_trace(go.Scatter(x=c["test"].step, y=c["test"].loss, mode="lines", line=faint, name=label,
                                         showlegend=False, legendgroup=name), row=1, col=2)
                fig.add_trace(go.Scatter(x=c["test"].step, y=100 * (1 - c["test"].acc), mode="lines", line=faint,
                                         name=label, showlegend=False, legendgroup=name), row=1, col=3)
        train, test = net["train"], net["test"]
        add_band(fig, train["step"], train["loss"], train["loss_std"], colour, name, dash, 1, 1, True, log=True)
        add_band(fig, test["step"], test["loss"], test["loss_std"], colour, name, dash, 1, 2, False)
        add_band(fig, test["step"], [100 * (1 - a) for a in test["acc"]],
                 [None if s is None else 100 * s for s in test["acc_std"]], colour, name, dash, 1, 3, False)
    shown = {(n["depth"], n["skip"]) for n in nets.values()}
    for ref in references:
        if (ref["depth"], ref["skip"]) in shown:
            fig.add_hline(y=ref["test_error"], row=1, col=3,
                          line=dict(color=REFERENCE, dash="dot", width=1),
                          annotation_text=f"{ref['paper']}: {ref['net']} {ref['test_error']:g}% (paper's setting)",
                          annotation_position="top left", annotation_font_size=10)
    fig.update_xaxes(title_text="step")
    losses = []  # everything the log panel draws: the band's edges, and each seed's own curve when shown
    for net in nets.values():
        train = net["train"]
        losses += [m + sign * (sd or 0.0) for m, sd in zip(train["loss"], train["loss_std"]) for sign in (-1, 1)]
        if show_seeds:
            losses += [v for c in net["seeds"].values() for v in c["train"].loss]
    fig.update_yaxes(**log_axis([v for v in losses if v > 0]), row=1, col=1)
    return layout(fig, height=440)


def lesion_band_figure(nets: Mapping[str, NetLesions], show_seeds: bool = False) -> go.Figure:
    """One panel per net: test accuracy after deleting each block, mean over seeds with ± std error bars, the
    intact mean dashed; each seed faintly on demand. Nets are resnet_core.experiments.seeds.lesion_summary's."""
    names = list(nets)
    cols = min(2, len(names))
    rows_n = max(1, -(-len(names) // max(1, cols)))
    fig = make_subplots(rows=rows_n, cols=max(1, cols), subplot_titles=names, vertical_spacing=0.3 / rows_n,
                        horizontal_spacing=0.06)
    for i, name in enumerate(names):
        row, col = i // cols + 1, i % cols + 1
        net, colour = nets[name], path_colour(nets[name].skip)
        if show_seeds:
            for seed, accs in net.seeds.items():
                fig.add_trace(go.Scatter(x=net.blocks, y=[None if a is None else 100 * a for a in accs],
                                         mode="lines", line=dict(color=translucent(colour, 0.35), width=1),
                                         name=f"{name} seed {seed}", showlegend=False), row=row, col=col)
        fig.add_trace(go.Scatter(
            x=net.blocks, y=[None if m is None else 100 * m for m in net.mean], mode="lines+markers",
            line=dict(color=colour), name=f"{name} (mean over {len(net.seeds)} seeds)",
            error_y=dict(type="data", array=[100 * (s or 0.0) for s in net.std], visible=True)), row=row, col=col)
        fig.add_hline(y=100 * net.intact_mean, line=dict(color=colour, dash="dash"), row=row, col=col,
                      annotation_text=f"intact {100 * net.intact_mean:.1f}%"
                      + (f" ± {100 * net.intact_std:.1f}" if net.intact_std is not None else ""),
                      annotation_position="bottom right")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=net.blocks, row=row, col=col)
    fig.update_yaxes(range=[-5, 105])
    fig.update_yaxes(title_text="test accuracy (%)", col=1)
    fig.update_xaxes(title_text="deleted block", row=rows_n)
    return layout(fig, height=330 * rows_n, showlegend=False)
