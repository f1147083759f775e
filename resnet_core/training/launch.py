"""The command line that trains a `TrainConfig`: `python -m resnet_core train …`, or its torchrun launch.

The Train page shows it so a run can be started outside the server (a terminal, several processes, a GPU box or
a cluster sharing the runs folder) and watched from the app. Only settings that differ from their defaults are
written, each by the flag TrainConfig declares for it (options.py); parsing the arguments back gives the same
config (tests/test_options.py checks it for random configs).
"""

from __future__ import annotations

import shlex
from typing import Any

from ..models.presets import PRESETS, get_preset
from ..models.spec import CLEARABLE, OVERRIDABLE, field_to_text
from .config import TrainConfig
from .options import arguments

# ModelSpec field -> (the value it gives, its switch); every other field has a flag of its dashed name
# (cli/spec_args.py)
_SPEC_SWITCHES = dict(skip=(False, "--no-skip"), zero_init_residual=(True, "--zero-init-residual"))
_SPEC_FLAGS = {name: "--" + name.replace("_", "-") for name in OVERRIDABLE if name not in _SPEC_SWITCHES}


def train_arguments(config: TrainConfig) -> list[str]:
    """`train` and its arguments for `config`: every option that differs from its default, by its declared flag; a
    ValueError names a model override the command line cannot give."""
    config = config.canonical()
    args = ["train", config.model]
    for name, value in config.overrides.items():
        args += _spec_arguments(config.model, name, value)
    return args + arguments(config)


def train_command(config: TrainConfig, processes: int = 1) -> str:
    """The shell command: `python -m resnet_core train …`, or with `processes` > 1 its torchrun launch on this
    machine (`--threads` is then per process)."""
    launcher = (["python", "-m", "resnet_core"] if processes <= 1 else
                ["torchrun", "--standalone", f"--nproc_per_node={processes}", "-m", "resnet_core"])
    return shlex.join(launcher + train_arguments(config))


def _spec_arguments(model: str, name: str, value: Any) -> list[str]:
    """The flag(s) giving the override `name`=`value` on preset `model`; a ValueError when there is none."""
    preset_value = getattr(get_preset(model).spec, name) if name in OVERRIDABLE else None
    if name in _SPEC_FLAGS and (value is not None or name in CLEARABLE):  # "none" clears a preset's list
        return [_SPEC_FLAGS[name], _text(value)]
    if name in _SPEC_SWITCHES and value == _SPEC_SWITCHES[name][0]:
        return [_SPEC_SWITCHES[name][1]]
    if name in OVERRIDABLE and value == preset_value:
        return []  # the preset's own value: nothing to give
    if name == "skip":
        twin = model.replace("plain", "resnet", 1)
        instead = f"; train {twin} instead" if twin in PRESETS and twin != model else ""
        raise ValueError(f"overrides: skip=True on {model} has no command-line flag{instead}")
    if name in OVERRIDABLE:
        raise ValueError(f"overrides: {name}={value!r} has no command-line flag; the command would train with "
                         f"{model}'s {name}={preset_value!r}")
    raise ValueError(f"overrides: {name} has no command-line flag")


def _text(value: Any) -> str:
    return field_to_text(tuple(value) if isinstance(value, list) else value)
