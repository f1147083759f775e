"""Compare: 2 to 6 configurations side by side, and the whole ResNet family's params and mult-adds against depth."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from resnet_core.formatting import format_bytes, format_shape
from resnet_core.introspect.summary import MAX_BATCH, summarize
from resnet_core.models.presets import PRESETS, matching_preset, resolve_spec
from resnet_core.models.spec import natural_input_size, parse_shape
from ui.architecture_figures import compare_figure, family_figure
from ui.charts import show_chart
from ui.live import live_fragment
from ui.page import setup_page
from ui.widgets import CHOICE_KEY, ModelChoice, or_error, preset_family_job, shared_choice

setup_page("Compare")

DEFAULT_MODELS = ["resnet18", "resnet34", "resnet50", "plain50"]
MAX_CONFIGS = 6
POLL_SECONDS = 1.0


def configuration_options() -> tuple[dict[str, ModelChoice], ModelChoice | None]:
    """Every preset, plus the shared configuration (the link's ?model=… settings, else the Architecture page's)
    when it changes its preset's fields; and that shared choice, if there is one."""
    options = {name: ModelChoice(name) for name in PRESETS}
    shared = shared_choice() if "model" in st.query_params or CHOICE_KEY in st.session_state else None
    if shared is not None and shared.overrides:
        options = {shared.label: shared, **options}
    return options, shared


def comparison_row(label: str, choice: ModelChoice, dims: tuple[int, ...] | None, batch: int) -> dict | None:
    """One configuration's figures; the input's channel count sets the model's in_channels."""
    overrides = {**choice.overrides, **({"in_channels": dims[0]} if dims else {})}
    spec = or_error(resolve_spec, choice.model, **overrides)
    summary = None if spec is None else or_error(summarize, spec, dims or natural_input_size(spec), batch)
    if summary is None:
        return None
    match = matching_preset(spec)
    return dict(label=label, block=spec.block, skip=spec.skip, depth=summary.depth, params=summary.total_params,
                mult_adds=summary.mult_adds, activation_bytes=summary.activation_bytes,
                activation=format_bytes(summary.activation_bytes),
                training_memory=format_bytes(summary.training_memory_bytes),
                input=format_shape((batch, *summary.input_size)), output=format_shape(summary.output_shape),
                torchvision=(match.torchvision or "") if match else "")


def comparison_section(options: dict[str, ModelChoice], shared: ModelChoice | None) -> list[str]:
    """The configurations table and chart; returns the labels picked."""
    if "cmp_configs" not in st.session_state:
        first = [shared.label] if shared is not None else []
        st.session_state["cmp_configs"] = (first + [m for m in DEFAULT_MODELS if m not in first])[:MAX_CONFIGS]
    c = st.columns([4, 1.2, 0.8])
    labels: list[str] = c[0].multiselect("Configurations (2 to 6)", list(options), key="cmp_configs",
                                         max_selections=MAX_CONFIGS)
    input_text = c[1].text_input("Input C,H,W", key="cmp_input", placeholder="natural per model",
                                 help="blank: 224×224 for ImageNet stems, 32×32 for CIFAR stems")
    batch = int(c[2].number_input("Batch size", min_value=1, max_value=MAX_BATCH, value=1, key="cmp_batch"))
    if len(labels) < 2:
        st.info("Pick at least two configurations to compare.")
        return labels
    dims = or_error(parse_shape, input_text, "input") if input_text.strip() else None
    if input_text.strip() and dims is None:
        return labels
    rows = [row for row in (comparison_row(label, options[label], dims, batch) for label in labels) if row]
    if not rows:
        return labels
    table = pd.DataFrame(rows)
    st.dataframe(table.drop(columns=["activation_bytes"]), hide_index=True, column_config={
        "params": st.column_config.NumberColumn("params", format="localized"),
        "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized"),
        "label": "configuration", "skip": st.column_config.CheckboxColumn("skip"),
        "activation": "activation memory", "training_memory": "training memory",
    })
    show_chart(compare_figure(table), key="compare_figure", name="compare " + " vs ".join(labels),
               title=f"{' vs '.join(labels)} · input {table['input'].iloc[0] if dims else 'natural per model'}")
    return labels


def picked_points(frame: pd.DataFrame, labels: list[str], options: dict[str, ModelChoice],
                  shared: ModelChoice | None) -> pd.DataFrame:
    """The family chart's labelled points: the configurations picked above and the current one (the link's or the
    Architecture page's, "(current)" when not picked), at the natural input, batch 1 (a preset from the family's
    rows once summarized; a changed configuration summarized here)."""
    options, shared = configuration_options()
    wanted = {label: options[label] for label in labels if label in options}
    if shared is not None and shared.label not in wanted:
        wanted[f"{shared.label} (current)"] = shared
    summarized = frame.set_index("model")
    points = []
    for label, choice in wanted.items():
        if not choice.overrides:
            if choice.model in summarized.index:
                row = summarized.loc[choice.model]
                points.append(dict(label=label, depth=row["depth"], params=row["params"], mult_adds=row["mult_adds"]))
            continue
        spec = or_error(resolve_spec, choice.model, **choice.overrides)
        summary = None if spec is None else or_error(summarize, spec, natural_input_size(spec), 1)
        if summary is not None:
            points.append(dict(label=label, depth=summary.depth, params=summary.total_params,
                               mult_adds=summary.mult_adds))
    return pd.DataFrame(points, columns=["label", "depth", "params", "mult_adds"])


def family_section(labels: list[str], options: dict[str, ModelChoice], shared: ModelChoice | None) -> None:
    def draw() -> bool:
        job = preset_family_job()
        rows, done, error = job.snapshot()
        if error:
            st.error(f"Summarizing the presets stopped: {error}")
        if not done:
            st.progress(len(rows) / job.total, text=f"Summarizing every preset in the background: "
                                                    f"{len(rows)} of {job.total} done")
        if rows:
            frame = pd.DataFrame(rows)
            show_chart(family_figure(frame, picked_points(frame, labels, options, shared)), key="family_figure",
                       name="resnet family against depth", title="Every preset against depth (natural input, batch 1)")
            st.caption("Labelled: the configurations picked above"
                       + (" and the current one" if shared is not None else "")
                       + f"; hover over any of the {len(rows)} points for its name.")
            with st.expander(f"The numbers ({len(rows)} presets)"):
                st.dataframe(frame.sort_values(["family", "depth"]), hide_index=True, column_config={
                    "params": st.column_config.NumberColumn("params", format="localized"),
                    "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized")})
        return not done

    live_fragment(draw, not preset_family_job().snapshot()[1], POLL_SECONDS)


st.title("Compare")
st.write("Configurations side by side, every number computed by the engine. Residual and plain (no skip) "
         "networks keep one colour each, as everywhere in the app.")
OPTIONS, SHARED = configuration_options()
picked = comparison_section(OPTIONS, SHARED)
st.subheader("The whole family against depth")
st.caption("Every preset at its natural input (224×224 ImageNet, 32×32 CIFAR), batch 1, summarized by the engine. "
           "The CIFAR plain nets sit on top of their residual twins: shortcut A has no parameters.")
family_section(picked, OPTIONS, SHARED)
