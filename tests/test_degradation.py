"""The degradation experiment on a tiny budget: four nets, the same batches, curves in the run store."""

from __future__ import annotations

import json

import pytest

from resnet_core import degradation
from resnet_core.cli import main
from resnet_core.jobs import JobRunner
from resnet_core.presets import HE2015
from resnet_core.runstore import read_metrics

TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=4, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=2)


def test_names_configs_and_shared_batches():
    config = degradation.DegradationConfig()
    assert list(config.nets()) == ["plain20", "plain56", "resnet20", "resnet56"]
    configs = config.train_configs()
    assert [c.model for c in configs.values()] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert len({(c.seed, c.dataset, c.batch_size, c.max_steps, c.image_size, c.augment) for c in configs.values()}) == 1
    assert TINY.train_configs()["resnet14"].overrides["layers"] == (2, 2, 2)


@pytest.mark.parametrize("field, value", [("deep", 1), ("steps", 0), ("image_size", 4), ("dataset", "imagenet")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        degradation.DegradationConfig(shallow=1).replace(**{field: value})


def test_background_runs_produce_four_curves(tmp_path):
    group_id, jobs = degradation.start(TINY, JobRunner(max_concurrent=1), owner="test", root=tmp_path)
    assert list(jobs) == ["plain8", "plain14", "resnet8", "resnet14"]
    for job in jobs.values():
        assert job.wait(timeout=120)
    assert {job.snapshot().status for job in jobs.values()} == {"finished"}
    groups = degradation.list_groups(tmp_path)
    assert list(groups) == [group_id]
    group = groups[group_id]
    records = degradation.group_records(group)
    assert set(records) == set(jobs)
    assert degradation.config_of_group(group) == TINY  # what was run is read back exactly
    first_batch_losses = []
    for name, recs in records.items():
        summary = degradation.summarize_records(recs)
        assert summary["steps"] == [1, 2, 3, 4]
        assert len(summary["train_loss"]) == 4 and all(v > 0 for v in summary["train_loss"])
        assert 0 <= summary["test_acc"] <= 1
        assert read_metrics(group[name].path, "probe")  # the Signal-flow heatmap's input
        first_batch_losses.append(summary["train_loss"][0])
    # different nets, same batch: step-1 losses differ (the nets are not copies of each other)
    assert len(set(first_batch_losses)) == 4
    text = degradation.describe({n: degradation.summarize_records(r) for n, r in records.items()})
    assert any("plain8" in line and "plain14" in line for line in text)


def test_cli_degradation_last_line(tmp_path, capsys):
    code = main(["degradation", "--steps", "2", "--batch-size", "8", "--width", "4", "--image-size", "8",
                 "--test-subset", "32", "--run-root", str(tmp_path), "--json"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    last = json.loads(lines[-1])
    assert list(last["runs"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    for run in last["runs"].values():
        assert len(run["train_loss"]) == 2 and 0 <= run["test_acc"] <= 1
    assert len(list(tmp_path.iterdir())) == 4


def test_reference_numbers_come_with_their_source():
    rows = {r["name"]: r for r in degradation.reference_rows()}
    assert rows["resnet20"]["test_error"] == 8.75 and rows["resnet56"]["test_error"] == 6.97
    assert rows["resnet110"]["test_error"] == 6.43 and rows["resnet20"]["source"] == HE2015
