"""The run store: weights round-trip with weights_only, torn lines, run_dir checks, and a SIGKILLed CLI run read
back as interrupted."""

from __future__ import annotations

import dataclasses
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

from resnet_core.cli import main
from resnet_core.data.synthetic import SYNTHETIC_CLASSES
from resnet_core.models.presets import resolve_spec
from resnet_core.models.spec import ModelSpec
from resnet_core.runs import store as runstore
from resnet_core.runs.contract import DataFacts, RunConfig
from resnet_core.runs.execute import execute
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import evaluate
from resnet_core.training.records import ProbeRecord, Status, TrainRecord
from resnet_core.training.settings import resolve_settings
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
    model = load_model(tmp_path / "run")
    trained = result.model.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k].cpu(), trained[k].cpu()) for k in trained)
    data = load_run_data(tmp_path / "run")
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


def test_a_folder_that_is_not_a_run_is_never_written_into(tmp_path, capsys):
    """`train --run-dir` on a folder holding anything but a run of ours: one line naming what is there; every
    file is left as it was."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    for name, text in (("config.json", '{"mine": 1}'), ("status.json", "[]"), ("weights.pt", "precious")):
        (folder / name).write_text(text)
    with pytest.raises(ValueError, match=f"^run_dir must be a new or empty folder; {re.escape(str(folder))} "
                                         "already holds a run$"):
        runstore.create_run(CONFIG, folder)
    (folder / "config.json").unlink()
    code = main(["train", "resnet20", "--steps", "1", "--run-dir", str(folder)])
    err = capsys.readouterr().err
    assert (code, err) == (2, f"error: run_dir must be a new or empty folder; {folder} holds status.json, "
                              "weights.pt\n")
    assert (folder / "status.json").read_text() == "[]" and (folder / "weights.pt").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["status.json", "weights.pt"]
    runstore.create_run(CONFIG, tmp_path / "empty").close()  # an empty folder is fine
    (tmp_path / "empty2").mkdir()
    runstore.create_run(CONFIG, tmp_path / "empty2").close()


def spoil(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_bad_run_folders_are_listed_with_a_reason_never_raised(tmp_path):
    good = runstore.create_run(CONFIG, tmp_path / "good")
    good.set_status(Status.FINISHED)
    good.close()
    cases = {
        "array-config": (runstore.CONFIG, "[1, 2]", "config.json: config.json must hold a JSON object; got list"),
        "array-status": (runstore.STATUS, "[]", "status.json: must hold a JSON object; got list"),
        "bogus-status": (runstore.STATUS, '{"status": "bogus"}', "status.json: status must be one of queued"),
        "torn-config": (runstore.CONFIG, '{"train": {', "config.json: is not valid JSON"),
        "binary-config": (runstore.CONFIG, None, "config.json: is not UTF-8 text"),
    }
    for name, (file, text, _) in cases.items():
        runstore.create_run(CONFIG, tmp_path / name).close()
        if text is None:
            (tmp_path / name / file).write_bytes(b"\xff\xfe\x00garbage")
        else:
            spoil(tmp_path / name, file, text)
    extra_key = runstore.create_run(CONFIG, tmp_path / "extra-key")
    extra_key.close()
    raw = json.loads((tmp_path / "extra-key" / runstore.CONFIG).read_text())
    raw["spec"]["evil"] = 1
    spoil(tmp_path / "extra-key", runstore.CONFIG, json.dumps(raw))
    runs, skipped = runstore.scan_runs(tmp_path)
    assert [r.run_id for r in runs] == ["good"]
    reasons = {s.name: s.reason for s in skipped}
    assert sorted(reasons) == sorted([*cases, "extra-key"])
    for name, (_, _, reason) in cases.items():
        assert reasons[name].startswith(f"run {name}: {reason}"), reasons[name]
    assert reasons["extra-key"] == ("run extra-key: config.json: spec has unknown field 'evil'; the fields are "
                                    + ", ".join(ModelSpec.__dataclass_fields__))
    assert all("\n" not in r for r in reasons.values())


class Boom:
    """Pickled into a weights file: unpickling it would create `marker` (it must never run)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("weights", ["empty", "list", "object", "truncated", "text", "wrong-shape", "missing-key"])
