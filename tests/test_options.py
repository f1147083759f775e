"""TrainConfig's options, declared once: random valid configs round-trip through the command line and the Train
page's widget state; every field is declared with a flag and a widget."""

from __future__ import annotations

import dataclasses
import os
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnet_core.cli import build_parser
from resnet_core.cli.option_args import option_values
from resnet_core.cli.train import config_from_args
from resnet_core.data.fence import fenced_data_dir
from resnet_core.data.location import default_data_dir
from resnet_core.experiments.degradation import DegradationConfig
from resnet_core.training.config import TRAIN_OPTIONS, TrainConfig
from resnet_core.training.launch import train_command
from resnet_core.training.options import arguments, declared_options, from_text
from ui.options import DEGRADATION, TRAIN

FRACTION = st.floats(0.0, 1.0, exclude_max=True)
UNSET_OR = st.none().__or__
COUNT = st.integers(1, 10**9)
NAME = st.text("abcxyz_ 0189é", min_size=1, max_size=12).map(str.strip).filter(bool)  # one folder's name


def _transfer(draw) -> dict:
    init_from = draw(UNSET_OR(st.sampled_from(["torchvision", "torchvision:IMAGENET1K_V1", "runs/a run"])))
    if init_from is None:
        return dict(init_from=None)
    return dict(init_from=init_from, finetune=draw(st.sampled_from(["head", "last-stage", "all"])),
                backbone_lr_scale=draw(st.floats(0.0, 10.0, exclude_min=True)))


@st.composite
def train_configs(draw, data_dir: st.SearchStrategy) -> TrainConfig:
    """Any config `validate` accepts on this machine, with every option drawn over its whole range."""
    dataset = draw(st.sampled_from(["synthetic", "mnist", "fashion_mnist", "cifar10", "imagefolder"]))
    folder = draw(data_dir if dataset == "imagefolder" else UNSET_OR(data_dir))
    return TrainConfig(
        model=draw(st.sampled_from(["resnet20", "plain20", "resnet18", "resnet50"])),
        overrides=draw(st.sampled_from([{}, {"width": 8}, {"stem_width": 32, "skip": False}])),
        dataset=dataset, data_dir=folder, image_size=draw(UNSET_OR(st.integers(8, 512))),
        train_subset=draw(UNSET_OR(COUNT)), test_subset=draw(UNSET_OR(COUNT)),
        augment=draw(st.sampled_from(["auto", "none", "crop", "crop+flip"])), pad=draw(st.none() | st.integers(0, 64)),
        epochs=draw(UNSET_OR(st.integers(1, 10_000))), max_steps=draw(UNSET_OR(COUNT)),
        batch_size=draw(st.integers(1, 4096)),
        optimizer=draw(st.sampled_from(["sgd", "adam", "adamw"])),
        lr=draw(UNSET_OR(st.floats(0.0, 100.0, exclude_min=True))), momentum=draw(FRACTION),
        nesterov=draw(st.booleans()), weight_decay=draw(st.floats(0.0, 1.0)),
        schedule=draw(st.sampled_from(["onecycle", "cosine", "multistep", "constant"])), warmup=draw(FRACTION),
        milestones=tuple(draw(st.lists(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), min_size=1,
                                       max_size=3))),
        gamma=draw(st.floats(0.0, 1.0, exclude_min=True)), label_smoothing=draw(FRACTION),
        seed=draw(st.integers(0, 2**63 - 1)), precision=draw(st.sampled_from(["auto", "fp32", "bf16"])),
        channels_last=draw(st.booleans()), threads=draw(UNSET_OR(st.integers(1, os.cpu_count() or 1))),
        device=draw(st.sampled_from(["cpu", "auto"])), log_every=draw(st.integers(1, 10**6)),
        probe_every=draw(st.integers(0, 10**6)), checkpoint_every=draw(st.integers(1, 10**6)),
        **_transfer(draw),
    ).validate()


ANY_FOLDER = st.lists(NAME, min_size=1, max_size=3).map(lambda names: "/".join(["", "data", *names]))
FENCED_FOLDER = NAME.map(lambda name: str(default_data_dir().resolve() / name))  # inside the server's data folder
ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROUND_TRIP
@given(train_configs(ANY_FOLDER))
def test_a_config_round_trips_through_its_command_line(config):
    args = shlex.split(train_command(config, processes=2))
    assert args[:5] == ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "resnet_core"]
    assert config_from_args(build_parser().parse_args(args[5:])) == config.canonical()


