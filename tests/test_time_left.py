"""A running run's time left: the periodic work still to come, counted, and each part priced as the run measured it."""

from __future__ import annotations

import pytest

from resnet_core.training.time_left import (
    Plan,
    Tally,
    checkpoints_left,
    evaluations_left,
    multiples,
    plain_pace,
    probe_ratio,
    probe_steps_left,
    seconds_left,
)

# the degradation nets of bench_estimates: 200 steps of 64 images, 156 steps an epoch, 1000 test images
NET = Plan(total=200, steps_per_epoch=156, probe_every=20, checkpoint_every=50, batch=64, test_images=1000)
# a Train-page run: two epochs of 78 steps of 128 images, 2000 test images
PAGE = Plan(total=156, steps_per_epoch=78, probe_every=20, checkpoint_every=50, batch=128, test_images=2000)


def test_multiples_in_a_half_open_range():
    assert (multiples(20, 0, 200), multiples(20, 20, 200), multiples(20, 19, 200)) == (10, 9, 10)
    assert (multiples(0, 0, 200), multiples(20, 200, 200)) == (0, 0)


def test_evaluations_left_count_an_epoch_end_whose_record_comes_before_its_test():
    assert [evaluations_left(step, NET) for step in (1, 20, 156, 157, 200)] == [2, 2, 2, 1, 1]
    assert [evaluations_left(step, PAGE) for step in (1, 20, 78, 79, 156)] == [2, 2, 2, 1, 1]


def test_checkpoints_left_are_the_periodic_ones_and_one_after_each_evaluation():
    # NET: 50, 100, 150, then after the tests at 156 and 200 (200 itself is the budget's end, not periodic)
    assert [checkpoints_left(step, NET) for step in (1, 50, 51, 150, 151, 200)] == [5, 5, 4, 3, 2, 1]
    # PAGE: 50, 100, 150, then after the tests at 78 and 156
    assert [checkpoints_left(step, PAGE) for step in (1, 78, 79, 150, 156)] == [5, 4, 3, 2, 1]
    no_checkpoints = Plan(200, 156, 20, None, 64, 1000)
    assert checkpoints_left(1, no_checkpoints) == 0
    epoch_ends = Plan(total=100, steps_per_epoch=25, probe_every=0, checkpoint_every=50, batch=8, test_images=8)
    assert checkpoints_left(1, epoch_ends) == 4  # 50 and 100 are epoch ends: only the four after the tests


def test_probe_steps_left_exclude_a_probe_already_taken():
    assert (probe_steps_left(19, NET), probe_steps_left(20, NET), probe_steps_left(200, NET)) == (10, 9, 0)
    assert probe_steps_left(20, Plan(200, 156, 0, 50, 64, 1000)) == 0


def test_the_pace_is_the_latest_half_of_the_plain_steps():
    history = [Tally(1, 0.3), Tally(10, 1.2)]
    # steps 11..20, one of them a probe step of 0.2 s: nine plain steps in 0.9 s
    assert plain_pace(history, Tally(20, 2.3, probe_steps=1, probe_seconds=0.2)) == pytest.approx(0.1)
    assert plain_pace([], Tally(1, 0.3)) == pytest.approx(0.3)  # step 1 alone: its own time
    assert plain_pace([], Tally(2, 0.4, probe_steps=2, probe_seconds=0.4)) == pytest.approx(0.2)  # probes only


def test_time_left_prices_probes_evaluations_and_checkpoints_as_measured():
    history = [Tally(1, 0.3, forward_seconds=0.075), Tally(10, 1.2, forward_seconds=0.3)]
    # 20 steps in 2.3 s, a quarter of it forward passes; the probe step took twice a plain step after step 1 (0.1 s)
    now = Tally(20, 2.3, probe_steps=1, probe_seconds=0.2, forward_seconds=0.575)
    steps = 171 * 0.1 + 9 * 0.2  # plain and probe steps left
    # no evaluation yet: 1000 images at the 0.025 s a step's 64 images took forward; no checkpoint measured yet
    assert seconds_left(history, now, NET) == pytest.approx(steps + 2 * 0.025 * 1000 / 64)
    assert probe_ratio(history[0], now) == pytest.approx(2.0)
    assert probe_ratio(history[0], Tally(10, 1.2)) == 1.0  # no probe step yet: priced as a plain one
    assert seconds_left(history, now, NET, eval_seconds=0.3, checkpoint_seconds=0.02) == pytest.approx(
        steps + 2 * 0.3 + 5 * 0.02)


def test_a_load_that_doubles_every_time_doubles_the_time_left():
    history = [Tally(1, 0.3, forward_seconds=0.075), Tally(10, 1.2, forward_seconds=0.3)]
    now = Tally(20, 2.3, probe_steps=1, probe_seconds=0.2, forward_seconds=0.575)
    doubled = [Tally(t.step, 2 * t.train_seconds, t.probe_steps, 2 * t.probe_seconds, 2 * t.forward_seconds)
               for t in (*history, now)]
    assert seconds_left(doubled[:-1], doubled[-1], NET) == pytest.approx(2 * seconds_left(history, now, NET))
    assert seconds_left(history, now, NET) == pytest.approx(18.9 + 2 * 0.025 * 1000 / 64)  # 17.1 + 1.8 + evaluations
