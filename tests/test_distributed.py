"""Data-parallel training under torchrun (2 gloo processes on CPU), checkpoints and --resume, and their bad input."""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from streamlit.testing.v1 import AppTest
from torch import nn

from resnet_core.cli import build_parser, main
from resnet_core.cli.train import config_from_args
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.resume import prepare_resume
from resnet_core.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from resnet_core.training.config import TrainConfig
from resnet_core.training.distributed import GlobalBatchNorm2d, Replicas, global_batch_norm, state_digest
from resnet_core.training.launch import train_command
from resnet_core.training.records import FinalRecord, Status, TestRecord, TrainRecord
from tests.conftest import rerun_until, wait_until

ROOT = Path(__file__).resolve().parent.parent
TINY = ["resnet20", "--width", "8", "--layers", "1,1,1", "--train-subset", "256", "--batch-size", "32",
        "--steps", "12", "--threads", "1", "--probe-every", "0", "--json"]
# Train-loss records (steps 1, 5, 10, 12) of 2 processes against 1, same global batch: BatchNorm normalises each
# process's 16 images on its own, so the curves part by up to ~0.015 (measured); with --sync-bn only float
# summation order differs, measured under 0.002.
LOSS_TOLERANCE, SYNC_BN_TOLERANCE = 0.05, 0.005


def _env(runs: Path) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RESNET_EXPLORER_RUNS=str(runs))


