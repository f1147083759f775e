"""Degradation: plain and residual nets of two depths trained side by side on the same batches (He et al. 2015)."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from resnet_core import degradation, seeds
from resnet_core.data import DATASETS
from resnet_core.degradation_status import NetProgress, group_text, net_progress, overall, read_queued
from resnet_core.estimate import time_runs
from resnet_core.format import format_seconds
from resnet_core.jobs import BackgroundRows, Job, default_runner
from resnet_core.records import RunState
from resnet_core.runstore import read_metrics
from ui.charts import show_chart
from ui.experiment_figures import degradation_figure
from ui.live import live_fragment
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.seed_panels import degradation_seed_panel, paper_table
from ui.widgets import session_owner

setup_page("Degradation")

DEFAULT = degradation.DegradationConfig()
GROUP_KEY = "degr_group"  # the group shown: {"id", "names": [...], "jobs": {name: job id}, "estimate": its task,
# and when this session started it: "more_jobs": [the other seeds' job ids], "seed_groups": {group id: jobs}}
ESTIMATE_KEY = "degr_estimate"  # {"key": (DegradationConfig, seeds), "task": BackgroundRows of the nets' estimates}


def init_state() -> None:
    defaults = dict(degr_shallow=DEFAULT.shallow, degr_deep=DEFAULT.deep, degr_steps=DEFAULT.steps,
                    degr_batch=DEFAULT.batch_size, degr_lr=DEFAULT.lr, degr_width=DEFAULT.width,
                    degr_size=DEFAULT.image_size, degr_augment=DEFAULT.augment, degr_dataset=DEFAULT.dataset,
                    degr_seed=DEFAULT.seed, degr_seeds=1)
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    if GROUP_KEY not in st.session_state:
        stored = degradation.list_groups()
        if stored:
            group_id, runs = next(iter(stored.items()))
            st.session_state[GROUP_KEY] = dict(id=group_id, names=read_queued(group_id) or list(runs), jobs={})


def config_from_widgets() -> degradation.DegradationConfig:
    s = st.session_state
    return degradation.DegradationConfig(
        shallow=s.degr_shallow, deep=s.degr_deep, dataset=s.degr_dataset, steps=s.degr_steps, batch_size=s.degr_batch,
        lr=float(s.degr_lr), width=s.degr_width, image_size=s.degr_size, augment=s.degr_augment,
        seed=s.degr_seed).validate()


def controls() -> degradation.DegradationConfig | None:
    with st.container(border=True):
        c = st.columns(5)
        c[0].slider("Shallow pair: blocks per stage", 1, 18, key="degr_shallow",
                    help="depth = 6 × blocks + 2 (3 → 20 layers)")
        c[1].slider("Deep pair: blocks per stage", 2, 36, key="degr_deep", help="9 → 56 layers")
        c[2].number_input("Steps per net", 1, 100_000, step=100, key="degr_steps")
        c[3].select_slider("Batch size", [16, 32, 64, 128, 256], key="degr_batch")
        c[4].number_input("Peak learning rate", 1e-4, 10.0, step=0.01, format="%.3f", key="degr_lr")
        c = st.columns(5)
        c[0].select_slider("Width (first stage)", [4, 8, 16, 32], key="degr_width")
        c[1].select_slider("Image side", [8, 16, 32], key="degr_size")
        c[2].selectbox("Data set", [d for d in DATASETS if d != "imagefolder"], key="degr_dataset")
        c[3].number_input("Seed", 0, 2**31 - 1, key="degr_seed")
        c[4].toggle("Augment (crop + flip)", key="degr_augment")
        st.number_input("Seeds (each net once per seed)", 1, seeds.MAX_SEEDS, key="degr_seeds",
                        help="seed, seed + 1, …: mean ± std bands over the seeds under “Across seeds”")
        try:
            config = config_from_widgets()
        except ValueError as exc:
            st.error(str(exc), icon="⚠️")
            return None
        st.caption("What runs: " + config.describe())
    return config


def estimate_task(config: degradation.DegradationConfig | None, seed_count: int) -> BackgroundRows | None:
    """The nets of `config` timed on this machine in the background, once per configuration and seed count
    (each seed trains the same four nets, so one seed's are timed)."""
    if config is None:
        return None
    current = st.session_state.get(ESTIMATE_KEY)
    if current is None or current["key"] != (config, seed_count):
        if current is not None:
            current["task"].cancel()
        configs, threads = config.train_configs(), default_runner().threads_per_run
        task = BackgroundRows(lambda _: {name: e.to_dict() for name, e in time_runs(configs, threads).items()},
                              ["the four nets"])
        st.session_state[ESTIMATE_KEY] = current = dict(key=(config, seed_count), task=task)
    return current["task"]


def expected_time(task: BackgroundRows | None, seed_count: int) -> None:
    def draw() -> bool:
        rows, done, error = task.snapshot()
        if error:
            st.caption(f"No time estimate: {error}")
        elif not done:
            st.caption("Expected time: timing a few steps of each net on this machine…")
        else:
            estimates = rows[0]
            total = sum(e["seconds"] for e in estimates.values())
            nets = ", ".join(f"{name} {format_seconds(e['seconds'])}" for name, e in estimates.items())
            if seed_count == 1:
                st.markdown(f"**Expected time: about {format_seconds(total)}** for the four, one after another "
                            f"({nets}).")
            else:
                st.markdown(f"**Expected time: about {format_seconds(seed_count * total)}** for the "
                            f"{seed_count * len(estimates)} runs — the {len(estimates)} nets × {seed_count} seeds, "
                            f"one after another (each seed: {nets}).")
            first = next(iter(estimates.values()))
            st.caption(f"Each net: {first['steps']} steps × its own step time and {first['evaluations']} "
                       f"evaluations × its own evaluation time, both timed here just now (load average "
                       f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); model building and data loading are "
                       "not included, and other runs on this server slow it down.")
        return not done

    if task is not None:
        live_fragment(draw, not task.snapshot()[1], 1.0)


