"""Loss landscape: slices of the loss around trained plain and residual nets, and shattered gradients at init.

Filter-normalised slices as in Li et al. (2018); the gradient correlation of nearby inputs as in Balduzzi et al.
(2017)."""

from __future__ import annotations

import streamlit as st

from resnet_core.experiments import landscape, shattered
from resnet_core.experiments.flow_stack import FlowConfig
from resnet_core.runs.contract import short_label
from resnet_core.runs.pairing import Difference, differences_text, run_differences
from resnet_core.runs.store import RunInfo, trained_runs
from ui.charts import show_chart
from ui.landscape_figures import contour_figure, slice_1d_figure, surface_figure
from ui.live import LISTED_WHEN, live_fragment, measured_rows, runs_strip
from ui.page import setup_page
from ui.shattered_figures import shattered_figure
from ui.widgets import skipped_runs_note

setup_page("Loss landscape")

TASK_KEY = "land_task"  # a landscape.SliceJob
NONE = "—"
INTRO = ("Li et al. (2018) drew the training loss around trained weights θ* along random directions: "
         "L(θ* + α·d₁ + β·d₂). Each filter of a direction is scaled to the norm of the trained filter "
         "(biases and BatchNorm parameters are left out), so slices of different nets are comparable. "
         "Their ResNet-56 sits in a wide, convex basin; without skip connections the surface is sharp and "
         "chaotic. Here the loss is measured on a fixed subset of the run's own training images, without "
         "augmentation, with BatchNorm in eval mode.")


@st.cache_data(max_entries=32, show_spinner="Timing two points of the slice…")
def cost(run_dir: str, config: landscape.LandscapeConfig, measured: int) -> landscape.SliceCost:
    """Cached per run and settings, until a slice measured here gives better times (`measured` changes)."""
    return landscape.estimate_cost(run_dir, config)


@st.cache_data(max_entries=16, show_spinner="Measuring the input gradients…")
def measured_shattering(config: FlowConfig, grid: shattered.ShatteredConfig) -> dict:
    result = shattered.measure_shattering(config, grid)
    return dict(result=result.to_dict(), text=shattered.describe(result))


def landscape_section() -> None:
    st.markdown(INTRO)
    runs_strip(LISTED_WHEN)
    runs, skipped = trained_runs()
    skipped_runs_note(skipped)
    if not runs:
        st.info("No trained run with weights yet: train on the Train page or start the Degradation runs.")
        return
    chosen = run_pickers(runs)
    unlike = differences(runs, chosen)
    if unlike:
        st.warning(f"These runs were not trained alike: {differences_text(unlike)}. Both are sliced, but their "
                   "curvatures are not compared: pick a plain and a residual run that match.", icon="⚠️")
    try:
        config = slice_settings()
        costs = {rid: cost(str(runs[rid].path), config, landscape.measured_version()) for rid in chosen}
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc), icon="⚠️")
        return
    for rid, c in costs.items():
        st.caption(c.text(rid))
    if st.button("Start", type="primary", disabled=not chosen, key="land_start"):
        st.session_state[TASK_KEY] = landscape.SliceJob.start(runs, chosen, config,
                                                              {rid: c.seconds for rid, c in costs.items()})
    job: landscape.SliceJob | None = st.session_state.get(TASK_KEY)
    live_fragment(lambda: draw_slices(job, chosen, config, runs), bool(job) and not job.done, 1.0)


def differences(runs: dict[str, RunInfo], chosen: list[str]) -> list[Difference]:
    """How the two chosen runs were trained differently (runs.pairing); [] for one run or a matching pair."""
    return run_differences(runs[chosen[0]], runs[chosen[1]]) if len(chosen) == 2 else []


def run_pickers(runs: dict[str, RunInfo]) -> list[str]:
    """A plain and a residual run (either may be none); the ids chosen, plain first."""
    chosen = []
    if note := landscape.pair_note(runs):
        st.info(note)
    for col, (skip, (ids, first)) in zip(st.columns(2), landscape.run_choices(runs).items()):
        options = [NONE, *ids]
        picked = col.selectbox("Residual run" if skip else "Plain run", options, index=options.index(first or NONE),
                               key="land_residual" if skip else "land_plain",
                               format_func=lambda rid: rid if rid == NONE else short_label(rid))
        if picked != NONE:
            chosen.append(picked)
    return chosen


