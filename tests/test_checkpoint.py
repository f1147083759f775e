"""A checkpoint is read from disk, so every field is checked, against the run's own config, before a resume cuts
metrics.jsonl: a spoilt one is one ValueError naming the field, and the run folder is left as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnet_core.cli import main
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.training.checkpoint import CHECKPOINT, TrainState, load_checkpoint, save_checkpoint
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import Status
from tests.conftest import call_within, run_cli

SUMS = dict(loss=1.0, correct=3, images=8, seconds=0.5)


def state(**changes) -> dict:
    good = dict(step=5, model={"w": torch.zeros(2)}, optimizer={"state": {}, "param_groups": []},
                order=torch.randperm(8), generator=torch.Generator().manual_seed(0).get_state(),
                epoch_sum=dict(SUMS), window=dict(SUMS), tested_at=5, train_seconds=1.5, elapsed=2.0,
                eval_seconds=[0.1])
    return good | changes


def test_a_checkpoint_as_training_writes_it_loads():
    assert TrainState.from_dict(state(), "ckpt").step == 5
    assert TrainState.from_dict(state(tested_at=None, eval_seconds=[]), "ckpt").tested_at is None


@pytest.mark.parametrize(("changes", "message"), [
    (dict(elapsed="soon"), "ckpt: elapsed must be a number of seconds >= 0; got 'soon'"),
    (dict(train_seconds=float("nan")), "ckpt: train_seconds must be a number of seconds from 0 to elapsed (2.0); "
                                       "got nan"),
    (dict(tested_at=9), "ckpt: tested_at must be a step from 0 to 5 or None; got 9"),
    (dict(eval_seconds=["x"]), "ckpt: eval_seconds must be a list of numbers >= 0"),
    (dict(order=torch.zeros(8)), "ckpt: order must be a 1-D tensor of image indices"),
    (dict(generator=torch.zeros(3)), "ckpt: generator must be a generator state (a 1-D uint8 tensor)"),
    (dict(window=dict(SUMS, loss="1")), "ckpt: window must hold the numbers loss, correct, images, seconds"),
])
def test_a_spoilt_field_is_one_line_naming_it(changes, message):
    with pytest.raises(ValueError) as error:
        TrainState.from_dict(state(**changes), "ckpt")
    assert str(error.value) == message


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A two-step run of 64 training images (2 steps an epoch), marked stopped: `train --resume` would go on."""
    run = tmp_path_factory.mktemp("checkpoints") / "run"
    execute(TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=64, batch_size=32,
                        max_steps=2, threads=1, probe_every=0), run_dir=run)
    runstore.RunWriter(run, runstore.read_run(run).config, existing=True).set_status(Status.STOPPED, "set here")
    return run


def spoilt(stopped_run: Path, where: Path, spoil) -> Path:
    """A copy of the stopped run whose checkpoint `spoil(state)` changed."""
    shutil.copytree(stopped_run, where)
    state = load_checkpoint(where)
    spoil(state)
    save_checkpoint(where, state)
    return where


def folder_bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


@pytest.mark.parametrize(("field", "value", "line"), [
    ("optimizer", "x", "error: run spoilt: checkpoint.pt: optimizer must be an optimizer's state_dict (a dict of "
                       "'state' and 'param_groups'); got str"),
    ("step", 10**12, "error: run spoilt: checkpoint.pt: step must be from 0 to 2, the run's total steps; got "
                     "1000000000000"),
])
def test_resume_refuses_a_spoilt_checkpoint_in_one_line_and_touches_nothing(stopped_run, tmp_path, capsys, field,
                                                                             value, line):
    run = spoilt(stopped_run, tmp_path / "spoilt", lambda state: setattr(state, field, value))
    before = folder_bytes(run)
    assert main(["train", "--resume", str(run), "--json"]) == 2
    assert capsys.readouterr() == ("", line + "\n")
    assert folder_bytes(run) == before  # status.json, metrics.jsonl, config.json as they were


def _set(name: str, value):
    return lambda state: setattr(state, name, value)


def _momentum(state) -> dict:
    return state.optimizer["state"][0]