@ROUND_TRIP
@given(train_configs(FENCED_FOLDER))
def test_a_config_round_trips_through_the_train_pages_widget_state(config):
    state = TRAIN.state(config)
    convert = {"data_dir": fenced_data_dir}  # as the page reads it: through the server's fence
    assert TRAIN.config(state, convert, model=config.model, overrides=config.overrides) == config.canonical()


@st.composite
def degradation_configs(draw) -> DegradationConfig:
    """Any degradation config `validate` accepts, its widget options drawn from what the widgets offer."""
    shallow = draw(st.integers(1, 18))
    return DegradationConfig(
        shallow=shallow, deep=draw(st.integers(max(2, shallow + 1), 36)), steps=draw(st.integers(1, 100_000)),
        batch_size=draw(st.sampled_from([16, 32, 64, 128, 256])), lr=draw(st.floats(1e-4, 10.0)),
        width=draw(st.sampled_from([4, 8, 16, 32])), image_size=draw(st.sampled_from([8, 16, 32])),
        dataset=draw(st.sampled_from(["synthetic", "mnist", "fashion_mnist", "cifar10"])),
        seed=draw(st.integers(0, 2**31 - 1)), augment=draw(st.booleans()),
    ).validate()


@ROUND_TRIP
@given(degradation_configs(), st.integers(1, 10**6), st.integers(0, 10**6), UNSET_OR(COUNT))
def test_a_degradation_config_round_trips_through_its_flags_and_its_widgets(config, log_every, probe_every, tests):
    assert DEGRADATION.config(DEGRADATION.state(config)) == config
    config = dataclasses.replace(config, log_every=log_every, probe_every=probe_every, test_subset=tests or 1000)
    args = build_parser().parse_args(["degradation", *arguments(config)])
    assert DegradationConfig(**option_values(args, declared_options(DegradationConfig))) == config


def test_every_field_is_an_option_with_a_flag_and_a_widget():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert [o.name for o in TRAIN_OPTIONS] == names
    flagged = [o for o in TRAIN_OPTIONS if o.flag]
    assert [o.name for o in TRAIN_OPTIONS if not o.flag] == ["model", "overrides"]  # a positional, the spec flags
    assert [o.name for o in TRAIN_OPTIONS if o.widget is None] == ["model", "overrides"]  # the model picker
    assert len({o.flag for o in flagged}) == len(flagged)
    assert {o.name: o.flag for o in flagged if o.flag != "--" + o.name.replace("_", "-")} == {
        "max_steps": "--steps", "nesterov": "--no-nesterov", "channels_last": "--no-channels-last"}


def test_the_learning_rate_has_one_widget_per_optimizer():
    state = TRAIN.state(TrainConfig(optimizer="adam", lr=0.01))
    assert state["train_lr_adam"] == 0.01 and "train_lr_sgd" not in state
    assert TRAIN.key(TRAIN.options["lr"], {"train_optimizer": "adamw"}) == "train_lr_adamw"
    state["train_lr_adam"] = 2e-3  # the optimizer's default learning rate: the config says None
    assert TRAIN.config(state, model="resnet20", overrides={}).lr is None


def test_a_disabled_transfer_widget_keeps_its_default():
    state = TRAIN.state(TrainConfig(init_from="torchvision", finetune="head", backbone_lr_scale=0.1))
    state["train_init_from"] = ""  # "fresh weights" chosen again: fine-tune and the scale no longer apply
    config = TRAIN.config(state, model="resnet18", overrides={})
    assert (config.init_from, config.finetune, config.backbone_lr_scale) == (None, "all", 1.0)


@pytest.mark.parametrize("name, text, message", [
    ("max_steps", "ten", "steps must be a whole number; got 'ten'"),
    ("lr", "fast", "lr must be a number; got 'fast'"),
    ("milestones", "0.5;0.75", "milestones must be a comma-separated list of numbers; got '0.5;0.75'"),
])
def test_text_that_is_not_the_options_type_is_one_line_naming_it(name, text, message):
    option = next(o for o in TRAIN_OPTIONS if o.name == name)
    with pytest.raises(ValueError) as caught:
        from_text(option, text)
    assert str(caught.value) == message
