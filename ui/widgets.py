"""Streamlit helpers shared by the pages: the model choice (URL + session contract), its picker, engine errors.

The current model is shared between pages as
    st.session_state["model_choice"] = {"model": <preset name>, "overrides": {<ModelSpec field>: value, ...}}
and written to the URL as ?model=<preset>&<field>=<value>... (ModelSpec field names), so a link reproduces it.

    from ui.widgets import model_picker, or_error
    choice = model_picker()                      # preset dropdown, defaulting to the shared choice
    model = or_error(build_model, choice.model, **choice.overrides)   # None (and an st.error) on a ValueError
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import streamlit as st

from resnet_core.introspect.summary import preset_row
from resnet_core.models.presets import PRESETS, get_preset, resolve_spec
from resnet_core.models.spec import (
    LEGACY_FIELDS,
    OVERRIDABLE,
    ModelSpec,
    field_from_text,
    field_to_text,
    legacy_fields_from_text,
)
from resnet_core.runs.background import BackgroundRows, IdlePriority, process_wide
from resnet_core.runs.store import SkippedRun

CHOICE_KEY = "model_choice"
OWNER_KEY = "session_owner"
DEFAULT_MODEL = "resnet18"
FAMILY_LABELS = {"imagenet": "ImageNet", "timm": "ImageNet, timm's ResNets (D, T, SE, ECA, RS, AA, SENet-154, pruned)",
                 "resnetv2": "ImageNet, timm's pre-activation ResNet v2 and BiT", "res2net": "ImageNet, Res2Net",
                 "resnest": "ImageNet, ResNeSt", "senet": "ImageNet, timm's legacy SENets (the Caffe port)",
                 "sknet": "ImageNet, selective-kernel ResNets", "cifar": "CIFAR", "wrn": "Wide ResNet, CIFAR"}
# The group of a preset only timm has: the timm module that registers it (resnet.py's nets are "timm").
TIMM_GROUPS = {"resnet": "timm", "resnetv2": "resnetv2", "res2net": "res2net", "resnest": "resnest",
               "senet": "senet", "sknet": "sknet"}
T = TypeVar("T")


@dataclass(frozen=True)
class ModelChoice:
    model: str = DEFAULT_MODEL  # preset name
    overrides: Mapping[str, Any] = field(default_factory=dict)  # ModelSpec fields that differ from the preset

    @classmethod
    def from_spec(cls, model: str, spec: ModelSpec) -> ModelChoice:
        base = get_preset(model).spec
        return cls(model, {f: getattr(spec, f) for f in OVERRIDABLE if getattr(spec, f) != getattr(base, f)})

    def spec(self) -> ModelSpec:
        """The validated spec; raises the engine's ValueError for a bad combination."""
        return resolve_spec(self.model, **self.overrides)

    @property
    def label(self) -> str:
        if not self.overrides:
            return self.model
        return f"{self.model} ({', '.join(f'{k}={field_to_text(v)}' for k, v in self.overrides.items())})"

    def to_state(self) -> dict[str, Any]:
        return {"model": self.model, "overrides": dict(self.overrides)}

    def to_query_params(self) -> dict[str, str]:
        return {"model": self.model, **{k: field_to_text(v) for k, v in self.overrides.items()}}


def choice_from_query_params(params: Mapping[str, str]) -> ModelChoice | None:
    """The choice a URL describes (None without ?model=); a ValueError naming the field for a bad value.

    Values are only type-checked here: whether the combination is valid is `ModelChoice.spec()`'s job.
    """
    if "model" not in params:
        return None
    model = params["model"]
    get_preset(model)
    overrides = {k: field_from_text(k, params[k]) for k in OVERRIDABLE if k in params}
    for name in LEGACY_FIELDS:  # links made before a field was replaced: ?se=true is attention=se
        if name in params:
            overrides = {**legacy_fields_from_text(name, params[name]), **overrides}
    return ModelChoice(model, overrides)


def shared_choice(default: str = DEFAULT_MODEL) -> ModelChoice:
    """The URL's choice if it has one, else the session's (set by the Architecture page), else `default`."""
    try:
        from_url = choice_from_query_params(st.query_params.to_dict())
    except ValueError as exc:
        st.error(f"The link's model settings were ignored: {exc}")
        from_url = None
    if from_url is not None:
        return from_url
    stored = st.session_state.get(CHOICE_KEY)
    if stored and stored.get("model") in PRESETS:
        return ModelChoice(stored["model"], dict(stored.get("overrides", {})))
    return ModelChoice(default)


