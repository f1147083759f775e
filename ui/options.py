"""A page's widgets for a config's options, generated from their declarations (resnet_core/training/options.py).

    TRAIN = OptionWidgets(TrainConfig, "train_")     # the Train page's
    TRAIN.draw("batch_size", column)                 # the widget the option's hint describes
    config = TRAIN.config(st.session_state, model="resnet20", overrides={})

Each option with a widget hint has one session-state key, the prefix + its field ("train_batch_size"); an option
kept per choice of another has one key per choice ("train_lr_sgd", "train_lr_adam", …). `state` and `config` are
the two inverse maps between a config and those values, pure functions that tests round-trip without a browser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from resnet_core.experiments.degradation import DegradationConfig
from resnet_core.training.config import TrainConfig
from resnet_core.training.options import NO_VALUE, Option, declared_options, from_text, to_text


class OptionWidgets:
    def __init__(self, cls: type, prefix: str) -> None:
        self.cls, self.prefix = cls, prefix
        self.options: dict[str, Option] = {option.name: option for option in declared_options(cls)}
        self.with_widgets = tuple(option for option in self.options.values() if option.widget is not None)

    def key(self, option: Option, state: Mapping[str, Any] | None = None) -> str:
        """The option's session-state key; for an option kept per choice, the key of the choice `state` holds."""
        if option.widget.per is None:
            return self.prefix + option.name
        per = self.options[option.widget.per]
        return f"{self.prefix}{option.name}_{(state or {}).get(self.prefix + per.name, per.default)}"

    def state(self, config: Any) -> dict[str, Any]:
        """The widget values that give `config` back through `config`."""
        state: dict[str, Any] = {}
        for option in self.with_widgets:
            value, hint = getattr(config, option.name), option.widget
            if hint.per is not None:
                choice = getattr(config, hint.per)
                state[f"{self.prefix}{option.name}_{choice}"] = hint.per_defaults[choice] if value is None else value
            elif value is None:
                state[self.prefix + option.name] = hint.none_as
            else:
                state[self.prefix + option.name] = to_text(option, value) if option.kind == "floats" else value
        return state

    def defaults(self) -> dict[str, Any]:
        """Every key's starting value: the defaults' widget values, and each choice's own default of an option
        kept per choice."""
        state = self.state(self.cls())
        for option in self.with_widgets:
            if option.widget.per is not None:
                state.update({f"{self.prefix}{option.name}_{c}": v for c, v in option.widget.per_defaults.items()})
        return state

    def config(self, state: Mapping[str, Any], convert: Mapping[str, Callable[[Any], Any]] | None = None,
               **fixed: Any) -> Any:
        """The config the widget values in `state` ask for, with `fixed` fields (not validated yet). `convert`
        reads an option's widget value its own way (the Train page's data folder goes through the server's
        fence); an option whose `needs` is unset keeps its default, whatever its (disabled) widget holds."""
        values = {option.name: self._value(option, state, convert or {}) for option in self.with_widgets}
        for option in self.with_widgets:
            if option.needs is not None and values[option.needs] is None:
                values[option.name] = option.default
        return self.cls(**fixed, **values)

    def _value(self, option: Option, state: Mapping[str, Any], convert: Mapping[str, Callable[[Any], Any]]) -> Any:
        raw, hint = state[self.key(option, state)], option.widget
        if option.name in convert:
            return convert[option.name](raw)
        if hint.none_as is not NO_VALUE and raw == hint.none_as:
            return None
        if hint.per is not None and raw == hint.per_defaults[state.get(self.prefix + hint.per)]:
            return None  # the choice's own default (the optimizer's learning rate)
        return from_text(option, raw) if option.kind == "floats" else raw

    def draw(self, name: str, where: Any = st, **kwargs: Any) -> Any:
        """The widget of option `name`, as its hint describes it, into `where` (a column, say); `kwargs` go to the
        widget (options=…, format_func=…, disabled=…, placeholder=…, help=…)."""
        option = self.options[name]
        hint = option.widget
        kwargs = dict(key=self.key(option, st.session_state), help=option.help or None) | kwargs
        if hint.kind in ("select", "radio", "select_slider"):
            options = kwargs.pop("options", None) or _choices(option)
            if hint.kind == "radio":
                return where.radio(hint.label, options, horizontal=True, **kwargs)
            widget = where.select_slider if hint.kind == "select_slider" else where.selectbox
            return widget(hint.label, options, **kwargs)
        if hint.kind in ("checkbox", "toggle"):
            return (where.toggle if hint.kind == "toggle" else where.checkbox)(hint.label, **kwargs)
        if hint.kind == "text":
            return where.text_input(hint.label, **kwargs)
        low, high = _bounds(option)
        widget = where.slider if hint.kind == "slider" else where.number_input
        return widget(hint.label, low, high, step=hint.step, format=hint.format, **kwargs)

    def draw_in_rows(self, names: list[str], per_row: int = 2,
                     extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Options' widgets `per_row` to a row, in the order given; `extra` holds more arguments for some."""
        for i in range(0, len(names), per_row):
            for column, name in zip(st.columns(per_row), names[i:i + per_row]):
                self.draw(name, column, **(extra or {}).get(name, {}))


def _choices(option: Option) -> list[Any]:
    choices = option.widget.choices if option.widget.choices is not None else option.choices
    return list(choices() if callable(choices) else choices)


def _bounds(option: Option) -> tuple[Any, Any]:
    """A number widget's min and max: the hint's own, else the option's closed bounds (an open one is left free:
    validation names it), the value standing for None included."""
    hint, cast = option.widget, int if option.kind == "int" else float
    low = hint.low if hint.low is not None else (None if option.open == "low" else option.low)
    high = hint.high if hint.high is not None else (None if option.open == "high" else option.high)
    low, high = (bound() if callable(bound) else bound for bound in (low, high))
    if hint.none_as is not NO_VALUE and low is not None:
        low = min(low, hint.none_as)
    return (None if low is None else cast(low)), (None if high is None else cast(high))


TRAIN = OptionWidgets(TrainConfig, "train_")
DEGRADATION = OptionWidgets(DegradationConfig, "degr_")
