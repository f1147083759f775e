"""The fair scheduler: interactive runs go first, a batch run in their way pauses and resumes bit-identically, and
a queued job's wait is the work in front of it."""

from __future__ import annotations

import pytest
import torch

from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.resume import prepare_resume
from resnet_core.runs.scheduler import Priority, blocks, queue_key, to_pause, wait_before
from resnet_core.training.config import TrainConfig
from resnet_core.training.distributed import state_digest
from resnet_core.training.records import Status, TrainRecord
from tests.conftest import wait_until

torch.set_num_threads(1)

TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=32, test_subset=64,
            augment="none", log_every=2, probe_every=0, threads=1, checkpoint_every=100)
LONG = TrainConfig(max_steps=100_000, **TINY)


def test_a_queued_job_waits_for_the_slots_to_come_free_in_queue_order():
    assert wait_before([30.0], [10.0, 20.0], 1) == 60.0
    assert wait_before([30.0], [10.0, 20.0], 2) == 30.0  # 10 and 20 s take the free slot one after the other
    assert wait_before([], [], 1) == 0.0 and wait_before([], [7.0], 2) == 0.0
    assert wait_before([5.0, 8.0, 3.0], [], 2) == 5.0  # three running on two slots: the second end frees one


def test_interactive_jobs_go_first_and_the_latest_batch_job_is_the_one_paused():
    keys = {name: queue_key(priority, seq) for name, priority, seq in
            [("a", Priority.BATCH, 0), ("b", Priority.BATCH, 1), ("c", Priority.INTERACTIVE, 2)]}
    assert sorted(keys, key=keys.get) == ["c", "a", "b"]
    running = [(Priority.INTERACTIVE, 0), (Priority.BATCH, 1), (Priority.BATCH, 4)]
    assert to_pause(running, Priority.INTERACTIVE) == 2
    assert to_pause(running, Priority.BATCH) is None and to_pause(running[:1], Priority.INTERACTIVE) is None
    assert blocks(Priority.INTERACTIVE, Priority.BATCH) and not blocks(Priority.BATCH, Priority.INTERACTIVE)


def test_a_priority_outside_the_two_is_refused_in_one_line(runner):
    with pytest.raises(ValueError, match=r"^priority must be one of interactive, batch; got 'urgent'$"):
        runner.submit(LONG, priority="urgent")


def test_an_interactive_run_goes_ahead_of_queued_batch_runs_and_each_waits_for_those_in_front(runner):
    running = runner.submit(LONG, owner="a")
    wait_until(lambda: running.snapshot().of_kind(TrainRecord), message="the first job did not train")
    first_batch, second_batch = (runner.submit(LONG, owner="lab", priority=Priority.BATCH) for _ in range(2))
    interactive = runner.submit(LONG, owner="b")
    snaps = [job.snapshot() for job in (interactive, first_batch, second_batch)]
    assert [s.queue_position for s in snaps] == [1, 2, 3] and [s.priority for s in snaps] == [
        Priority.INTERACTIVE, Priority.BATCH, Priority.BATCH]
    assert running.snapshot().status == Status.RUNNING  # an interactive run is never paused for another
    waits = [s.wait_sec for s in snaps]
    assert 0 < waits[0] < waits[1] < waits[2] and snaps[0].state.wait_sec == waits[0]
    interactive.stop()
    assert [first_batch.snapshot().queue_position, second_batch.snapshot().queue_position] == [1, 2]


def test_a_paused_batch_run_resumes_and_ends_bit_identical_to_an_unbroken_one(runner, tmp_path):
    config = TrainConfig(max_steps=120, **TINY)
    unbroken = execute(config, run_dir=tmp_path / "unbroken")
    batch = runner.submit(config, owner="lab", priority=Priority.BATCH)
    wait_until(lambda: batch.snapshot().step >= 3, interval=0.002, message="the batch run did not train")
    interactive = runner.submit(TrainConfig(max_steps=150, **TINY), owner="me")
    paused = wait_until(lambda: (s := batch.snapshot()).queue_position == 1 and s, interval=0.002,
                        message="the batch run was not paused")
    assert paused.status == Status.QUEUED and 3 <= paused.step < 120 and paused.wait_sec > 0
    assert paused.message == f"paused at step {paused.step} for an interactive run; goes on from there when it ends"
    assert interactive.snapshot().status == Status.RUNNING and runner.load() == (1, 1)
    on_disk = runstore.read_run(paused.run_dir)
    assert (on_disk.status, on_disk.message) == (Status.QUEUED, f"paused at step {paused.step} for an interactive run")
    assert interactive.wait(60) and batch.wait(60)
    assert batch.snapshot().status == Status.FINISHED and batch.snapshot().step == 120
    assert batch.snapshot().run_dir == paused.run_dir and len(runstore.list_runs()) == 2  # went on in its folder
    assert state_digest(runstore.load_weights(paused.run_dir)) == state_digest(unbroken.model)
    broken, whole = runstore.read_metrics(paused.run_dir), runstore.read_metrics(tmp_path / "unbroken")
    assert [(type(r), r.step) for r in broken] == [(type(r), r.step) for r in whole]  # no gap, no duplicate
    assert list(batch.snapshot().records) == broken


def test_stop_on_a_paused_run_ends_it_resumable_at_its_step(runner):
    batch = runner.submit(LONG, owner="lab", priority=Priority.BATCH)
    wait_until(lambda: batch.snapshot().step >= 3, interval=0.002, message="the batch run did not train")
    interactive = runner.submit(LONG, owner="me")
    paused = wait_until(lambda: (s := batch.snapshot()).queue_position == 1 and s, interval=0.002,
                        message="the batch run was not paused")
    batch.stop()
    stopped = batch.snapshot()
    assert (stopped.status, stopped.message) == (Status.STOPPED,
                                                 f"stopped by the user at step {paused.step}, while paused")
    assert runstore.read_run(paused.run_dir).status == Status.STOPPED
    assert prepare_resume(paused.run_dir).state.step == paused.step
    interactive.stop()
