"""Architecture: pick a preset, change any field, and see its parameters, mult-adds, memory and stage/layer tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from resnet_core.formatting import format_bytes, format_count, format_shape
from resnet_core.introspect.depth import DEPTH_RULE, conv_layers, published_depth
from resnet_core.introspect.summary import MAX_BATCH, Summary, largest_batch_within, summarize
from resnet_core.introspect.tables import stage_frame_for_display, stage_table_markdown
from resnet_core.models.export import python_source
from resnet_core.models.presets import PRESETS, get_preset, matching_preset, resolve_spec
from resnet_core.models.spec import (
    ANTI_ALIASES,
    ATTENTION_PLACEMENTS,
    ATTENTIONS,
    AVG_DOWNSAMPLES,
    BLOCKS,
    NORMS,
    RES2NET_SCALES,
    SHORTCUT_KERNELS,
    SHORTCUTS,
    STEM_POOLS,
    STEMS,
    STRIDE_PLACEMENTS,
    ModelSpec,
    field_from_text,
    field_to_text,
    natural_input_size,
    parse_shape,
)
from resnet_core.runs.memory import available_memory, default_memory_budget
from ui.architecture_figures import short_count, stage_figure
from ui.charts import show_chart
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.widgets import (
    FAMILY_LABELS,
    ModelChoice,
    grouped_presets,
    or_error,
    preset_family_job,
    preset_group,
    preset_label,
    remember_choice,
    shared_choice,
)

setup_page("Architecture")

# ModelSpec field -> widget key. Input channels come from the "Input C,H,W" box.
FIELD_KEYS = {"block": "arch_block", "layers": "arch_layers", "shortcut": "arch_shortcut", "stem": "arch_stem",
              "width": "arch_width", "groups": "arch_groups", "width_per_group": "arch_wpg", "skip": "arch_skip",
              "attention": "arch_attention", "num_classes": "arch_classes", "stem_width": "arch_stem_width",
              "stem_mid": "arch_stem_mid", "stem_pool": "arch_stem_pool", "attention_reduction": "arch_att_reduction",
              "attention_divisor": "arch_att_divisor", "attention_placement": "arch_att_placement",
              "anti_alias": "arch_anti_alias", "norm": "arch_norm", "norm_groups": "arch_norm_groups",
              "stride_placement": "arch_stride_placement", "stem_norm": "arch_stem_norm",
              "res2net_scale": "arch_res2net_scale", "radix": "arch_radix", "avg_downsample": "arch_avg_downsample",
              "weight_standardization": "arch_weight_std", "shortcut_kernel": "arch_shortcut_kernel",
              "reduce_first": "arch_reduce_first"}
# ModelSpec list fields -> text box key: empty is None (every stage its `block`, widths from `width`)
TEXT_FIELD_KEYS = {"stage_blocks": "arch_stage_blocks", "stage_widths": "arch_stage_widths",
                   "block_widths": "arch_block_widths"}
LAST_GOOD_KEY = "arch_last_good"
SHORTCUT_HELP = ("A: zero-pad the identity where the shape changes (no parameters); "
                 "B: 1×1 projection only where the shape changes; C: projection in every block; "
                 "D: where B projects, a 2×2 average pool then a stride-1 1×1 projection (ResNet-D)")
STEM_HELP = ("imagenet: 7×7/2 conv + max-pool; cifar: one 3×3 conv; deep: three 3×3 convs (mid, mid, stem width) "
             "+ max-pool; deep_tiered: the same with 3/4 of mid in the first conv")
TRAIN_PAGE = "pages/4_Train.py"
BASIC_GROUPS, BASIC_WIDTH_PER_GROUP = 1, 64  # the only values a basic block accepts (as in torchvision)


def family_presets(family: str) -> list[str]:
    return grouped_presets([name for name in PRESETS if preset_group(name) == family])


def widget_values(spec: ModelSpec) -> dict[str, Any]:
    values = {key: getattr(spec, field) for field, key in FIELD_KEYS.items()}
    values.update({key: "" if getattr(spec, field) is None else field_to_text(getattr(spec, field))
                   for field, key in TEXT_FIELD_KEYS.items()})
    values["arch_layers"] = ",".join(map(str, spec.layers))
    values["arch_input"] = ",".join(map(str, natural_input_size(spec)))
    return values


def init_state() -> None:
    """First run of the session: the URL's settings, else the shared choice, else resnet18."""
    if "arch_model" in st.session_state:
        return
    choice = shared_choice()
    try:
        spec = choice.spec()
    except ValueError as exc:
        st.error(f"The link's model settings were ignored: {exc}")
        spec = get_preset(choice.model).spec
    st.session_state["arch_model"] = choice.model
    st.session_state["arch_family"] = preset_group(choice.model)
    st.session_state.update(widget_values(spec))
    if "input" in st.query_params:
        st.session_state["arch_input"] = st.query_params["input"]
    st.session_state["arch_batch"] = 1
    if "batch" in st.query_params:
        batch = st.query_params["batch"]
        if batch.isdigit() and 1 <= int(batch) <= MAX_BATCH:
            st.session_state["arch_batch"] = int(batch)
        else:
            st.error(f"The link's batch was ignored: batch must be an integer from 1 to {MAX_BATCH}; got {batch!r}")


