"""Background jobs: live snapshots, Stop at the next block, surfaced errors, divergence, the memory guard, the queue."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch
from PIL import Image

from resnet_core.formatting import describe_error
from resnet_core.introspect.summary import summarize
from resnet_core.models.presets import resolve_spec
from resnet_core.runs import store as runstore
from resnet_core.runs.memory import MEMORY_BUDGET_ENV, MemoryRefused, memory_check
from resnet_core.runs.runner import Job, JobRunner, JobState
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import Status, TestRecord, TrainRecord
from tests.conftest import wait_until

torch.set_num_threads(1)

TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=64, test_subset=200,
            augment="none", log_every=2, probe_every=0, threads=1)
LONG = TrainConfig(max_steps=100_000, **TINY)


def test_job_publishes_snapshots_and_stores_the_run(runner):
    job = runner.submit(TrainConfig(max_steps=8, **TINY), owner="alice")
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == Status.FINISHED and snap.done and snap.step == 8 and snap.progress == 1.0
    assert snap.state.status == Status.FINISHED and snap.state.message.startswith("finished 8 steps")
    assert [r.step for r in snap.of_kind(TrainRecord)] == [1, 2, 4, 6, 8]
    assert snap.final == job.result.final and snap.final.test_acc == job.result.evaluation.acc
    info = runstore.read_run(snap.run_dir)
    assert info.status == Status.FINISHED and info.final == snap.final and info.final.steps == 8
    assert runstore.read_metrics(snap.run_dir) == list(snap.records)
    assert runner.jobs(owner="bob") == [] and runner.jobs(owner="alice") == [job]
    assert runner.get(job.id, owner="bob") is None


def test_stop_from_another_thread_ends_the_run_at_the_next_block(runner, monkeypatch):
    """The worker is held right after step 2 until this thread has pressed Stop, so the test knows exactly where
    the run stood: it must end before step 3's first block, with no further step, then be measured once on the
    test set (a stopped run still has its test accuracy)."""
    at_step_2, stop_pressed = threading.Event(), threading.Event()
    record_of_job = Job._on_record

    def on_record(job, record):
        record_of_job(job, record)
        if isinstance(record, TrainRecord) and record.step == 2:
            at_step_2.set()
            stop_pressed.wait(60)

    monkeypatch.setattr(Job, "_on_record", on_record)
    job = runner.submit(LONG, owner="a")
    assert at_step_2.wait(60), job.snapshot().message
    job.stop()
    stop_pressed.set()
    assert job.wait(60), "the run did not end after Stop"
    snap = job.snapshot()
    test = snap.of_kind(TestRecord)
    assert [r.kind for r in snap.records] == ["train", "train", "test", "final"]  # steps 1 and 2, the test, the end
    assert test[0].step == 2 and snap.final.test_acc == test[0].test_acc == job.result.evaluation.acc
    assert snap.status == Status.STOPPED and snap.message == f"stopped by the user at step 2; test accuracy " \
                                                             f"{test[0].test_acc:.1%}"
    assert snap.final.status == Status.STOPPED and snap.final.steps == 2
    info = runstore.read_run(snap.run_dir)
    assert info.status == Status.STOPPED and info.final == snap.final and info.has_weights


def test_worker_exception_is_surfaced_with_its_cause(runner, tmp_path):
    folder = tmp_path / "images"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / cls / "ok.png")
    png = (folder / "dogs" / "ok.png").read_bytes()
    (folder / "dogs" / "broken.png").write_bytes(png[:png.index(b"IDAT") + 8])  # its header reads; its pixels do not
    job = runner.submit(TrainConfig(dataset="imagefolder", data_dir=str(folder), max_steps=2, **TINY))
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == Status.FAILED
    assert snap.message.startswith("ValueError: data_dir holds an image that cannot be read")
    assert "broken.png" in snap.message and "caused by OSError: image file is truncated" in snap.message
    assert "Traceback" in snap.error


def test_a_file_that_is_no_image_is_refused_before_the_run_is_queued(runner, tmp_path):
    folder = tmp_path / "images"
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / cls / "ok.png")
    (folder / "dogs" / "broken.png").write_bytes(b"not a png at all")  # the memory guard reads every header
    with pytest.raises(ValueError, match=f"^data_dir holds an image that cannot be read: {folder}/dogs/broken.png$"):
        runner.submit(TrainConfig(dataset="imagefolder", data_dir=str(folder), max_steps=2, **TINY))
    assert runner.jobs() == []


def test_divergence_stops_the_job_with_a_hint(runner):
    job = runner.submit(TrainConfig(max_steps=50, lr=100.0, schedule="constant", **TINY))
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == Status.DIVERGED and "diverged at step" in snap.message and "learning rate" in snap.message
    assert snap.final is None and not snap.of_kind(TestRecord)
    assert runstore.read_run(snap.run_dir).status == Status.DIVERGED


def test_memory_guard_refuses_with_the_figures(runner):
    huge = TrainConfig(model="resnet50", batch_size=4096, image_size=224)
    check = memory_check(huge)
    assert check.needed_bytes > check.budget_bytes > 0
    with pytest.raises(MemoryRefused, match=r"^batch_size 4096: training resnet50 needs about [\d.]+ GiB .* "
                                            r"memory budget is [\d.]+ GiB .*; lower batch_size \(or image_size on "
                                            r"the command line\)$"):
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


def _folder(root, per_class: int, size=(8, 8)):
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, (i, 2, 3)).save(root / cls / f"{i}.png")
    return root


def test_a_batch_is_no_larger_than_the_folders_training_images(runner, tmp_path):  # runner: runs go to tmp_path
    folder = _folder(tmp_path, 2)  # 4 images: 3 to train on, 1 to test
    config = TrainConfig(dataset="imagefolder", data_dir=str(folder), batch_size=4096)
    three = summarize(resolve_spec("resnet20"), (3, 8, 8), 3).training_memory_bytes  # at the images' own 8×8
    assert memory_check(config).training_bytes == three  # not 4096 images' activations
    assert memory_check(TrainConfig(dataset="imagefolder", data_dir=str(folder), batch_size=2)).training_bytes < three
    tight = JobRunner(memory_budget=4 * three)  # refused before: the estimate was for a batch of 4096
    job = tight.submit(TrainConfig(dataset="imagefolder", data_dir=str(folder), batch_size=4096, max_steps=1,
                                    **{k: v for k, v in TINY.items() if k != "batch_size"}))
    assert job.wait(60) and job.snapshot().status == Status.FINISHED, job.snapshot().message


def test_the_guard_counts_decoding_a_big_image_and_says_what_to_change(runner, tmp_path):
    folder = _folder(tmp_path, 1)
    Image.new("RGB", (6000, 6000), (9, 9, 9)).save(folder / "dogs" / "big.png")  # 120 KB, 144 MB decoded
    check = memory_check(TrainConfig(dataset="imagefolder", data_dir=str(folder)))
    assert check.data_bytes >= 6000 * 6000 * 4
    with pytest.raises(MemoryRefused) as caught:
        JobRunner(memory_budget=100 * 2**20).submit(TrainConfig(dataset="imagefolder", data_dir=str(folder)))
    assert str(caught.value).endswith("(the set budget); the data alone exceeds it: choose a smaller data set (or a "
                                      "lower image_size on the command line)")


def test_a_decompression_bomb_is_refused_at_submit_from_its_header(runner, tmp_path):
    folder = _folder(tmp_path, 1)
    bomb = folder / "dogs" / "bomb.png"
    Image.new("1", (14_000, 14_000)).save(bomb)  # 24 KB on disk, 196 megapixels
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        runner.submit(TrainConfig(dataset="imagefolder", data_dir=str(folder), max_steps=1, **TINY))
    assert time.perf_counter() - start < 1
    assert str(caught.value) == (f"data_dir holds an image of more than 178,956,970 pixels: {bomb}; images may have "
                                 "at most 50,000,000 (50 megapixels)")
    assert type(caught.value) is ValueError and runner.jobs() == []


def test_memory_budget_from_the_environment(runner, monkeypatch):
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1.5M")
    assert memory_check(TrainConfig()).budget_bytes == 1_572_864
    with pytest.raises(MemoryRefused, match="memory budget is 1.5 MiB"):
        runner.submit(TrainConfig(max_steps=1, **TINY))
    generous = JobRunner(memory_budget=2**34)  # the worker checks again, against the runner's budget
    job = generous.submit(TrainConfig(max_steps=2, **TINY))
    assert job.wait(60) and job.snapshot().status == Status.FINISHED, job.snapshot().message
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=f"^{MEMORY_BUDGET_ENV} must be a size above zero such as 8G, 512M or a "
                                         "byte count; got 'lots'$"):
        memory_check(TrainConfig())


def test_queue_runs_one_at_a_time_and_cancels(runner):
    first = runner.submit(LONG, owner="a")
    second = runner.submit(LONG, owner="b")
    third = runner.submit(LONG, owner="b")
    wait_until(lambda: first.snapshot().status == Status.RUNNING, message="the first job did not start")
    assert second.snapshot().status == Status.QUEUED and second.snapshot().queue_position == 1
    assert second.snapshot().state.label == "queued (queue position 1)"
    assert third.snapshot().queue_position == 2 and runner.load() == (1, 2)
    third.stop()
    assert third.done  # a queued job is cancelled by stop() itself, before it returns
    assert third.snapshot().status == Status.STOPPED and third.snapshot().run_dir is None
    assert runner.load() == (1, 1)
    first.stop()
    wait_until(lambda: second.snapshot().step >= 1, message="the second job did not start after the first stopped")
    assert second.snapshot().status == Status.RUNNING and first.snapshot().status == Status.STOPPED
    second.stop()
    assert second.wait(60) and second.snapshot().status == Status.STOPPED


def test_a_queued_job_reports_its_state_field_by_field_and_a_stop_replaces_it(runner):
    first = runner.submit(LONG, owner="a")
    wait_until(lambda: first.snapshot().status == Status.RUNNING, message="the first job did not start")
    before = time.time()
    queued = runner.submit(LONG, owner="a")
    snap = queued.snapshot()
    assert (snap.job_id, snap.owner, snap.config, snap.records) == (queued.id, "a", LONG, ())
    assert (snap.status, snap.message, snap.error, snap.run_id, snap.run_dir, snap.queue_position) == (
        Status.QUEUED, "waiting for a free slot", "", None, None, 1)
    assert (snap.step, snap.total_steps, snap.eta_sec, snap.images_per_sec, snap.started, snap.ended) == (
        0, None, None, None, None, None)
    assert before <= snap.submitted <= time.time()
    queued.stop()
    stopped = queued.snapshot()
    assert (stopped.status, stopped.message, stopped.queue_position, stopped.submitted) == (
        Status.STOPPED, "cancelled before it started, after 0 s in the queue", None, snap.submitted)
    assert snap.submitted <= stopped.ended <= time.time() and snap.status == Status.QUEUED  # the old one unchanged
    first.stop()


def test_a_job_state_is_frozen():
    state = JobState(submitted=5.0)
    assert (state.status, state.message, state.step) == (Status.QUEUED, "waiting for a free slot", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.step = 3


def test_describe_error_follows_the_cause_chain():
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as exc:
        assert describe_error(exc) == "RuntimeError: outer; caused by KeyError: 'inner'"
