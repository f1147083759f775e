"""Estimates that learn: a run's work from its model's mult-adds, a pace measured on one run, scaled to another."""

from __future__ import annotations

import os

import pytest

from resnet_core.experiments import degradation
from resnet_core.experiments.degradation_group import NetGroup, ShownGroup
from resnet_core.runs import store as runstore
from resnet_core.runs.estimate_log import ESTIMATES, read_estimates
from resnet_core.runs.execute import execute
from resnet_core.runs.forecast import Basis, Forecast, Work, measured_rate, scaled, work_of
from resnet_core.training.config import TrainConfig
from resnet_core.training.records import TrainRecord

TINY = TrainConfig(max_steps=10, overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=32,
                   test_subset=64)
PER_IMAGE = 3_170_874  # forward mult-adds of TINY's net on one 32×32 synthetic image


def train(step: int, images_per_sec: float) -> TrainRecord:
    return TrainRecord(step=step, epoch=step / 8, time=step * 0.1, images=step * 32, loss=2.0, acc=0.1, lr=0.1,
                       images_per_sec=images_per_sec, eta_sec=1.0, total_steps=10)


def test_a_runs_work_is_its_steps_and_evaluations_in_mult_adds():
    work = work_of(TINY)
    assert work == Work(step_units=3 * PER_IMAGE * 32, eval_units=PER_IMAGE * 64, steps=10, steps_per_epoch=8,
                        batch=32)
    assert work.units_left(0) == 10 * work.step_units + 2 * work.eval_units  # epoch 1's end and the budget's
    assert work.units_left(8) == 2 * work.step_units + work.eval_units
    assert work_of(TINY.replace(max_steps=None, epochs=None)).steps == 120  # the auto budget, data not loaded


def test_a_pace_is_the_median_of_the_latest_records_without_the_first_step():
    assert measured_rate(TINY, []) is None
    only_first = measured_rate(TINY, [train(1, 100.0)])
    assert only_first == pytest.approx(32 / 100.0 / (3 * PER_IMAGE * 32))
    records = [train(1, 100.0), train(2, 900.0), train(4, 400.0), train(6, 500.0), train(8, 600.0)]
    rate = measured_rate(TINY, records)
    assert rate == pytest.approx(1 / 500.0 / (3 * PER_IMAGE))  # median of 400, 500 and 600 images/s
    twice = TINY.replace(overrides=dict(width=16, layers=(1, 1, 1)))
    ratio = work_of(twice).step_units / work_of(TINY).step_units
    assert scaled(twice, rate) == Forecast(rate * work_of(twice).units_left(), Basis.SCALED)
    assert 3.5 < ratio < 4.1  # twice the width: about four times the mult-adds, so about four times as long


def test_queued_nets_are_scaled_from_the_latest_net_that_trained_else_take_the_prior():
    configs = degradation.DegradationConfig(shallow=1, deep=2, steps=600, batch_size=16, width=4,
                                            image_size=8).train_configs()
    shown = ShownGroup(NetGroup("g", tuple(configs)))
    assert shown.forecasts(configs, {}) == {}  # nothing trained and no prior: no figure
    records = {"plain8": [TrainRecord(step=s, epoch=s / 625, time=s * 0.1, images=16 * s, loss=2.0, acc=0.1, lr=0.1,
                                      images_per_sec=ips, eta_sec=60.0, total_steps=600)
                          for s, ips in ((1, 50.0), (10, 800.0), (20, 800.0))]}
    rate = measured_rate(configs["plain8"], records["plain8"])
    forecasts = shown.forecasts(configs, records)
    assert forecasts["plain14"] == (Forecast(rate * work_of(configs["plain14"]).units_left(), Basis.SCALED), 600)
    assert forecasts["plain14"][0].seconds / forecasts["resnet8"][0].seconds == pytest.approx(
        work_of(configs["plain14"]).units_left() / work_of(configs["resnet8"]).units_left())


def test_every_run_keeps_its_estimate_at_10_and_50_percent_against_the_time_actually_left(tmp_path):
    result = execute(TINY.replace(max_steps=20, log_every=2, probe_every=0, threads=1), run_dir=tmp_path / "run")
    kept = read_estimates(tmp_path / "run")
    train = {r.step: r for r in runstore.read_metrics(tmp_path / "run", TrainRecord)}
    assert [(m["at"], m["step"]) for m in kept["marks"]] == [(0.1, 2), (0.5, 10)]
    assert kept["seconds"] == result.final.seconds
    for mark in kept["marks"]:
        record = train[mark["step"]]
        assert (mark["time"], mark["eta_sec"]) == (record.time, record.eta_sec)
        assert mark["actual_sec"] == result.final.seconds - record.time
        assert mark["error"] == record.eta_sec / mark["actual_sec"] - 1
    (tmp_path / "spoilt").mkdir()
    for spoilt in ("{{{", '{"marks": [{"at": 0.1}]}', "[]"):
        (tmp_path / "spoilt" / ESTIMATES).write_text(spoilt)
        assert read_estimates(tmp_path / "spoilt") is None
    (tmp_path / "spoilt" / ESTIMATES).unlink()
    os.mkfifo(tmp_path / "spoilt" / ESTIMATES)
    assert read_estimates(tmp_path / "spoilt") is None  # refused at once, never blocking
