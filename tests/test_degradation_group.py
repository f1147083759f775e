"""The degradation group a page shows, merged in the core: a seed set started on a real runner (its states,
progress, estimates and overall line across the seeds, its live jobs per owner, a stop), and a group read back
from real run folders (its table, its text, its curves)."""

from __future__ import annotations

from resnet_core.experiments import degradation, seeds
from resnet_core.experiments.degradation_group import NetGroup, ShownGroup, group_choices
from resnet_core.experiments.degradation_nets import Net
from resnet_core.experiments.degradation_status import NOT_STARTED, queued_file
from resnet_core.runs.background import BackgroundRows
from resnet_core.runs.forecast import Basis
from resnet_core.runs.runner import JobRunner
from resnet_core.runs.store import list_runs
from resnet_core.training.estimate import time_runs
from resnet_core.training.records import Status
from tests.conftest import wait_until

TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=3, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=0)
LONG = TINY.replace(steps=100_000)  # trains until stopped
NAMES = ("plain8", "plain14", "resnet8", "resnet14")


def test_a_seed_set_started_here_is_followed_across_its_seeds_until_stopped(tmp_path):
    estimate = BackgroundRows(lambda _: time_runs(LONG.train_configs(), threads=1), ["the four nets"])
    wait_until(lambda: estimate.snapshot()[1], 120, 0.1, message="the nets were not timed")
    (timed,) = estimate.snapshot()[0]
    runner = JobRunner(max_concurrent=1, threads_per_run=1)
    blocker = runner.submit(LONG.train_configs()["plain8"], owner="carol")  # interactive: the nets queue behind it
    set_id, by_seed = seeds.start_seeds(LONG.replace(seed=5), 2, runner, owner="alice", root=tmp_path)
    shown = ShownGroup.started(set_id, by_seed, estimate)
    try:
        assert (shown.group_id, shown.group.names) == (f"{set_id}-seed5", NAMES)
        assert [g.group_id for g in shown.other_seeds] == [f"{set_id}-seed6"] and shown.started_here
        assert shown.group.job_ids == {name: job.id for name, job in by_seed[5].items()}
        assert shown.estimates() is timed and shown.scope() == " (2 seeds; the bars below: seed 5)"
        assert len(shown.live_jobs(runner, "alice")) == 8 and shown.live_jobs(runner, "bob") == []
        assert shown.is_live(runner, "alice", tmp_path)

        status = shown.status(runner, "alice", tmp_path)
        assert status.live and len(status.every_run) == 8
        assert [p.label for p in status.progress] == [f"queued (queue position {i})" for i in (1, 2, 3, 4)]
        waiting = status.progress[1]  # nothing of the group trained: its planned steps and time are the prior's
        assert (waiting.total, waiting.seconds_left, waiting.basis) == (100_000, timed["plain14"].seconds, Basis.PRIOR)
        assert [p.label for p in status.every_run[4:]] == [f"queued (queue position {i})" for i in (5, 6, 7, 8)]
        done, line = status.overall()
        assert done < 1 / 8 and line.startswith("Overall: 0 of 8 nets done · about ")
        assert line.endswith(" left (2 seeds; the bars below: seed 5)")
        blocker.stop()
        wait_until(lambda: by_seed[5]["plain8"].snapshot().step >= 1, 60, 0.1, message="plain8 did not train")
        waiting = shown.status(runner, "alice", tmp_path).progress[1]  # now plain8's measured pace, scaled
        assert waiting.basis == Basis.SCALED and waiting.seconds_left > 0 and waiting.wait_sec > 0
        assert "to run (scaled from the pace measured on this group's nets), starts in about " in waiting.text()
    finally:
        for job in reversed(shown.live_jobs(runner, "alice")):  # the queued first: none starts in between
            job.stop()
    wait_until(lambda: not shown.is_live(runner, "alice", tmp_path), 60, 0.1, message="the set did not end")
    assert shown.live_jobs(runner, "alice") == []
    status = shown.status(runner, "alice", tmp_path)
    assert not status.live and status.progress[0].status == Status.STOPPED
    assert [p.label for p in status.every_run[1:]] == [NOT_STARTED] * 7
    assert status.text().startswith("Queued together: plain8, plain14, resnet8, resnet14. Stopped: plain8")
    assert status.text().endswith("; Not started (stopped while queued): plain14, resnet8, resnet14.")


