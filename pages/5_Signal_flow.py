"""Signal flow: gradient and activation magnitudes per block, plain vs residual, measured live."""

from __future__ import annotations

import streamlit as st

from resnet_core.data.sets import DATASETS
from resnet_core.experiments.flow import measure_twins, run_flow
from resnet_core.experiments.flow_stack import ACTIVATIONS, INITS, MAX_BLOCKS, FlowConfig
from resnet_core.experiments.flow_text import describe_model, describe_stacks, describe_training_flow
from resnet_core.runs.contract import short_label
from resnet_core.runs.store import list_runs, newest_plain_and_residual, read_metrics, scan_runs
from resnet_core.training.probes import probe_frame, stage_activations
from resnet_core.training.records import ProbeRecord
from ui.charts import show_chart
from ui.flow_figures import activation_curves, gradient_heatmap, model_flow_figure, spread_figure, stack_flow_figure
from ui.live import live_fragment, runs_strip
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.widgets import model_picker, skipped_runs_note

setup_page("Signal flow")

DATASET_CHOICES = [d for d in DATASETS if d != "imagefolder"]
SCENARIOS = {
    # label: widget values; the second and third are where the textbook "vanishing gradient" does appear
    "BatchNorm (train mode), ReLU, Kaiming": dict(flow_bn=True, flow_activation="relu", flow_init="kaiming"),
    "No BatchNorm, sigmoid, normal(0.05)": dict(flow_bn=False, flow_activation="sigmoid", flow_init="normal",
                                                flow_std=0.05),
    "No BatchNorm, tanh, normal(0.05)": dict(flow_bn=False, flow_activation="tanh", flow_init="normal", flow_std=0.05),
}
DEFAULTS = dict(flow_blocks=50, flow_width=16, flow_bn=True, flow_mode="train", flow_init="kaiming", flow_std=0.05,
                flow_activation="relu", flow_batch=32, flow_resolution=8, flow_loss="cross_entropy",
                flow_dataset="synthetic", flow_seed=0)


def init_state() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def apply_scenario(label: str) -> None:
    st.session_state.update(SCENARIOS[label])


@st.cache_data(max_entries=64, show_spinner="Measuring both stacks…")
def measured_stacks(config: FlowConfig, dataset: str) -> dict:
    result = run_flow(config, dataset=dataset)
    return dict(result=result.to_dict(), text=describe_stacks(result))


@st.cache_data(max_entries=16, show_spinner="Measuring the model and its twin…")
def measured_models(model: str, overrides: dict, dataset: str, side: int, batch: int, loss: str, mode: str,
                    seed: int) -> dict[str, dict]:
    """The chosen model and its twin with the identity shortcuts toggled, same seed, same batch."""
    twins = measure_twins(model, overrides, dataset, side, batch, loss, mode, seed)
    return {t.name: dict(blocks=t.flow.blocks, stages=t.flow.stages, seconds=t.flow.seconds, skip=t.skip,
                         text=describe_model(t.flow, t.name)) for t in twins}


def stacks_tab() -> None:
    st.markdown("One stack of N blocks (conv → norm → act → conv → norm, then act) measured twice with the same "
                "weights: as a plain stack, and as a residual stack that adds `+ x` before each block's last "
                "activation. One batch goes forward and back, and each block's first-conv gradient and output are "
                "measured.")
    stack_controls()
    s = st.session_state
    try:
        config = FlowConfig(blocks=s.flow_blocks, width=s.flow_width, batch_norm=s.flow_bn, mode=s.flow_mode,
                            init=s.flow_init, init_std=float(s.flow_std), activation=s.flow_activation,
                            batch_size=s.flow_batch, resolution=s.flow_resolution, loss=s.flow_loss,
                            seed=s.flow_seed).validate()
        measured = measured_stacks(config, s.flow_dataset)
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc), icon="⚠️")
        return
    stack_charts(config, measured, s.flow_dataset)


