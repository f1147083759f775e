"""Pure plotly figure builders for the Architecture, Block anatomy and Compare pages: data in, figure out."""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.introspect.anatomy import BlockAnatomy, Step

from .colors import RESIDUAL, SEQUENCE, path_colour

SE_COLOUR = SEQUENCE[1]
SPATIAL_COLOUR = SEQUENCE[3]
BOX_FILL = "rgba(240, 242, 246, 1)"
NEUTRAL = "#555555"
DIAGRAM_TEXT = dict(size=13, color="#262730")  # the theme's text colour: plotly's default grey was hard to read
BOX_HALF_HEIGHT = 0.34
BOX_HALF_WIDTH = 0.98
SHORTCUT_X = 1.2
MIB = 2**20


def stage_figure(stages: pd.DataFrame, residual: bool = True) -> go.Figure:
    """Channels and spatial size out of each stage, and parameters per stage, as three bar charts.

    `stages` is `Summary.stages`: one row per stem / layerN / head with output_shape (N, C, H, W) and params.
    """
    colour = path_colour(residual)
    spatial = stages[stages["output_shape"].map(len) == 4]
    channels = [s[1] for s in spatial["output_shape"]]
    sizes = [f"{s[2]}×{s[3]}" for s in spatial["output_shape"]]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=(
        "Channels out of each stage", "Height × width out of each stage", "Parameters per stage"))
    fig.add_trace(go.Bar(x=spatial["stage"], y=channels, text=channels, marker_color=colour,
                         hovertemplate="%{x}: %{y} channels<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=spatial["stage"], y=[s[2] for s in spatial["output_shape"]], text=sizes,
                         marker_color=SPATIAL_COLOUR, hovertemplate="%{x}: %{text}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Bar(x=stages["stage"], y=stages["params"], text=[short_count(p) for p in stages["params"]],
                         marker_color=colour, hovertemplate="%{x}: %{y:,} parameters<extra></extra>"), row=1, col=3)
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_layout(height=330, margin=dict(t=40, b=10, l=10, r=10), bargap=0.3, showlegend=False)
    return fig


def block_path_figure(anatomy: BlockAnatomy, rows: int = 0) -> go.Figure:
    """The block drawn top to bottom: main path in boxes, the shortcut as a labelled line into the addition.

    `rows` (at least the block's own box count) gives figures of blocks shown side by side one height.
    """
    boxes = _path_boxes(anatomy.steps)
    main = [b for b in boxes if b[0] != "shortcut"]
    fig = go.Figure()
    for i, box in enumerate(main):
        _draw_box(fig, box, -float(i))
    for i in range(1, len(main)):
        _arrow(fig, -float(i - 1), -float(i))
    sum_row = next((i for i, b in enumerate(main) if b[0] == "sum"), None)
    if sum_row is not None:
        shortcut = [s for s in anatomy.steps if s.branch == "shortcut"]
        _shortcut_line(fig, -float(sum_row), _shortcut_label(shortcut))
    rows = max(rows, len(main))
    fig.update_xaxes(visible=False, range=[-1.02, 1.6], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-rows + 0.45, 0.55], fixedrange=True)
    fig.update_layout(height=30 + 96 * rows, margin=dict(t=10, b=10, l=0, r=0), showlegend=False,
                      plot_bgcolor="rgba(0,0,0,0)")
    return fig


def path_box_count(anatomy: BlockAnatomy) -> int:
    """Boxes on the main path of `block_path_figure`, to give blocks shown side by side one height."""
    return sum(1 for branch, _ in _path_boxes(anatomy.steps) if branch != "shortcut")


Box = tuple[str, list[Step]]  # (branch, the steps it stands for)


def _path_boxes(steps: tuple[Step, ...]) -> list[Box]:
    """Merge steps into diagram boxes: one conv per main-path box, with the BN/ReLU after it (before it in
    pre-activation blocks); the SE gate, the shortcut and the sum are one box each."""
    preact = len(steps) > 1 and not _is_conv(steps[1].op)
    boxes: list[Box] = []
    for step in steps:
        previous = boxes[-1] if boxes else None
        is_conv = _is_conv(step.op)
        has_conv = previous is not None and any(_is_conv(s.op) for s in previous[1])
        opens = (previous is None or previous[0] != step.branch
                 or (step.branch == "main" and has_conv and (preact or is_conv)))
        if opens:
            boxes.append((step.branch, [step]))
        else:
            previous[1].append(step)
    return boxes