def start_buttons(config: degradation.DegradationConfig | None) -> None:
    group = st.session_state.get(GROUP_KEY)
    jobs = live_jobs(group)
    seed_count = st.session_state.degr_seeds
    task = None if jobs else estimate_task(config, seed_count)
    runs = seed_count * (len(config.nets()) if config else 4)
    label = "Start the four runs" if runs == 4 else f"Start the {runs} runs"
    c = st.columns([1, 1, 4])
    if c[0].button(label, type="primary", disabled=config is None or bool(jobs), key="degr_start"):
        try:
            set_id, by_seed = seeds.start_seeds(config, seed_count, default_runner(),
                                                owner=session_owner())
        except ValueError as exc:
            st.error(str(exc), icon="⚠️")
        else:
            first, *more = by_seed.values()
            group_id = seeds.seed_group_id(set_id, next(iter(by_seed)))
            st.session_state[GROUP_KEY] = dict(id=group_id, names=list(first),
                                               jobs={name: job.id for name, job in first.items()},
                                               more_jobs=[job.id for jobs in more for job in jobs.values()],
                                               seed_groups={seeds.seed_group_id(set_id, seed): {
                                                   name: job.id for name, job in jobs.items()}
                                                   for seed, jobs in by_seed.items()},
                                               estimate=task)
            st.session_state["degr_shown"] = group_id
            st.rerun()
    if c[1].button("Stop", disabled=not jobs, key="degr_stop"):
        for job in jobs:
            job.stop()
    runner = default_runner()
    running, queued = runner.load()
    with c[2]:
        expected_time(task, seed_count)
    c[2].caption(f"Job runner (shared by all sessions): {running} running, {queued} queued, at most "
                 f"{runner.max_concurrent} at a time.")


def group_jobs(group: dict | None) -> dict[str, Job | None]:
    """This session's jobs of the group, by net name (None where this process does not run it)."""
    if not group:
        return {}
    runner = default_runner()
    return {name: runner.get(job_id, session_owner()) for name, job_id in group.get("jobs", {}).items()}