def test_a_stored_group_reads_back_its_table_text_and_curves(tmp_path):
    degradation.run(TINY, root=tmp_path)
    ((group_id, runs),) = degradation.list_groups(tmp_path).items()
    shown = ShownGroup.stored(group_id, runs, tmp_path)
    assert shown.group == NetGroup(group_id, NAMES, {}) and not shown.started_here and shown.scope() == ""
    assert shown.estimates() == {} and shown.live_jobs(JobRunner(max_concurrent=1), "alice") == []
    status = shown.status(JobRunner(max_concurrent=1), "alice", tmp_path)
    assert not status.live and status.overall() == (1.0, "Overall: 4 of 4 nets done · about 0 s left")
    assert status.text() == ("Queued together: plain8, plain14, resnet8, resnet14. "
                             "Finished: plain8, plain14, resnet8, resnet14.")
    stored = {info.run_id.rpartition("-")[2]: info.final for info in list_runs(tmp_path)}
    assert status.table_rows() == [
        {"net": name, "status": "finished", "step": 3, "final train loss": stored[name].train_loss,  # 3 steps: the last
         "test accuracy %": round(100 * stored[name].test_acc, 1)} for name in NAMES]
    assert list(status.curves()) == [Net("plain8", False, 8, 1), Net("plain14", False, 14, 2),
                                     Net("resnet8", True, 8, 1), Net("resnet14", True, 14, 2)]
    assert [list(c["train"].step) for c in status.curves().values()] == [[1, 2, 3]] * 4


def test_a_queued_file_names_nets_that_never_got_a_folder_and_a_seed_group_says_which_seed(tmp_path):
    group_id = "20260101-000000-degradation-ab12-seed3"
    queued_file(group_id, tmp_path).write_text('{"nets": ["plain8", "resnet8"]}')
    shown = ShownGroup.stored(group_id, {}, tmp_path)
    assert shown.group.names == ("plain8", "resnet8") and shown.scope() == " (the nets of seed 3)"
    status = shown.status(JobRunner(max_concurrent=1), "alice", tmp_path)
    assert [(p.name, p.label, p.status) for p in status.progress] == [("plain8", NOT_STARTED, None),
                                                                     ("resnet8", NOT_STARTED, None)]
    assert status.table_rows()[0] == {"net": "plain8", "status": NOT_STARTED, "step": 0, "final train loss": None,
                                      "test accuracy %": None}
    assert status.curves() == {} and status.summaries == {}


def test_the_choices_put_the_group_shown_first_once():
    stored = {"20260102-degradation-b": {}, "20260101-degradation-a": {}}
    assert group_choices(None, stored) == ["20260102-degradation-b", "20260101-degradation-a"]
    new = ShownGroup(NetGroup("20260103-degradation-c-seed0", NAMES))
    assert group_choices(new, stored) == ["20260103-degradation-c-seed0", "20260102-degradation-b",
                                          "20260101-degradation-a"]
    old = ShownGroup(NetGroup("20260101-degradation-a", NAMES))
    assert group_choices(old, stored) == ["20260101-degradation-a", "20260102-degradation-b"]
    assert group_choices(None, {}) == []


def test_a_job_the_runner_does_not_hold_reads_as_none():
    shown = ShownGroup(NetGroup("g", ("plain8",), {"plain8": "job"}))
    assert shown.every_seed == (shown.group,) and shown.group.jobs(JobRunner(max_concurrent=1), "alice") == {
        "plain8": None}  # a runner that does not hold the job (another process, or forgotten)
