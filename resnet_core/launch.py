"""The command line that trains a `TrainConfig`: `python -m resnet_core train …`, or its torchrun launch.

The Train page shows it so a run can be started outside the server (a terminal, several processes, a GPU box or
a cluster sharing the runs folder) and watched from the app. Only settings that differ from the CLI's defaults
are written; parsing the arguments back gives the same config (tests/test_distributed.py checks it).
"""

from __future__ import annotations

import shlex
from typing import Any

from .config import DEFAULT_LR, TrainConfig

_FLAGS = dict(  # TrainConfig field -> its flag (the value follows)
    dataset="--dataset", data_dir="--data-dir", image_size="--image-size", train_subset="--train-subset",
    epochs="--epochs", max_steps="--steps", batch_size="--batch-size", optimizer="--optimizer",
    weight_decay="--weight-decay", schedule="--schedule", warmup="--warmup", label_smoothing="--label-smoothing",
    augment="--augment", precision="--precision", seed="--seed", threads="--threads", device="--device",
    probe_every="--probe-every", checkpoint_every="--checkpoint-every",
)
_SWITCHES = dict(nesterov="--no-nesterov", channels_last="--no-channels-last")  # given when the field is False
_SPEC_FLAGS = dict(layers="--layers", block="--block", width="--width", stem_width="--stem-width", groups="--groups",
                   width_per_group="--width-per-group", stem="--stem", shortcut="--shortcut",
                   in_channels="--in-channels", num_classes="--num-classes")
_SPEC_SWITCHES = dict(skip=(False, "--no-skip"), se=(True, "--se"), zero_init_residual=(True, "--zero-init-residual"))
_NO_FLAG = ("test_subset", "pad", "momentum", "milestones", "gamma", "log_every")  # the CLI keeps their defaults


def train_arguments(config: TrainConfig) -> list[str]:
    """`train` and its arguments for `config`; a ValueError names a setting the command line cannot give."""
    defaults = TrainConfig()
    for name in _NO_FLAG:
        if getattr(config, name) != getattr(defaults, name):
            raise ValueError(f"{name} has no command-line flag; the command would train with "
                             f"{name}={getattr(defaults, name)!r}")
    args = ["train", config.model]
    for name, value in config.overrides.items():
        if name in _SPEC_FLAGS:
            args += [_SPEC_FLAGS[name], _text(value)]
        elif name in _SPEC_SWITCHES and value == _SPEC_SWITCHES[name][0]:
            args.append(_SPEC_SWITCHES[name][1])
        elif name not in _SPEC_SWITCHES:
            raise ValueError(f"overrides: {name} has no command-line flag")
    for name, flag in _FLAGS.items():
        value = getattr(config, name)
        if value != getattr(defaults, name):
            args += [flag, _text(value)]
    if config.lr is not None and config.lr != DEFAULT_LR[config.optimizer]:
        args += ["--lr", _text(config.lr)]
    args += [flag for name, flag in _SWITCHES.items() if not getattr(config, name)]
    return args


def train_command(config: TrainConfig, processes: int = 1) -> str:
    """The shell command: `python -m resnet_core train …`, or with `processes` > 1 its torchrun launch on this
    machine (`--threads` is then per process)."""
    launcher = (["python", "-m", "resnet_core"] if processes <= 1 else
                ["torchrun", "--standalone", f"--nproc_per_node={processes}", "-m", "resnet_core"])
    return shlex.join(launcher + train_arguments(config))


def _text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)