def stack_controls() -> None:
    """The stacks' settings (their values are in st.session_state) and the settings to try."""
    with st.container(border=True):
        c = st.columns([2, 1, 1, 1.3, 1.2, 0.8])
        c[0].slider("Blocks", 1, min(MAX_BLOCKS, 200), key="flow_blocks")
        c[5].number_input("Seed", 0, 2**31 - 1, key="flow_seed", help="weights and the batch drawn")
        c[1].select_slider("Width", [4, 8, 16, 32, 64], key="flow_width")
        c[2].toggle("BatchNorm", key="flow_bn")
        c[3].radio("BN statistics", ["train", "eval"], key="flow_mode", horizontal=True,
                   disabled=not st.session_state.flow_bn,
                   help="eval: running statistics, first estimated on this same batch")
        c[4].selectbox("Activation", ACTIVATIONS, key="flow_activation")
        c = st.columns([1, 1, 1, 1, 1.4, 1])
        c[0].selectbox("Init", INITS, key="flow_init",
                       help="kaiming: He normal (fan-in, ReLU gain); xavier: Glorot normal")
        c[1].number_input("Normal std", min_value=1e-4, max_value=10.0, step=0.01, format="%.4f", key="flow_std",
                          disabled=st.session_state.flow_init != "normal")
        c[2].select_slider("Batch size", [2, 4, 8, 16, 32, 64, 128], key="flow_batch")
        c[3].select_slider("Resolution", [4, 8, 16, 32], key="flow_resolution", help="images are pooled to this side")
        c[4].radio("Loss", ["cross_entropy", "sum"], key="flow_loss", horizontal=True,
                   format_func=lambda v: "cross-entropy (head)" if v == "cross_entropy" else "sum of outputs")
        c[5].selectbox("Data set", DATASET_CHOICES, key="flow_dataset")
        st.caption("Settings to try:")
        c = st.columns(len(SCENARIOS))
        for col, label in zip(c, SCENARIOS):
            col.button(label, on_click=apply_scenario, args=(label,), key=f"flow_try_{label}", width="stretch")


def stack_charts(config: FlowConfig, measured: dict, dataset: str) -> None:
    """Both stacks' gradients and activations per block, their spreads, and what the numbers say."""
    result = measured["result"]
    title = (f"Plain vs residual stacks: {config.blocks} blocks of width {config.width}, {config.activation}, "
             f"{'BN (' + config.mode + ')' if config.batch_norm else 'no BN'}<br>{config.init} init, batch "
             f"{config.batch_size} at {config.resolution}×{config.resolution} from {dataset}, "
             f"{config.loss} loss, seed {config.seed}")
    show_chart(stack_flow_figure(result["plain"], result["residual"]), key="flow_stack_fig", title=title,
               name=f"signal flow {config.blocks} blocks {config.activation}", width="stretch")
    left, right = st.columns([1, 1.4])
    short = (f"{config.blocks} blocks × {config.width}, {config.activation},<br>"
             f"{'BN ' + config.mode if config.batch_norm else 'no BN'}, {config.init}, seed {config.seed}")
    show_chart(spread_figure(result["plain"], result["residual"]), key="flow_spread_fig", where=left, title=short,
               name=f"signal flow spread {config.blocks} blocks {config.activation}", width="stretch")
    right.markdown("\n".join(f"- {line}" for line in measured["text"]))
    right.caption(f"Forward + backward + measurement: plain {result['plain']['seconds']:.2f} s, "
                  f"residual {result['residual']['seconds']:.2f} s.")