def _is_conv(op: str) -> bool:
    """A step that is a conv of the main path (plain or weight-standardised), not the attention's 1-D conv."""
    return op.startswith(("conv ", "weight-standardised conv "))


def _box_text(box: Box) -> str:
    branch, steps = box
    shape = "×".join(map(str, steps[-1].shape[1:]))
    params = sum(s.params for s in steps)
    if branch == "input":
        title = "input"
    elif branch == "se":
        title = "squeeze-and-excite gate"
    else:
        title = _wrap([s.op.replace("batch norm", "BN").replace("add: main path + shortcut", "add") for s in steps])
    detail = f"{shape}" + (f" · {params:,} params" if params else "")
    return f"<b>{title}</b><br>{detail}"


def _wrap(ops: list[str]) -> str:
    """Each conv on its own line; the ops between convs (BN, ReLU, add) joined on one line."""
    lines: list[str] = []
    for i, op in enumerate(ops):
        if _is_conv(op) or i == 0 or _is_conv(ops[i - 1]):
            lines.append(op)
        else:
            lines[-1] += " · " + op
    return "<br>".join(lines)


def _draw_box(fig: go.Figure, box: Box, y: float) -> None:
    colour = {"sum": RESIDUAL, "se": SE_COLOUR}.get(box[0], NEUTRAL)
    fig.add_shape(type="rect", x0=-BOX_HALF_WIDTH, x1=BOX_HALF_WIDTH, y0=y - BOX_HALF_HEIGHT, y1=y + BOX_HALF_HEIGHT,
                  line=dict(color=colour, width=1.5), fillcolor=BOX_FILL, layer="below")
    fig.add_annotation(x=0, y=y, text=_box_text(box), showarrow=False, font=DIAGRAM_TEXT)


def _arrow(fig: go.Figure, tail_y: float, head_y: float) -> None:
    fig.add_annotation(x=0, y=head_y + BOX_HALF_HEIGHT, ax=0, ay=tail_y - BOX_HALF_HEIGHT,
                       xref="x", yref="y", axref="x", ayref="y", showarrow=True, arrowhead=2, arrowwidth=1.5,
                       arrowcolor=NEUTRAL, text="")


def _shortcut_label(steps: list[Step]) -> str:
    if not steps:
        return "identity"
    ops = " · ".join(s.op.replace("batch norm", "BN") for s in steps)
    params = sum(s.params for s in steps)
    return f"{ops}<br>{params:,} params" if params else ops


def _shortcut_line(fig: go.Figure, sum_y: float, label: str) -> None:
    """From the input box out to the right, down, and into the sum box, labelled along the way."""
    points = [(BOX_HALF_WIDTH, 0.0), (SHORTCUT_X, 0.0), (SHORTCUT_X, sum_y)]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        fig.add_shape(type="line", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=RESIDUAL, width=2))
    fig.add_annotation(x=BOX_HALF_WIDTH, y=sum_y, ax=SHORTCUT_X, ay=sum_y, xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=2, arrowwidth=2, arrowcolor=RESIDUAL, text="")
    fig.add_annotation(x=SHORTCUT_X, y=sum_y / 2, text=label, showarrow=False, textangle=-90, xshift=18,
                       font=dict(color=RESIDUAL, size=13))


