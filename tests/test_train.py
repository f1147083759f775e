"""The training engine on tiny models and data: learning, reproducibility, schedules, divergence, probes, CLI."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch

from resnet_core.cli import main
from resnet_core.models.presets import resolve_spec
from resnet_core.runs import store as runstore
from resnet_core.runs.loading import evaluate_run
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import Diverged, build_seeded_model, evaluate, fit, lr_at, make_optimizer
from resnet_core.training.probes import probe_frame, stage_activations, stage_view
from resnet_core.training.records import (
    FinalRecord,
    ProbeRecord,
    Status,
    TestRecord,
    TrainRecord,
    final_of,
    of_kind,
    record_from_dict,
)

torch.set_num_threads(1)

TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=256, batch_size=64, test_subset=200,
            augment="none", log_every=10)


def _curve(records, kind=TrainRecord, fields=("loss", "acc", "lr")):
    return [[getattr(r, f) for f in fields] for r in of_kind(records, kind)]


def test_loss_falls_and_seeded_runs_are_identical():
    config = TrainConfig(max_steps=60, probe_every=20, **TINY)
    first, second = fit(config), fit(config)
    losses = [r.loss for r in of_kind(first.records, TrainRecord)]
    assert losses[-1] < losses[0] - 0.3, losses
    assert first.final.test_acc > 0.12  # above chance (0.10) on held-out images
    assert second.final.test_acc == first.final.test_acc and second.final.confusion == first.final.confusion
    assert _curve(first.records) == _curve(second.records)
    assert _curve(first.records, TestRecord, ("test_loss", "test_acc")) == _curve(second.records, TestRecord,
                                                                                   ("test_loss", "test_acc"))
    assert _curve(first.records, ProbeRecord, ("grad_norm", "act_std")) == _curve(second.records, ProbeRecord,
                                                                                   ("grad_norm", "act_std"))
    other = fit(config.replace(seed=1, max_steps=10))
    assert _curve(other.records)[-1] != _curve(first.records)[1]


def test_records_follow_the_documented_keys():
    records = []
    result = fit(TrainConfig(max_steps=12, probe_every=5, **{**TINY, "augment": "crop+flip"}),
                 on_record=records.append)
    assert records == result.records
    kinds = [r.kind for r in records]
    assert kinds[0] == "train" and kinds[-1] == "final" and kinds.count("test") == 3  # 4 steps per epoch
    assert [r.step for r in of_kind(records, TrainRecord)] == [1, 10, 12]
    train = records[0]
    assert isinstance(train, TrainRecord)
    assert set(train.to_dict()) == {"kind", "step", "epoch", "time", "images", "loss", "acc", "lr", "images_per_sec",
                                    "eta_sec", "total_steps"}
    assert train.total_steps == 12 and train.images == 64 and train.eta_sec > 0
    probe = of_kind(records, ProbeRecord)[0]
    assert probe.units == ["stem", "layer1.0", "layer2.0", "layer3.0", "head"]
    assert probe.stages == ["stem", "layer1", "layer2", "layer3", "head"]
    assert all(g > 0 and math.isfinite(g) for g in probe.grad_norm)
    assert all(s > 0 for s in probe.act_std)
    stages = stage_view(probe)
    assert list(stages) == ["stem", "layer1", "layer2", "layer3", "head"]  # one unit per stage here
    assert [v["grad_norm"] for v in stages.values()] == pytest.approx(probe.grad_norm)
    frame = probe_frame(records)  # the Signal-flow page's table: one row per unit and probe
    assert frame.step.unique().tolist() == [r.step for r in of_kind(records, ProbeRecord)] == [5, 10]
    assert frame[frame.step == 5].grad_norm.tolist() == probe.grad_norm
    last_units = stage_activations(frame)
    assert last_units[last_units.step == 5][["stage", "act_std"]].values.tolist() == [
        [stage, std] for stage, std in zip(probe.stages, probe.act_std)]
    final = result.final
    assert final == final_of(records) and isinstance(final, FinalRecord)
    assert final.status == Status.FINISHED and final.steps == 12
    assert sum(map(sum, final.confusion)) == 200
    # JSON-ready, and read back as the same typed records
    assert [record_from_dict(json.loads(json.dumps(r.to_dict()))) for r in records] == records


def test_evaluate_agrees_with_its_confusion_matrix():
    result = fit(TrainConfig(max_steps=5, probe_every=0, **TINY))
    ev = evaluate(result.model, result.data, limit=150)
    assert ev.confusion.sum() == 150 and ev.predictions.shape == (150,)
    assert ev.acc == pytest.approx(float(ev.confusion.trace()) / 150)
    assert ev.acc == pytest.approx(float((ev.predictions == ev.labels).float().mean()))


def test_schedules():
    total = 100
    cosine = TrainConfig(schedule="cosine", lr=0.1, warmup=0.1)
    assert lr_at(cosine, 0, total) == pytest.approx(0.01)
    assert lr_at(cosine, 9, total) == pytest.approx(0.1)
    assert lr_at(cosine, 99, total) < 0.001
    one = TrainConfig(schedule="onecycle", lr=0.2)
    values = [lr_at(one, s, total) for s in range(total)]
    assert values[0] < 0.02 and max(values) == pytest.approx(0.2) and values.index(max(values)) == 24
    multi = TrainConfig(schedule="multistep", lr=0.1, milestones=(0.5, 0.75), gamma=0.1)
    assert [lr_at(multi, s, total) for s in (49, 50, 75)] == pytest.approx([0.1, 0.01, 0.001])
    assert lr_at(TrainConfig(schedule="constant", optimizer="adam"), 50, total) == pytest.approx(2e-3)


def test_absurd_learning_rate_diverges_with_a_hint():
    config = TrainConfig(max_steps=30, lr=100.0, schedule="constant", probe_every=0, **TINY)
    with pytest.raises(Diverged, match=r"diverged at step \d+ .*lower the learning rate \(try 10\)"):
        fit(config)
    broken = build_seeded_model(resolve_spec("resnet20", width=8, layers=(1, 1, 1)), seed=0)
    with torch.no_grad():
        broken.fc.bias.fill_(float("nan"))
    with pytest.raises(Diverged, match=r"diverged at step 1 \(loss nan"):
        fit(config.replace(lr=0.1), model=broken)


@pytest.mark.parametrize("changes,field", [
    (dict(epochs=0), "epochs"), (dict(optimizer="rmsprop"), "optimizer"), (dict(lr=-1.0), "lr"),
    (dict(schedule="step"), "schedule"), (dict(precision="fp16"), "precision"), (dict(device="tpu"), "device"),
    (dict(batch_size=0), "batch_size"), (dict(overrides=dict(width=0)), "width"),
])
def test_bad_config_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**changes).validate()


def test_stop_during_backward_ends_the_step_before_the_update():
    stop = threading.Event()
    model = build_seeded_model(resolve_spec("resnet20", **TINY["overrides"]), seed=0)
    model.fc.register_full_backward_hook(lambda *_: stop.set())  # the first module backward reaches
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(TrainConfig(max_steps=5, probe_every=0, **TINY), model=model, stop=stop)
    assert result.status == Status.STOPPED and result.final.steps == 0  # step 1 never reached optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if "running" not in k
               and "num_batches" not in k)


@pytest.mark.parametrize("changes, optimizer", [
    (dict(optimizer="adam"), torch.optim.Adam),
    (dict(optimizer="adamw", schedule="cosine", warmup=0.2), torch.optim.AdamW),
    (dict(nesterov=False, schedule="multistep"), torch.optim.SGD),
    (dict(label_smoothing=0.2), torch.optim.SGD),
])
def test_optimisers_schedules_and_label_smoothing_train(changes, optimizer):
    config = TrainConfig(max_steps=30, probe_every=0, **{**TINY, "log_every": 1, **changes})
    model = build_seeded_model(resolve_spec("resnet20", **TINY["overrides"]), seed=0)
    made = make_optimizer(config, model)
    assert type(made) is optimizer and made.defaults["weight_decay"] == config.weight_decay
    assert made.defaults.get("nesterov", False) == (optimizer is torch.optim.SGD and config.nesterov)
    train = of_kind(fit(config, model=model).records, TrainRecord)
    assert [r.lr for r in train] == [lr_at(config, r.step - 1, 30) for r in train]
    assert sum(r.loss for r in train[-5:]) / 5 < train[0].loss - 0.1


def test_threads_apply_to_the_run_only():
    threads = torch.get_num_threads()
    fit(TrainConfig(max_steps=1, threads=threads + 1, probe_every=0, **TINY))
    assert torch.get_num_threads() == threads


def test_bf16_nhwc_and_adamw_run():
    result = fit(TrainConfig(max_steps=3, precision="bf16", optimizer="adamw", channels_last=False,
                             probe_every=1, **TINY))
    assert result.status == Status.FINISHED and math.isfinite(result.final.test_loss)


def test_cli_json_lines_and_errors(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "resnet20", "--width", "8", "--layers", "1,1,1", "--train-subset", "128",
                 "--batch-size", "64", "--epochs", "2", "--threads", "1", "--run-dir", str(run_dir), "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2]
    final = lines[-1]
    assert {"test_acc", "test_loss", "images_per_sec", "seconds", "run_dir"} <= set(final)
    assert final["run_dir"] == str(run_dir) and (run_dir / "weights.pt").is_file()
    stored = runstore.read_run(run_dir).final
    assert final["test_acc"] == stored.test_acc == lines[-2]["test_acc"]  # the last epoch's evaluation
    assert (final["steps"], final["images_per_sec"]) == (stored.steps, stored.images_per_sec) and stored.steps == 4
    # the accuracy is the stored weights' share of correct predictions on the 2000 synthetic test images
    evaluation, data = evaluate_run(run_dir)
    assert len(data.test_labels) == 2000
    assert final["test_acc"] == int((evaluation.predictions == evaluation.labels).sum()) / 2000
    assert final["test_loss"] == pytest.approx(evaluation.loss, rel=1e-5)
    # throughput counts training time only, which is part of the wall clock
    assert final["images_per_sec"] >= final["steps"] * 64 / final["seconds"]

    for argv, field in ((["--epochs", "0"], "epochs"), (["--optimizer", "lamb"], "optimizer"),
                        (["--precision", "fp8"], "precision"), (["--lr", "x"], "lr"),
                        (["--dataset", "imagenet"], "dataset")):
        assert main(["train", "resnet20", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and field in err[0]