def model_tab() -> None:
    st.markdown("The same measurements on a full model (the Architecture page's choice) and on its twin with the "
                "identity shortcuts toggled, from the same seed and on the same batch: per block, the gradient norm "
                "of its first conv and the std of its output; per stage, all its convs' gradients together.")
    choice = model_picker(key="flow_model_picker", default="resnet56")
    c = st.columns(5)
    side = c[0].select_slider("Input side", [16, 32, 64, 128, 224], value=32, key="flow_model_side")
    batch = c[1].select_slider("Batch size", [2, 4, 8, 16, 32], value=8, key="flow_model_batch")
    loss = c[2].radio("Loss", ["cross_entropy", "sum"], key="flow_model_loss", horizontal=True)
    mode = c[3].radio("BN statistics", ["train", "eval"], key="flow_model_mode", horizontal=True)
    dataset = c[4].selectbox("Data set", DATASET_CHOICES, key="flow_model_dataset")
    try:
        measured = measured_models(choice.model, dict(choice.overrides), dataset, side, batch, loss, mode,
                                   int(st.session_state.flow_seed))
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc), icon="⚠️")
        return
    show_chart(model_flow_figure(measured), key="flow_model_fig", name=f"signal flow {choice.label}",
               title=f"{choice.label} and its twin: input {side}×{side}, batch {batch}, {loss} loss, BN {mode}, "
                     f"{dataset}", width="stretch")
    for col, (name, m) in zip(st.columns(len(measured)), measured.items()):
        col.markdown(f"**{name}** — per stage (gradient norm over all the stage's convs; output statistics)")
        col.dataframe(m["stages"], hide_index=True, width="stretch")
        col.markdown("\n".join(f"- {line}" for line in m["text"]))
        col.caption(f"Measured in {m['seconds']:.2f} s.")


def training_tab() -> None:
    st.markdown("During a training run the probes record every block's gradient norm and output statistics every "
                "few steps. Pick runs (the degradation runs are plain and residual twins) to compare them on one "
                "colour scale.")
    runs_strip()
    stored, skipped = scan_runs()
    skipped_runs_note(skipped)
    runs = {r.run_id: r for r in stored if r.config.train.probe_every}
    if not runs:
        st.info("No run with probes yet: start one on the Train or the Degradation page.")
        return
    if "flow_runs" not in st.session_state:
        st.session_state.flow_runs = [r.run_id for r in newest_plain_and_residual(runs.values())]
    chosen = st.multiselect("Runs", list(runs), key="flow_runs", max_selections=4)
    if not chosen:
        return

    def draw() -> bool:
        current = {r.run_id: r for r in list_runs() if r.run_id in chosen}  # fresh status; a spoilt folder drops out
        frames = {short_label(rid): probe_frame(read_metrics(r.path, ProbeRecord)) for rid, r in current.items()}
        frames = {name: f for name, f in frames.items() if not f.empty}
        if not frames:
            st.info("No probe records yet.")
        else:
            show_chart(gradient_heatmap(frames), key="flow_heatmap", name="gradient norms " + " ".join(frames),
                       title="Gradient norms during training: " + ", ".join(frames), width="stretch")
            st.caption("Colour: log10 of the gradient norm of all parameters of each unit (stem, each block, head), "
                       "as the training probes record it; the input end is at the bottom.")
            skip = {short_label(rid): r.skip for rid, r in current.items()}
            show_chart(activation_curves({rid: stage_activations(f) for rid, f in frames.items()}, skip),
                       key="flow_act_curves", name="activations " + " ".join(frames),
                       title="Activations during training: " + ", ".join(frames), width="stretch")
            st.markdown("\n".join(f"- {line}" for line in describe_training_flow(frames)))
        return any(r.status.live for r in current.values())

    live_fragment(draw, any(runs[r].status.live for r in chosen), 2.0)


TABS = {"Plain vs residual stacks": stacks_tab, "A whole model": model_tab, "During training": training_tab}
init_state()
st.title("Signal flow")
st.caption("Every number here is measured on this machine when you change a setting. Tutorials say gradients "
           "\"decay exponentially\" in deep plain nets; with BatchNorm in train mode the measurement says otherwise "
           "— look, then find the settings under which they do vanish.")
# on_change="rerun": only the open tab is computed (ResNet-56 and its twin are measured when that tab opens)
tabs = st.tabs(list(TABS), key="flow_tab", on_change="rerun")
for tab, draw_tab in zip(tabs, TABS.values()):
    if tab.open:
        with tab:
            draw_tab()


quick_check("Signal flow")