def on_preset_change() -> None:
    st.session_state.update(widget_values(get_preset(st.session_state["arch_model"]).spec))


def on_family_change() -> None:
    family = st.session_state["arch_family"]
    if preset_group(st.session_state["arch_model"]) != family:
        st.session_state["arch_model"] = family_presets(family)[0]
        on_preset_change()


def on_block_change() -> None:
    if st.session_state["arch_block"] == "basic":  # the fields a basic block ignores go back to what it accepts
        st.session_state.update(arch_groups=BASIC_GROUPS, arch_wpg=BASIC_WIDTH_PER_GROUP)


def configuration_widgets() -> None:
    families = list(dict.fromkeys(preset_group(name) for name in PRESETS))
    state = st.session_state
    basic_at_rest = (state["arch_block"] == "basic" and state["arch_groups"] == BASIC_GROUPS
                     and state["arch_wpg"] == BASIC_WIDTH_PER_GROUP)
    bottleneck_only = "only bottleneck blocks use it; a basic block takes 1 group of width 64" if basic_at_rest else ""
    with st.container(border=True):
        c = st.columns([1, 1.3, 1, 1, 0.8, 0.9, 0.8])
        c[0].selectbox("Family", families, key="arch_family", format_func=lambda f: FAMILY_LABELS.get(f, f),
                       on_change=on_family_change, help="The presets come in families: ImageNet-sized nets "
                       "(torchvision's and the original paper's), the ImageNet nets only timm has (named as timm "
                       "names them, grouped by the timm module that registers them: its ResNets, ResNet v2 and BiT, "
                       "Res2Net, ResNeSt, the legacy SENets, the selective-kernel nets), He et al.'s CIFAR nets and "
                       "Zagoruyko & Komodakis's wide CIFAR nets.")
        c[1].selectbox("Preset", family_presets(state["arch_family"]), key="arch_model",
                       format_func=lambda n: preset_label(n).split(" · ", 1)[1],
                       on_change=on_preset_change, help="Picking a preset resets the fields to its values.")
        c[2].selectbox("Block", BLOCKS, key="arch_block", on_change=on_block_change)
        c[3].text_input("Blocks per stage", key="arch_layers", help="comma-separated, e.g. 3,4,6,3")
        c[4].selectbox("Shortcut", SHORTCUTS, key="arch_shortcut", help=SHORTCUT_HELP)
        c[5].selectbox("Stem", STEMS, key="arch_stem", help=STEM_HELP)
        c[6].toggle("Skip", key="arch_skip", help="Off gives the plain twin: no identity additions at all")
        c = st.columns(6)
        c[0].number_input("Width", min_value=1, step=8, key="arch_width", help="planes of the first stage")
        c[1].number_input("Groups", min_value=1, key="arch_groups", disabled=basic_at_rest,
                          help=bottleneck_only or "ResNeXt cardinality (bottleneck blocks)")
        c[2].number_input("Width per group", min_value=1, key="arch_wpg", disabled=basic_at_rest,
                          help=bottleneck_only or "bottleneck inner width = int(planes · wpg / 64) · groups")
        c[3].number_input("Classes", min_value=1, key="arch_classes")
        c[4].text_input("Input C,H,W", key="arch_input", help="channels, height, width of one image")
        c[5].number_input("Batch size", min_value=1, max_value=MAX_BATCH, key="arch_batch")
        timm_options()


