"""The stage table of a `Summary` as text and markdown (the data comes from `summary.py`)."""

from __future__ import annotations

import pandas as pd

from ..formatting import format_bytes, format_count, format_shape
from .summary import Summary


def stage_frame_for_display(summary: Summary) -> pd.DataFrame:
    df = summary.stages.copy()
    df["input_shape"] = df["input_shape"].map(format_shape)
    df["output_shape"] = df["output_shape"].map(format_shape)
    return df


def stage_table_text(summary: Summary) -> str:
    df = stage_frame_for_display(summary)
    df["params"] = df["params"].map(format_count)
    df["mult_adds"] = df["mult_adds"].map(format_count)
    head = (f"{summary.spec.block} ResNet, depth {summary.depth}, "
            f"input {format_shape((summary.batch_size, *summary.input_size))}\n")
    foot = (f"\ntotal params: {format_count(summary.total_params)}  trainable: {format_count(summary.trainable_params)}"
            f"\nmult-adds: {format_count(summary.mult_adds)}  output: {format_shape(summary.output_shape)}"
            f"\nactivations (training step): {format_bytes(summary.activation_bytes)}"
            f"  training memory: {format_bytes(summary.training_memory_bytes)}")
    return head + df.to_string(index=False) + foot


def stage_table_markdown(summary: Summary) -> str:
    df = stage_frame_for_display(summary)
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in rec) + " |")
    return "\n".join(lines) + "\n"