@pytest.mark.parametrize(("spoil", "message"), [
    (_set("step", -1), "step must be a whole number >= 0; got -1"),
    (_set("step", 3), "step must be from 0 to 2, the run's total steps; got 3"),
    (_set("order", torch.randperm(63)), "order must be a permutation of the run's 64 training images; got 63 indices"),
    (_set("order", torch.arange(64) % 63), "order must be a permutation of the run's 64 training images; got 64 "
                                           "indices with repeats or gaps"),
    (_set("generator", torch.zeros(8, dtype=torch.uint8)), "generator must be a CPU generator's state (5056 bytes); "
                                                           "got 8 bytes"),
    (_set("optimizer", {"state": {}}), "optimizer must be an optimizer's state_dict (a dict of 'state' and "
                                       "'param_groups'); got a dict without a list of param_groups"),
    (lambda state: _momentum(state).update(momentum_buffer=torch.zeros(3)),
     "optimizer state momentum_buffer of conv1.weight has shape (3,); the parameter has (8, 3, 3, 3)"),
    (lambda state: _momentum(state).update(momentum_buffer="fast"),
     "optimizer state momentum_buffer of conv1.weight must be a tensor; got 'fast'"),
    (lambda state: state.optimizer["param_groups"][0].update(weight_decay=5.0),
     "optimizer param group 0 has weight_decay 5.0; the run's config gives 0.0005"),
    (lambda state: state.optimizer["param_groups"][0].update(lr_scale=100.0),
     "optimizer param group 0 has lr_scale 100.0; the run's config gives 1.0"),
    (lambda state: state.optimizer["param_groups"][0]["params"].pop(),
     "does not fit the run's model and optimizer (loaded state dict contains a parameter group that doesn't match "
     "the size of optimizer's group)"),
    (_set("window", dict(loss=1.0, correct=9, images=8, seconds=0.1)),
     "window must have loss, images and seconds >= 0 and correct from 0 to images; got loss 1.0, correct 9, "
     "images 8, seconds 0.1"),
    (_set("train_seconds", 1e9), "train_seconds must be a number of seconds from 0 to elapsed"),
    (_set("eval_seconds", [-1.0]), "eval_seconds must be a list of numbers >= 0"),
])
def test_every_checkpoint_field_is_checked_against_the_runs_config(stopped_run, tmp_path, capsys, spoil, message):
    run = spoilt(stopped_run, tmp_path / "spoilt", spoil)
    before = folder_bytes(run)
    assert main(["train", "--resume", str(run)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: run spoilt: checkpoint.pt") and err.count("\n") == 1, err
    assert message in err, err
    assert folder_bytes(run) == before


def test_resume_refuses_fifos_in_the_run_folder_without_blocking(stopped_run, tmp_path, capsys):
    for name in (CHECKPOINT, runstore.METRICS):
        run = tmp_path / f"piped-{name.split('.')[0]}"
        shutil.copytree(stopped_run, run)
        (run / name).unlink()
        os.mkfifo(run / name)
        assert call_within(main, ["train", "--resume", str(run)], fifos=(run / name,)) == 2
        assert capsys.readouterr().err == (f"error: run {run.name}: {name} must be a regular file; {run / name} is "
                                           "a named pipe (FIFO)\n")


def test_resume_refuses_data_that_changed_since_the_checkpoint_and_touches_nothing(tmp_path):
    folder = tmp_path / "images"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (20 * i, 100 if name == "a" else 0, 0)).save(folder / name / f"{i}.png")
    run = tmp_path / "run"
    execute(TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, dataset="imagefolder",
                        data_dir=str(folder), batch_size=8, max_steps=1, threads=1, probe_every=0), run_dir=run)
    runstore.RunWriter(run, runstore.read_run(run).config, existing=True).set_status(Status.STOPPED, "set here")
    for i in range(10, 15):  # the folder grows: 16 training images become 20
        Image.new("RGB", (8, 8)).save(folder / "a" / f"{i}.png")
    before = folder_bytes(run)
    done = run_cli("train", "--resume", str(run))  # its own process: this one keeps the folder's images cached
    assert (done.returncode, done.stderr) == (2, "error: resume: run run's checkpoint covers 16 training images, its "
                                                 "data now hold 20; the run's data set has changed\n")
    assert folder_bytes(run) == before
