"""Streamlit helpers shared by the pages: the model choice (URL + session contract), its picker, engine errors.

The current model is shared between pages as
    st.session_state["model_choice"] = {"model": <preset name>, "overrides": {<ModelSpec field>: value, ...}}
and written to the URL as ?model=<preset>&<field>=<value>... (ModelSpec field names), so a link reproduces it.

    from pages.ui.widgets import model_picker, or_error
    choice = model_picker()                      # preset dropdown, defaulting to the shared choice
    model = or_error(build_model, choice.model, **choice.overrides)   # None (and an st.error) on a ValueError
"""

from __future__ import annotations

import atexit
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import streamlit as st

from resnet_core.presets import PRESETS, get_preset, resolve_spec
from resnet_core.spec import OVERRIDABLE, ModelSpec, coerce_layers
from resnet_core.summary import natural_input_size, summarize

CHOICE_KEY = "model_choice"
DEFAULT_MODEL = "resnet18"
FAMILY_LABELS = {"imagenet": "ImageNet", "cifar": "CIFAR", "wrn": "Wide ResNet, CIFAR"}
T = TypeVar("T")


@dataclass(frozen=True)
class ModelChoice:
    model: str = DEFAULT_MODEL  # preset name
    overrides: Mapping[str, Any] = field(default_factory=dict)  # ModelSpec fields that differ from the preset

    @classmethod
    def from_spec(cls, model: str, spec: ModelSpec) -> "ModelChoice":
        base = get_preset(model).spec
        return cls(model, {f: getattr(spec, f) for f in OVERRIDABLE if getattr(spec, f) != getattr(base, f)})

    def spec(self) -> ModelSpec:
        """The validated spec; raises the engine's ValueError for a bad combination."""
        return resolve_spec(self.model, **self.overrides)

    @property
    def label(self) -> str:
        if not self.overrides:
            return self.model
        return f"{self.model} ({', '.join(f'{k}={_to_text(v)}' for k, v in self.overrides.items())})"

    def to_state(self) -> Dict[str, Any]:
        return {"model": self.model, "overrides": dict(self.overrides)}

    def to_query_params(self) -> Dict[str, str]:
        return {"model": self.model, **{k: _to_text(v) for k, v in self.overrides.items()}}


def choice_from_query_params(params: Mapping[str, str]) -> Optional[ModelChoice]:
    """The choice a URL describes (None without ?model=); a ValueError naming the field for a bad value.

    Values are only type-checked here: whether the combination is valid is `ModelChoice.spec()`'s job.
    """
    if "model" not in params:
        return None
    model = params["model"]
    get_preset(model)
    return ModelChoice(model, {k: _from_text(k, params[k]) for k in OVERRIDABLE if k in params})


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


def remember_choice(choice: ModelChoice, extra_params: Optional[Mapping[str, Optional[str]]] = None) -> None:
    """Store the choice for the other pages and put it in the URL, with this page's `extra_params`.

    Only the keys this sets are touched: model, the ModelSpec fields and `extra_params` (None removes one).
    """
    st.session_state[CHOICE_KEY] = choice.to_state()
    wanted = {**choice.to_query_params(), **(extra_params or {})}
    for key in ("model", *OVERRIDABLE, *wanted):
        value = wanted.get(key)
        if value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def preset_label(name: str) -> str:
    preset = PRESETS[name]
    return f"{name} · {FAMILY_LABELS[preset.family]}" + ("" if preset.spec.skip else ", plain")


def model_picker(label: str = "Model", key: str = "model_picker", default: str = DEFAULT_MODEL,
                 options: Optional[Sequence[str]] = None) -> ModelChoice:
    """A preset dropdown that starts on the shared choice and keeps it (and the URL's ?model=) up to date.

    The Architecture page's overrides (block, layers, ...) are kept while the same preset stays picked.
    """
    names = list(options or PRESETS)
    start = shared_choice(default)
    if key not in st.session_state:
        st.session_state[key] = start.model if start.model in names else names[0]
    name = st.selectbox(label, names, key=key, format_func=preset_label)
    choice = start if start.model == name else ModelChoice(name)
    if choice.overrides:
        st.caption(f"With the Architecture page's changes: {choice.label}")
    remember_choice(choice)
    return choice


def or_error(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Optional[T]:
    """fn(*args, **kwargs), or None after showing the engine's ValueError message with st.error."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        st.error(str(exc), icon="⚠️")
        return None


class BackgroundRows:
    """Rows computed one item at a time in a daemon thread; pages poll `snapshot()` (the thread never calls st.*).

    At interpreter exit the thread is told to stop and joined, so no torch call is cut off mid-way.
    """

    def __init__(self, compute: Callable[[Any], Dict[str, Any]], items: Sequence[Any]) -> None:
        self.total = len(items)
        self._lock = threading.Lock()
        self._rows: List[Dict[str, Any]] = []
        self._error: Optional[str] = None
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(compute, list(items)), daemon=True)
        self._thread.start()
        atexit.register(self._finish)

    def _run(self, compute: Callable[[Any], Dict[str, Any]], items: List[Any]) -> None:
        try:
            for item in items:
                if self._stop.is_set():
                    break
                row = compute(item)
                with self._lock:
                    self._rows.append(row)
        except Exception as exc:  # shown on the page instead of dying silently in the thread
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._done = True

    def _finish(self) -> None:
        self._stop.set()
        self._thread.join()

    def snapshot(self) -> Tuple[List[Dict[str, Any]], bool, Optional[str]]:
        """(rows so far, finished?, error message or None)."""
        with self._lock:
            return list(self._rows), self._done, self._error


def family_row(name: str) -> Dict[str, Any]:
    """One preset at its natural input size, batch 1 (runs in the background thread: no st.* here)."""
    preset = PRESETS[name]
    summary = summarize(preset.spec, natural_input_size(preset.spec), 1)
    return dict(model=name, family=preset.family, block=preset.spec.block, skip=preset.spec.skip,
                depth=summary.depth, params=summary.total_params, mult_adds=summary.mult_adds)


@st.cache_resource(show_spinner=False)
def preset_family_job() -> BackgroundRows:
    """Every preset summarized once per server, cheapest first, in a background thread.

    Started by the first page view, it also warms the engine's summary cache, so a preset's first
    view on the Architecture page (at any batch size) needs no new trace.
    """
    return BackgroundRows(family_row, sorted(PRESETS, key=lambda n: sum(PRESETS[n].spec.layers)))


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _from_text(name: str, text: str) -> Any:
    default = next(f.default for f in dataclasses.fields(ModelSpec) if f.name == name)
    if name == "layers":
        return coerce_layers(text)
    if isinstance(default, bool):
        if text.lower() not in _BOOL_WORDS:
            raise ValueError(f"{name} must be true or false; got {text!r}")
        return _BOOL_WORDS[text.lower()]
    if isinstance(default, str):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {text!r}") from None
