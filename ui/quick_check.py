"""Quick checks: the multiple-choice questions of `quick_checks.toml` at the end of a page, with feedback that cites
the live number on that page which answers them. Answers stay in the session (widget state), nowhere else.

    quick_check("Block anatomy")   # the last call of a page; the title is the one setup_page() uses

Each question names a figure: a function here that computes, from the page's own widget and session state and
through the same resnet_core functions the page calls, the number the page shows. It returns None while the page
has not computed it yet (nothing run, no stored runs); the feedback then says where the number will appear.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from resnet_core.data.fence import fenced_data_dir
from resnet_core.experiments import degradation
from resnet_core.experiments.degradation_nets import parse_net
from resnet_core.experiments.flow import run_flow
from resnet_core.experiments.flow_stack import FlowConfig
from resnet_core.experiments.flow_text import format_ratio
from resnet_core.experiments.identity import lower_or_higher
from resnet_core.experiments.lesion import LesionResult
from resnet_core.formatting import format_bytes
from resnet_core.introspect.anatomy import bottleneck_saving
from resnet_core.runs.memory import memory_check
from ui.block_lab import identity_result
from ui.options import TRAIN

CHECKS_FILE = Path(__file__).with_name("quick_checks.toml")
State = Mapping[str, Any]
Figure = dict[str, str]  # "figure": the number as the page shows it, and other fields the feedback may cite


@dataclass(frozen=True)
class Check:
    page: str
    id: str
    question: str
    options: tuple[str, ...]
    answer: int
    figure: str
    explain: str
    missing: str

    @property
    def key(self) -> str:
        return f"qc_{self.id}"


def load_checks(path: Path = CHECKS_FILE) -> list[Check]:
    with path.open("rb") as f:
        data = tomllib.load(f)
    return [Check(**{**raw, "options": tuple(raw["options"])}) for raw in data["check"]]


def checks_for(page: str) -> list[Check]:
    return [c for c in load_checks() if c.page == page]


def feedback(check: Check, state: State) -> tuple[str, str | None]:
    """(the feedback text, the figure it cites or None when the page has not computed it yet)."""
    try:
        figure = FIGURES[check.figure](state)
    except (ValueError, RuntimeError):  # the page shows the same error where its number would be
        figure = None
    if figure is None:
        return check.missing, None
    return check.explain.format(**figure), figure["figure"]


def quick_check(page: str) -> None:
    checks = checks_for(page)
    if not checks:
        return
    with st.container(border=True, key=f"quick_check_{page.lower().replace(' ', '_')}"):
        st.markdown("**Quick check**")  # not a subheader: the pages' own headings stay theirs
        for check in checks:
            picked = st.radio(check.question, check.options, index=None, key=check.key)
            if picked is None:
                continue
            text, _ = feedback(check, st.session_state)
            if check.options.index(picked) == check.answer:
                st.success(f"Right. {text}", icon=":material/check_circle:")
            else:
                st.warning(f"Not quite: the answer is “{check.options[check.answer]}”. {text}",
                           icon=":material/info:")


# ---------------------------------------------------------------- the figures, one per question


def _get(state: State, key: str, default: Any = None) -> Any:
    return state[key] if key in state else default


def depth(state: State) -> Figure | None:
    """Architecture: the Depth metric of the configuration shown (the page keeps it as arch_last_good)."""
    shown = _get(state, "arch_last_good")
    if shown is None:
        return None
    spec = shown[1].spec
    return dict(figure=str(spec.depth), stem=str(spec.stem_convs), blocks=str(sum(spec.layers)),
                convs=str(spec.convs_per_block))


def bottleneck_ratio(state: State) -> Figure | None:
    """Block anatomy: the Ratio metric of the bottleneck comparison."""
    channels = int(_get(state, "seed_channels", 256))
    return dict(figure=f"{bottleneck_saving(channels).ratio:.1f}×", channels=str(channels))


def identity_residual_ratio(state: State) -> Figure | None:
    """Block anatomy: the residual block's ‖F(x)‖/‖x‖ metric of the finished identity experiment."""
    result = identity_result(state)
    if result is None:
        return None
    r, p = result.residual, result.plain
    square = [v for v in p.identity_distance.values() if v is not None]
    return dict(figure=f"{r.residual_ratio:.3g}", start=f"{r.residual_ratio_start:.3g}",
                active=f"{r.residual_ratio_active:.3g}", loss_compare=lower_or_higher(result.loss_ratio),
                distance=f"{square[-1]:.2f}" if square else "n/a")


