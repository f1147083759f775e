"""Transfer learning: parameter counts per strategy, frozen tensors bit-identical after training, a new head for a
new class count, the backbone lr scale, and bad sources refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from streamlit.testing.v1 import AppTest
from torch import nn

from resnet_core.cli import main
from resnet_core.models.presets import resolve_spec
from resnet_core.models.resnet import ResNet
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.runner import default_runner
from resnet_core.runs.transfer import TransferSummary, apply_init, initial_model, transfer_summary
from resnet_core.training.config import TrainConfig
from resnet_core.training.distributed import GlobalBatchNorm2d, Replicas
from resnet_core.training.engine import fit, load_data
from resnet_core.training.freeze import freeze, param_groups
from resnet_core.training.records import Status, TrainRecord, of_kind

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent

QUICK = dict(train_subset=64, batch_size=32, test_subset=100, augment="none", probe_every=0, threads=1)
QUICK_ARGS = ["--train-subset", "64", "--batch-size", "32", "--no-augment", "--probe-every", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A stored ResNet-20 run (full width, two steps): the weights every fine-tuning here starts from."""
    run_dir = tmp_path_factory.mktemp("source") / "resnet20"
    execute(TrainConfig(max_steps=2, **QUICK), run_dir=run_dir)
    return run_dir


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / runstore.WEIGHTS, weights_only=True)