def compare_figure(rows: pd.DataFrame) -> go.Figure:
    """Bars per configuration: params, mult-adds, activation memory and depth (residual and plain coloured apart).

    `rows` has columns label, skip, params, mult_adds, activation_bytes, depth.
    """
    metrics = [("params", "parameters", 1, "{:,.0f}"), ("mult_adds", "mult-adds", 1, "{:,.0f}"),
               ("activation_bytes", "activation memory (MiB)", MIB, "{:,.1f}"),
               ("depth", "depth (layers)", 1, "{:,.0f}")]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m[1] for m in metrics], horizontal_spacing=0.06)
    colours = [path_colour(bool(s)) for s in rows["skip"]]
    for col, (column, title, scale, fmt) in enumerate(metrics, start=1):
        values = rows[column] / scale
        fig.add_trace(go.Bar(x=rows["label"], y=values, marker_color=colours, name=title, showlegend=False,
                             text=[short_count(v) if scale == 1 and column != "depth" else fmt.format(v)
                                   for v in values],
                             textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:,}<extra>" + title + "</extra>"), row=1, col=col)
    _legend_entries(fig, rows["skip"])
    fig.update_xaxes(tickangle=-30)
    fig.update_yaxes(tickformat="~s")
    fig.update_layout(height=440, margin=dict(t=40, b=10, l=10, r=10), legend=dict(orientation="h", y=-0.3, x=0))
    return fig


_SERIES = re.compile(r"^(resnet|plain)\d+$")
DEPTH_TICKS = [10, 20, 50, 100, 200, 500, 1000]


def family_figure(rows: pd.DataFrame, picked: pd.DataFrame | None = None) -> go.Figure:
    """Params and mult-adds against depth for every preset: a line per family and residual/plain, variants as points.
    Only the `picked` configurations are labelled (and ringed); every point names itself on hover.

    `rows` has columns model, family, skip, depth, params, mult_adds; `picked` label, depth, params, mult_adds.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Parameters against depth", "Mult-adds against depth"),
                        horizontal_spacing=0.08)
    rows = rows.sort_values("depth")
    in_series = rows["model"].str.match(_SERIES)
    # plain first, so the residual line stays visible where the two coincide (CIFAR: shortcut A is free)
    for (family, skip), group in rows[in_series].groupby(["family", "skip"], sort=True):
        name = f"{'ResNet' if skip else 'plain'} ({'ImageNet' if family == 'imagenet' else 'CIFAR'})"
        marker = dict(symbol="circle", size=6) if skip else dict(symbol="circle-open", size=11)
        for col, column in ((1, "params"), (2, "mult_adds")):
            fig.add_trace(go.Scatter(
                x=group["depth"], y=group[column], mode="lines+markers", name=name, legendgroup=name,
                showlegend=col == 1, text=group["model"], marker=marker,
                line=dict(color=path_colour(bool(skip)), dash="solid" if family == "imagenet" else "dot"),
                hovertemplate="%{text}: depth %{x}, %{y:,}<extra></extra>"), row=1, col=col)
    variants = rows[~in_series]
    for col, column in ((1, "params"), (2, "mult_adds")):
        fig.add_trace(go.Scatter(
            x=variants["depth"], y=variants[column], mode="markers", name="other variants (hover for names)",
            legendgroup="variants", showlegend=col == 1, text=variants["model"],
            marker=dict(symbol="diamond", size=9, color=RESIDUAL, line=dict(color="white", width=1)),
            hovertemplate="%{text}: depth %{x}, %{y:,}<extra></extra>"), row=1, col=col)
    if picked is not None and len(picked):
        _picked_labels(fig, picked)
    fig.update_xaxes(type="log", title_text="depth (weighted layers)", tickvals=DEPTH_TICKS)
    fig.update_yaxes(type="log", dtick=1, tickformat="~s")
    fig.update_yaxes(title_text="parameters", row=1, col=1)
    fig.update_yaxes(title_text="mult-adds (batch 1, natural input)", row=1, col=2)
    fig.update_layout(height=440, margin=dict(t=40, b=10, l=10, r=10), legend=dict(orientation="h", y=-0.2, x=0))
    return fig


def _picked_labels(fig: go.Figure, picked: pd.DataFrame) -> None:
    """The picked configurations ringed and labelled, one trace per panel."""
    for col, column in ((1, "params"), (2, "mult_adds")):
        fig.add_trace(go.Scatter(
            x=picked["depth"], y=picked[column], mode="markers+text", name="picked above", legendgroup="picked",
            showlegend=col == 1, text=picked["label"], textposition=_label_sides(picked["depth"], picked[column]),
            textfont=dict(size=11), marker=dict(symbol="circle-open", size=16, color=NEUTRAL, line=dict(width=2)),
            hovertemplate="%{text}: depth %{x}, %{y:,}<extra>picked</extra>"), row=1, col=col)


def _label_sides(x: pd.Series, y: pd.Series) -> list[str]:
    """Text positions for point labels: points at the same x alternate right and left, from the lowest up, so
    that labels of variants of one depth (resnext50, wide_resnet50_2, se_resnet50) do not overlap."""
    sides = ["middle right", "middle left"]
    order = pd.DataFrame({"x": list(x), "y": list(y)}).reset_index(drop=True)
    rank = order.sort_values("y").groupby("x").cumcount()
    return [sides[rank[i] % 2] for i in range(len(order))]


def _legend_entries(fig: go.Figure, skips: pd.Series) -> None:
    for skip in sorted(set(bool(s) for s in skips), reverse=True):
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=path_colour(skip), showlegend=True,
                             name="residual" if skip else "plain (no skip)"))


def short_count(n: float) -> str:
    """12345678 -> "12.3M": three significant digits with k, M or G."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            return f"{n / limit:.3g}{suffix}"
    return f"{n:.0f}"