def test_unreadable_weights_are_one_message_that_never_suggests_unsafe_loading(tmp_path, weights):
    run = tmp_path / "run"
    result = execute(TrainConfig(max_steps=1, **TINY), run_dir=run)
    file = run / runstore.WEIGHTS
    state = result.model.state_dict()
    marker = tmp_path / "pwned"
    if weights == "empty":
        file.write_bytes(b"")
    elif weights == "list":
        torch.save([1, 2, 3], file)
    elif weights == "object":
        torch.save(Boom(str(marker)), file)
    elif weights == "truncated":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif weights == "text":
        file.write_text("not a torch file")
    elif weights == "wrong-shape":
        torch.save({**state, "fc.weight": torch.zeros(3, 3)}, file)
    else:
        torch.save({k: v for k, v in state.items() if k != "fc.bias"}, file)
    with pytest.raises(ValueError) as caught:
        load_model(run)
    message = str(caught.value)
    assert message.startswith("run run: weights.pt ") and "\n" not in message
    assert "weights_only" not in message and not marker.exists()
    expected = {
        "list": "run run: weights.pt holds a list, not a state_dict of tensors",
        "wrong-shape": "run run: weights.pt does not fit its model spec: fc.weight is (3, 3), the model has (10, 32)",
        "missing-key": "run run: weights.pt does not fit its model spec: fc.bias is missing, the model has (10,)",
    }
    if weights in expected:
        assert message == expected[weights]
    else:
        assert message.startswith("run run: weights.pt cannot be read as a state_dict of tensors (")


def test_lesion_goes_on_past_a_run_it_cannot_study(tmp_path, capsys):
    execute(TrainConfig(max_steps=2, **TINY), run_dir=tmp_path / "good")
    execute(TrainConfig(max_steps=2, **TINY), run_dir=tmp_path / "bad")
    (tmp_path / "bad" / runstore.WEIGHTS).write_bytes(b"")
    code = main(["lesion", str(tmp_path / "bad"), str(tmp_path / "good"), "--limit", "50", "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == "error: run bad: weights.pt cannot be read as a state_dict of tensors (EOFError)\n"
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["good"]


def test_deeply_nested_json_and_unlistable_folders_are_skipped_with_a_reason(tmp_path):
    runstore.create_run(CONFIG, tmp_path / "deep").close()
    spoil(tmp_path / "deep", runstore.CONFIG, "[" * 100_000 + "]" * 100_000)
    good = runstore.create_run(CONFIG, tmp_path / "good")
    good.append(train_record(1, 2.0))
    good.close()
    with open(tmp_path / "good" / runstore.METRICS, "a") as f:
        f.write("[" * 100_000 + "\n")
    runs, skipped = runstore.scan_runs(tmp_path)
    assert [r.run_id for r in runs] == ["good"] and runstore.read_metrics(tmp_path / "good") == [train_record(1, 2.0)]
    assert [(s.name, s.reason) for s in skipped] == [
        ("deep", "run deep: config.json: is nested too deeply to be a run's JSON")]


def test_of_two_writers_on_one_folder_only_the_first_gets_it(tmp_path, monkeypatch):
    """Both passed check_run_dir (as two processes starting at once would): the folder is claimed exclusively."""
    first = runstore.create_run(CONFIG, tmp_path / "shared")
    monkeypatch.setattr(runstore, "check_run_dir", Path)
    with pytest.raises(ValueError, match="already holds a run$"):
        runstore.create_run(CONFIG, tmp_path / "shared")
    first.close()
    assert runstore.read_run(tmp_path / "shared").config.run_id == "shared"


def test_lesion_goes_on_past_a_run_whose_data_are_gone(tmp_path, capsys):
    execute(TrainConfig(max_steps=2, **TINY), run_dir=tmp_path / "good")
    good = runstore.read_run(tmp_path / "good").config  # the same net, trained on a set no longer there
    gone = good.train.replace(dataset="cifar10", data_dir=str(tmp_path / "gone"))
    moved = runstore.create_run(dataclasses.replace(good, train=gone), tmp_path / "moved")
    moved.set_status(Status.FINISHED)
    moved.close()
    torch.save(runstore.load_weights(tmp_path / "good"), tmp_path / "moved" / runstore.WEIGHTS)
    code = main(["lesion", str(tmp_path / "moved"), str(tmp_path / "good"), "--limit", "50", "--json",
                 "--allow-data-dir"])  # its data_dir is outside the data folders: allowed, then found gone
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "cifar10" in err
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["good"]