def remember_choice(choice: ModelChoice, extra_params: Mapping[str, str | None] | None = None) -> None:
    """Store the choice for the other pages and put it in the URL, with this page's `extra_params`.

    Only the keys this sets are touched: model, the ModelSpec fields and `extra_params` (None removes one).
    """
    st.session_state[CHOICE_KEY] = choice.to_state()
    wanted = {**choice.to_query_params(), **(extra_params or {})}
    for key in ("model", *OVERRIDABLE, *LEGACY_FIELDS, *wanted):
        value = wanted.get(key)
        if value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def preset_group(name: str) -> str:
    """The preset's family, with the ImageNet nets that only timm has (no torchvision twin) apart, one group per
    timm module that registers them ("timm" for resnet.py's, "resnetv2", "res2net", "resnest", "senet", "sknet")."""
    preset = PRESETS[name]
    if preset.family == "imagenet" and preset.timm and not preset.torchvision:
        return TIMM_GROUPS[preset.timm_module or "resnet"]
    return preset.family


def preset_label(name: str) -> str:
    """"CIFAR · resnet20", "CIFAR · plain20 (no skips)": the family first, so that typing it filters the list."""
    group = preset_group(name)
    return f"{FAMILY_LABELS.get(group, group)} · {name}" + ("" if PRESETS[name].spec.skip else " (no skips)")


def grouped_presets(names: Sequence[str] | None = None) -> list[str]:
    """`names` (default: every preset) grouped by family in first-seen order, each plain twin after its net."""
    names = list(PRESETS if names is None else names)
    families = list(dict.fromkeys(preset_group(n) for n in names))
    residual_of = {n: n.replace("plain", "resnet", 1) for n in names if not PRESETS[n].spec.skip}
    order = {n: i for i, n in enumerate(names)}

    def position(name: str) -> tuple[int, int, int]:
        twin = residual_of.get(name)
        anchor = order.get(twin, order[name]) if twin else order[name]
        return families.index(preset_group(name)), anchor, int(twin is not None)

    return sorted(names, key=position)


def model_picker(label: str = "Model", key: str = "model_picker", default: str = DEFAULT_MODEL,
                 options: Sequence[str] | None = None) -> ModelChoice:
    """A preset dropdown that starts on the shared choice and keeps it (and the URL's ?model=) up to date.

    The Architecture page's overrides (block, layers, ...) are kept while the same preset stays picked.
    """
    names = grouped_presets(options)
    start = shared_choice(default)
    if key not in st.session_state:
        st.session_state[key] = start.model if start.model in names else names[0]
    name = st.selectbox(label, names, key=key, format_func=preset_label)
    choice = start if start.model == name else ModelChoice(name)
    if choice.overrides:
        st.caption(f"With the Architecture page's changes: {choice.label}")
    remember_choice(choice)
    return choice


def or_error(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """fn(*args, **kwargs), or None after showing the engine's ValueError message with st.error."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        st.error(str(exc), icon="⚠️")
        return None


def preset_family_job() -> BackgroundRows:
    """Every preset summarized once per server, cheapest first, in a background thread.

    Started by the first page view, it also warms the engine's summary cache, so a preset's first
    view on the Architecture page (at any batch size) needs no new trace. It runs at idle priority
    (`IdlePriority`): between two presets it waits while any session's script, a training run or other
    work keeps the server busy, so it never slows the pages users open meanwhile.
    """
    return process_wide("preset_family", lambda: BackgroundRows(
        preset_row, sorted(PRESETS, key=lambda n: sum(PRESETS[n].spec.layers)), pace=IdlePriority()))


def session_owner() -> str:
    """This browser session's id: jobs are submitted under it (the Degradation page finds its group's jobs by it)."""
    return st.session_state.setdefault(OWNER_KEY, uuid.uuid4().hex)


def skipped_runs_note(skipped: Sequence[SkippedRun]) -> None:
    """One line per folder of the runs folder that is not a readable run, under a collapsed heading."""
    if skipped:
        with st.expander(f"{len(skipped)} folder(s) in the runs folder could not be read and are not listed"):
            st.markdown("\n".join(f"- `{s.name}`: {s.reason}" for s in skipped))