def timm_options() -> None:
    """The fields timm's ResNet family varies: stem, attention, anti-aliasing, norm, stride placement."""
    with st.expander("Stem, attention, anti-aliasing, norm (timm's ResNet options)"):
        c = st.columns(6)
        c[5].selectbox("Stem norm", [None, True, False], key="arch_stem_norm",
                       format_func=lambda v: "the stem's own" if v is None else ("norm + ReLU" if v else "none"),
                       help="norm + ReLU after the stem conv; none: the raw conv output goes to the first block "
                            "(timm's resnetv2)")
        c[0].number_input("Stem width", min_value=1, key="arch_stem_width", help="channels out of the stem; "
                          "empty: the first stage's width")
        c[1].number_input("Stem mid width", min_value=4, key="arch_stem_mid",
                          help="deep stems' inner widths: deep = mid, mid; deep_tiered = 3/4 · mid, mid")
        c[2].selectbox("Stem pool", [None, *STEM_POOLS], key="arch_stem_pool",
                       format_func=lambda v: "the stem's own" if v is None else v,
                       help="max: 3×3/2 max-pool; max_ceil: unpadded, ceil mode (Caffe, SENet); conv: a 3×3/2 "
                            "conv + norm + ReLU (ResNet-RS); none")
        c[3].selectbox("Anti-aliasing", ANTI_ALIASES, key="arch_anti_alias",
                       help="stride-2 convs (and the stem pool) run at stride 1, then a 2×2 average pool (avg) or a "
                            "binomial blur with stride 2 (blur)")
        c[4].selectbox("Bottleneck stride", STRIDE_PLACEMENTS, key="arch_stride_placement",
                       help="v1.5: on the 3×3 conv (torchvision); v1: on the first 1×1 conv (original ResNet, SENet)")
        c = st.columns(5)
        c[0].selectbox("Attention", ATTENTIONS, key="arch_attention",
                       help="se: squeeze-and-excitation; eca: efficient channel attention, in every block")
        c[1].number_input("SE reduction", min_value=1, key="arch_att_reduction", help="SE hidden = channels / this")
        c[2].number_input("SE divisor", min_value=1, key="arch_att_divisor",
                          help="SE hidden rounded to a multiple of this (timm: 8); 1: channels // reduction")
        c[3].selectbox("Attention placement", ATTENTION_PLACEMENTS, key="arch_att_placement",
                       help="before_add: on the last norm's output; after_relu: a ReLU first (legacy SENet)")
        norm = c[4].columns(2)
        norm[0].selectbox("Norm", NORMS, key="arch_norm", help="batch norm or group norm everywhere; evonorm_s0 "
                          "and frn_tlu (pre-activation blocks) are a norm and its activation in one")
        norm[1].number_input("Groups", min_value=1, key="arch_norm_groups", help="groups of the group norm")
    family_options()


