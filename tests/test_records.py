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
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resnet_core import PRESETS
from resnet_core.models.spec import ModelSpec
from resnet_core.runs import loading
from resnet_core.runs import store as runstore
from resnet_core.runs.contract import (
    RUN_ID,
    DataFacts,
    DistributedFacts,
    RunConfig,
    RunState,
    TransferFacts,
    new_run_id,
    short_label,
)
from resnet_core.runs.runner import Job, run_state
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import evaluate
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
from resnet_core.training.settings import RunSettings

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
                                epochs=2, max_steps=6, batch_size=16,  # the default epochs then
                                train_subset=64, test_subset=50, log_every=2, probe_every=3,
                                pad=4)  # stored by a version whose crops were always padded 4 pixels
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
    model = loading.load_model(old_run)  # load_state_dict(strict=True): every key, every shape
    assert model.state_dict().keys() == runstore.load_weights(old_run).keys()
    data = loading.load_run_data(old_run)
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
        sk_reduction=16, sk_divisor=8, sk_split=True, res2net_scale=4, radix=2, avg_downsample="none",
        weight_standardization=False, shortcut_kernel=1, reduce_first=1, stage_blocks=None, stage_widths=None,
        block_widths=None)
    assert config.to_dict() == written_before_settings | {"settings": dict(
        augment="crop+flip", augment_reason="set in the run's config", precision="fp32",
        precision_reason="set in the run's config"), "distributed": dict(  # one process, before torchrun runs
        world_size=1, backend="", per_rank_batch=written_before_settings["train"]["batch_size"], sync_bn=False, job="")}
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


def parsed_or_value_error(parse, value, names: list[str]) -> Any:
    """`parse(value)`, or None when it raised a plain ValueError whose message is one line and starts with one of
    `names` (the field, or the object whose shape is wrong); any other exception propagates and fails the test."""
    try:
        return parse(value)
    except ValueError as exc:
        message = str(exc)
        assert type(exc) is ValueError and message and "\n" not in message, repr(exc)
        assert re.match(rf"(?:{'|'.join(map(re.escape, names))})(?!\w)", message), message
        return None


def json_text(obj: Any) -> str:
    """The object's to_dict as JSON text: equal texts mean equal values and types (1 and 1.0 differ), NaN included."""
    return json.dumps(obj.to_dict(), sort_keys=True)


