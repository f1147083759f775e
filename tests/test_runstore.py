"""The run store: weights round-trip with weights_only, torn lines, run_dir checks, and a SIGKILLed CLI run read
back as interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_core import runstore
from resnet_core.config import TrainConfig
from resnet_core.data import SYNTHETIC_CLASSES
from resnet_core.jobs import execute
from resnet_core.presets import resolve_spec
from resnet_core.records import DataFacts, ProbeRecord, RunConfig, Status, TrainRecord
from resnet_core.settings import resolve_settings
from resnet_core.train import evaluate
from tests.conftest import wait_until

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=64, test_subset=200,
            augment="none", log_every=2, probe_every=2, threads=1)
CONFIG = RunConfig(TrainConfig(), resolve_spec("resnet20"),
                   DataFacts("synthetic", "generated", list(SYNTHETIC_CLASSES), 3, 32, 10_000, 2_000, [0.5] * 3,
                             [0.25] * 3), resolve_settings(TrainConfig()))


def train_record(step: int, loss: float) -> TrainRecord:
    return TrainRecord(step=step, epoch=step / 4, time=0.1 * step, images=64 * step, loss=loss, acc=0.1, lr=0.1,
                       images_per_sec=1000.0, eta_sec=1.0, total_steps=8)


def test_weights_round_trip_with_weights_only(tmp_path):
    result = execute(TrainConfig(max_steps=6, **TINY), run_dir=tmp_path / "run")
    model = runstore.load_model(tmp_path / "run")
    trained = result.model.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k].cpu(), trained[k].cpu()) for k in trained)
    data = runstore.load_run_data(tmp_path / "run")
    assert torch.equal(data.train_images, result.data.train_images)
    ev = evaluate(model, data, limit=200)
    assert ev.acc == result.final.test_acc and abs(ev.loss - result.final.test_loss) < 1e-5
    info = runstore.read_run(tmp_path / "run")
    assert info.status == Status.FINISHED and info.config.train == TrainConfig(max_steps=6, **TINY)
    assert info.config.spec == resolve_spec("resnet20", **TINY["overrides"]) and info.config.spec.num_classes == 10
    assert info.config.data.name == "synthetic" and info.config.data.train_size == 256
    assert info.final == result.final and info.has_weights and runstore.weights_file(info.path) is not None
    probes = runstore.read_metrics(tmp_path / "run", kind=ProbeRecord)
    assert [p.step for p in probes] == [2, 4, 6] and len(probes[0].grad_norm) == 5
    assert all(isinstance(p, ProbeRecord) for p in probes)


def test_torn_and_invalid_lines_are_skipped_and_listing(tmp_path):
    first = runstore.create_run(CONFIG, tmp_path / "a")
    first.append(train_record(1, 2.0))
    first.set_status(Status.FINISHED)
    first.close()
    with open(tmp_path / "a" / runstore.METRICS, "a") as f:
        f.write('{"kind": "train", "step": "two", "epoch": 0.5}\n')  # JSON, but not a valid record
        f.write('{"kind": ["train"]}\n')  # a kind that is not even text
        f.write('{"kind": "train", "step": 2, "lo')  # torn
    assert runstore.read_metrics(tmp_path / "a") == [train_record(1, 2.0)]
    assert runstore.read_metrics(tmp_path / "a", kind=ProbeRecord) == []
    time.sleep(0.01)
    second = runstore.create_run(CONFIG, tmp_path / "b")
    assert [r.run_id for r in runstore.list_runs(tmp_path)] == ["b", "a"]
    assert runstore.read_run(tmp_path / "b").status == Status.QUEUED  # owned by this live process
    assert runstore.read_run(tmp_path / "b").config.run_id == "b"
    second.close()
    assert runstore.list_runs(tmp_path / "missing") == []


def test_run_dir_must_be_a_new_folder(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    for run_dir in (a_file, a_file / "run"):
        with pytest.raises(ValueError, match=f"^run_dir must be a folder; {re.escape(str(a_file))} is a file$"):
            runstore.create_run(CONFIG, run_dir)
    assert a_file.read_text() == "not a run"
    used = runstore.create_run(CONFIG, tmp_path / "used")
    used.append(train_record(1, 2.5))
    used.close()
    with pytest.raises(ValueError, match="run_dir must be a new or empty folder; .* already holds a run"):
        runstore.create_run(CONFIG, tmp_path / "used")
    assert runstore.read_metrics(tmp_path / "used") == [train_record(1, 2.5)]


def test_killed_cli_run_reads_back_as_interrupted(tmp_path):
    run_dir = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet_core", "train", "resnet20", "--width", "8", "--layers", "1,1,1",
         "--train-subset", "512", "--batch-size", "32", "--steps", "100000", "--threads", "1", "--no-augment",
         "--run-dir", str(run_dir), "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    def three_train_records() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()
        return len(runstore.read_metrics(run_dir, kind=TrainRecord)) >= 3

    try:
        wait_until(three_train_records, timeout=90, message="no metrics from the CLI run")
        assert runstore.read_run(run_dir).status == Status.RUNNING
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    info = runstore.read_run(run_dir)
    assert info.status == Status.INTERRUPTED and "ended before the run finished" in info.message
    assert info.final is None and not info.has_weights
    train = runstore.read_metrics(run_dir, kind=TrainRecord)
    assert len(train) >= 3 and [r.step for r in train[:2]] == [1, 5]  # the CLI logs every 5 steps
    assert all(isinstance(r, TrainRecord) for r in train)
    assert [r.status for r in runstore.list_runs(tmp_path)] == [Status.INTERRUPTED]
