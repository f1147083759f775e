"""Every chart through one call: plotly's export config (PNG or SVG, a file name that says what it shows).

    from ui.charts import show_chart
    show_chart(fig, key="train_curves", name="resnet20 run 2026-11-30 curves")
"""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import streamlit as st

FORMAT_KEY = "chart_image_format"
IMAGE_FORMATS = ("png", "svg")
EXPORT_WIDTH, EXPORT_HEIGHT_MIN = 1200, 400
TITLE_LINE_PX = 20


def file_stem(name: str) -> str:
    """"resnet20 · seed 0<br>(lr=0.1)" -> "resnet20-seed-0-lr-0.1": no markup, safe on every file system."""
    return re.sub(r"[^A-Za-z0-9.+=_-]+", "-", re.sub(r"<[^>]*>", " ", name)).strip("-.")[:120] or "chart"


def export_config(name: str, image_format: str, height: int | None) -> dict[str, Any]:
    """plotly.js config: the modebar's camera saves `name`.<format> at a size that keeps the legend readable."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"chart format must be one of {', '.join(IMAGE_FORMATS)}; got {image_format!r}")
    return {"displaylogo": False, "toImageButtonOptions": {
        "format": image_format, "filename": file_stem(name), "width": EXPORT_WIDTH,
        "height": max(EXPORT_HEIGHT_MIN, height or 0), "scale": 2 if image_format == "png" else 1}}


def titled(fig: go.Figure, title: str) -> go.Figure:
    """The figure with `title` on top (kept in the exported file); a title the builder set stays as a subtitle."""
    own = fig.layout.title.text
    lines = title.count("<br>") + 1 + (1 if own else 0)
    fig.update_layout(title=dict(  # anchored at the top of the figure: plotly measures the anchor from the last line
        text=title, subtitle=dict(text=own) if own else None, x=0, xanchor="left", y=1, yref="container",
        yanchor="top", pad=dict(t=10 + TITLE_LINE_PX * title.count("<br>")), font=dict(size=14)))
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 40
    fig.update_layout(margin=dict(t=top + 8 + TITLE_LINE_PX * lines))
    return fig


def show_chart(fig: go.Figure, *, key: str, name: str, title: str | None = None, where: Any = None,
               **kwargs: Any) -> None:
    """st.plotly_chart (or `where`.plotly_chart, e.g. a column) with the export config; `title` (e.g. the run
    and its settings) is drawn on the chart and kept in the exported file."""
    if title:
        titled(fig, title)
    image_format = st.session_state.get(FORMAT_KEY) or IMAGE_FORMATS[0]
    (where or st).plotly_chart(fig, key=key, config=export_config(name, image_format, fig.layout.height), **kwargs)
