"""The typed run contract (records.py): a run folder written by the old code still loads and reproduces its
accuracy, every type round-trips through JSON, bad input is one ValueError naming the field, and live states."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resnet_core import PRESETS, runstore
from resnet_core.config import TrainConfig
from resnet_core.jobs import Job, run_state
from resnet_core.records import (
    RUN_ID,
    DataFacts,
    FinalRecord,
    ProbeRecord,
    RunConfig,
    RunState,
    Status,
    TestRecord,
    TrainRecord,
    final_of,
    new_run_id,
    of_kind,
    record_from_dict,
    short_label,
)
from resnet_core.settings import RunSettings
from resnet_core.spec import ModelSpec
from resnet_core.train import evaluate

torch.set_num_threads(1)
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run-v1"  # written by the code before records.py
KINDS = ["train", "train", "probe", "train", "test", "train", "probe", "test", "final"]


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy of the fixture folder, so no test writes into the repository."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "runs" / "run-v1"))


def fixture_records() -> list[dict]:
    return [json.loads(line) for line in (FIXTURE / runstore.METRICS).read_text().splitlines()]


def fixture_config() -> dict:
    return json.loads((FIXTURE / runstore.CONFIG).read_text())


def stored_status(folder: Path, **status) -> None:
    (folder / runstore.STATUS).write_text(json.dumps(status))


# ---------------------------------------------------------------- (a) a run folder written by the old code


def test_old_run_folder_reads_through_the_typed_store(old_run):
    info = runstore.read_run(old_run)
    assert (info.run_id, info.status, info.message) == ("run-v1", Status.FINISHED, "")
    assert info.created > 0 and info.has_weights and info.skip
    spec = info.config.spec
    assert (spec.layers, spec.width, spec.num_classes, spec.stem, spec.shortcut) == ((1, 1, 1), 4, 10, "cifar", "A")
    assert info.config.data.name == "synthetic" and len(info.config.data.classes) == 10
    train = info.config.train
    assert train == TrainConfig(overrides=dict(layers=(1, 1, 1), width=4), augment="crop+flip", precision="fp32",
                                max_steps=6, batch_size=16,
                                train_subset=64, test_subset=50, log_every=2, probe_every=3)
    assert [r.run_id for r in runstore.list_runs(old_run.parent)] == ["run-v1"]


def test_old_metrics_read_as_typed_records_in_order(old_run):
    records = runstore.read_metrics(old_run)
    assert [r.kind for r in records] == KINDS
    assert [type(r) for r in records] == [{"train": TrainRecord, "probe": ProbeRecord, "test": TestRecord,
                                           "final": FinalRecord}[k] for k in KINDS]
    assert [r.step for r in records] == [1, 2, 3, 4, 4, 6, 6, 6, 6]
    assert runstore.read_metrics(old_run, ProbeRecord) == of_kind(records, ProbeRecord)
    assert [p.step for p in of_kind(records, ProbeRecord)] == [3, 6]
    final = final_of(records)
    assert final == runstore.read_run(old_run).final  # status.json's copy is the metrics' last line
    assert (final.status, final.steps, final.test_acc) == (Status.FINISHED, 6, 0.12)
    assert of_kind(records, TestRecord)[-1].test_acc == final.test_acc


def test_old_weights_load_strictly_and_reproduce_the_stored_accuracy(old_run):
    final = runstore.read_run(old_run).final
    model = runstore.load_model(old_run)  # load_state_dict(strict=True): every key, every shape
    assert model.state_dict().keys() == runstore.load_weights(old_run).keys()
    data = runstore.load_run_data(old_run)
    assert len(data.train_labels) == 64 and data.mean == tuple(runstore.read_run(old_run).config.data.mean)
    evaluation = evaluate(model, data, limit=50)
    assert int((evaluation.predictions == evaluation.labels).sum()) == 6  # 0.12 of the 50 test images
    assert evaluation.acc == final.test_acc == 0.12
    assert evaluation.confusion.tolist() == final.confusion
    assert evaluation.loss == pytest.approx(final.test_loss, rel=1e-5)


# ---------------------------------------------------------------- (b) round trips


def stopped_before_any_evaluation() -> FinalRecord:
    return FinalRecord(step=0, epoch=0.0, time=0.5, status=Status.STOPPED, steps=0, epochs=0.0, seconds=0.5,
                       images_per_sec=0.0, test_loss=None, test_acc=None, train_loss=None, classes=["a", "b"],
                       confusion=None)


@pytest.mark.parametrize("index", range(len(KINDS)))
def test_every_fixture_record_round_trips(index):
    record = record_from_dict(fixture_records()[index])
    assert type(record).from_dict(record.to_dict()) == record
    assert record_from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.to_dict() == fixture_records()[index]  # nothing the old code wrote is lost or renamed


def test_records_made_here_round_trip():
    made = [
        TrainRecord(step=1, epoch=0.01, time=0.2, images=64, loss=2.3, acc=0.1, lr=0.004, images_per_sec=900.0,
                    eta_sec=30.0, total_steps=100),
        TestRecord(step=100, epoch=1.0, time=9.0, test_loss=1.9, test_acc=0.31, train_loss=2.0, train_acc=0.28,
                   lr=0.05, images_per_sec=1100.0),
        ProbeRecord(step=20, epoch=0.2, time=2.0, units=["stem", "head"], stages=["stem", "head"],
                    grad_norm=[0.5, 1e-30], act_mean=[0.0, -1.5], act_std=[1.0, 2.0]),
        stopped_before_any_evaluation(),
        dataclasses.replace(stopped_before_any_evaluation(), test_acc=0.5, test_loss=0.7, confusion=[[1, 0], [1, 0]]),
    ]
    for record in made:
        assert record_from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_run_config_and_spec_round_trip():
    config = RunConfig.from_dict(fixture_config())
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    written_before_settings = fixture_config()
    written_before_settings["train"]["augment"] = "crop+flip"  # its True, as the modes name it now
    written_before_settings["train"] |= dict(init_from=None, finetune="all", backbone_lr_scale=1.0)  # fresh weights
    written_before_settings["train"]["checkpoint_every"] = TrainConfig().checkpoint_every  # the default since then
    # its spec's "se": false is attention "none" now, beside the fields added since (at their defaults)
    written_before_settings["spec"] = {k: v for k, v in written_before_settings["spec"].items() if k != "se"} | dict(
        attention="none", stem_mid=32, stem_pool=None, attention_reduction=16, attention_divisor=8, anti_alias="none",
        norm="batch", norm_groups=32, stride_placement="v1.5", attention_placement="before_add", stem_norm=None,
        sk_reduction=16, sk_divisor=8, sk_split=True)
    assert config.to_dict() == written_before_settings | {"settings": dict(
        augment="crop+flip", augment_reason="set in the run's config", precision="fp32",
        precision_reason="set in the run's config"), "distributed": dict(  # one process, before torchrun runs
        world_size=1, backend="", per_rank_batch=written_before_settings["train"]["batch_size"], sync_bn=False)}
    other = RunConfig(TrainConfig(model="resnext50_32x4d", overrides=dict(layers=(1, 2), groups=4), optimizer="adamw",
                                  lr=1e-3, schedule="multistep", milestones=(0.3, 0.6, 0.9), image_size=64,
                                  max_steps=10, threads=2),
                      PRESETS["resnext50_32x4d"].spec.replace(layers=(1, 2), groups=4, num_classes=3),
                      DataFacts("imagefolder", "/data/pets", ["cat", "dog", "eel"], 1, 64, 90, 10, [0.4], [0.2]),
                      RunSettings("crop", "auto: test", "bf16", "set by the user"),
                      run_id=new_run_id("resnext50_32x4d"), created=time.time())
    assert RunConfig.from_dict(json.loads(json.dumps(other.to_dict()))) == other
    assert TrainConfig.from_dict(other.train.to_dict()) == other.train
    for preset in PRESETS.values():
        assert ModelSpec.from_dict(json.loads(json.dumps(preset.spec.to_dict()))) == preset.spec


# ---------------------------------------------------------------- (c) bad input: one ValueError naming the field


def changed(base: dict, **changes) -> dict:
    return {**base, **changes}


def without(base: dict, key: str) -> dict:
    return {k: v for k, v in base.items() if k != key}


TRAIN, PROBE, FINAL = fixture_records()[0], fixture_records()[2], fixture_records()[-1]
BAD = [
    (lambda: record_from_dict(changed(TRAIN, kind="epoch")),
     "record kind must be one of train, test, probe, final; got 'epoch'"),
    (lambda: record_from_dict(without(TRAIN, "kind")), "record kind must be one of .*; got None"),
    (lambda: record_from_dict(changed(TRAIN, kind=["train"])), r"record kind must be one of .*; got \['train'\]"),
    (lambda: record_from_dict([TRAIN]), "record kind must be one of"),
    (lambda: record_from_dict(without(TRAIN, "loss")), "train record has no 'loss'"),
    (lambda: record_from_dict(changed(TRAIN, loss="2.3")), "train record.loss must be a number; got '2.3'"),
    (lambda: record_from_dict(changed(TRAIN, loss=10**400)),
     "train record.loss must be a number; got <an integer of about 401 digits>"),
    (lambda: record_from_dict(changed(TRAIN, step=True)), "train record.step must be a whole number; got True"),
    (lambda: record_from_dict(changed(TRAIN, images=64.0)), "train record.images must be a whole number; got 64.0"),
    (lambda: record_from_dict(changed(PROBE, grad_norm=[1.0])), "probe record must hold one value per unit"),
    (lambda: record_from_dict(changed(PROBE, units=["stem", 3, "a", "b", "c"])),
     r"probe record.units\[1\] must be text; got 3"),
    (lambda: record_from_dict(changed(FINAL, confusion=FINAL["confusion"][:-1])),
     "final record.confusion must be a square table"),
    (lambda: record_from_dict(changed(FINAL, confusion=[[1, 2]] * 10)),
     "final record.confusion must be a square table"),
    (lambda: record_from_dict(changed(FINAL, status="paused")), "status must be one of queued, running, .*'paused'"),
    (lambda: ModelSpec.from_dict({**PRESETS["resnet20"].spec.to_dict(), "bogus": 1}), "spec has unknown field 'bogus'"),
    (lambda: ModelSpec.from_dict(changed(PRESETS["resnet20"].spec.to_dict(), width=True)),
     "width must be an integer from 1 to 4096; got True"),
    (lambda: RunConfig.from_dict([fixture_config()]), "config.json must hold a JSON object; got list"),
    (lambda: RunConfig.from_dict(without(fixture_config(), "spec")), "config.json has no 'spec'"),
    (lambda: RunConfig.from_dict(changed(fixture_config(), created="yesterday")), "config.json created must be a time"),
    (lambda: RunConfig.from_dict(changed(fixture_config(), created=10**400)), "config.json created must be a time"),
    (lambda: RunConfig.from_dict(changed(fixture_config(), train=changed(fixture_config()["train"], lr=10**400))),
     r"lr must be a number in \(0.0, 100.0\]"),
    (lambda: RunConfig.from_dict(changed(fixture_config(), train=changed(fixture_config()["train"], epochs="2"))),
     "epochs must be an integer from 1 to 10000; got '2'"),
    (lambda: RunConfig.from_dict(changed(fixture_config(), data=without(fixture_config()["data"], "mean"))),
     "data has no 'mean'"),
    (lambda: TrainConfig.from_dict(changed(fixture_config()["train"], milestones=0.5)),
     "milestones must be a list of fractions"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_values_are_one_value_error_naming_the_field(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert type(info.value) is ValueError and "\n" not in str(info.value)


@pytest.mark.parametrize("file, text, message", [
    (runstore.CONFIG, "[1, 2]", "run run-v1: config.json: config.json must hold a JSON object; got list"),
    (runstore.CONFIG, '{"train": ', r"run run-v1: config.json: is not valid JSON \(Expecting value at line 1\)"),
    (runstore.STATUS, '{"status": "paused"}', "run run-v1: status.json: status must be one of queued, .*'paused'"),
    (runstore.STATUS, '{"status": "finished", "message": 3}', "run run-v1: status.json: message must be text; got 3"),
    (runstore.STATUS, '"finished"', "run run-v1: status.json: must hold a JSON object; got str"),
])
def test_a_broken_folder_is_one_error_and_listing_skips_it(old_run, tmp_path, file, text, message):
    good = Path(shutil.copytree(old_run, old_run.parent / "run-v1-good"))
    (old_run / file).write_text(text)
    with pytest.raises(ValueError, match=f"^{message}$"):
        runstore.read_run(old_run)
    assert [r.run_id for r in runstore.list_runs(old_run.parent)] == [good.name]
    with pytest.raises(ValueError, match="run_dir must be a run folder holding config.json"):
        runstore.read_run(tmp_path)


# ---------------------------------------------------------------- (d) a live status whose process is gone


@pytest.fixture(scope="module")
def dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    proc = subprocess.Popen(["sleep", "60"])
    start = runstore._process_start(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


@pytest.mark.parametrize("status", ["running", "queued"])
def test_live_status_of_a_dead_process_reads_as_interrupted(old_run, dead_process, status):
    pid, start = dead_process
    stored_status(old_run, status=status, message="training", final=None, pid=pid, proc_start=start)
    info = runstore.read_run(old_run)
    assert info.status == Status.INTERRUPTED and info.state.live is False
    assert info.message == "the process running it ended before the run finished" and info.final is None
    assert run_state(None, old_run) == info.state


@pytest.mark.parametrize("pid, start", [
    (None, None), ("123", None), (True, None), (0, None), (-1, None), (2**70, None),
    ("self", "another start"),  # this process's pid recycled: a different start time is another process
])
def test_a_running_status_without_a_living_owner_reads_as_interrupted(old_run, pid, start):
    if pid == "self":
        pid, start = os.getpid(), runstore._process_start(os.getpid()) + 1
    stored_status(old_run, status="running", pid=pid, proc_start=start)
    assert runstore.read_run(old_run).status == Status.INTERRUPTED


def test_a_running_status_of_this_process_stays_running(old_run):
    pid = os.getpid()
    stored_status(old_run, status="running", message="training", pid=pid, proc_start=runstore._process_start(pid))
    assert runstore.read_run(old_run).state == RunState(Status.RUNNING, "training")
    stored_status(old_run, status="finished", pid=12345678)  # an ended run does not need its owner
    assert runstore.read_run(old_run).status == Status.FINISHED


# ---------------------------------------------------------------- (e) jobs.run_state


def test_run_state_prefers_the_job_and_falls_back_to_the_folder(old_run, tmp_path):
    assert run_state(None, None) is None
    assert run_state(None, tmp_path / "not-yet") is None  # a run that has not written its folder yet
    assert run_state(None, old_run) == RunState(Status.FINISHED, "")
    job = Job(TrainConfig(max_steps=1), owner="a", run_dir=str(old_run), data=None)  # never started
    assert run_state(job, old_run) == job.snapshot().state == RunState(Status.QUEUED, "waiting for a free slot")
    assert run_state(job, None) == job.snapshot().state
    (old_run / runstore.CONFIG).write_text("[]")
    broken = run_state(None, old_run)
    assert broken.status == Status.FAILED and broken.message.startswith("run run-v1: config.json:")


# ---------------------------------------------------------------- (f) run ids


@pytest.mark.parametrize("name", ["resnet20", "plain-56", "degradation-resnet8", "wrn16_4"])
def test_run_ids_sort_by_time_and_keep_their_name(name):
    before = time.strftime("%Y%m%d-%H%M%S")
    run_id = new_run_id(name)
    after = time.strftime("%Y%m%d-%H%M%S")
    assert RUN_ID.fullmatch(run_id) and before <= run_id[:15] <= after
    label = short_label(run_id)
    assert label.rpartition("-")[0] == name and run_id == f"{run_id[:15]}-{label}"
    assert re.fullmatch("[0-9a-f]{4}", label.rpartition("-")[2])  # random, so ids made in one second differ
    assert short_label(label) == label and short_label("run-v1") == "run-v1"  # not an id: unchanged


# ---------------------------------------------------------------- (g) random JSON never escapes as another error

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def _mutated(base: dict) -> st.SearchStrategy:
    """`base` with some keys replaced by random JSON values, dropped, or added."""
    keys = sorted(base)
    replaced = st.dictionaries(st.sampled_from(keys), JSON, max_size=3)
    dropped = st.sets(st.sampled_from(keys), max_size=2)
    added = st.dictionaries(st.text(max_size=8), JSON, max_size=2)
    return st.tuples(replaced, dropped, added).map(
        lambda t: {**{k: v for k, v in base.items() if k not in t[1]}, **t[0], **t[2]})


RECORDS = st.one_of(JSON, *[_mutated(r) for r in fixture_records()])
SPEC = PRESETS["resnet20"].spec.to_dict()
SPECS = st.one_of(JSON, _mutated(SPEC), _mutated(SPEC).map(lambda d: {k: v for k, v in d.items() if k in SPEC}))
CONFIG = fixture_config()
CONFIGS = st.one_of(JSON, _mutated(CONFIG), *[_mutated(CONFIG[part]).map(lambda d, part=part: {**CONFIG, part: d})
                                              for part in ("train", "spec", "data")])


# modest and repeatable: no timing deadline, and no example database written into the repository
PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def returns_or_value_error(parse, value) -> None:
    try:
        parse(value)
    except ValueError:
        pass


@PROPERTY
@given(RECORDS)
@example({"kind": ["train"]})
@example(changed(TRAIN, epoch=10**400))
def test_record_from_dict_returns_or_raises_value_error(value):
    returns_or_value_error(record_from_dict, value)


@PROPERTY
@given(CONFIGS)
@example(changed(CONFIG, created=10**400))
@example(changed(CONFIG, train=changed(CONFIG["train"], momentum=10**400)))
def test_run_config_from_dict_returns_or_raises_value_error(value):
    returns_or_value_error(RunConfig.from_dict, value)


@PROPERTY
@given(SPECS)
@example({"layers": [1] * 1100})  # stage widths beyond the float range
def test_model_spec_from_dict_returns_or_raises_value_error(value):
    returns_or_value_error(ModelSpec.from_dict, value)


def test_nan_and_infinite_values_are_kept_where_a_number_is_allowed():
    record = record_from_dict(changed(TRAIN, loss=math.nan, eta_sec=math.inf))
    assert math.isnan(record.loss) and record.eta_sec == math.inf  # a diverging window is still a record