def assert_typed(value: Any, hint: Any, where: str) -> None:
    """`value` holds exactly the type its field declares: an int is no bool, a float no int, a list[...] a list."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is types.UnionType:  # X | None
        if value is not None:
            assert_typed(value, next(a for a in args if a is not type(None)), where)
    elif typing.get_origin(hint) is list:
        assert type(value) is list, where
        for i, item in enumerate(value):
            assert_typed(item, args[0], f"{where}[{i}]")
    else:
        assert type(value) is hint, (where, value)


def same_value(parsed: Any, given: Any) -> bool:
    """A parsed field holds what the file held: a whole number in a float field as that float, NaN as NaN."""
    if isinstance(parsed, list):
        return type(given) is list and len(parsed) == len(given) and all(map(same_value, parsed, given))
    if isinstance(parsed, bool) or isinstance(given, bool):
        return parsed is given
    if isinstance(parsed, float):
        return math.isnan(parsed) and math.isnan(given) if math.isnan(parsed) else parsed == float(given)
    return parsed == given and isinstance(parsed, type(given))


RECORD_CLASSES = {"train": TrainRecord, "test": TestRecord, "probe": ProbeRecord, "final": FinalRecord}


def object_errors(what: str, cls: type) -> list[str]:
    """How a message about a stored object of dataclass `cls` starts: with the object, or with one of its fields."""
    fields = [f.name for f in dataclasses.fields(cls)]
    return [f"{what} must be a JSON object", *(f"{what}.{f}" for f in fields),
            *(f"{what} has no '{f}'" for f in fields)]


RECORD_ERRORS = ["record kind", "status", "probe record must hold one value per unit",
                 *(e for kind, cls in RECORD_CLASSES.items() for e in object_errors(f"{kind} record", cls))]
SPEC_ERRORS = ["spec must be a mapping", "spec has unknown field", "se",  # "se": the legacy flag
               *(f.name for f in dataclasses.fields(ModelSpec))]
CONFIG_ERRORS = ["config.json", "train config must be a mapping", "unknown override", "settings must be a JSON object",
                 *SPEC_ERRORS, *(f.name for f in dataclasses.fields(TrainConfig)),
                 *(f"settings.{f.name}" for f in dataclasses.fields(RunSettings)),
                 *object_errors("distributed", DistributedFacts), *object_errors("data", DataFacts),
                 *object_errors("transfer", TransferFacts)]
# ModelSpec's bounds as its field comments and messages state them, written out so that a looser check fails
SPEC_CHOICES = dict(block={"basic", "bottleneck", "preact_basic", "preact_bottleneck", "sk_basic", "sk_bottleneck"},
                    stem={"imagenet", "cifar", "deep", "deep_tiered"}, shortcut={"A", "B", "C", "D"},
                    attention={"none", "se", "eca"}, stem_pool={None, "max", "max_ceil", "conv", "none"},
                    anti_alias={"none", "avg", "blur"}, norm={"batch", "group"}, stride_placement={"v1.5", "v1"},
                    attention_placement={"before_add", "after_relu"})
SPEC_RANGES = dict(width=(1, 4096), stem_width=(1, 4096), groups=(1, 4096), width_per_group=(1, 4096),
                   in_channels=(1, 64), num_classes=(1, 100_000), stem_mid=(4, 4096), attention_reduction=(1, 1024),
                   attention_divisor=(1, 64), norm_groups=(1, 4096), sk_reduction=(1, 1024), sk_divisor=(1, 64))


def assert_spec_in_bounds(spec: ModelSpec) -> None:
    assert type(spec.layers) is tuple and 1 <= len(spec.layers) <= 8  # MAX_STAGES
    assert all(type(n) is int and 1 <= n <= 1000 for n in spec.layers) and sum(spec.layers) <= 2000, spec.layers
    for name, allowed in SPEC_CHOICES.items():
        assert getattr(spec, name) in allowed, name
    for name, (low, high) in SPEC_RANGES.items():
        value = getattr(spec, name)
        assert (name == "stem_width" and value is None) or (type(value) is int and low <= value <= high), name
    for name in ("skip", "zero_init_residual", "sk_split"):
        assert type(getattr(spec, name)) is bool, name
    assert spec.stem_norm in (None, True, False)


@PROPERTY
@given(RECORDS)
@example({"kind": ["train"]})
@example(changed(TRAIN, epoch=10**400))
@example(changed(TRAIN, loss=2))  # a whole number where a float is declared: loads as 2.0
@example(changed(PROBE, grad_norm=[1.0]))  # one list shorter than the units
@example(changed(FINAL, confusion=[[1, 2]] * 10))  # 10 rows of 2 for 10 classes
def test_record_from_dict_returns_or_raises_value_error(value):
    """A record that loads is the file's fields, exactly typed, and round-trips; anything else is one ValueError
    naming its field."""
    record = parsed_or_value_error(record_from_dict, value, RECORD_ERRORS)
    if record is None:
        return
    cls = RECORD_CLASSES[value["kind"]]
    assert type(record) is cls
    fields = [f.name for f in dataclasses.fields(cls)]
    assert list(record.to_dict()) == ["kind", *fields]  # keys it does not know are dropped
    for name in fields:
        assert_typed(getattr(record, name), typing.get_type_hints(cls)[name], name)
        assert same_value(getattr(record, name), value[name]), name
    if isinstance(record, ProbeRecord):
        assert len({len(record.units), len(record.stages), len(record.grad_norm), len(record.act_mean),
                    len(record.act_std)}) == 1
    if isinstance(record, FinalRecord):
        assert record.status in {"queued", "running", "finished", "stopped", "diverged", "failed", "interrupted"}
        n = len(record.classes)
        assert record.confusion is None or (len(record.confusion) == n and all(len(r) == n for r in record.confusion))
    assert json_text(cls.from_dict(record.to_dict())) == json_text(record)
    assert json_text(record_from_dict(json.loads(json.dumps(record.to_dict())))) == json_text(record)


@PROPERTY
@given(CONFIGS)
@example(changed(CONFIG, created=10**400))
@example(changed(CONFIG, train=changed(CONFIG["train"], momentum=10**400)))
def test_run_config_from_dict_returns_or_raises_value_error(value):
    """A config that loads holds the file's values in typed parts and round-trips through JSON; anything else is
    one ValueError naming its field."""
    config = parsed_or_value_error(RunConfig.from_dict, value, CONFIG_ERRORS)
    if config is None:
        return
    assert (type(config.train), type(config.spec), type(config.data), type(config.settings)) == (
        TrainConfig, ModelSpec, DataFacts, RunSettings)
    assert type(config.created) is float and math.isfinite(config.created) and type(config.run_id) is str
    assert same_value(config.created, value.get("created", 0.0)) and config.run_id == value.get("run_id", "")
    assert_spec_in_bounds(config.spec)
    for name in (f.name for f in dataclasses.fields(DataFacts)):
        assert same_value(getattr(config.data, name), value["data"][name]), name
    assert config.settings.augment in {"none", "crop", "crop+flip"} and config.settings.precision in {"fp32", "bf16"}
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert json_text(again) == json_text(config)


@PROPERTY
@given(SPECS)
@example({"layers": [1] * 1100})  # stage widths beyond the float range
@example({**SPEC, "layers": [1], "width": 4097})  # one stage: only the width's own bound refuses it
def test_model_spec_from_dict_returns_or_raises_value_error(value):
    """A spec that loads holds the file's fields, inside ModelSpec's bounds, and round-trips through JSON; anything
    else is one ValueError naming its field."""
    spec = parsed_or_value_error(ModelSpec.from_dict, value, SPEC_ERRORS)
    if spec is None:
        return
    assert type(spec) is ModelSpec
    assert_spec_in_bounds(spec)
    for name, given_value in value.items():
        if name != "se":  # the legacy flag is translated into attention (test_run_config_and_spec_round_trip)
            shown_value = list(getattr(spec, name)) if name == "layers" else getattr(spec, name)
            assert same_value(shown_value, given_value), name
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_nan_and_infinite_values_are_kept_where_a_number_is_allowed():
    record = record_from_dict(changed(TRAIN, loss=math.nan, eta_sec=math.inf))
    assert math.isnan(record.loss) and record.eta_sec == math.inf  # a diverging window is still a record
