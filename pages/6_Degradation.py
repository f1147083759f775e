"""Degradation: plain and residual nets of two depths trained side by side on the same batches (He et al. 2015)."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from resnet_core.experiments import degradation, seeds
from resnet_core.experiments.degradation_group import GroupStatus, ShownGroup, group_choices
from resnet_core.formatting import format_seconds
from resnet_core.runs.background import BackgroundRows, shared_rows
from resnet_core.runs.board import RunBoard
from resnet_core.runs.runner import default_runner
from resnet_core.training.estimate import RunEstimate, time_runs
from ui.charts import show_chart
from ui.experiment_figures import degradation_figure
from ui.live import current_board, follow_runs, live_fragment, training_now
from ui.options import DEGRADATION
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.seed_panels import degradation_seed_panel, paper_table
from ui.widgets import session_owner

setup_page("Degradation")

DEFAULT = degradation.DegradationConfig()
GROUP_KEY = "degr_group"  # the group shown: a degradation_group.ShownGroup
ESTIMATE_KEY = "degr_estimate"  # {"key": (DegradationConfig, seeds), "task": BackgroundRows of the nets' estimates}


def init_state() -> None:
    for key, value in {**DEGRADATION.defaults(), "degr_seeds": 1}.items():
        st.session_state.setdefault(key, value)
    if GROUP_KEY not in st.session_state:
        stored = degradation.list_groups()
        if stored:
            st.session_state[GROUP_KEY] = ShownGroup.stored(*next(iter(stored.items())))


def controls() -> degradation.DegradationConfig | None:
    with st.container(border=True):
        DEGRADATION.draw_in_rows([o.name for o in DEGRADATION.with_widgets], per_row=5)
        st.number_input("Seeds (each net once per seed)", 1, seeds.MAX_SEEDS, key="degr_seeds",
                        help="seed, seed + 1, …: mean ± std bands over the seeds under “Across seeds”")
        try:
            config = DEGRADATION.config(st.session_state).validate()
        except ValueError as exc:
            st.error(str(exc), icon="⚠️")
            return None
        st.caption("What runs: " + config.describe())
    return config


def estimate_task(config: degradation.DegradationConfig | None,
                  seed_count: int) -> BackgroundRows[dict[str, RunEstimate]] | None:
    """The nets of `config` timed on this machine in the background, once per configuration and seed count
    (each seed trains the same four nets, so one seed's are timed). The timing is shared by every session of the
    server (`shared_rows`): eight users opening the page time the four nets once, not eight times at once."""
    if config is None:
        return None
    current = st.session_state.get(ESTIMATE_KEY)
    if current is None or current["key"] != (config, seed_count):
        configs, threads = config.train_configs(), default_runner().threads_per_run
        task = shared_rows(("degradation estimate", config, threads), max_age=60.0,
                           start=lambda: BackgroundRows(lambda _: time_runs(configs, threads), ["the four nets"]))
        st.session_state[ESTIMATE_KEY] = current = dict(key=(config, seed_count), task=task)
    return current["task"]


def expected_time(task: BackgroundRows[dict[str, RunEstimate]] | None, seed_count: int) -> None:
    def draw() -> bool:
        rows, done, error = task.snapshot()
        if error:
            st.caption(f"No time estimate: {error}")
        elif not done:
            st.caption("Expected time: timing a few steps of each net on this machine…")
        else:
            estimates = rows[0]
            total = sum(e.seconds for e in estimates.values())
            nets = ", ".join(f"{name} {format_seconds(e.seconds)}" for name, e in estimates.items())
            if seed_count == 1:
                st.markdown(f"**Expected time: about {format_seconds(total)}** for the four, one after another "
                            f"({nets}).")
            else:
                st.markdown(f"**Expected time: about {format_seconds(seed_count * total)}** for the "
                            f"{seed_count * len(estimates)} runs — the {len(estimates)} nets × {seed_count} seeds, "
                            f"one after another (each seed: {nets}).")
            first = next(iter(estimates.values()))
            st.caption(f"Each net: {first.steps} steps × its own step time and {first.evaluations} "
                       f"evaluations × its own evaluation time, both timed here just now (load average "
                       f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); model building and data loading are "
                       "not included, and other runs on this server slow it down. This is a prior: once a net has "
                       "trained, the bars below use the pace measured on it, and count the wait in front.")
        return not done

    if task is not None:
        live_fragment(draw, not task.snapshot()[1], 1.0)


def start_buttons(config: degradation.DegradationConfig | None) -> None:
    shown: ShownGroup | None = st.session_state.get(GROUP_KEY)
    runner = default_runner()
    jobs = shown.live_jobs(runner, session_owner()) if shown else []
    seed_count = st.session_state.degr_seeds
    task = None if jobs else estimate_task(config, seed_count)
    runs = seed_count * (len(config.nets()) if config else 4)
    label = "Start the four runs" if runs == 4 else f"Start the {runs} runs"
    c = st.columns([1, 1, 4])
    if c[0].button(label, type="primary", disabled=config is None or bool(jobs), key="degr_start"):
        try:
            set_id, by_seed = seeds.start_seeds(config, seed_count, runner, owner=session_owner())
        except ValueError as exc:
            st.error(str(exc), icon="⚠️")
        else:
            shown = st.session_state[GROUP_KEY] = ShownGroup.started(set_id, by_seed, task)
            st.session_state["degr_shown"] = shown.group_id
            st.rerun()
    if c[1].button("Stop", disabled=not jobs, key="degr_stop"):
        for job in jobs:
            job.stop()
    with c[2]:
        expected_time(task, seed_count)
        follow_runs(current_board(), runner_line)


def runner_line(board: RunBoard) -> None:
    """The job runner's load and every live run, redrawn while one is live (the page reruns when one changes)."""
    runner = default_runner()
    running, queued = runner.load()
    st.caption(f"Job runner (shared by all sessions): {running} running, {queued} queued, at most "
               f"{runner.max_concurrent} at a time. Runs started on the Train page go first, pausing a net here.")
    training_now(board)


def results_panel() -> None:
    stored = degradation.list_groups()
    shown: ShownGroup | None = st.session_state.get(GROUP_KEY)
    options = group_choices(shown, stored)
    if not options:
        st.info("No degradation runs yet. Press “Start”: the nets named above under “What runs” (once per seed) "
                "train one after another in the background, with the expected time shown next to the button; "
                "their curves, a table and a verdict from the numbers appear here as they train.")
        return
    chosen = st.selectbox("Runs shown", options, key="degr_shown")
    if not shown or chosen != shown.group_id:
        shown = ShownGroup.stored(chosen, stored.get(chosen, {}))
    if stored.get(chosen):
        st.caption("Settings: " + degradation.config_of_group(stored[chosen]).settings_text())

    def draw() -> bool:
        status = shown.status(default_runner(), session_owner())
        if status.live:
            progress_bars(status)
        st.caption(status.text())
        st.dataframe(pd.DataFrame(status.table_rows()), hide_index=True, width="stretch")
        curves = status.curves()
        if curves:
            names = [net.name for net in curves]
            show_chart(degradation_figure(curves), key="degr_fig", name="degradation " + " ".join(names),
                       title="Degradation: " + ", ".join(names), width="stretch")
            st.markdown("\n".join(f"- {line}" for line in degradation.describe(status.summaries)))
        return status.live

    live_fragment(draw, shown.is_live(default_runner(), session_owner()), 2.0)


def progress_bars(status: GroupStatus) -> None:
    """The whole set's bar, then one per net of the group shown."""
    done, text = status.overall()
    st.progress(done, text=text)
    for p in status.progress:
        st.progress(p.fraction, text=p.text())


def reference_panel() -> None:
    rows = degradation.reference_rows()
    st.dataframe(pd.DataFrame([{"net": r["name"], "params": r["params"], "error %": r["test_error"],
                                "acc. %": round(100 - r["test_error"], 2)} for r in rows]),
                 hide_index=True, width="stretch")
    st.caption(f"CIFAR-10 test error as published (error %) and the test accuracy it means (acc. % = 100 − error). "
               f"Source: {rows[0]['source']}. "
               + degradation.PLAIN_REFERENCE
               + " The paper trains 64k iterations "
               "of batch 128 on 32×32 CIFAR-10 with augmentation; the runs here are far shorter, so compare the "
               "ordering of the curves, not the error levels.")
    st.dataframe(paper_table(), hide_index=True, width="stretch")


init_state()
st.title("Degradation")
st.markdown("He et al. (2015) found that a deeper *plain* net ends with a **higher training loss** than a shallower "
            "one — not overfitting but worse optimisation — while the same nets with identity shortcuts do not. "
            "Here the four nets train on the same data, seed and batches, one after another in the background.")
config = controls()
start_buttons(config)
left, right = st.columns([3, 1.2])
with left:
    results_panel()
    degradation_seed_panel()
with right:
    st.subheader("Published reference")
    reference_panel()


quick_check("Degradation")