def slice_settings() -> landscape.LandscapeConfig:
    """The slice's widgets; a ValueError when their settings do not validate."""
    c = st.columns(5)
    dims = c[0].radio("Directions", [1, 2], horizontal=True, key="land_dims",
                      format_func=lambda d: "1-D line" if d == 1 else "2-D plane")
    points = c[1].select_slider("Points per direction", [3, 5, 7, 11, 15, 21, 31, 41, 51], value=21,
                                key="land_points")
    subset = c[2].select_slider("Training images", [64, 128, 256, 512, 1024, 2048], value=512, key="land_subset")
    span = c[3].number_input("Span (α from −span to +span)", 0.05, 10.0, value=1.0, step=0.25, key="land_span")
    seed = c[4].number_input("Seed (directions, subset)", 0, 2**31 - 1, value=0, key="land_seed")
    return landscape.LandscapeConfig(points=points, dims=dims, subset=subset, span=float(span),
                                     seed=int(seed)).validate()


def draw_slices(job: landscape.SliceJob | None, chosen: list[str], config: landscape.LandscapeConfig,
                runs: dict[str, RunInfo]) -> bool:
    """The job's progress and the slices measured so far; True while it measures."""
    if not job:
        st.caption("Pick a plain and a residual run and press Start.")
        return False
    rows, done = measured_rows(job.task, "evaluations")
    results = job.slices.results(rows)
    if results:
        slice_charts(results, differences(runs, list(job.run_ids)) if set(job.run_ids) <= set(runs) else [],
                     job.estimates)
    if done and not job.is_for(chosen, config):
        st.caption("The results above are for earlier settings; press Start to measure these.")
    return not done


def slice_charts(results: list[landscape.LandscapeResult], unlike: list[Difference],
                 estimates: dict[str, float]) -> None:
    names = " vs ".join(short_label(r.name) for r in results)
    if results[0].dims == 1:
        show_chart(slice_1d_figure(results), key="land_1d", name=f"loss slice {names}",
                   title=f"Loss along one filter-normalised direction: {names}", width="stretch")
    else:
        show_chart(contour_figure(results), key="land_contour", name=f"loss contours {names}",
                   title=f"Loss on a 2-D slice: {names}", width="stretch")
        show_chart(surface_figure(results), key="land_surface", name=f"loss surface {names}",
                   title=f"Loss surface: {names}", width="stretch")
    st.markdown("\n".join(f"- {line}" for line in landscape.curvature_text(results, unlike)))
    st.caption(" · ".join(f"{short_label(r.name)}: " + (landscape.estimate_text(estimates[r.name], r.seconds)
                                                        if r.name in estimates else f"took {r.seconds:.1f} s")
                          for r in results) + f". Method: {landscape.LI2018}.")


def shattered_section() -> None:
    st.markdown("Balduzzi et al. (2017): at initialisation, the gradient of a plain ReLU net with respect to its "
                "input changes so fast along the input that neighbouring inputs get nearly unrelated gradients "
                "(like white noise); a ResNet keeps them far more alike. Here one stack of seeded weights is "
                "measured with and without its identity additions on a line of nearby inputs.")
    c = st.columns(4)
    blocks = c[0].slider("Blocks", 2, 100, value=30, key="shat_blocks")
    bn = c[1].toggle("BatchNorm", value=True, key="shat_bn")
    points = c[2].select_slider("Inputs on the line", [16, 32, 64, 128], value=64, key="shat_points")
    radius = c[3].select_slider("Line length (± × image norm)", [0.05, 0.1, 0.25, 0.5, 1.0], value=0.5,
                                key="shat_radius")
    try:
        measured = measured_shattering(FlowConfig(blocks=blocks, batch_norm=bn).validate(),
                                       shattered.ShatteredConfig(points=points, radius=radius).validate())
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc), icon="⚠️")
        return
    left, right = st.columns([1.4, 1])
    show_chart(shattered_figure(measured["result"]), key="shat_fig", where=left, width="stretch",
               name=f"shattered gradients {blocks} blocks", title=f"Shattered gradients at initialisation: {blocks} "
               f"blocks, {'BN' if bn else 'no BN'}, {points} inputs, ± {radius} × image norm")
    right.markdown("\n".join(f"- {line}" for line in measured["text"]))
    right.caption(f"Measured in {measured['result']['seconds']:.2f} s. Source: {shattered.BALDUZZI2017}.")


st.title("Loss landscape")
st.subheader("Loss-surface slices")
landscape_section()
st.divider()
st.subheader("Shattered gradients at initialisation")
shattered_section()
