"""Loss landscape: slices of the loss around trained plain and residual nets, and shattered gradients at init.

Filter-normalised slices as in Li et al. (2018); the gradient correlation of nearby inputs as in Balduzzi et al.
(2017)."""

from __future__ import annotations

import streamlit as st

from resnet_core import degradation, landscape, shattered
from resnet_core.flow_stack import FlowConfig
from resnet_core.format import format_seconds
from resnet_core.jobs import BackgroundRows
from resnet_core.records import short_label
from resnet_core.runstore import trained_runs
from ui.charts import show_chart
from ui.landscape_figures import contour_figure, slice_1d_figure, surface_figure
from ui.live import live_fragment
from ui.page import setup_page
from ui.shattered_figures import shattered_figure
from ui.widgets import skipped_runs_note

setup_page("Loss landscape")

TASK_KEY = "land_task"  # {"key": (run ids, config), "slices": SliceTask, "task": BackgroundRows}
NONE = "—"


@st.cache_data(max_entries=32, show_spinner="Timing one forward pass…")
def cost(run_dir: str, config: landscape.LandscapeConfig) -> dict[str, float]:
    return landscape.estimate_seconds(run_dir, config)


@st.cache_data(max_entries=16, show_spinner="Measuring the input gradients…")
def measured_shattering(config: FlowConfig, grid: shattered.ShatteredConfig) -> dict:
    result = shattered.measure_shattering(config, grid)
    return dict(result=result.to_dict(), text=shattered.describe(result))


def landscape_section() -> None:
    st.markdown("Li et al. (2018) drew the training loss around trained weights θ* along random directions: "
                "L(θ* + α·d₁ + β·d₂). Each filter of a direction is scaled to the norm of the trained filter "
                "(biases and BatchNorm parameters are left out), so slices of different nets are comparable. "
                "Their ResNet-56 sits in a wide, convex basin; without skip connections the surface is sharp and "
                "chaotic. Here the loss is measured on a fixed subset of the run's own training images, without "
                "augmentation, with BatchNorm in eval mode.")
    runs, skipped = trained_runs()
    skipped_runs_note(skipped)
    if not runs:
        st.info("No trained run with weights yet: train on the Train page or start the Degradation runs.")
        return
    pair = degradation.newest_deep_pair(runs)
    plain_ids = [NONE] + [rid for rid, r in runs.items() if not r.skip]
    residual_ids = [NONE] + [rid for rid, r in runs.items() if r.skip]
    c = st.columns(2)
    plain = c[0].selectbox("Plain run", plain_ids, index=plain_ids.index(pair.get(False, NONE)), key="land_plain",
                           format_func=lambda rid: rid if rid == NONE else short_label(rid))
    residual = c[1].selectbox("Residual run", residual_ids, index=residual_ids.index(pair.get(True, NONE)),
                              key="land_residual", format_func=lambda rid: rid if rid == NONE else short_label(rid))
    c = st.columns(5)
    dims = c[0].radio("Directions", [1, 2], horizontal=True, key="land_dims",
                      format_func=lambda d: "1-D line" if d == 1 else "2-D plane")
    points = c[1].select_slider("Points per direction", [3, 5, 7, 11, 15, 21, 31, 41, 51], value=21,
                                key="land_points")
    subset = c[2].select_slider("Training images", [64, 128, 256, 512, 1024, 2048], value=512, key="land_subset")
    span = c[3].number_input("Span (α from −span to +span)", 0.05, 10.0, value=1.0, step=0.25, key="land_span")
    seed = c[4].number_input("Seed (directions, subset)", 0, 2**31 - 1, value=0, key="land_seed")
    chosen = [rid for rid in (plain, residual) if rid != NONE]
    try:
        config = landscape.LandscapeConfig(points=points, dims=dims, subset=subset, span=float(span),
                                           seed=int(seed)).validate()
        estimates = {rid: cost(str(runs[rid].path), config) for rid in chosen}
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc), icon="⚠️")
        return
    for rid, e in estimates.items():
        st.caption(f"{short_label(rid)}: {int(e['evaluations']):,} evaluations × {subset} images = "
                   f"{int(e['images']):,} images through the model, about {format_seconds(e['seconds'])} "
                   "(from one timed forward pass on this machine).")
    key = (tuple(chosen), config)
    if st.button("Start", type="primary", disabled=not chosen, key="land_start"):
        slices = landscape.SliceTask([runs[rid].path for rid in chosen], config)
        st.session_state[TASK_KEY] = dict(key=key, slices=slices, task=BackgroundRows(slices, slices.items()))
    job = st.session_state.get(TASK_KEY)

    def draw() -> bool:
        if not job:
            st.caption("Pick a plain and a residual run and press Start.")
            return False
        rows, done, error = job["task"].snapshot()
        if error:
            st.error(error, icon="⚠️")
        if not done:
            st.progress(len(rows) / job["task"].total, text=f"{len(rows)} of {job['task'].total} evaluations…")
        results = job["slices"].results(rows)
        if results:
            names = " vs ".join(short_label(r.name) for r in results)
            if results[0].dims == 1:
                show_chart(slice_1d_figure(results), key="land_1d", name=f"loss slice {names}",
                           title=f"Loss along one filter-normalised direction: {names}", width="stretch")
            else:
                show_chart(contour_figure(results), key="land_contour", name=f"loss contours {names}",
                           title=f"Loss on a 2-D slice: {names}", width="stretch")
                show_chart(surface_figure(results), key="land_surface", name=f"loss surface {names}",
                           title=f"Loss surface: {names}", width="stretch")
            st.markdown("\n".join(f"- {line}" for line in landscape.curvature_text(results)))
            st.caption(" · ".join(f"{short_label(r.name)}: {r.seconds:.1f} s" for r in results)
                       + f". Method: {landscape.LI2018}.")
        if done and job["key"] != key:
            st.caption("The results above are for earlier settings; press Start to measure these.")
        return not done

    live_fragment(draw, bool(job) and not job["task"].snapshot()[1], 1.0)


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
