"""The run store: weights round-trip with weights_only, torn lines, run_dir checks, and a SIGKILLed CLI run read
back as interrupted."""

from __future__ import annotations

import json
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
from resnet_core.jobs import execute
from resnet_core.train import TrainConfig, evaluate

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=64, test_subset=200,
            augment=False, log_every=2, probe_every=2, threads=1)


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
    assert ev.acc == result.final["test_acc"] and abs(ev.loss - result.final["test_loss"]) < 1e-5
    info = runstore.read_run(tmp_path / "run")
    assert info.status == "finished" and info.config["train"]["max_steps"] == 6
    assert info.config["spec"]["num_classes"] == 10 and info.config["data"]["name"] == "synthetic"
    probes = runstore.read_metrics(tmp_path / "run", kind="probe")
    assert [p["step"] for p in probes] == [2, 4, 6] and len(probes[0]["grad_norm"]) == 5


def test_torn_last_line_and_listing(tmp_path):
    first = runstore.create_run({"train": {}}, tmp_path / "a")
    first.append({"kind": "train", "step": 1, "loss": 2.0})
    first.set_status("finished")
    first.close()
    with open(tmp_path / "a" / runstore.METRICS, "a") as f:
        f.write('{"kind": "train", "step": 2, "lo')
    assert runstore.read_metrics(tmp_path / "a") == [{"kind": "train", "step": 1, "loss": 2.0}]
    time.sleep(0.01)
    second = runstore.create_run({"train": {}}, tmp_path / "b")
    assert [r.run_id for r in runstore.list_runs(tmp_path)] == ["b", "a"]
    assert runstore.read_run(tmp_path / "b").status == "queued"  # owned by this live process
    second.close()
    assert runstore.list_runs(tmp_path / "missing") == []


def test_run_dir_must_be_a_new_folder(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    for run_dir in (a_file, a_file / "run"):
        with pytest.raises(ValueError, match=f"^run_dir must be a folder; {re.escape(str(a_file))} is a file$"):
            runstore.create_run({"train": {}}, run_dir)
    assert a_file.read_text() == "not a run"
    used = runstore.create_run({"train": {}}, tmp_path / "used")
    used.append({"kind": "train", "step": 1})
    used.close()
    with pytest.raises(ValueError, match="run_dir must be a new or empty folder; .* already holds a run"):
        runstore.create_run({"train": {}}, tmp_path / "used")
    assert runstore.read_metrics(tmp_path / "used") == [{"kind": "train", "step": 1}]


def test_killed_cli_run_reads_back_as_interrupted(tmp_path):
    run_dir = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet_core", "train", "resnet20", "--width", "8", "--layers", "1,1,1",
         "--train-subset", "512", "--batch-size", "32", "--steps", "100000", "--threads", "1", "--no-augment",
         "--run-dir", str(run_dir), "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while len(runstore.read_metrics(run_dir, kind="train")) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no metrics from the CLI run"
            time.sleep(0.05)
        assert runstore.read_run(run_dir).status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    info = runstore.read_run(run_dir)
    assert info.status == "interrupted" and "ended before the run finished" in info.message
    train = runstore.read_metrics(run_dir, kind="train")
    assert len(train) >= 3 and train[0]["step"] == 1 and all(json.dumps(r) for r in train)
    assert [r.status for r in runstore.list_runs(tmp_path)] == ["interrupted"]
