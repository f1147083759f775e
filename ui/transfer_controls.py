"""The Train page's transfer-learning part: "Start from" and "Fine-tune" controls, and the side-by-side of the three
fine-tuning strategies (head, last stage, all) on the same data, queued with one click.

    transfer_controls(choice)            # the widgets; their values go into the TrainConfig through
    transfer_fields()                    # init_from, finetune, backbone_lr_scale from the session
    strategies_section()                 # the three runs' curves, accuracy, trainable parameters and time
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from resnet_core.config import FINETUNES, TrainConfig
from resnet_core.format import format_seconds
from resnet_core.jobs import default_runner
from resnet_core.presets import get_preset
from resnet_core.records import Status, short_label
from resnet_core.runstore import RunInfo, read_run, scan_runs
from resnet_core.spec import ModelSpec
from resnet_core.transfer import TORCHVISION
from ui.charts import show_chart
from ui.live import live_fragment
from ui.train_figures import overlay_figure
from ui.widgets import ModelChoice, session_owner

INIT_KEY, FINETUNE_KEY, SCALE_KEY = "train_init_from", "train_finetune", "train_backbone_lr_scale"
STRATEGIES_KEY, STRATEGIES_ERROR_KEY = "train_strategies", "train_strategies_error"
FRESH = ""  # the "Start from" value for fresh weights
DEFAULTS = TrainConfig()
TRANSFER_WIDGETS: dict[str, Any] = {INIT_KEY: FRESH, FINETUNE_KEY: DEFAULTS.finetune,
                                    SCALE_KEY: DEFAULTS.backbone_lr_scale}
FINETUNE_HELP = {"head": "only the classifier (feature extraction)",
                 "last-stage": "the last stage and the classifier",
                 "all": "everything; the backbone at lr × the scale below"}
BN_PITFALL = ("BatchNorm in the frozen part stays in eval mode while the rest trains, so its running statistics "
              "stay the source's: the tutorials' common pitfall is a frozen backbone whose BN statistics drift.")


def widgets_from_transfer(config: TrainConfig) -> dict[str, Any]:
    return {INIT_KEY: config.init_from or FRESH, FINETUNE_KEY: config.finetune, SCALE_KEY: config.backbone_lr_scale}


def transfer_fields() -> dict[str, Any]:
    s = st.session_state
    init_from = s.get(INIT_KEY, FRESH) or None
    return dict(init_from=init_from, finetune=s.get(FINETUNE_KEY, DEFAULTS.finetune) if init_from else "all",
                backbone_lr_scale=s.get(SCALE_KEY, DEFAULTS.backbone_lr_scale) if init_from else
                DEFAULTS.backbone_lr_scale)  # the disabled control must not slow a fresh run's backbone


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
    st.selectbox("Start from", list(options), format_func=lambda v: options[v], key=INIT_KEY,
                 help="a stored run of this architecture (its final weights) or torchvision's weights (from the "
                      "torch hub cache when offline); a new classifier is made when the class count differs")
    fresh = not st.session_state[INIT_KEY]
    st.radio("Fine-tune", FINETUNES, key=FINETUNE_KEY, horizontal=True, disabled=fresh,
             help="; ".join(f"{k}: {v}" for k, v in FINETUNE_HELP.items()))
    st.columns(2)[0].number_input("Backbone lr scale", 1e-4, 10.0, format="%.4g", key=SCALE_KEY, disabled=fresh,
                      help="the lr of every trainable parameter outside the classifier, as a fraction of the peak "
                           "lr (the tutorials use 0.1: 1e-4 against 1e-3)")
    if not fresh:
        st.caption(BN_PITFALL)


def queue_strategies(config: TrainConfig) -> None:
    """Queue the same run three times, once per fine-tuning strategy (an on_click callback)."""
    st.session_state.pop(STRATEGIES_ERROR_KEY, None)
    try:
        jobs = [default_runner().submit(config.replace(finetune=f), owner=session_owner()) for f in FINETUNES]
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
        c = st.columns(2)
        names = ", ".join(run["label"] for run in runs)
        show_chart(overlay_figure(runs, "test accuracy"), key="train_strategies_acc", where=c[0], width="stretch",
                   name="fine-tuning strategies test accuracy", title=f"Test accuracy: {names}")
        show_chart(overlay_figure(runs, "train loss"), key="train_strategies_loss", where=c[1], width="stretch",
                   name="fine-tuning strategies train loss", title=f"Train loss: {names}")
        return any(not snap.done for snap in snaps)

    live_fragment(draw, any(not job.done for job in jobs), 1.0)


def _row(snap) -> dict[str, Any]:
    final = snap.final
    transfer = read_run(snap.run_dir).config.transfer if snap.run_dir else None
    return {"fine-tune": snap.config.finetune, "status": snap.state.label,
            "trainable parameters": f"{transfer.trainable_params:,} of {transfer.total_params:,}" if transfer else "…",
            "test accuracy": f"{final.test_acc:.1%}" if final and final.test_acc is not None else "…",
            "time": format_seconds(final.seconds) if final else "…", "run": snap.run_id or "not started"}