def family_options() -> None:
    """The fields of timm's other ResNet families: Res2Net, ResNeSt, BiT, SENet-154, test_resnet, pruned nets."""
    with st.expander("Res2Net, ResNeSt, BiT, SENet-154, per-stage and pruned widths"):
        c = st.columns(6)
        c[0].number_input("Res2Net scale", min_value=RES2NET_SCALES[0], max_value=RES2NET_SCALES[1],
                          key="arch_res2net_scale", help="res2net_bottleneck: the 3×3 stage works on this many "
                          "groups of the inner width, each adding the previous group's output")
        c[1].number_input("Radix", min_value=1, key="arch_radix",
                          help="split_attention_bottleneck: maps per group the attention mixes (ResNeSt)")
        c[2].selectbox("Avg downsample", AVG_DOWNSAMPLES, key="arch_avg_downsample",
                       help="split_attention_bottleneck: a 3×3 average pool takes the stride, before or after the "
                            "3×3 conv (ResNeSt's avd)")
        c[3].toggle("Weight standardisation", key="arch_weight_std",
                    help="every stem, block and shortcut conv standardises its weights per output channel (BiT)")
        c[4].selectbox("Shortcut kernel", SHORTCUT_KERNELS, key="arch_shortcut_kernel",
                       help="3: a strided projection shortcut is a 3×3 conv (SENet-154)")
        c[5].number_input("Reduce first", min_value=1, key="arch_reduce_first",
                          help="the block's first conv outputs its inner width / this (SENet-154: 2)")
        c = st.columns([1, 1, 3])
        c[0].text_input("Block type per stage", key="arch_stage_blocks", placeholder="empty: Block in every stage",
                        help="e.g. basic,basic,bottleneck,basic (timm's test_resnet)")
        c[1].text_input("Planes per stage", key="arch_stage_widths", placeholder="empty: width · 2^i",
                        help="e.g. 32,48,48,96")
        c[2].text_input("Per-block widths", key="arch_block_widths", placeholder="empty: from the planes",
                        help="bottlenecks: first 1×1:3×3:output per block, e.g. 47:18:19,52:22:19,… (timm's pruned "
                             "ECA-ResNets)")


def current_view() -> tuple[str, Summary] | None:
    """(preset, summary) from the widgets, or None after showing the engine's error."""
    model = st.session_state["arch_model"]
    dims = or_error(parse_shape, st.session_state["arch_input"], "input")
    if dims is None:
        return None
    fields = {field: st.session_state[key] for field, key in FIELD_KEYS.items()}
    for field, key in TEXT_FIELD_KEYS.items():
        text = or_error(field_from_text, field, st.session_state[key] or "none")
        if text is None and st.session_state[key].strip().lower() not in ("", "none"):
            return None  # the error is shown
        fields[field] = text
    spec = or_error(resolve_spec, model, in_channels=dims[0], **fields)
    summary = None if spec is None else or_error(summarize, spec, dims, st.session_state["arch_batch"])
    return None if summary is None else (model, summary)


def headline(summary: Summary, model: str) -> None:
    preset_spec = get_preset(model).spec
    base = summarize(preset_spec, natural_input_size(preset_spec), 1) if summary.spec != preset_spec else None
    delta = f"{summary.total_params - base.total_params:+,} vs {model}" if base else None
    top, bottom = st.columns(3), st.columns(3)
    top[0].metric("Parameters", format_count(summary.total_params), delta, delta_color="off", border=True,
                  height="stretch", help=f"trainable: {format_count(summary.trainable_params)}")
    top[1].metric("Mult-adds", short_count(summary.mult_adds), border=True, height="stretch",
                  help=f"{format_count(summary.mult_adds)} multiply-accumulates for the whole batch (torchinfo's rule)")
    top[2].metric("Depth", summary.depth, border=True, height="stretch", help=DEPTH_RULE)
    bottom[0].metric("Activation memory", format_bytes(summary.activation_bytes), border=True,
                     help="forward outputs kept for the backward pass of one training step (estimate)")
    bottom[1].metric("Training memory", format_bytes(summary.training_memory_bytes), border=True,
                     help="activations + input + weights, gradients and momentum (estimate)")
    bottom[2].metric("Output shape", format_shape(summary.output_shape), border=True)
    st.caption(f"{format_count(summary.mult_adds)} mult-adds for input "
               f"{format_shape((summary.batch_size, *summary.input_size))}, computed on the meta device "
               "(shapes only, no real forward pass).")
    match = matching_preset(summary.spec)
    named = published_depth(match.name) if match else summary.depth
    if named != summary.depth:
        st.caption(f"{match.name} is named for {named} layers: its paper counts every conv layer, the 1×1 shortcut "
                   f"convs included ({conv_layers(summary.spec)} here), and not the classifier; the Depth above "
                   f"counts stem and block convs and the classifier, as He et al. do.")
    memory_warning(summary)


