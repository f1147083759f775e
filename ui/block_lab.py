"""Block anatomy's two experiment sections: the identity experiment (a background job the page polls) and the
"break it" toggles, each of which builds the broken block for real (`resnet_core.experiments.mistakes`) and shows what
PyTorch raised or what was measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from resnet_core.data.fence import check_run_data
from resnet_core.experiments.identity import (
    GOAL_RATIO,
    IDENTITY_BLOCKS,
    IdentityConfig,
    IdentityResult,
    describe,
    format_times,
)
from resnet_core.experiments.identity import train_block as train_identity_block
from resnet_core.experiments.mistakes import (
    STACK_BLOCKS,
    STACK_CHANNELS,
    bn_on_shortcut,
    bn_train_mode_eval,
    relu_placement,
    skip_mismatch,
    zero_init_gradients,
)
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.store import scan_runs, weights_file
from resnet_core.training.records import Status
from ui.charts import show_chart
from ui.identity_figures import identity_loss_figure
from ui.live import live_fragment

IDENTITY_TASK = "idexp_task"  # {"config": IdentityConfig, "task": BackgroundRows of one row per block}
IDENTITY_DEFAULT = IdentityConfig()
FIX_KEY = "break_fix"  # the shortcut kind picked as the fix (A, B, C or D)
ZERO_INIT_MODEL = ("resnet20", {"width": 8})  # small enough to measure in about a second


# ---------------------------------------------------------------- the identity experiment


def identity_result(state: Mapping[str, Any] | None = None) -> IdentityResult | None:
    """The finished identity experiment of this session (or of `state`, a session state), or None (none started,
    or still running)."""
    state = st.session_state if state is None else state
    job = state[IDENTITY_TASK] if IDENTITY_TASK in state else None
    if not job:
        return None
    rows, done, error = job["task"].snapshot()
    if not done or error or len(rows) != 2:
        return None
    runs = {row["kind"]: row["run"] for row in rows}
    return IdentityResult(job["config"], runs["plain"], runs["residual"])


def _start_identity() -> None:
    s = st.session_state
    try:
        config = IdentityConfig(block=s.idexp_block, batch_norm=s.idexp_bn, steps=int(s.idexp_steps),
                                seed=int(s.idexp_seed)).validate()
    except ValueError as exc:
        s["idexp_error"] = str(exc)
        return
    s.pop("idexp_error", None)
    s[IDENTITY_TASK] = dict(config=config, task=BackgroundRows(
        lambda skip: dict(kind="residual" if skip else "plain", run=train_identity_block(config, skip)),
        [False, True]))


def identity_section() -> None:
    st.subheader("The identity experiment")
    st.markdown("“It is easier to push F(x) toward zero than to fit an identity by a stack of nonlinear layers” "
                "(He et al. 2015). Here a plain block and a residual block of the same shape start from the same "
                "seeded weights and are trained, on the same batches, to reproduce their input (target = input, "
                "MSE). The inputs are random non-negative feature maps, ReLU of a Gaussian, as inside a ResNet.")
    job = st.session_state.get(IDENTITY_TASK)
    running = bool(job) and not job["task"].snapshot()[1]
    with st.container(border=True):
        c = st.columns([1.4, 1, 1, 1, 1.4])
        c[0].radio("Block", IDENTITY_BLOCKS, horizontal=True, key="idexp_block",
                   help="basic: 16 channels; bottleneck: 64 channels through a 16-channel inner width")
        c[1].toggle("BatchNorm", value=IDENTITY_DEFAULT.batch_norm, key="idexp_bn",
                    help="off: every BatchNorm of both blocks replaced by the identity")
        c[2].number_input("Steps", 1, 5_000, value=IDENTITY_DEFAULT.steps, step=50, key="idexp_steps")
        c[3].number_input("Seed", 0, 2**31 - 1, value=IDENTITY_DEFAULT.seed, key="idexp_seed")
        c[4].button("Train both blocks", type="primary", on_click=_start_identity, disabled=running,
                    key="idexp_start", width="stretch")
        st.caption(f"Adam, learning rate {IDENTITY_DEFAULT.lr:g}, batches of {IDENTITY_DEFAULT.batch_size} maps of "
                   f"{IDENTITY_DEFAULT.size}×{IDENTITY_DEFAULT.size}; trained in the background on this server.")
    if "idexp_error" in st.session_state:
        st.error(st.session_state["idexp_error"], icon="⚠️")
    live_fragment(_draw_identity, running, 0.5)


def _draw_identity() -> bool:
    job = st.session_state.get(IDENTITY_TASK)
    if not job:
        st.caption("Press **Train both blocks**: it takes seconds.")
        return False
    rows, done, error = job["task"].snapshot()
    if error:
        st.error(error, icon="⚠️")
        return False
    if not done:
        st.progress(len(rows) / 2, text=f"{len(rows)} of 2 blocks trained…")
        return True
    result = identity_result()
    if result is None:
        return False
    p, r = result.plain, result.residual
    show_chart(identity_loss_figure(p.loss, r.loss), key="idexp_fig", width="stretch", name="identity experiment",
               title="The identity experiment: plain vs residual block")
    c = st.columns(4)
    c[0].metric("Final loss, plain / residual", format_times(result.loss_ratio),
                help=f"plain {p.final_loss:.3g}, residual {r.final_loss:.3g} on a held-out batch")
    c[1].metric("‖F(x)‖/‖x‖, residual", f"{r.residual_ratio:.3g}",
                help=f"before training: {r.residual_ratio_start:.3g}")
    c[2].metric("‖F(x)‖/‖x‖ where x > 0", f"{r.residual_ratio_active:.3g}")
    square = {k: v for k, v in p.identity_distance.items() if v is not None}
    last = list(square)[-1] if square else None
    c[3].metric(f"Plain {last}: distance from identity" if last else "Plain block: identity possible?",
                f"{square[last]:.2f}" if last else "no", help="0 = an identity kernel up to scale; √2 = unrelated")
    if result.reaches_goal:
        st.success(f"The residual block reached a loss {format_times(result.loss_ratio)} lower than the plain block "
                   f"in the same {result.config.steps} steps (goal: {GOAL_RATIO:g}×).")
    else:
        st.warning(f"The residual block did not reach a {GOAL_RATIO:g}× lower loss here: plain {p.final_loss:.3g}, "
                   f"residual {r.final_loss:.3g}, ratio {format_times(result.loss_ratio)} after "
                   f"{result.config.steps} steps.")
    st.markdown("\n".join(f"- {line}" for line in describe(result)))
    st.caption(f"Trained in {p.seconds:.1f} s (plain) and {r.seconds:.1f} s (residual).")
    return False


# ---------------------------------------------------------------- break it


@st.cache_data(max_entries=16, show_spinner=False)
def _mismatch(in_channels: int, out_channels: int, stride: int, block: str):
    return skip_mismatch(in_channels, out_channels, stride, size=16, block=block)


@st.cache_data(max_entries=2, show_spinner="Building both stacks…")
def _placement() -> pd.DataFrame:
    return pd.DataFrame([vars(row) for row in relu_placement()])


@st.cache_data(max_entries=2, show_spinner="Building both stacks…")
def _shortcut_norm() -> pd.DataFrame:
    return pd.DataFrame([vars(row) for row in bn_on_shortcut()])


@st.cache_data(max_entries=4, show_spinner="Evaluating the stored run both ways…")
def _train_mode(run_dir: str, weights_mtime: float) -> pd.DataFrame:
    return pd.DataFrame([vars(row) for row in bn_train_mode_eval(run_dir)])


@st.cache_data(max_entries=2, show_spinner="One step of the model, both ways…")
def _zero_init():
    return zero_init_gradients(*ZERO_INIT_MODEL)


def break_it_section() -> None:
    st.subheader("Break it")
    st.markdown("Each switch builds a common mistake for real and shows what PyTorch says or what it measures.")
    switches = (  # (label, widget key, the panel it opens)
        ("Add the skip across a channel or stride change, without a projection", "break_mismatch", _mismatch_panel),
        ("ReLU after the addition, against nothing after it (pre-activation)", "break_relu", _placement_panel),
        ("Put a BatchNorm on the shortcut", "break_bn_shortcut", _shortcut_norm_panel),
        ("Leave BatchNorm in train mode at evaluation", "break_train_mode", _train_mode_panel),
        ("Forget zero_init_residual", "break_zero_init", _zero_init_panel),
    )
    for label, key, panel in switches:
        with st.container(border=True):
            if st.toggle(label, key=key):
                panel()


def _mismatch_panel() -> None:
    c = st.columns(4)
    block = c[0].radio("Block", ("basic", "bottleneck"), horizontal=True, key="break_block")
    in_channels = c[1].number_input("In channels", 4, 512, value=64, step=4, key="break_in")
    out_channels = c[2].number_input("Out channels", 4, 512, value=128, step=4, key="break_out")
    stride = c[3].radio("Stride", [1, 2], index=1, horizontal=True, key="break_stride")
    try:
        result = _mismatch(int(in_channels), int(out_channels), int(stride), block)
    except ValueError as exc:
        st.error(str(exc), icon="⚠️")
        return
    st.caption(f"`{block}` block built with `downsample=None` and run on a real tensor of shape "
               f"{'×'.join(map(str, result.input_shape))}:")
    if result.error is None:
        st.success(result.explanation())
        return
    st.code(f"{result.error_type}: {result.error}", language="text")
    st.markdown(result.explanation())
    st.markdown("**Fix it** — the same block with a shortcut that changes the shape too:")
    c = st.columns(len(result.fixes))
    for col, fix in zip(c, result.fixes):
        col.button(f"Fix {fix.shortcut}", key=f"break_fix_{fix.shortcut}", disabled=fix.output_shape is None,
                   on_click=st.session_state.__setitem__, args=(FIX_KEY, fix.shortcut), help=fix.note,
                   width="stretch")
    picked = next((f for f in result.fixes if f.shortcut == st.session_state.get(FIX_KEY)), None)
    if picked is not None and picked.output_shape is not None:
        st.success(f"Shortcut {picked.shortcut} ({picked.note}): the block runs and returns "
                   f"{'×'.join(map(str, picked.output_shape))}, with {picked.params:,} parameters in the shortcut.")


def _placement_panel() -> None:
    table = _placement()
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "order": "order", "identity_error": st.column_config.NumberColumn("‖y − x‖/‖x‖, branch zeroed", format="%.3f"),
        "dead_input_grads": st.column_config.NumberColumn("input gradients exactly 0", format="percent"),
        "clipped_share": st.column_config.NumberColumn("sum entries the ReLU zeroes (at init)", format="percent")})
    post, pre = table.iloc[0], table.iloc[1]
    st.markdown(f"{STACK_BLOCKS} basic blocks of {STACK_CHANNELS} channels on a mixed-sign input, with every "
                "residual branch zeroed so the stack should be the identity. With the ReLU after the addition the "
                f"stack returns ReLU(x): ‖y − x‖/‖x‖ = **{post.identity_error:.3f}** and "
                f"**{post.dead_input_grads:.0%}** of the input's gradients are exactly 0; the identity path is not an "
                f"identity. Pre-activation blocks leave the sum alone ({pre.identity_error:.3f} and "
                f"{pre.dead_input_grads:.0%}). At initialisation the closing ReLU zeroes {post.clipped_share:.0%} "
                "of the sum's entries per block.")


def _shortcut_norm_panel() -> None:
    table = _shortcut_norm()
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "identity_error": st.column_config.NumberColumn("‖y − x‖/‖x‖, branch zeroed", format="%.3f"),
        "output_std": st.column_config.NumberColumn("output std", format="%.3f"),
        "input_std": st.column_config.NumberColumn("input std", format="%.3f"),
        "input_grad_norm": st.column_config.NumberColumn("‖∂Σy/∂x‖", format="%.3g"),
        "params": st.column_config.NumberColumn("shortcut params", format="localized")})
    bn = table.iloc[1]
    st.markdown(f"{STACK_BLOCKS} basic blocks with zeroed branches on features of std {bn.input_std:.2f}: "
                f"a BatchNorm on each shortcut re-normalises the signal the identity should carry unchanged "
                f"(‖y − x‖/‖x‖ = **{bn.identity_error:.3f}**, output std {bn.output_std:.3f}), and the gradient "
                f"reaching the input is {table.iloc[0].input_grad_norm / bn.input_grad_norm:.1f}× smaller than "
                "through the bare identity.")


def _train_mode_panel() -> None:
    stored, _ = scan_runs()
    runs = {}
    for r in stored:
        if r.status in (Status.FINISHED, Status.STOPPED) and weights_file(r.path) is not None:
            try:
                check_run_data(r.config.train.data_dir)
            except ValueError:
                continue
            runs[r.run_id] = r
    if not runs:
        st.info("No finished run with weights yet: train one on the Train page, then come back.")
        return
    run_id = st.selectbox("Stored run", list(runs), key="break_run")
    run = runs[run_id]
    try:
        table = _train_mode(str(run.path), weights_file(run.path).stat().st_mtime)
    except (ValueError, RuntimeError, OSError) as exc:
        st.error(f"Cannot evaluate {run_id}: {exc}", icon="⚠️")
        return
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "batch_size": "batch size", "acc": st.column_config.NumberColumn("test accuracy", format="percent"),
        "loss": st.column_config.NumberColumn("test loss", format="%.3f")})
    eval_acc = table.iloc[0].acc
    worst = table.iloc[1:].acc.min()
    st.markdown(f"In eval mode BatchNorm uses the running statistics gathered in training: test accuracy "
                f"**{eval_acc:.1%}**. Left in train mode it normalises each test batch by its own statistics, so a "
                f"prediction depends on the other images in the batch: **{worst:.1%}** at worst here.")


def _zero_init_panel() -> None:
    result = _zero_init()
    totals = result.totals.set_index("zero_init")
    st.dataframe(result.totals, hide_index=True, width="stretch", column_config={
        "zero_init": "zero_init_residual", "loss": st.column_config.NumberColumn("loss", format="%.4f"),
        "grad_norm": st.column_config.NumberColumn("‖gradient‖, all parameters", format="%.4g"),
        "branch_conv_grad": st.column_config.NumberColumn("‖gradient‖, block convs", format="%.4g")})
    model, overrides = ZERO_INIT_MODEL
    st.markdown(f"First step of {model} ({', '.join(f'{k}={v}' for k, v in overrides.items())}), the same seed and "
                f"batch. Without zero_init_residual every block's branch adds its output from the start: gradient "
                f"norm **{totals.loc[False, 'grad_norm']:.4g}**. With it each block's last BN starts at 0, so each "
                f"block starts as the identity, and the gradient norm of the block convs on the first step is "
                f"**{totals.loc[True, 'branch_conv_grad']:.4g}** (the BN weight of 0 multiplies it): the last BNs, "
                f"the stem, the shortcuts and the head learn first, gradient norm "
                f"{totals.loc[True, 'grad_norm']:.4g}.")
    with st.expander("Per block"):
        st.dataframe(result.blocks, hide_index=True, width="stretch")
