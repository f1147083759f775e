"""A run that still has to measure fp32 against bf16 trains its step 1 first: the first curve point does not wait
for the measurement, which follows it and is then stored in the run's config.json and the machine's cache."""

from __future__ import annotations

import threading
import time

import torch

from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.runner import MEASURING
from resnet_core.training.config import TrainConfig
from resnet_core.training.precision import precision_key
from resnet_core.training.records import Record, Status, TrainRecord
from resnet_core.training.settings import STEP_ONE
from resnet_core.training.verdicts import recall

SMALL = dict(overrides=dict(layers=(1, 1, 1), width=8), train_subset=512, batch_size=32, probe_every=0, threads=1)
GUARDED = dict(SMALL, overrides={})  # resnet20 at 32×32: a size whose bf16 accuracy was checked, so it is timed


def test_step_one_comes_before_the_measurement_which_the_run_then_stores(own_precision_cache, tmp_path):
    config = TrainConfig(**GUARDED)  # precision auto; the auto budget: 120 steps
    key = precision_key(config, torch.device("cpu"), 1, 32)
    remembered_at: dict[int, int] = {}
    stop = threading.Event()

    def on_record(record: Record) -> None:
        if isinstance(record, TrainRecord):
            remembered_at[record.step] = len(recall(key))
            if record.step >= 5:
                stop.set()

    result = execute(config, run_dir=tmp_path / "run", on_record=on_record, stop=stop)
    assert result.status == Status.STOPPED
    assert remembered_at[1] == 0 and remembered_at[5] == 1  # step 1's point was out before the measurement ended
    stored = runstore.read_run(tmp_path / "run").config.settings
    assert stored == result.settings and stored.precision in ("fp32", "bf16")
    assert stored.precision_reason.endswith(f"; {STEP_ONE}") and "measured here in " in stored.precision_reason
    (rates,) = recall(key)
    assert (stored.fp32_rate, stored.bf16_rate) == (rates.fp32, rates.bf16) and rates.fp32 > 0 and rates.bf16 > 0


def test_a_stop_during_the_measurement_ends_the_run_without_a_verdict(own_precision_cache, tmp_path):
    config = TrainConfig(**GUARDED)
    stop = threading.Event()
    stop_in_measurement = threading.Timer(0.2, stop.set)

    def on_record(record: Record) -> None:
        if isinstance(record, TrainRecord) and record.step == 1:
            stop_in_measurement.start()  # the measurement takes about 2 s after step 1

    result = execute(config, run_dir=tmp_path / "run", on_record=on_record, stop=stop)
    assert result.status == Status.STOPPED and result.final.steps == 1
    assert result.settings.precision == "fp32" and result.settings.precision_reason == (
        "auto: fp32 for step 1; after it, fp32 against bf16 measured or recalled")
    assert recall(precision_key(config, torch.device("cpu"), 1, 32)) == []


def test_a_size_whose_bf16_accuracy_was_never_checked_is_not_timed(own_precision_cache, tmp_path):
    config = TrainConfig(**SMALL, max_steps=3)
    result = execute(config, run_dir=tmp_path / "run")
    assert result.status == Status.FINISHED and result.settings.precision == "fp32"
    assert result.settings.precision_reason == (
        "auto: fp32; bf16 not measured: its accuracy was never checked on real data for a model of this size and "
        f"input (bf16_guard.json); {STEP_ONE}")
    assert result.settings.fp32_rate is None and recall(precision_key(config, torch.device("cpu"), 1, 32)) == []


def messages_by_step(job) -> list[tuple[int, str]]:
    """The job's (step, message) pairs as a page polling it every 10 ms sees them, until it ends."""
    seen: list[tuple[int, str]] = []
    while not job.done:
        snap = job.snapshot()
        if snap.step and (not seen or seen[-1] != (snap.step, snap.message)):
            seen.append((snap.step, snap.message))
        time.sleep(0.01)
    return seen


def test_the_job_says_it_times_the_precisions_after_step_one_and_only_where_it_does(runner, own_precision_cache):
    measuring = messages_by_step(runner.submit(TrainConfig(**GUARDED, max_steps=6, log_every=1)))
    assert measuring[0] == (1, MEASURING) and measuring[1][1] == "training"  # not "training" while it times
    unguarded = messages_by_step(runner.submit(TrainConfig(**SMALL, max_steps=6, log_every=1)))
    assert unguarded and MEASURING not in dict(unguarded).values()  # its steps are too quick to see each one