def test_head_only_trains_650_parameters_and_the_rest_stays_bit_identical(source, tmp_path, capsys):
    run_dir = tmp_path / "head"
    code = main(["train", "resnet20", "--init-from", str(source), "--finetune", "head", "--steps", "2",
                 *QUICK_ARGS, "--run-dir", str(run_dir), "--json"])
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0 and final["status"] == "finished"
    assert (final["init_from"], final["finetune"], final["trainable_params"]) == (str(source), "head", 64 * 10 + 10)
    stored = json.loads((run_dir / runstore.CONFIG).read_text())
    assert stored["train"]["init_from"] == str(source) and stored["train"]["finetune"] == "head"
    assert stored["transfer"]["trainable_params"] == 650 and stored["transfer"]["new_head"] is False
    assert stored["transfer"]["total_params"] == 269_722
    assert runstore.read_run(run_dir).config.transfer.source == "run resnet20 (resnet20)"
    assert transfer_summary(run_dir) == TransferSummary(init_from=str(source), finetune="head", trainable_params=650)
    assert transfer_summary(source) == TransferSummary(init_from=None, finetune=None, trainable_params=269_722)
    before, after = _state(source), _state(run_dir)
    frozen = [k for k in before if not k.startswith("fc.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # BN running statistics included
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_last_stage_and_all_report_counts_checked_against_the_model(source):
    data = load_data(TrainConfig(**QUICK))
    last = TrainConfig(max_steps=2, init_from=str(source), finetune="last-stage", **QUICK)
    model, facts = initial_model(last, data)
    expected = sum(p.numel() for p in [*model.layer3.parameters(), *model.fc.parameters()])
    # layer3: 32->64 block (18,432 + 36,864 conv weights, 256 BN) and two 64->64 blocks (73,728 + 256 each)
    assert expected == 55_552 + 2 * 73_984 + 650
    assert facts.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(last, data=data, model=model)
    after = result.model.state_dict()
    for key, value in after.items():
        trained = key.startswith(("layer3.", "fc."))
        assert torch.equal(before[key], value) != trained or key.endswith("num_batches_tracked"), key
    _, facts_all = initial_model(last.replace(finetune="all"), data)
    assert facts_all.trainable_params == facts_all.total_params == 269_722


def test_a_new_class_count_gets_a_new_head(source, tmp_path):
    state = _state(source)
    state["fc.weight"], state["fc.bias"] = torch.zeros(5, 64), torch.zeros(5)
    torch.save(state, tmp_path / "five.pt")
    model = ResNet(resolve_spec("resnet20"))
    facts = apply_init(model, TrainConfig(init_from=str(tmp_path / "five.pt"), finetune="head"))
    assert facts.new_head and facts.trainable_params == 650 and facts.source == f"file {tmp_path / 'five.pt'}"
    assert torch.equal(model.conv1.weight, state["conv1.weight"]) and model.fc.weight.abs().sum() > 0


def test_backbone_lr_scale_slows_the_backbone_only(source):
    data = load_data(TrainConfig(**QUICK))
    config = TrainConfig(max_steps=2, init_from=str(source), schedule="constant", lr=0.05, **QUICK)
    moved = {}
    for scale in (1.0, 1e-6):
        model, _ = initial_model(config.replace(backbone_lr_scale=scale), data)
        groups = param_groups(model, scale)
        assert [g["lr_scale"] for g in groups] == ([1.0] if scale == 1.0 else [scale, 1.0])
        before = model.conv1.weight.detach().clone()
        result = fit(config.replace(backbone_lr_scale=scale), data=data, model=model)
        moved[scale] = float((result.model.conv1.weight.detach() - before).abs().max())
        assert of_kind(result.records, TrainRecord)[0].lr == pytest.approx(0.05)  # the head's lr is the lr
    assert 0 < moved[1e-6] < moved[1.0] * 1e-3


@pytest.mark.parametrize("argv, message", [
    (["resnet18", "--init-from", "torchvision", "--image-size", "32"],
     "could not download resnet18 weights IMAGENET1K_V1 from https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    (["plain20", "--init-from", "{source}"],
     "init_from: run resnet20 is resnet20 but the model to train is plain20; fine-tuning needs the same architecture"),
    (["resnet20", "--init-from", "{empty}", "--finetune", "head"], "run no-weights has no weights yet"),
    (["resnet20", "--finetune", "head"], "finetune head needs init_from"),
    (["resnet20", "--init-from", "{source}", "--finetune", "middle"], "finetune must be one of head, last-stage, all"),
    (["resnet20", "--init-from", "torchvision"], "init_from torchvision: torchvision has weights only for its own"),
    (["resnet20", "--init-from", "{missing}"], "init_from must be a run folder, torchvision[:WEIGHTS] or a state_dict"),
    (["resnet20", "--init-from", "{config}"], "cannot be read as a state_dict of tensors"),
])
def test_bad_sources_are_one_line_and_nothing_is_written(source, tmp_path, capsys, monkeypatch, argv, message):
    empty = tmp_path / "no-weights"
    shutil.copytree(source, empty, ignore=shutil.ignore_patterns(runstore.WEIGHTS))
    names = dict(source=source, empty=empty, missing=tmp_path / "missing", config=source / runstore.CONFIG)
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    if argv[-1] == "32" and Path(torch.hub.get_dir(), "checkpoints", "resnet18-f37072fd.pth").exists():
        pytest.skip("torchvision's resnet18 weights are in the torch hub cache here: nothing is missing")
    code = main(["train", *[a.format(**names) for a in argv], "--steps", "2", *QUICK_ARGS])
    err = capsys.readouterr().err
    assert code == (1 if "could not download" in message else 2) and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_train_page_queues_the_three_strategies_and_shows_them_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path / "runs"))
    small = dict(overrides=dict(width=8, layers=(1, 1, 1)))
    source = execute(TrainConfig(max_steps=2, **small, **QUICK), run_dir=tmp_path / "runs" / "source").model
    at = AppTest.from_file(str(ROOT / "pages" / "4_Train.py"), default_timeout=120)
    at.session_state["model_choice"] = {"model": "resnet20", "overrides": small["overrides"]}
    for key, value in dict(train_train_subset=64, train_max_steps=2, train_batch_size=32, train_threads=1,
                           train_probe_every=0, train_augment="none").items():
        at.session_state[key] = value
    at.run()
    assert at.button(key="train_strategies_start").disabled  # fresh weights: nothing to fine-tune
    start_from = at.selectbox(key="train_init_from")
    assert start_from.options[0] == "fresh weights (train from scratch)" and len(start_from.options) == 2
    start_from.set_value(str(tmp_path / "runs" / "source")).run()
    assert any("eval mode" in c.value for c in at.caption)
    at.button(key="train_strategies_start").click().run()
    assert not at.exception and not at.error
    jobs = [default_runner().get(i) for i in at.session_state["train_strategies"]]
    assert [job.config.finetune for job in jobs] == ["head", "last-stage", "all"]
    assert all(job.wait(120) for job in jobs)
    at.run()
    table = at.dataframe[0].value
    total = sum(p.numel() for p in source.parameters())
    last_stage = sum(p.numel() for p in [*source.layer3.parameters(), *source.fc.parameters()])
    assert table["trainable parameters"].tolist() == [f"{n:,} of {total:,}" for n in (330, last_stage, total)]
    assert table["status"].tolist() == ["finished"] * 3
    titles = [json.loads(e.proto.spec)["layout"]["yaxis"]["title"]["text"] for e in at.main
              if e.type == "plotly_chart" and "train_strategies" in e.proto.id]
    assert titles == ["test accuracy", "train loss"]
    (tmp_path / "runs" / "source" / runstore.WEIGHTS).unlink()  # the source loses its weights: Start says so at once
    at.button(key="train_start").click().run()
    assert [e.value for e in at.error] == ["init_from: run source has no weights yet (weights.pt is written when the "
                                           "run ends)"]
    assert len(list((tmp_path / "runs").iterdir())) == 4  # the source and the three strategies: nothing new


