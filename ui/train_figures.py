"""Pure plotly figure builders for the Train page: a run's records (resnet_core/training/records.py) in, figures out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from resnet_core.training.config import TrainConfig
from resnet_core.training.records import Record, TestRecord, TrainRecord

from .colors import SEQUENCE
from .figure_layout import log_axis

TRAIN_COLOUR, TEST_COLOUR = SEQUENCE[0], SEQUENCE[1]
RIGHT, WRONG = "#2ca02c", "#d62728"
EMPTY_CURVES = "The curves appear here at the first training step."
OVERLAY_METRICS: dict[str, tuple[type[Record], str]] = {  # label -> (record type, field)
    "train loss": (TrainRecord, "loss"),
    "train accuracy": (TrainRecord, "acc"),
    "test accuracy": (TestRecord, "test_acc"),
    "test loss": (TestRecord, "test_loss"),
}
DEFAULT_OVERLAY = "train loss"  # every run that took a step has it; test records come only at evaluations


def run_title(run_id: str | None, config: TrainConfig) -> str:
    """What a chart of one run shows, for its title and file name: the run, the model, the data and the settings
    that change the curves, on two lines."""
    lr = f"lr {config.lr:g}" if config.lr is not None else "default lr"
    budget = (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs} epochs" if config.epochs
              else "auto budget")
    overrides = "".join(f", {k}={v}" for k, v in config.overrides.items())
    return (f"{run_id or 'new run'} · {config.model}{overrides} on {config.dataset}<br>{budget}, batch "
            f"{config.batch_size}, {config.optimizer} {lr}, {config.schedule}, seed {config.seed}")


def records_frame(records: Sequence[Record], kind: type[Record]) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in records if isinstance(r, kind)])


def training_curves(records: Sequence[Record]) -> go.Figure:
    """Loss (log scale), accuracy, learning rate and throughput against the step, two by two; test evaluations as
    diamonds."""
    train, test = records_frame(records, TrainRecord), records_frame(records, TestRecord)
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.2,
                        subplot_titles=("Loss (log scale)", "Accuracy", "Learning rate", "Training images / s"))
    if not train.empty:
        line = dict(mode="lines+markers", marker=dict(size=4), line=dict(color=TRAIN_COLOUR))
        fig.add_trace(go.Scatter(x=train["step"], y=train["loss"], name="train", legendgroup="train", **line),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=train["step"], y=train["acc"], name="train", legendgroup="train",
                                 showlegend=False, **line), row=1, col=2)
        fig.add_trace(go.Scatter(x=train["step"], y=train["lr"], name="lr", showlegend=False, **line), row=2, col=1)
        fig.add_trace(go.Scatter(x=train["step"], y=train["images_per_sec"], name="images/s", showlegend=False,
                                 **line), row=2, col=2)
    if not test.empty:
        marker = dict(mode="lines+markers", marker=dict(size=9, symbol="diamond"), line=dict(color=TEST_COLOUR))
        fig.add_trace(go.Scatter(x=test["step"], y=test["test_loss"], name="test", legendgroup="test", **marker),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=test["step"], y=test["test_acc"], name="test", legendgroup="test",
                                 showlegend=False, **marker), row=1, col=2)
    losses = [*train.get("loss", []), *test.get("test_loss", [])]
    fig.update_yaxes(**log_axis(losses), title_text="loss", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title_text="accuracy", row=1, col=2)
    fig.update_yaxes(title_text="learning rate", rangemode="tozero", exponentformat="power", row=2, col=1)
    fig.update_yaxes(title_text="images / s", rangemode="tozero", row=2, col=2)
    fig.update_xaxes(title_text="step", rangemode="tozero", automargin=True)
    fig.update_yaxes(automargin=True)
    if train.empty and test.empty:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(text=EMPTY_CURVES, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           font=dict(color="#808495"))
    fig.update_layout(height=580, margin=dict(t=30, b=10, l=10, r=10),
                      legend=dict(orientation="h", y=-0.08, x=0.5, xanchor="center", yanchor="top"))
    return fig


def overlay_figure(runs: Sequence[dict[str, Any]], metric: str = DEFAULT_OVERLAY) -> go.Figure:
    """One line per run for `metric` (a key of OVERLAY_METRICS) against the step; give it only runs that have
    points of it (`has_points`): the page names the others in a line of its own, so no chart is ever empty.

    Each run is {"label": str, "records": [...], "skip": bool}; plain nets (skip False) are dashed.
    """
    kind, key = OVERLAY_METRICS[metric]
    fig = go.Figure()
    values: list[float] = []
    for i, run in enumerate(runs):
        frame = records_frame(run["records"], kind)
        values += frame[key].tolist()
        fig.add_trace(go.Scatter(x=frame["step"], y=frame[key], name=run["label"], mode="lines+markers",
                                 marker=dict(size=8 if kind is TestRecord else 4),
                                 line=dict(color=SEQUENCE[i % len(SEQUENCE)],
                                           dash="solid" if run.get("skip", True) else "dash")))
    if key.endswith("acc"):
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    else:
        fig.update_yaxes(**log_axis(values))
    fig.update_layout(height=400, margin=dict(t=40, b=10, l=10, r=10), xaxis_title="step", yaxis_title=metric,
                      xaxis_rangemode="tozero", legend=dict(orientation="h", y=-0.2))
    return fig


def has_points(records: Sequence[Record], metric: str) -> bool:
    """Whether `records` hold a point of `metric` (a key of OVERLAY_METRICS)."""
    return any(isinstance(r, OVERLAY_METRICS[metric][0]) for r in records)


def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> go.Figure:
    """Counts of (true class, predicted class) on the test set; the diagonal is right."""
    z = np.asarray(confusion)
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues", texttemplate="%{z}",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", showscale=False))
    fig.update_yaxes(autorange="reversed", title_text="true class", automargin=True, ticksuffix=" ")
    fig.update_xaxes(title_text="predicted class", side="bottom", automargin=True, tickangle=-40)
    side = max(360, 34 * len(classes) + 160)
    fig.update_layout(height=side, margin=dict(t=40, b=10, l=10, r=10), title=f"Confusion matrix ({int(z.sum())} "
                                                                                  f"test images)")
    return fig


def prediction_grid(images: np.ndarray, labels: Sequence[int], predictions: Sequence[int], classes: Sequence[str],
                    columns: int = 8) -> go.Figure:
    """Test images (uint8 N×C×H×W, grey or RGB) titled with the prediction: green when right, red when wrong."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    titles = [f"✓ {classes[p]}" if p == y else f"✗ {classes[p]}<br>true: {classes[y]}"
              for y, p in zip(labels, predictions)]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.3 / rows)
    for i, image in enumerate(images):
        rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
        fig.add_trace(go.Image(z=np.transpose(rgb, (1, 2, 0)), hoverinfo="skip"), row=i // columns + 1,
                      col=i % columns + 1)
    for annotation, y, p in zip(fig.layout.annotations, labels, predictions):
        annotation.font = dict(size=11, color=RIGHT if p == y else WRONG)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=115 * rows + 40, margin=dict(t=40, b=5, l=5, r=5))
    return fig
