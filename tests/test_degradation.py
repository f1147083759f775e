"""The degradation experiment on a tiny budget: four nets, the same batches, curves in the run store."""

from __future__ import annotations

import json

import pytest

from resnet_core import build_model
from resnet_core.cli import main
from resnet_core.experiments import degradation, seeds
from resnet_core.experiments.degradation_nets import Net, parse_net
from resnet_core.models.presets import HE2015
from resnet_core.runs import store as runstore
from resnet_core.runs.loading import evaluate_run
from resnet_core.runs.runner import JobRunner
from resnet_core.runs.store import read_metrics
from resnet_core.training.records import ProbeRecord, Status

TINY = degradation.DegradationConfig(shallow=1, deep=2, steps=4, batch_size=16, width=4, image_size=8,
                                     test_subset=64, log_every=1, probe_every=2)

# He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv:1512.03385), Table 6:
# CIFAR-10 test error (%) and parameters of the ResNets, as printed in the paper.
HE2015_TABLE6 = {20: (8.75, "0.27M"), 32: (7.51, "0.46M"), 44: (7.17, "0.66M"), 56: (6.97, "0.85M"),
                 110: (6.43, "1.7M"), 1202: (7.93, "19.4M")}


def correct_share(run_dir) -> float:
    """The stored weights' correct predictions on the run's test images, over their number."""
    evaluation, _ = evaluate_run(run_dir)
    return int((evaluation.predictions == evaluation.labels).sum()) / len(evaluation.labels)


def test_names_configs_and_shared_batches():
    config = degradation.DegradationConfig()
    assert list(config.nets()) == ["plain20", "plain56", "resnet20", "resnet56"]
    configs = config.train_configs()
    assert [c.model for c in configs.values()] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert len({(c.seed, c.dataset, c.batch_size, c.max_steps, c.image_size, c.augment) for c in configs.values()}) == 1
    assert TINY.train_configs()["resnet14"].overrides["layers"] == (2, 2, 2)


def test_nets_are_typed_and_read_back_from_their_names():
    assert degradation.DegradationConfig().nets() == {
        "plain20": Net("plain20", skip=False, depth=20, blocks=3),
        "plain56": Net("plain56", skip=False, depth=56, blocks=9),
        "resnet20": Net("resnet20", skip=True, depth=20, blocks=3),
        "resnet56": Net("resnet56", skip=True, depth=56, blocks=9)}
    assert parse_net("plain56") == Net("plain56", skip=False, depth=56, blocks=9)
    assert parse_net("resnet14") == Net("resnet14", skip=True, depth=14, blocks=2)
    assert Net.of(True, 18) == Net("resnet110", skip=True, depth=110, blocks=18)
    for bad in ("resnet", "wrn16", "plain20x", "Plain20"):
        with pytest.raises(ValueError) as caught:
            parse_net(bad)
        assert str(caught.value) == f"net name must be plain<depth> or resnet<depth>; got {bad!r}"


def test_seed_summaries_still_carry_skip_and_depth_as_json():
    summary = seeds.seed_summary({"plain56": {0: ("run", [])}, "resnet20": {0: ("run", [])}})
    assert {name: (s["skip"], s["depth"]) for name, s in summary.items()} == {"plain56": (False, 56),
                                                                            "resnet20": (True, 20)}
    assert set(summary["plain56"]) == {"seeds", "steps", "mean", "std", "skip", "depth"}


@pytest.mark.parametrize("field, value", [("deep", 1), ("steps", 0), ("image_size", 4), ("dataset", "imagenet")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        degradation.DegradationConfig(shallow=1).replace(**{field: value})


def test_background_runs_produce_four_curves(tmp_path):
    group_id, jobs = degradation.start(TINY, JobRunner(max_concurrent=1), owner="test", root=tmp_path)
    assert list(jobs) == ["plain8", "plain14", "resnet8", "resnet14"]
    for job in jobs.values():
        assert job.wait(timeout=120)
    assert {job.snapshot().status for job in jobs.values()} == {Status.FINISHED}
    assert degradation.group_states(group_id, jobs, jobs, root=tmp_path) == {
        name: job.snapshot().state for name, job in jobs.items()}
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
        assert summary["status"] == Status.FINISHED and summary["test_acc"] == group[name].final.test_acc
        assert summary["test_acc"] == correct_share(group[name].path)  # evaluated on the 64 test images
        probes = read_metrics(group[name].path, ProbeRecord)  # the Signal-flow heatmap's input
        assert [p.step for p in probes] == [2, 4]
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
        assert len(run["train_loss"]) == 2
        assert run["test_acc"] == runstore.read_run(run["run_dir"]).final.test_acc == correct_share(run["run_dir"])
    assert len(list(tmp_path.iterdir())) == 4


def test_reference_rows_are_he_et_al_table_6_and_match_the_built_models():
    rows = degradation.reference_rows()
    assert [r["depth"] for r in rows] == list(HE2015_TABLE6)  # every ResNet of the table, shallow to deep
    for row in rows:
        error, params = HE2015_TABLE6[row["depth"]]
        assert (row["name"], row["test_error"], row["params"], row["source"]) == (
            f"resnet{row['depth']}", error, params, HE2015)
        model = build_model(row["name"], device="meta")
        assert model.spec.depth == row["depth"]
        # the model as built has the paper's parameter count, to the digits the paper prints
        built = sum(p.numel() for p in model.parameters())
        digits = len(params.removesuffix("M").partition(".")[2])
        assert f"{built / 1e6:.{digits}f}M" == params, (row["name"], built)