def live_jobs(group: dict | None) -> list[Job]:
    """The group's live jobs and those of the other seeds started with it."""
    more = [default_runner().get(job_id, session_owner()) for job_id in (group or {}).get("more_jobs", [])]
    return [job for job in [*group_jobs(group).values(), *more] if job is not None and not job.done]


def states(group: dict) -> dict[str, RunState | None]:
    return degradation.group_states(group["id"], group["names"], group_jobs(group))


def other_seed_groups(group: dict) -> list[dict]:
    """The groups of the other seeds started with `group` by this session (none for a group read back from disk)."""
    return [dict(id=group_id, names=list(jobs), jobs=jobs)
            for group_id, jobs in group.get("seed_groups", {}).items() if group_id != group["id"]]


def set_live(group: dict) -> bool:
    """Whether a net of the group, or of another seed started with it, is still queued or running."""
    return any(s is not None and s.live for g in [group, *other_seed_groups(group)] for s in states(g).values())


def seed_progress(group: dict, estimates: dict) -> list[NetProgress]:
    dirs, state = degradation.run_dirs(group["id"], group["names"]), states(group)
    return [net_progress(name, state[name], read_metrics(dirs[name]), estimates.get(name)) for name in group["names"]]


def results_panel() -> None:
    stored = degradation.list_groups()
    group = st.session_state.get(GROUP_KEY)
    options = list(dict.fromkeys(([group["id"]] if group else []) + list(stored)))
    if not options:
        st.info("No degradation runs yet. Press “Start”: the nets named above under “What runs” (once per seed) "
                "train one after another in the background, with the expected time shown next to the button; "
                "their curves, a table and a verdict from the numbers appear here as they train.")
        return
    chosen = st.selectbox("Runs shown", options, key="degr_shown")
    if not group or chosen != group["id"]:
        group = dict(id=chosen, names=read_queued(chosen) or list(stored.get(chosen, {})), jobs={})
    if stored.get(chosen):
        st.caption("Settings: " + degradation.config_of_group(stored[chosen]).settings_text())

    def draw() -> bool:
        state = states(group)
        dirs = degradation.run_dirs(group["id"], group["names"])
        records = {name: read_metrics(dirs[name]) for name in group["names"]}
        summaries = {name: degradation.summarize_records(r) for name, r in records.items() if r}
        nets = {name: degradation.parse_net(name) for name in group["names"]}
        task = group.get("estimate")
        timed = task.snapshot()[0] if task else []
        estimates = timed[0] if timed else {}
        progress = [net_progress(name, state[name], records[name], estimates.get(name)) for name in group["names"]]
        others = other_seed_groups(group)
        every_run = progress + [p for g in others for p in seed_progress(g, estimates)]
        live = any(p.status is not None and p.status.live for p in every_run)
        if live:
            done, text = overall(every_run)
            seed = seeds.SEED_GROUP.fullmatch(group["id"])
            scope = (f" ({len(others) + 1} seeds; the bars below: seed {seed.group(2)})" if others else
                     f" (the nets of seed {seed.group(2)})" if seed and "seed_groups" not in group else "")
            st.progress(done, text=text + scope)
            for p in progress:
                st.progress(p.fraction, text=p.text())
        st.caption(group_text(group["names"], progress))
        rows = []
        for name, net_state in zip(group["names"], progress):
            summary = summaries.get(name, {})
            acc = summary.get("test_acc")
            rows.append({"net": name, "status": net_state.label, "step": net_state.step,
                         "final train loss": summary.get("final_train_loss"),
                         "test accuracy %": None if acc is None else round(100 * acc, 1)})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        curves = {name: dict(skip=nets[name]["skip"], depth=nets[name]["depth"], **degradation.curves(r))
                  for name, r in records.items() if r}
        if curves:
            show_chart(degradation_figure(curves), key="degr_fig", name="degradation " + " ".join(curves),
                       title="Degradation: " + ", ".join(curves), width="stretch")
            st.markdown("\n".join(f"- {line}" for line in degradation.describe(summaries)))
        return live

    live_fragment(draw, set_live(group), 2.0)


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