def memory_warning(summary: Summary) -> None:
    """The training-memory estimate against this machine's training budget (the one the Train page enforces)."""
    budget = or_error(default_memory_budget, available_memory())
    if budget is None or summary.training_memory_bytes <= budget[0]:
        return
    fits = largest_batch_within(summary, budget[0])
    advice = (f"a batch of at most {fits:,} fits" if fits else
              "even the weights, gradients and momentum alone do not fit")
    st.warning(f"Training memory {format_bytes(summary.training_memory_bytes)} is over this machine's training "
               f"budget of {format_bytes(budget[0])} ({budget[1]}): the Train page would refuse it; {advice}.",
               icon="⚠️")


def badges(summary: Summary, model: str) -> None:
    match = matching_preset(summary.spec)
    if match is None:
        st.badge(f"custom configuration (based on {model})", icon=":material/tune:", color="gray")
        return
    if match.torchvision:
        st.badge(f"= torchvision.models.{match.torchvision}: {format_count(summary.total_params)} parameters",
                 icon=":material/check_circle:", color="green")
    if match.timm:
        st.badge(f"= timm's {match.timm} (timm 1.0.31, models/{match.timm_module}.py): its parameters, state_dict "
                 "and outputs, checked in tests/test_timm_oracle.py", icon=":material/check_circle:", color="green")
    if match.name != model:
        st.badge(f"same network as the preset {match.name}", icon=":material/info:", color="blue")
    if match.reference:
        ref = match.reference
        st.markdown(f"**{match.name}: published figures beside ours**")
        st.dataframe(pd.DataFrame({
            "": ["parameters", "CIFAR-10 test error"],
            "published": [ref["params_paper"], f"{ref['test_error']}%"],
            "computed here": [format_count(summary.total_params), "needs a training run"],
        }).set_index(""))
        st.caption(f"Source: {ref['source']}")


def stages_section(summary: Summary, slug: str) -> None:
    st.subheader("Stages")
    st.dataframe(stage_frame_for_display(summary), hide_index=True, column_config={
        "input_shape": "input", "output_shape": "output",
        "params": st.column_config.NumberColumn("params", format="localized"),
        "params_pct": st.column_config.NumberColumn("params %", format="%.2f"),
        "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized"),
        "receptive_field": st.column_config.NumberColumn("receptive field", help="pixels, along the main path"),
    })
    c = st.columns([1, 1.2, 1, 2.5])
    c[0].download_button("Stages (CSV)", summary.stages.to_csv(index=False), f"{slug}_stages.csv", "text/csv",
                         key="dl_stages_csv", icon=":material/download:", width="stretch")
    c[1].download_button("Stages (Markdown)", stage_table_markdown(summary), f"{slug}_stages.md",
                         "text/markdown", key="dl_stages_md", icon=":material/download:", width="stretch")
    c[2].download_button("Layers (CSV)", summary.layers.to_csv(index=False), f"{slug}_layers.csv", "text/csv",
                         key="dl_layers_csv", icon=":material/download:", width="stretch")
    # drawn only once opened: a chart makes a new session's browser load and run plotly.js (about 1 s here)
    figure = st.expander("Stage figure: channels, height × width and parameters per stage", key="arch_stage_figure",
                         on_change="rerun")
    if figure.open:
        show_chart(stage_figure(summary.stages, residual=summary.spec.skip), key="stage_figure",
                   name=f"{slug}_stages", title=f"{slug}: stages", where=figure)


