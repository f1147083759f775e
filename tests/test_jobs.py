"""Background jobs: live snapshots, Stop within a second, surfaced errors, divergence, the memory guard, the queue."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from resnet_core import runstore
from resnet_core.jobs import MEMORY_BUDGET_ENV, JobRunner, MemoryRefused, describe_error, memory_check
from resnet_core.train import TrainConfig

torch.set_num_threads(1)

TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=64, test_subset=200,
            augment=False, log_every=2, probe_every=0, threads=1)
LONG = TrainConfig(max_steps=100_000, **TINY)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    r = JobRunner(max_concurrent=1)
    yield r
    for job in r.jobs():
        job.stop()
        job.wait(10)


def test_job_publishes_snapshots_and_stores_the_run(runner):
    job = runner.submit(TrainConfig(max_steps=8, **TINY), owner="alice")
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.done and snap.step == 8 and snap.progress == 1.0
    assert [r["step"] for r in snap.of_kind("train")] == [1, 2, 4, 6, 8]
    assert snap.final["test_acc"] == job.result.final["test_acc"]
    info = runstore.read_run(snap.run_dir)
    assert info.status == "finished" and info.final["steps"] == 8
    assert runstore.read_metrics(snap.run_dir) == list(snap.records)
    assert runner.jobs(owner="bob") == [] and runner.jobs(owner="alice") == [job]
    assert runner.get(job.id, owner="bob") is None


def test_stop_ends_a_run_within_a_second(runner):
    job = runner.submit(LONG, owner="a")
    _wait_for(lambda: job.snapshot().step >= 3)
    asked = time.monotonic()
    job.stop()
    assert job.wait(1.0), "still running 1 s after Stop"
    elapsed = time.monotonic() - asked
    snap = job.snapshot()
    assert snap.status == "stopped" and elapsed < 1.0
    assert snap.final["status"] == "stopped" and snap.final["steps"] >= 3
    info = runstore.read_run(snap.run_dir)
    assert info.status == "stopped" and (info.path / runstore.WEIGHTS).is_file()


def test_worker_exception_is_surfaced_with_its_cause(runner, tmp_path):
    folder = tmp_path / "images"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / cls / "ok.png")
    (folder / "dogs" / "broken.png").write_bytes(b"not a png at all")
    job = runner.submit(TrainConfig(dataset="imagefolder", data_dir=str(folder), max_steps=2, **TINY))
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "failed"
    assert snap.message.startswith("ValueError: data_dir holds an image that cannot be read")
    assert "broken.png" in snap.message and "caused by UnidentifiedImageError" in snap.message
    assert "Traceback" in snap.error


def test_divergence_stops_the_job_with_a_hint(runner):
    job = runner.submit(TrainConfig(max_steps=50, lr=100.0, schedule="constant", **TINY))
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "diverged" and "diverged at step" in snap.message and "learning rate" in snap.message
    assert runstore.read_run(snap.run_dir).status == "diverged"


def test_memory_guard_refuses_with_the_figures(runner):
    huge = TrainConfig(model="resnet50", batch_size=4096, image_size=224)
    check = memory_check(huge)
    assert check.needed_bytes > check.budget_bytes > 0
    with pytest.raises(MemoryRefused, match=r"batch_size 4096: training resnet50 needs about [\d.]+ GiB .* "
                                            r"memory budget is [\d.]+ GiB"):
        runner.submit(huge)
    assert runner.jobs() == []
    small_budget = JobRunner(memory_budget=1_000_000)
    with pytest.raises(MemoryRefused, match="the set budget"):
        small_budget.submit(TrainConfig(max_steps=1, **TINY))


def test_memory_guard_counts_the_data_before_loading_it():
    check = memory_check(TrainConfig(model="resnet20", dataset="cifar10", image_size=224))
    assert check.data_bytes == 60_000 * 3 * (224 * 224 + 32 * 32)  # the set as loaded + its 224² copy
    assert memory_check(TrainConfig()).data_bytes == 12_000 * 3 * 32 * 32
    with pytest.raises(MemoryRefused, match=r"data 8\.6 GiB\) but the memory budget is 8\.0 GiB \(the set budget\)"):
        JobRunner(memory_budget=8 * 2**30).submit(TrainConfig(model="resnet20", dataset="cifar10", image_size=224))


def test_memory_budget_from_the_environment(runner, monkeypatch):
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1.5M")
    assert memory_check(TrainConfig()).budget_bytes == 1_572_864
    with pytest.raises(MemoryRefused, match="memory budget is 1.5 MiB"):
        runner.submit(TrainConfig(max_steps=1, **TINY))
    generous = JobRunner(memory_budget=2**34)  # the worker checks again, against the runner's budget
    job = generous.submit(TrainConfig(max_steps=2, **TINY))
    assert job.wait(60) and job.snapshot().status == "finished", job.snapshot().message
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=f"^{MEMORY_BUDGET_ENV} must be a size above zero such as 8G, 512M or a "
                                         "byte count; got 'lots'$"):
        memory_check(TrainConfig())


def test_queue_runs_one_at_a_time_and_cancels(runner):
    first = runner.submit(LONG, owner="a")
    second = runner.submit(LONG, owner="b")
    third = runner.submit(LONG, owner="b")
    _wait_for(lambda: first.snapshot().status == "running")
    assert second.snapshot().status == "queued" and second.snapshot().queue_position == 1
    assert third.snapshot().queue_position == 2 and runner.load() == (1, 2)
    third.stop()
    assert third.wait(1) and third.snapshot().status == "stopped" and third.snapshot().run_dir is None
    assert runner.load() == (1, 1)
    first.stop()
    _wait_for(lambda: second.snapshot().step >= 1)
    assert second.snapshot().status == "running" and first.snapshot().status == "stopped"
    second.stop()
    assert second.wait(1)


def test_describe_error_follows_the_cause_chain():
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as exc:
        assert describe_error(exc) == "RuntimeError: outer; caused by KeyError: 'inner'"
