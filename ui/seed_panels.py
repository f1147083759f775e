"""Page sections for experiments run with several seeds: pick a seed set, see its bands, its numbers and the
published lines. The pages call these; all numbers come from resnet_core.experiments.seeds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from resnet_core.experiments import seeds
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.contract import short_label
from resnet_core.runs.pairing import unlike_text
from resnet_core.runs.store import RunInfo

from .charts import show_chart
from .live import live_fragment, measured_rows
from .seed_figures import lesion_band_figure, seed_band_figure


def pick_set(label: str, sets: dict[str, list[RunInfo]], key: str, column) -> str:
    """A set picker that starts on the newest set whose runs were all trained alike (runs.pairing); a warning
    naming the differences when the picked set mixes unlike runs, or a note when no set is alike."""
    first = seeds.first_alike(sets)
    chosen = column.selectbox(label, list(sets), key=key, format_func=short_label,
                              index=list(sets).index(first) if first else 0)
    if first is None:
        st.info("No set here has every run trained alike, so the newest is shown; its differences are below.")
    if unlike := seeds.unlike_runs(sets[chosen]):
        st.warning(f"Not every run of this set was trained alike: {unlike_text(unlike)} Its bands and means mix "
                   "unlike runs.", icon="⚠️")
    return chosen


def degradation_seed_panel(key: str = "degr_seedset") -> None:
    """The newest (or chosen) seed set of the degradation experiment: mean ± std over seeds, polled while live."""
    st.subheader("Across seeds")
    sets = seeds.list_seed_sets()
    if not sets:
        st.caption("No seed set yet: set “Seeds” above 1 and start; every net then runs once per seed, and the "
                   "curves here are the mean ± one standard deviation over the seeds.")
        return
    c = st.columns([3, 1])
    chosen = pick_set("Seed set", {set_id: [info for *_, info in seeds.set_runs(s)] for set_id, s in sets.items()},
                      key, c[0])
    faint = c[1].toggle("Each seed faintly", key=f"{key}_faint")

    def draw() -> bool:
        seed_set = seeds.list_seed_sets().get(chosen, {})
        records = seeds.set_records(seed_set)
        records = {name: {s: r for s, r in by_seed.items() if r[1]} for name, by_seed in records.items()}
        records = {name: by_seed for name, by_seed in records.items() if by_seed}
        live = any(info.status.live for runs in seed_set.values() for info in runs.values())
        if not records:
            st.info("No records yet.")
            return live
        summary = seeds.seed_summary(records)
        rows = [dict(net=name, seeds=len(s["seeds"]), final_train_loss=s["mean"]["final_train_loss"],
                     final_train_loss_std=s["std"]["final_train_loss"], test_acc=s["mean"]["test_acc"],
                     test_acc_std=s["std"]["test_acc"]) for name, s in summary.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        show_chart(seed_band_figure(seeds.band_curves(records), faint, seeds.paper_lines()), key=f"{key}_fig",
                   name=f"{key} seeds", title="Mean ± std over seeds: " + ", ".join(summary), width="stretch")
        st.markdown("\n".join(f"- {line}" for line in seeds.describe_seeds(summary)))
        st.caption("Band: mean ± one sample standard deviation over the seeds at each logged step. Dotted grey "
                   "lines: published CIFAR-10 test errors for the same depth and kind, in the paper's setting "
                   f"({seeds.HE2015_SETTING} for He et al.; {seeds.LI2018_SETTING} for Li et al.), not ours.")
        return live

    seed_set = sets[chosen]
    live_fragment(draw, any(info.status.live for runs in seed_set.values() for info in runs.values()), 2.0)


def paper_table() -> pd.DataFrame:
    """The published lines as a table: net, test error %, source, setting."""
    return pd.DataFrame([{"net": r["net"], "test error %": r["test_error"], "source": r["paper"],
                          "setting": r["setting"]} for r in seeds.paper_lines()])


LESION_TASK_KEY = "lesion_seed_task"  # {"set": set id, "limit": int, "task": BackgroundRows}


def lesion_seed_panel(limit: int) -> None:
    """The lesion study on every run of a degradation seed set, in the background; mean ± std per block."""
    st.subheader("Across seeds")
    sets = {set_id: s for set_id, s in seeds.list_seed_sets().items()
            if any(info.has_weights for _, _, info in seeds.set_runs(s))}
    if not sets:
        st.caption("No degradation seed set with weights yet: start the Degradation runs with “Seeds” above 1.")
        return
    c = st.columns([3, 1, 1])
    chosen = pick_set("Seed set", {set_id: [info for *_, info in seeds.set_runs(s) if info.has_weights]
                                   for set_id, s in sets.items()}, "lesion_seedset", c[0])
    faint = c[1].toggle("Each seed faintly", key="lesion_seedset_faint")
    if c[2].button("Lesion every run of the set", key="lesion_seedset_start"):
        runs = [(seed, name, info) for seed, name, info in seeds.set_runs(sets[chosen]) if info.has_weights]
        st.session_state[LESION_TASK_KEY] = dict(set=chosen, limit=limit, task=BackgroundRows(
            lambda item: seeds.seed_lesion_row(item[0], item[1], item[2].path, limit), runs))
    job = st.session_state.get(LESION_TASK_KEY)

    def draw() -> bool:
        if not job:
            return False
        measured, done = measured_rows(job["task"], "runs lesioned")
        if measured:
            summary = seeds.lesion_summary([seeds.SeedLesion.from_row(r) for r in measured])
            show_chart(lesion_band_figure(summary, faint), key="lesion_seedset_fig",
                       name=f"lesion seeds {short_label(job['set'])}", width="stretch",
                       title=f"Lesion over the seeds of set {short_label(job['set'])}")
            st.caption(f"Seed set {short_label(job['set'])}, {job['limit']} test images per evaluation; error bars: "
                       "± one sample standard deviation over the seeds.")
        return not done

    live_fragment(draw, bool(job) and not job["task"].snapshot()[1], 1.0)


def repeat_seed_panel(key: str = "train_repeatset") -> None:
    """Trainings repeated with several seeds (the Train page's “Repeat with N seeds”): mean ± std bands."""
    sets = seeds.list_repeat_sets()
    if not sets:
        return
    st.subheader("Repeated with several seeds")
    c = st.columns([3, 1])
    chosen = pick_set("Repeated run", {set_id: list(s.values()) for set_id, s in sets.items()}, key, c[0])
    faint = c[1].toggle("Each seed faintly", key=f"{key}_faint")

    def draw() -> bool:
        repeat_set = seeds.list_repeat_sets().get(chosen, {})
        bands = seeds.repeat_curves(repeat_set)
        rows = [dict(seed=seed, run=info.run_id, status=info.status.value,
                     test_acc=info.final.test_acc if info.final else None) for seed, info in repeat_set.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if bands:
            show_chart(seed_band_figure(bands, faint), key=f"{key}_fig", name=f"repeated run {chosen}",
                       title=f"Repeated run {chosen}: mean ± std over {len(repeat_set)} seeds", width="stretch")
            st.caption("Band: mean ± one sample standard deviation over the seeds at each logged step.")
        return any(info.status.live for info in repeat_set.values())

    live_fragment(draw, any(info.status.live for info in sets[chosen].values()), 2.0)