def layers_section(summary: Summary) -> None:
    layers = summary.layers
    with st.expander(f"Layer table: {len(layers):,} module calls"):
        deepest = int(layers["depth"].max())
        depth = st.select_slider("Show modules down to nesting depth", list(range(1, deepest + 1)),
                                 value=min(2, deepest), key="arch_layer_depth")
        shown = layers[layers["depth"] <= depth].drop(columns=["leaf"]).copy()
        for column in ("input_shape", "output_shape"):
            shown[column] = shown[column].map(format_shape)
        blank = shown["kernel"].isna()  # not a conv or a pool
        shown.insert(shown.columns.get_loc("kernel"), "k / s / p", (
            shown["kernel"].astype(str) + " / " + shown["stride"].astype(str) + " / " + shown["padding"].astype(str)
        ).where(~blank, ""))
        shown["output_size"] = shown["output_size"].map(lambda v: "" if pd.isna(v) else str(v))
        st.dataframe(shown.drop(columns=["kernel", "stride", "padding"]), hide_index=True, height=420, column_config={
            "name": st.column_config.TextColumn("name", width=120), "type": st.column_config.TextColumn(width=110),
            "depth": st.column_config.NumberColumn(width=50), "input_shape": "input", "output_shape": "output",
            "params": st.column_config.NumberColumn("params", format="localized", width=90),
            "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized", width=110),
            "k / s / p": st.column_config.TextColumn(width=75, help="kernel / stride / padding"),
            "output_size": st.column_config.TextColumn("output size", width=210,
                                                       help="⌊(input + 2·padding − kernel) / stride⌋ + 1"),
        })
        st.caption("Every column, kernel, stride and padding apart: the Layers (CSV) download above.")


def code_snippet(summary: Summary, choice: ModelChoice) -> str:
    args = "".join(f", {k}={v!r}" for k, v in choice.overrides.items())
    dims, batch = tuple(summary.input_size), summary.batch_size
    lines = ["import resnet_core", "",
             f'model = resnet_core.build_model("{choice.model}"{args})'
             f'  # {format_count(summary.total_params)} parameters',
             f'summary = resnet_core.summarize("{choice.model}", input_size={dims}, batch_size={batch}{args})']
    match = matching_preset(summary.spec)
    if match is not None and match.torchvision:
        lines += ["", "# the same network in torchvision (resnet_core loads its weights strictly)",
                  "import torchvision",
                  f"tv_model = torchvision.models.{match.torchvision}()"]
    return "\n".join(lines)


def show(model: str, summary: Summary) -> None:
    choice = ModelChoice.from_spec(model, summary.spec)
    if st.button("Train this model", type="primary", icon=":material/model_training:", key="arch_train",
                 help="Open the Train page with this configuration picked"):
        st.switch_page(TRAIN_PAGE, query_params=choice.to_query_params())
    headline(summary, model)
    badges(summary, model)
    stages_section(summary, choice.model + ("_custom" if choice.overrides else ""))
    layers_section(summary)
    st.subheader("Build it in code")
    st.code(code_snippet(summary, choice), language="python")
    slug = choice.model + ("_custom" if choice.overrides else "")
    st.download_button("This network as one PyTorch file (.py)", python_source(summary.spec, choice.label),
                       f"{slug}.py", "text/x-python", key="dl_export_py", icon=":material/download:",
                       help="torch imports only; build() returns this network with resnet_core's state_dict keys")


preset_family_job()  # warms the summary cache of every preset in the background, once per server
st.title("Architecture")
st.write("Pick a preset and change any field: every number below is computed from the model the engine builds.")
init_state()
configuration_widgets()
view = current_view()
if view is not None:
    st.session_state[LAST_GOOD_KEY] = view
    model, summary = view
    natural = tuple(natural_input_size(summary.spec))
    remember_choice(ModelChoice.from_spec(model, summary.spec),
                    {"input": None if summary.input_size == natural else ",".join(map(str, summary.input_size)),
                     "batch": None if summary.batch_size == 1 else str(summary.batch_size)})
    show(*view)
elif LAST_GOOD_KEY in st.session_state:
    model, summary = st.session_state[LAST_GOOD_KEY]
    st.caption(f"Showing the last valid configuration: {ModelChoice.from_spec(model, summary.spec).label}, "
               f"input {format_shape(summary.input_size)}, batch {summary.batch_size}.")
    show(model, summary)


quick_check("Architecture")
