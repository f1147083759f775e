"""Like with like: the pairing rules of runs/pairing.py on literal RunConfigs and RunInfos, the pair a page picks
first, and the seed sets whose runs were not trained alike."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from resnet_core.data.synthetic import SYNTHETIC_CLASSES
from resnet_core.experiments import seeds
from resnet_core.models.presets import resolve_spec
from resnet_core.runs.contract import DataFacts, RunConfig, RunState
from resnet_core.runs.pairing import (
    config_differences,
    default_pair,
    differences_text,
    newest_matching_pair,
    no_pair_note,
    planned_steps,
    run_differences,
    unlike_pairs,
    unlike_text,
)
from resnet_core.runs.store import RunInfo
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import FinalRecord, Status
from resnet_core.training.settings import RunSettings

FP32 = RunSettings("crop+flip", "auto: …", "fp32", "auto: this CPU has no bf16 units")
BF16 = RunSettings("crop+flip", "auto: …", "bf16", "set by the user")


def facts(side: int = 16, train_size: int = 10_000, name: str = "synthetic") -> DataFacts:
    return DataFacts(name, "generated", list(SYNTHETIC_CLASSES), 3, side, train_size, 2_000, [0.5] * 3, [0.25] * 3)


def config(model: str = "plain20", side: int = 16, settings: RunSettings = FP32, run_id: str = "",
           created: float = 0.0, data: DataFacts | None = None, **train) -> RunConfig:
    train = dict(dict(max_steps=600, batch_size=64), **train)
    spec = resolve_spec(model).replace(num_classes=10)
    return RunConfig(TrainConfig(model=model, image_size=side, **train), spec, data or facts(side), settings,
                     run_id=run_id, created=created)


def info(run_config: RunConfig, steps: int | None = None) -> RunInfo:
    final = None if steps is None else FinalRecord(
        step=steps, epoch=1.0, time=1.0, status=Status.STOPPED if steps < planned_steps(run_config) else
        Status.FINISHED, steps=steps, epochs=1.0, seconds=1.0, images_per_sec=1.0, test_loss=None, test_acc=None,
        train_loss=None, classes=list(SYNTHETIC_CLASSES), confusion=None)
    return RunInfo(run_config.run_id, Path(run_config.run_id), run_config, RunState(Status.FINISHED), final)


def test_a_degradation_pair_trained_alike_is_comparable():
    assert config_differences(config("plain20"), config("resnet20")) == []
    assert config_differences(config("plain56"), config("resnet20", seed=3)) == []  # depth and seed may differ


def test_the_issues_pair_differs_in_image_size_steps_and_batch():
    """plain20 of the default degradation run (16×16, 600 steps of 64) against a resnet20 trained on the Train page
    with a 100-step budget (32×32, batch 128): the pair the Loss landscape page used to pick."""
    found = config_differences(config("plain20"), config("resnet20", side=32, max_steps=100, batch_size=128))
    assert differences_text(found) == "image size 16×16 vs 32×32; training 600 steps vs 100 steps; batch size 64 vs 128"
    assert [d.what for d in found] == ["image size", "training", "batch size"]


def test_epochs_count_as_steps_per_epoch_over_the_training_images():
    two_epochs = config("resnet20", max_steps=None, epochs=2, batch_size=128)  # 10,000 // 128 = 78 steps an epoch
    assert planned_steps(two_epochs) == 156
    assert config_differences(two_epochs, config("plain20", max_steps=156, batch_size=128)) == []
    three = config("plain20", max_steps=None, epochs=3, batch_size=128)
    assert differences_text(config_differences(two_epochs, three)) == (
        "training 156 steps (2 epochs) vs 234 steps (3 epochs)")


def test_data_set_training_images_channels_and_precision():
    assert differences_text(config_differences(config(), config(settings=BF16))) == "precision fp32 vs bf16"
    cifar = DataFacts("cifar10", "data/cifar-10-batches-py", ["airplane"] * 10, 3, 16, 50_000, 10_000, [0.5] * 3,
                      [0.25] * 3)
    assert differences_text(config_differences(config(), config(data=cifar))) == (
        "data set synthetic vs cifar10; training images 10,000 vs 50,000")
    subset = config(data=facts(train_size=2_000))
    assert differences_text(config_differences(config(), subset)) == "training images 10,000 vs 2,000"
    grey = config(data=replace(facts(), channels=1, mean=[0.5], std=[0.25]))
    assert differences_text(config_differences(config(), grey)) == "channels 3 vs 1"
    folder_a = config(data=replace(facts(), name="imagefolder", source="/data/a"))
    folder_b = config(data=replace(facts(), name="imagefolder", source="/data/b"))
    assert differences_text(config_differences(folder_a, folder_b)) == "data folder /data/a vs /data/b"


def test_a_run_stopped_early_differs_by_the_steps_it_took():
    a, b = config(run_id="a"), config("resnet20", run_id="b")
    assert differences_text(config_differences(a, b, (600, 412))) == (
        "training 600 steps vs 412 steps (stopped; 600 planned)")
    assert differences_text(run_differences(info(a, 600), info(b, 412))) == (
        "training 600 steps vs 412 steps (stopped; 600 planned)")
    assert run_differences(info(a, 600), info(b)) == []  # b has no final record yet: its plan counts


RUNS = {  # run id -> (model, image side, created)
    "p16-old": ("plain20", 16, 100.0), "r16": ("resnet20", 16, 200.0), "r32-new": ("resnet20", 32, 400.0),
    "p16-new": ("plain20", 16, 300.0),
}


def stored(names=RUNS) -> list[RunInfo]:
    return [info(config(RUNS[n][0], side=RUNS[n][1], run_id=n, created=RUNS[n][2])) for n in names]


def test_the_newest_matching_pair_and_what_a_page_picks_first():
    runs = stored()
    plain, residual = newest_matching_pair(runs)
    assert (plain.run_id, residual.run_id) == ("p16-new", "r16")  # the newest residual run is 32×32: no match
    assert [r.run_id for r in default_pair(runs)] == ["p16-new", "r16"]
    group = [r for r in runs if r.run_id in ("p16-old", "r16")]
    assert [r.run_id for r in default_pair(runs, group)] == ["p16-old", "r16"]  # a group trained alike comes first
    unlike_group = [r for r in runs if r.run_id in ("p16-old", "r32-new")]
    assert [r.run_id for r in default_pair(runs, unlike_group)] == ["p16-new", "r16"]
    assert no_pair_note(runs) is None


def test_no_matching_pair_picks_nothing_and_says_why():
    runs = stored(["p16-old", "r32-new"])
    assert newest_matching_pair(runs) is None and default_pair(runs) == []
    assert no_pair_note(runs) == (
        "No stored plain and residual run were trained alike, so no pair is picked: the newest of each, p16-old and "
        "r32-new, differ in image size 16×16 vs 32×32. Pick runs yourself; the page says how they differ.")
    assert [r.run_id for r in default_pair(stored(["r16", "r32-new"]))] == ["r32-new"]  # one kind: its newest
    assert unlike_text(unlike_pairs(runs)) == "p16-old vs r32-new: image size 16×16 vs 32×32."


def test_seed_sets_start_on_the_newest_set_trained_alike():
    alike = stored(["p16-old", "r16"])
    mixed = stored(["p16-new", "r32-new"])
    assert seeds.first_alike({"newest": mixed, "older": alike}) == "older"
    assert seeds.first_alike({"newest": mixed}) is None
    assert [(a.run_id, b.run_id) for a, b, _ in seeds.unlike_runs(mixed)] == [("p16-new", "r32-new")]
