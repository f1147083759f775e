"""Block anatomy: the path of a tensor through Basic, Bottleneck, PreAct, ResNeXt, SE and timm's other blocks (ECA,
anti-aliased, selective-kernel, Res2Net, split attention, BiT's weight-standardised convs), traced live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from resnet_core.formatting import format_count, format_shape
from resnet_core.introspect.anatomy import VARIANTS, BlockAnatomy, bottleneck_saving, shortcut_options, trace_block
from resnet_core.models.spec import SHORTCUTS
from ui.architecture_figures import block_path_figure, path_box_count
from ui.block_lab import break_it_section, identity_section
from ui.charts import show_chart
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.widgets import or_error

setup_page("Block anatomy")

DEFAULT_VARIANTS = ["basic", "preact_basic", "bottleneck", "resnext", "se"]
PER_ROW = 3


def seeds_comparison() -> None:
    with st.container(border=True):
        left, right = st.columns([1, 3])
        channels = left.number_input("Channels C", min_value=4, max_value=4096, value=256, step=4, key="seed_channels",
                                     help="both blocks map C channels to C channels")
        saving = or_error(bottleneck_saving, channels)
        if saving is None:
            return
        mid = saving.bottleneck.steps[1].shape[1]
        with right:
            c = st.columns(3)
            c[0].metric(f"Two 3×3 convs at {channels}", format_count(saving.basic.params),
                        help="a basic block: conv-BN-ReLU-conv-BN, built and counted")
            c[1].metric(f"Bottleneck {channels}-{mid}-{mid}-{channels}", format_count(saving.bottleneck.params),
                        help="1×1 reduce, 3×3, 1×1 expand, each with BN, built and counted")
            c[2].metric("Ratio", f"{saving.ratio:.1f}×",
                        help=f"conv weights only: {saving.conv_ratio:.1f}×")
            st.caption(f"Counted from the blocks built by resnet_core (convs and batch norms); conv weights alone "
                       f"give {saving.conv_ratio:.1f}×.")
        paper_pairing(channels, mid, saving.bottleneck.params)


def paper_pairing(channels: int, mid: int, bottleneck_params: int) -> None:
    """He et al. (2016, Fig. 5) do not compare blocks of equal width: they pair the 256-channel bottleneck with a
    basic block at 64 channels. Their claim, measured on the blocks built here."""
    basic = or_error(trace_block, "basic", mid, mid)
    if basic is None:
        return
    st.caption(f"He et al. (2016, Fig. 5) pair this bottleneck with a basic block of {mid} channels, not {channels}, "
               f"and call their time complexity similar. Built here: {format_count(basic.params)} parameters "
               f"for that basic block against {format_count(bottleneck_params)} for the bottleneck "
               f"({bottleneck_params / basic.params:.2f}×).")


def controls() -> dict:
    c = st.columns([1, 1, 0.8, 1, 1, 0.7])
    in_channels = c[0].number_input("In channels", min_value=1, value=256, step=16, key="anat_in")
    out_channels = c[1].number_input("Out channels", min_value=1, value=256, step=16, key="anat_out")
    stride = c[2].radio("Stride", [1, 2], horizontal=True, key="anat_stride",
                        help="2 halves height and width, as in the first block of stages 2 and later")
    size = c[3].number_input("Input height = width", min_value=1, value=56, key="anat_size")
    shortcut = c[4].radio("Shortcut", SHORTCUTS, index=1, horizontal=True, key="anat_shortcut",
                          help="A: zero-pad where the shape changes; B: project where it changes; C: always project")
    skip = c[5].toggle("Skip", value=True, key="anat_skip", help="off: the plain block, no addition")
    return dict(in_channels=int(in_channels), out_channels=int(out_channels), stride=int(stride), size=int(size),
                shortcut=shortcut, skip=skip)


def block_card(anatomy: BlockAnatomy, rows: int) -> None:
    with st.container(border=True):
        st.markdown(f"**{anatomy.variant.label}** · {format_count(anatomy.params)} parameters")
        st.caption(anatomy.variant.note)
        show_chart(block_path_figure(anatomy, rows), key=f"path_{anatomy.key}", name=f"{anatomy.key} block path")
        with st.expander("Every step"):
            st.dataframe(anatomy.table(), hide_index=True, column_config={
                "params": st.column_config.NumberColumn("params", format="localized")})


def summary_table(anatomies: list[BlockAnatomy]) -> pd.DataFrame:
    return pd.DataFrame([dict(block=a.variant.label, params=a.params, input=format_shape(a.input_shape[1:]),
                              output=format_shape(a.output_shape[1:]), shortcut=a.shortcut_path,
                              steps=len(a.steps) - 1) for a in anatomies])


st.title("Block anatomy")
st.write("Each block below is built from `resnet_core.models.blocks` and run once on the meta device while every "
         "step is recorded: the ops, shapes and parameter counts are read off the real module.")
st.subheader("The bottleneck's saving, computed")
seeds_comparison()

st.subheader("One block, step by step")
args = controls()
keys = st.multiselect("Blocks", list(VARIANTS), default=DEFAULT_VARIANTS, key="anat_variants",
                      format_func=lambda k: VARIANTS[k].label)
anatomies = [a for a in (or_error(trace_block, key, **args) for key in keys) if a is not None]
if anatomies:
    st.dataframe(summary_table(anatomies), hide_index=True, column_config={
        "params": st.column_config.NumberColumn("params", format="localized")})
    for start in range(0, len(anatomies), PER_ROW):
        row = anatomies[start:start + PER_ROW]
        rows = max(path_box_count(a) for a in row)
        for column, anatomy in zip(st.columns(PER_ROW), row):
            with column:
                block_card(anatomy, rows)

same_shape = args["in_channels"] == args["out_channels"] and args["stride"] == 1
st.subheader("The shortcut options when the shape does not change" if same_shape else
             f"The shortcut options for {args['in_channels']} → {args['out_channels']} channels, "
             f"stride {args['stride']}")
if same_shape:
    st.caption("With the same channels and size in and out, A, B and D are the identity; only C projects. "
               "Change the channels or the stride above to see them differ.")
st.dataframe(shortcut_options(args["in_channels"], args["out_channels"], args["stride"]), hide_index=True,
             column_config={"params": st.column_config.NumberColumn("params", format="localized")})
st.caption("Post-activation blocks shown; pre-activation blocks project without the batch norm. "
           "B and C differ only where the shape does not change: C then still projects.")

identity_section()
break_it_section()
quick_check("Block anatomy")