def _torchrun(runs: Path, *args: str) -> subprocess.Popen:
    """`torchrun --standalone --nproc_per_node=2 -m resnet_core train ARGS`, its runs folder `runs`."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "resnet_core", "train", *args], cwd=ROOT, env=_env(runs),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _final(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _losses(run_dir: str | Path) -> list[tuple[int, float]]:
    return [(r.step, r.loss) for r in runstore.read_metrics(run_dir, TrainRecord)]


def test_two_processes_train_one_run_like_one_process(tmp_path, capsys, monkeypatch):
    """The same command, plain and --sync-bn under torchrun (2 gloo processes) and in one process."""
    jobs = {name: _torchrun(tmp_path / name, *TINY, *flags)
            for name, flags in (("plain", ()), ("sync", ("--sync-bn",)))}
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "single"))
    assert main(["train", *TINY]) == 0  # meanwhile
    single_curve = _losses(_final(capsys.readouterr().out)["run_dir"])
    assert [step for step, _ in single_curve] == [1, 5, 10, 12]
    gaps = {}
    for name, proc in jobs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        final = _final(out)
        assert final["world_size"] == 2 and final["backend"] == "gloo" and final["sync_bn"] == (name == "sync")
        digests = final["weights_sha256"]
        assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold bit-identical weights
        assert digests[0] == state_digest(runstore.load_weights(final["run_dir"]))  # and they are the stored ones
        runs = runstore.list_runs(tmp_path / name)
        assert [str(r.path) for r in runs] == [final["run_dir"]]  # exactly one run folder for the 2 processes
        assert runs[0].status == Status.FINISHED and (Path(final["run_dir"]) / CHECKPOINT).is_file()
        assert (runs[0].config.distributed.world_size, runs[0].config.distributed.per_rank_batch) == (2, 16)
        curve = _losses(final["run_dir"])
        assert [step for step, _ in curve] == [step for step, _ in single_curve]
        gaps[name] = max(abs(a - b) for (_, a), (_, b) in zip(curve, single_curve))
    assert gaps["plain"] < LOSS_TOLERANCE and gaps["sync"] < SYNC_BN_TOLERANCE, gaps
    assert gaps["sync"] < gaps["plain"], gaps


def _child_with_rank(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker process holding RANK=`rank`, if it has started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent and \
                    f"RANK={rank}".encode() in (stat.parent / "environ").read_bytes().split(b"\0"):
                return int(stat.parent.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def test_a_killed_process_interrupts_the_run_which_resumes_without_a_gap_or_a_duplicate(tmp_path, capsys):
    """kill -9 of rank 1 mid-epoch: the run reads as interrupted (never running); resumed in one process from its
    checkpoint, its steps and curves go on in the same folder."""
    run_dir = tmp_path / "killed"
    proc = _torchrun(tmp_path / "runs", "resnet20", "--width", "8", "--layers", "1,1,1", "--train-subset", "256",
                     "--batch-size", "32", "--steps", "40", "--threads", "1", "--probe-every", "0",
                     "--checkpoint-every", "3", "--run-dir", str(run_dir), "--json")

    def mid_epoch_checkpoint() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        return (run_dir / CHECKPOINT).is_file() and load_checkpoint(run_dir).step >= 3

    try:
        wait_until(mid_epoch_checkpoint, timeout=120, message="no checkpoint from the torchrun job")
        os.kill(wait_until(lambda: _child_with_rank(proc.pid, 1), timeout=10), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    info = runstore.read_run(run_dir)
    assert info.status == Status.INTERRUPTED, (info, err)
    ours = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(ours) <= 1 and all(line.startswith("error: rank 0 of 2: another process of this 2-process job "
                                                  "ended") for line in ours), err  # unless torchrun stopped it first
    resumed_from = load_checkpoint(run_dir).step
    assert resumed_from % 8 and resumed_from < 40  # 8 steps an epoch: killed mid-epoch, before the end
    assert main(["train", "--resume", str(run_dir), "--threads", "1", "--json"]) == 0
    final = _final(capsys.readouterr().out)
    assert final["status"] == "finished" and final["steps"] == 40 and final["resumed_from"] == resumed_from
    assert final["world_size"] == 1 and runstore.read_run(run_dir).config.distributed.world_size == 1
    records = runstore.read_metrics(run_dir)
    train_steps = [r.step for r in records if isinstance(r, TrainRecord)]
    assert train_steps == [1, 5, 10, 15, 20, 25, 30, 35, 40]  # the CLI logs every 5 steps: no gap, no duplicate
    assert [r.step for r in records if isinstance(r, TestRecord)] == [8, 16, 24, 32, 40]
    assert isinstance(records[-1], FinalRecord) and sum(isinstance(r, FinalRecord) for r in records) == 1
    assert [r.time for r in records] == sorted(r.time for r in records)
    assert runstore.read_run(run_dir).status == Status.FINISHED and runstore.read_run(run_dir).has_weights


def test_a_stopped_and_resumed_run_ends_bit_identical_to_an_unbroken_one(tmp_path):
    config = TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=256,
                         batch_size=32, max_steps=14, threads=1, probe_every=0, checkpoint_every=100)
    unbroken = execute(config, run_dir=tmp_path / "unbroken")
    stop = threading.Event()
    first = execute(config, run_dir=tmp_path / "broken", stop=stop,
                    on_record=lambda r: stop.set() if isinstance(r, TrainRecord) and r.step == 5 else None)
    assert first.status == Status.STOPPED and first.final.steps == 5  # mid-epoch (8 steps an epoch)
    resumed = execute(config, resume=prepare_resume(tmp_path / "broken"))
    assert resumed.status == Status.FINISHED
    assert state_digest(resumed.model) == state_digest(unbroken.model)
    assert resumed.final.test_loss == unbroken.final.test_loss
    broken, whole = runstore.read_metrics(tmp_path / "broken"), runstore.read_metrics(tmp_path / "unbroken")
    assert [(type(r), r.step) for r in broken] == [(type(r), r.step) for r in whole]
    assert [r.loss for r in broken if isinstance(r, TrainRecord)] == [r.loss for r in whole
                                                                      if isinstance(r, TrainRecord)]


def test_global_batch_norm_is_batch_norm_over_the_whole_batch(tmp_path):
    """In a one-process gloo group the all_reduce sums one share, so it must equal nn.BatchNorm2d exactly as
    float allows: outputs, input and weight gradients, running statistics."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        synced = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        synced.load_state_dict(reference.state_dict())
        global_batch_norm(synced)
        assert isinstance(synced[1], GlobalBatchNorm2d) and set(synced.state_dict()) == set(reference.state_dict())
        x = torch.randn(8, 3, 7, 7).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(8, 4, 5, 5)
        outputs = []
        for model in (reference, synced):
            xi = x.clone().requires_grad_()
            out = model(xi)
            (out * weight).sum().backward()
            outputs.append((out.detach(), xi.grad, model[1].weight.grad, model[1].running_var.clone()))
        for a, b in zip(*outputs):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    finally:
        dist.destroy_process_group()