def memory_estimate(state: State) -> Figure | None:
    """Train: the memory guard's estimate under the Start button, and the same at twice the batch size."""
    choice = _get(state, "model_choice")
    if not choice:
        return None
    config = TRAIN.config(state, convert={"data_dir": fenced_data_dir}, model=choice["model"],
                          overrides=dict(choice["overrides"]))
    batch = config.batch_size
    needed = memory_check(config).needed_bytes
    doubled = memory_check(config.replace(batch_size=2 * batch)).needed_bytes
    return dict(figure=format_bytes(needed), batch=str(batch), double=str(2 * batch), doubled=format_bytes(doubled),
                growth=f"{doubled / needed:.2f}×")


@st.cache_data(max_entries=16, show_spinner=False)
def _flow_spreads(config: FlowConfig, dataset: str) -> tuple[float, float]:
    result = run_flow(config, dataset=dataset)
    return result.plain.grad_spread, result.residual.grad_spread


def plain_grad_spread(state: State) -> Figure | None:
    """Signal flow: the gradient-norm spreads of the stacks tab, for its current settings."""
    if "flow_blocks" not in state:
        return None
    config = FlowConfig(blocks=state["flow_blocks"], width=state["flow_width"], batch_norm=state["flow_bn"],
                        mode=state["flow_mode"], init=state["flow_init"], init_std=float(state["flow_std"]),
                        activation=state["flow_activation"], batch_size=state["flow_batch"],
                        resolution=state["flow_resolution"], loss=state["flow_loss"],
                        seed=state["flow_seed"]).validate()
    plain, residual = _flow_spreads(config, state["flow_dataset"])
    norm = f"BatchNorm in {config.mode} mode" if config.batch_norm else "no BatchNorm"
    return dict(figure=format_ratio(plain), residual=format_ratio(residual), blocks=str(config.blocks), norm=norm)


def deep_plain_loss(state: State) -> Figure | None:
    """Degradation: the final train loss of the deeper and the shallower plain net of the group shown."""
    group = degradation.list_groups().get(_get(state, "degr_shown"))
    if not group:
        return None
    summaries = {name: degradation.summarize_records(records)
                 for name, records in degradation.group_records(group).items() if records}
    nets = [parse_net(name) for name in summaries]
    plain = sorted((net.depth, net.name) for net in nets if not net.skip)
    losses = {name: summaries[name].get("final_train_loss") for _, name in plain}
    if len(plain) != 2 or None in losses.values():
        return None
    (_, shallow), (_, deep) = plain
    return dict(figure=f"{losses[deep]:.3f}", deep=deep, shallow=shallow, shallow_loss=f"{losses[shallow]:.3f}")


def median_drop(state: State) -> Figure | None:
    """Lesion: the median single-block drop of the first residual run measured, as lesion.describe states it."""
    job = _get(state, "lesion_task")
    if not job:
        return None
    rows, _, _ = job["task"].snapshot()
    for row in rows:
        if "error" in row or not row["skip"]:
            continue
        result = LesionResult.from_dict(row)
        accs = result.deletion_accs()
        if not accs:
            continue
        median = accs[len(accs) // 2]  # the same median as lesion.describe
        drop = 100 * (result.baseline_acc - median)
        return dict(figure=f"{drop:.1f} points", run=result.name, intact=f"{result.baseline_acc:.1%}")
    return None


FIGURES: dict[str, Callable[[State], Figure | None]] = {
    f.__name__: f for f in (depth, bottleneck_ratio, identity_residual_ratio, memory_estimate, plain_grad_spread,
                            deep_plain_loss, median_drop)
}
