"""The Train page's transfer-learning part: "Start from" and "Fine-tune" controls, and the side-by-side of the three
fine-tuning strategies (head, last stage, all) on the same data, queued with one click.

    transfer_controls(choice)            # the widgets of init_from, finetune and backbone_lr_scale
    strategies_section()                 # the three runs' curves, accuracy, trainable parameters and time
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from resnet_core.formatting import format_seconds
from resnet_core.models.presets import get_preset
from resnet_core.models.spec import ModelSpec
from resnet_core.runs.contract import short_label
from resnet_core.runs.runner import default_runner
from resnet_core.runs.scheduler import Priority
from resnet_core.runs.store import RunInfo, read_run, scan_runs
from resnet_core.runs.transfer import TORCHVISION
from resnet_core.training.config import FINETUNES, TrainConfig
from resnet_core.training.records import Status
from ui.charts import show_chart
from ui.live import live_fragment
from ui.options import TRAIN
from ui.run_status import no_points_note
from ui.train_figures import has_points, overlay_figure
from ui.widgets import ModelChoice, session_owner

INIT_KEY = "train_init_from"
STRATEGIES_KEY, STRATEGIES_ERROR_KEY = "train_strategies", "train_strategies_error"
FRESH = ""  # the "Start from" value for fresh weights
FINETUNE_HELP = {"head": "only the classifier (feature extraction)",
                 "last-stage": "the last stage and the classifier",
                 "all": "everything; the backbone at lr × the scale below"}
BN_PITFALL = ("BatchNorm in the frozen part stays in eval mode while the rest trains, so its running statistics "
              "stay the source's: the tutorials' common pitfall is a frozen backbone whose BN statistics drift.")


def sources(spec: ModelSpec | None, model: str) -> dict[str, str]:
    """value -> label: fresh weights, the stored runs with weights of this architecture, torchvision's weights."""
    options = {FRESH: "fresh weights (train from scratch)"}
    if spec is not None:
        for info in scan_runs()[0]:
            if _fits(info, spec):
                acc = info.final.test_acc if info.final else None
                options[str(info.path)] = (f"run {short_label(info.run_id)} · {info.config.data.name}"
                                           + (f" · test acc {acc:.1%}" if acc is not None else ""))
        preset = get_preset(model)
        if preset.torchvision and preset.spec.replace(num_classes=spec.num_classes) == spec:
            options[TORCHVISION] = f"torchvision's ImageNet weights for {preset.torchvision}"
    current = st.session_state.get(INIT_KEY, FRESH)
    options.setdefault(current, current)  # a run attached from the URL keeps its source even if it is gone
    return options


def _fits(info: RunInfo, spec: ModelSpec) -> bool:
    return (info.status in (Status.FINISHED, Status.STOPPED) and info.has_weights
            and info.config.spec.replace(num_classes=spec.num_classes) == spec)


def transfer_controls(choice: ModelChoice) -> None:
    try:
        spec = choice.spec()
    except ValueError:  # the picker shows the spec's error
        spec = None
    options = sources(spec, choice.model)
    TRAIN.draw("init_from", options=list(options), format_func=lambda v: options[v])
    fresh = not st.session_state[INIT_KEY]
    TRAIN.draw("finetune", disabled=fresh, help="; ".join(f"{k}: {v}" for k, v in FINETUNE_HELP.items()))
    TRAIN.draw("backbone_lr_scale", st.columns(2)[0], disabled=fresh)
    if not fresh:
        st.caption(BN_PITFALL)


def queue_strategies(config: TrainConfig) -> None:
    """Queue the same run three times, once per fine-tuning strategy (an on_click callback)."""
    st.session_state.pop(STRATEGIES_ERROR_KEY, None)
    try:
        jobs = [default_runner().submit(config.replace(finetune=f), owner=session_owner(), priority=Priority.BATCH)
                for f in FINETUNES]
    except ValueError as exc:
        st.session_state[STRATEGIES_ERROR_KEY] = str(exc)
        return
    st.session_state[STRATEGIES_KEY] = [job.id for job in jobs]


def strategies_button(config: TrainConfig | None) -> None:
    ready = config is not None and config.init_from is not None
    st.button("Compare head / last-stage / all", key="train_strategies_start", on_click=queue_strategies,
              args=(config,), disabled=not ready, width="stretch",
              help="queue three runs with these settings, one per fine-tuning strategy, and show them side by side"
              if ready else "pick a run (or torchvision) to start from first")
    if STRATEGIES_ERROR_KEY in st.session_state:
        st.error(st.session_state[STRATEGIES_ERROR_KEY], icon="⚠️")


def strategies_section() -> None:
    """The three strategy runs side by side, polled while any is queued or running."""
    ids = st.session_state.get(STRATEGIES_KEY)
    jobs = [default_runner().get(i) for i in ids or []]
    if not ids or any(job is None for job in jobs):
        return
    st.subheader("Fine-tuning strategies side by side")
    st.caption(f"The same data, settings and seed from {jobs[0].config.init_from}; only what trains differs. "
               + BN_PITFALL)

    def draw() -> bool:
        snaps = [job.snapshot() for job in jobs]
        rows = [_row(snap) for snap in snaps]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        runs = [dict(label=snap.config.finetune, records=snap.records, skip=True) for snap in snaps]
        for column, (metric, title, key) in zip(st.columns(2), (("test accuracy", "Test accuracy", "acc"),
                                                                ("train loss", "Train loss", "loss"))):
            drawn = [run for run in runs if has_points(run["records"], metric)]
            if drawn:
                names = ", ".join(run["label"] for run in drawn)
                show_chart(overlay_figure(drawn, metric), key=f"train_strategies_{key}", where=column,
                           width="stretch", name=f"fine-tuning strategies {metric}", title=f"{title}: {names}")
            missing = [(snap.config.finetune, snap.state.label, not snap.done) for snap, run in zip(snaps, runs)
                       if run not in drawn]
            if missing:
                column.caption(no_points_note(missing, metric))
        return any(not snap.done for snap in snaps)

    live_fragment(draw, any(not job.done for job in jobs), 1.0)


def _row(snap) -> dict[str, Any]:
    final = snap.final
    transfer = read_run(snap.run_dir).config.transfer if snap.run_dir else None
    return {"fine-tune": snap.config.finetune, "status": snap.state.label,
            "trainable parameters": f"{transfer.trainable_params:,} of {transfer.total_params:,}" if transfer else "…",
            "test accuracy": f"{final.test_acc:.1%}" if final and final.test_acc is not None else "…",
            "time": format_seconds(final.seconds) if final else "…", "run": snap.run_id or "not started"}