def _stored_run(run_dir: Path, status: Status) -> Path:
    """A finished two-step run, then marked `status` (as a stop or a failure would leave it)."""
    execute(TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1)}, train_subset=64, batch_size=32,
                        max_steps=2, threads=1, probe_every=0), run_dir=run_dir)
    runstore.RunWriter(run_dir, runstore.read_run(run_dir).config, existing=True).set_status(status, "set here")
    return run_dir


@pytest.mark.parametrize("argv, message", [
    (["--resume", "{run}", "--lr", "0.5"], "resume continues run run with the settings in its config.json; "
                                           "leave out --lr (only --threads, --device and --json may be given)"),
    (["resnet56", "--resume", "{run}"], "leave out the model"),
    (["--resume", "{run}", "--sync-bn"], "leave out --sync-bn"),
])
def test_resume_refuses_new_settings_in_one_line(tmp_path, capsys, argv, message):
    run = _stored_run(tmp_path / "run", Status.STOPPED)
    assert main(["train", *(a.replace("{run}", str(run)) for a in argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_runs_that_cannot_resume_are_one_line(tmp_path, capsys):
    done = _stored_run(tmp_path / "done", Status.FINISHED)
    failed = _stored_run(tmp_path / "failed", Status.FAILED)
    (failed / CHECKPOINT).write_bytes(b"not a checkpoint")
    bare = _stored_run(tmp_path / "bare", Status.STOPPED)
    (bare / CHECKPOINT).unlink()
    alien = _stored_run(tmp_path / "alien", Status.INTERRUPTED)
    state = load_checkpoint(alien)
    state.model = {name: value[:1] if value.dim() else value for name, value in state.model.items()}  # wrong shapes
    save_checkpoint(alien, state)
    for run, message in ((done, "resume must name a stopped, failed or interrupted run; run done: it has finished"),
                         (tmp_path, f"run_dir must be a run folder holding config.json; {tmp_path} has none"),
                         (failed, "run failed: checkpoint.pt cannot be read (UnpicklingError)"),
                         (bare, "run bare has no checkpoint.pt to resume from"),
                         (alien, "run alien: checkpoint.pt does not fit the run's model and optimizer (Error(s) in "
                                 "loading state_dict for ResNet: size mismatch")):
        assert main(["train", "--resume", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert runstore.read_run(failed).status == Status.FAILED  # nothing was touched
    assert runstore.read_run(alien).status == Status.INTERRUPTED
    assert main(["train", "--json"]) == 2
    assert "model must be a preset name (see `list`), unless --resume" in capsys.readouterr().err


def test_bad_torchrun_variables_and_batches_are_one_line_naming_the_rank(capsys, monkeypatch):
    with pytest.raises(ValueError, match="batch_size must be a multiple of the 2 processes .* got 33"):
        Replicas(rank=0, world_size=2).check_batch(33)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    for rank, line in (("one", "error: rank one of 2: RANK must be a whole number >= 0 set by torchrun; got 'one'"),
                       ("5", "error: rank 5 of 2: RANK must be between 0 and WORLD_SIZE - 1 (1); got 5")):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", *TINY]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [line]


def test_the_command_shown_gives_back_the_same_config():
    config = TrainConfig(model="resnet20", overrides={"width": 8, "layers": (1, 1, 1), "skip": False},
                         max_steps=60, batch_size=64, lr=0.05, nesterov=False, channels_last=False, threads=1,
                         augment="none", data_dir="/data/my images", seed=3)
    args = shlex.split(train_command(config, 2))
    assert args[:5] == ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "resnet_core"]
    assert config_from_args(build_parser().parse_args(args[5:])) == config
    assert shlex.split(train_command(TrainConfig(), 1)) == ["python", "-m", "resnet_core", "train", "resnet20"]
    transfer = TrainConfig(model="resnet18", init_from="torchvision", finetune="head", backbone_lr_scale=0.1)
    newer_fields = TrainConfig(model="resnet50", overrides={
        "attention": "eca", "norm": "group", "norm_groups": 16, "anti_alias": "avg", "stem_pool": "conv",
        "stem_norm": False, "stem": "deep", "stem_mid": 32, "zero_init_residual": True})
    selective = TrainConfig(model="resnet50", overrides={"block": "sk_bottleneck", "sk_split": True, "sk_reduction": 8,
                                                         "sk_divisor": 4, "groups": 2})
    legacy_senet = TrainConfig(model="resnet50", overrides={
        "stride_placement": "v1", "attention": "se", "attention_placement": "after_relu", "attention_divisor": 1,
        "attention_reduction": 8, "shortcut": "C", "stem_width": 32, "num_classes": 10, "in_channels": 1})
    for config in (transfer, newer_fields, selective, legacy_senet):
        args = shlex.split(train_command(config.validate(), 1))
        assert config_from_args(build_parser().parse_args(args[3:])) == config
    assert shlex.split(train_command(transfer))[5:] == ["--init-from", "torchvision", "--finetune", "head",
                                                        "--backbone-lr-scale", "0.1"]
    assert "--anti-alias avg --stem-pool conv --stem-norm false" in train_command(newer_fields)
    with pytest.raises(ValueError, match=r"^overrides: skip=True on plain20 has no command-line flag; train resnet20 "
                                         r"instead$"):
        train_command(TrainConfig(model="plain20", overrides={"skip": True}))
    with pytest.raises(ValueError, match=r"^overrides: stem_norm=None has no command-line flag; the command would "
                                         r"train with resnetv2_50's stem_norm=False$"):
        train_command(TrainConfig(model="resnetv2_50", overrides={"stem_norm": None}))


def test_the_train_page_follows_a_run_another_process_writes(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv(runstore.RUNS_ENV, str(runs))
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet_core", "train", "resnet20", "--width", "8", "--layers", "1,1,1",
         "--train-subset", "256", "--batch-size", "32", "--steps", "100000", "--threads", "1", "--probe-every", "0",
         "--json"], cwd=ROOT, env=_env(runs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        run = wait_until(lambda: next((r for r in runstore.list_runs(runs)
                                       if len(runstore.read_metrics(r.path, TrainRecord)) >= 2), None), timeout=90)
        at = AppTest.from_file(str(ROOT / "pages" / "4_Train.py"), default_timeout=120).run()
        assert not at.exception
        assert any("torchrun --standalone --nproc_per_node=2 -m resnet_core train resnet20" in c.value
                   for c in at.code)
        assert any(f"Training now in other processes (the command line, torchrun, another machine): `{run.run_id}`"
                   in c.value for c in at.caption)
        at.selectbox(key="train_inspect").set_value(run.run_id).run()
        assert any(c.value.startswith("Live: **running · step ") for c in at.caption)
        seen = len(_chart_steps(at))
        assert seen >= 2
        rerun_until(at, lambda a: len(_chart_steps(a)) > seen + 1)  # the curve grows as the other process trains
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    at.run()
    assert runstore.read_run(run.path).status == Status.INTERRUPTED
    assert f"- `{run.run_id}` · resnet20 on synthetic · interrupted" in [m.value for m in at.markdown]


def _chart_steps(at: AppTest) -> list[float]:
    """The x values of the train-loss trace in the page's charts (plain or base64-encoded)."""
    for element in at.main:
        if element.type != "plotly_chart":
            continue
        for trace in json.loads(element.proto.spec)["data"]:
            if trace.get("name") == "train":
                x = trace["x"]
                if isinstance(x, dict):
                    return np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist()
                return list(x)
    return []


def test_a_live_run_from_another_machine_reads_as_running_until_it_falls_silent(tmp_path):
    run_dir = _stored_run(tmp_path / "remote", Status.RUNNING)
    status = json.loads((run_dir / runstore.STATUS).read_text())
    (run_dir / runstore.STATUS).write_text(json.dumps(status | dict(host="another-machine", pid=2**22 + 7)))
    assert runstore.read_run(run_dir).status == Status.RUNNING  # its pid means nothing here; it wrote just now
    long_ago = time.time() - runstore.REMOTE_SILENCE - 60
    for name in (runstore.STATUS, runstore.METRICS):
        os.utime(run_dir / name, (long_ago, long_ago))
    info = runstore.read_run(run_dir)
    assert (info.status, info.message) == (Status.INTERRUPTED,
                                           "no news from its machine 'another-machine' for 16 minutes")
    status_here = dict(status, pid=2**22 + 7)  # this machine's own run with a dead pid: interrupted at once
    (run_dir / runstore.STATUS).write_text(json.dumps(status_here))
    assert runstore.read_run(run_dir).message == "the process running it ended before the run finished"