def test_a_spoilt_transfer_record_in_config_json_is_one_line(source, tmp_path):
    run_dir = tmp_path / "tuned"
    execute(TrainConfig(max_steps=1, init_from=str(source), finetune="head", **QUICK), run_dir=run_dir)
    stored = json.loads((run_dir / runstore.CONFIG).read_text())
    assert runstore.read_run(run_dir).config.transfer.to_dict() == stored["transfer"]
    for field, value, message in (("trainable_params", "650", "transfer.trainable_params must be a whole number"),
                                  ("new_head", 0, "transfer.new_head must be true or false"),
                                  ("source", None, "transfer.source must be text")):
        (run_dir / runstore.CONFIG).write_text(json.dumps({**stored, "transfer": {**stored["transfer"],
                                                                                  field: value}}))
        with pytest.raises(ValueError, match=message):
            runstore.read_run(run_dir)


def test_a_torchvision_state_dict_file_loads_with_a_new_head(tmp_path):
    import torchvision

    torch.manual_seed(1)
    theirs = torchvision.models.resnet18()
    torch.save(theirs.state_dict(), tmp_path / "tv.pt")
    model = ResNet(resolve_spec("resnet18", num_classes=10))
    facts = apply_init(model, TrainConfig(model="resnet18", init_from=str(tmp_path / "tv.pt"), finetune="head"))
    assert facts.new_head and facts.trainable_params == 512 * 10 + 10 and facts.total_params == 11_181_642
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.state_dict().items() if not k.startswith("fc."))


def test_a_stopped_head_only_run_resumes_without_its_source(source, tmp_path, capsys):
    """The checkpoint holds the weights and only the head's optimizer state: a resume freezes the same parameters
    and never reads the source again (here it is gone); the backbone stays the source's, bit for bit."""
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    run_dir = tmp_path / "head"
    stop = threading.Event()
    stopped = execute(TrainConfig(max_steps=6, init_from=str(copy), finetune="head", checkpoint_every=1, **QUICK),
                      run_dir=run_dir, on_record=lambda r: r.step >= 2 and stop.set(), stop=stop)
    assert stopped.status == Status.STOPPED and stopped.final.steps < 6
    shutil.rmtree(copy)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--threads", "1", "--json"]) == 0
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["status"] == "finished" and final["resumed_from"] == stopped.final.steps
    assert final["trainable_params"] == 650
    before, after = _state(source), _state(run_dir)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("fc."))


def test_frozen_batch_norms_stay_frozen_under_sync_bn(tmp_path):
    """torchrun --sync-bn swaps every BatchNorm for one whose statistics span the processes; the frozen ones must
    still keep the source's statistics (a one-process gloo group stands in for the job)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = ResNet(resolve_spec("resnet20", width=4, layers=(1, 1, 1)))
        freeze(model, "head")
        net = Replicas(rank=0, world_size=2, backend="gloo", sync_bn=True).prepare(model)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert norms and all(isinstance(m, GlobalBatchNorm2d) for m in norms)
        before = [m.running_mean.clone() for m in norms]
        model.train()
        net(torch.randn(8, 3, 32, 32))
        assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    finally:
        dist.destroy_process_group()


def test_a_backbone_lr_scale_without_init_from_is_refused_in_one_line(capsys):
    with pytest.raises(ValueError, match="backbone_lr_scale 0.1 needs init_from"):
        TrainConfig(backbone_lr_scale=0.1).validate()
    assert main(["train", "resnet20", "--backbone-lr-scale", "0.1", *QUICK_ARGS]) == 2
    assert capsys.readouterr().err == ("error: backbone_lr_scale 0.1 needs init_from: a fresh model has no backbone "
                                       "to slow down (leave it at 1)\n")
