"""Hostile specs, URLs, inputs and files: every one is either a valid summary or one ValueError line, within a second.

Random specs (huge, negative and zero integers, strings, bools, None, layer tuples of any length) go through the
three ways in: `ModelSpec(...).validate()`, `ModelSpec.from_dict` (a config.json) and the URL's query string
(`choice_from_query_params(...).spec()`); then `summarize` at the spec's natural input. Never another exception
type, never a multi-line or unbounded message, never a hang. Files named by a user (a state_dict, an image in a
folder) that are FIFOs or devices are refused before they are read; a library's warning is not a second line.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from resnet_core.data.folders import scan_folder
from resnet_core.experiments.degradation_status import queued_file, read_queued
from resnet_core.introspect.summary import summarize
from resnet_core.models.presets import PRESETS
from resnet_core.models.resnet import build_model
from resnet_core.models.spec import (
    ANTI_ALIASES,
    ATTENTION_PLACEMENTS,
    ATTENTIONS,
    AVG_DOWNSAMPLES,
    BLOCKS,
    FIELDS,
    MAX_BLOCKS_PER_STAGE,
    MAX_CHANNELS,
    MAX_STAGES,
    MAX_TOTAL_BLOCKS,
    NORMS,
    OVERRIDABLE,
    SHORTCUTS,
    STEM_POOLS,
    STEMS,
    STRIDE_PLACEMENTS,
    ModelSpec,
    field_to_text,
    natural_input_size,
)
from resnet_core.runs.store import read_metrics
from resnet_core.runs.transfer import load_state_file
from tests.conftest import call_within, run_cli
from ui.widgets import choice_from_query_params

HANG_SECONDS = 30.0  # per example: input is refused or summarized, never hangs (speed: benchmarks/bench_any_depth.py)
EXAMPLES = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# Sizes around and far beyond every bound.
EDGES = [0, -1, -3, 1, 2, 63, 64, 65, 4096, 4097, MAX_BLOCKS_PER_STAGE + 1, MAX_TOTAL_BLOCKS + 1, MAX_CHANNELS,
         100_000, 100_001, 2**31, 2**63, 10**30, -10**30]
# An integer of 5,000 digits (repr() refuses beyond 4,300): mapped, so that no strategy's repr holds it.
HUGE = st.one_of(st.sampled_from(EDGES), st.just(5000).map(lambda digits: 10**digits))
INTS = st.one_of(st.integers(-3, 130), st.integers(), HUGE)
JUNK = st.one_of(st.booleans(), st.none(), st.text(max_size=10), st.floats(), st.lists(st.integers(), max_size=3))
STAGE = st.one_of(st.integers(-2, 12), HUGE, st.booleans(), st.none(), st.floats(), st.text(max_size=3))
HOSTILE_LAYERS = st.one_of(
    st.lists(STAGE, max_size=12).map(tuple),
    st.lists(st.integers(1, 3), min_size=9, max_size=60).map(tuple),  # beyond MAX_STAGES
    st.text(alphabet="0123456789,- x", max_size=40),
    JUNK,
)
# A spec that passes has at most 8 stages of 10 blocks, so its summary stays well within the second; the largest
# allowed (2,000 blocks) takes a few seconds and is not drawn here.
VALID = {
    "block": st.sampled_from(BLOCKS),
    "layers": st.lists(st.integers(1, 10), min_size=1, max_size=MAX_STAGES).map(tuple),
    "width": st.one_of(st.sampled_from([4, 16, 64]), st.integers(1, 160)),
    "stem_width": st.one_of(st.none(), st.integers(1, 64)),
    "groups": st.sampled_from([1, 1, 1, 2, 32]),
    "width_per_group": st.sampled_from([64, 64, 4, 128]),
    "stem": st.sampled_from(STEMS),
    "shortcut": st.sampled_from(SHORTCUTS),
    "skip": st.booleans(),
    "attention": st.sampled_from(ATTENTIONS),
    "in_channels": st.one_of(st.sampled_from([1, 3]), st.integers(1, 64)),
    "num_classes": st.one_of(st.integers(1, 1000), st.just(100_000)),
    "zero_init_residual": st.booleans(),
    "stem_mid": st.one_of(st.just(32), st.integers(4, 64)),
    "stem_pool": st.one_of(st.none(), st.sampled_from(STEM_POOLS)),
    "attention_reduction": st.one_of(st.sampled_from([16, 4]), st.integers(1, 64)),
    "attention_divisor": st.sampled_from([8, 1, 3]),
    "anti_alias": st.sampled_from(ANTI_ALIASES),
    "norm": st.sampled_from(NORMS),
    "norm_groups": st.sampled_from([32, 1, 2, 4]),
    "stride_placement": st.sampled_from(STRIDE_PLACEMENTS),
    "attention_placement": st.sampled_from(ATTENTION_PLACEMENTS),
    "stem_norm": st.one_of(st.none(), st.booleans()),
    "sk_reduction": st.one_of(st.sampled_from([16, 8]), st.integers(1, 64)),
    "sk_divisor": st.sampled_from([8, 16, 32, 1, 3]),
    "sk_split": st.booleans(),
    "res2net_scale": st.one_of(st.just(4), st.integers(2, 8)),
    "radix": st.sampled_from([2, 1, 4]),
    "avg_downsample": st.sampled_from(AVG_DOWNSAMPLES),
    "weight_standardization": st.booleans(),
    "shortcut_kernel": st.sampled_from([1, 3]),
    "reduce_first": st.sampled_from([1, 2, 4]),
    "stage_blocks": st.one_of(st.none(), st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=MAX_STAGES).map(tuple)),
    "stage_widths": st.one_of(st.none(), st.lists(st.integers(1, 160), min_size=1, max_size=MAX_STAGES).map(tuple)),
    "block_widths": st.one_of(st.none(), st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64),
                                                            st.sampled_from([16, 32, 64])), max_size=12).map(tuple)),
}
HOSTILE = {name: st.one_of(HOSTILE_LAYERS if name == "layers" else INTS, JUNK) for name in VALID}


def mostly(valid: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """Hostile one time in ten, so that a fair share of specs pass and are summarized."""
    return st.integers(0, 9).flatmap(lambda k: hostile if k == 0 else valid)


SPEC_FIELDS = st.fixed_dictionaries({}, optional={name: mostly(VALID[name], HOSTILE[name]) for name in VALID})
LONG_TEXT = st.sampled_from(["9", "x", "1,", "-"]).map(lambda unit: unit * 5000)  # built late: short reprs
TEXT = st.one_of(st.text(max_size=20), LONG_TEXT, st.integers().map(str), st.sampled_from(EDGES).map(str),
                 st.sampled_from(["", "-3,3,3", "1e9", "true", "0", "-1", "4096", "4097", "bottleneck", "1000,1000,1",
                                  "100000,100000", " 3, 4 ,6,3 ", "3;4", "0x10", "1_000", "٣"]))


def as_text(value) -> str:
    return field_to_text(value)


# Every preset: a summary traces at most two blocks per stage, so even resnet1202 is a fraction of a second.
QUICK_PRESETS = sorted(PRESETS)
QUERY = st.fixed_dictionaries(
    {"model": mostly(st.sampled_from(QUICK_PRESETS), st.text(max_size=10))},
    optional={**{name: mostly((st.integers(1, 64) if name == "stem_width" else VALID[name]).map(as_text), TEXT)
                 for name in OVERRIDABLE}, "unknown": TEXT},
)


@pytest.fixture(scope="module", autouse=True)
def warm():
    """The first summary in a process pays torch's one-time imports (over a second); examples are timed after it."""
    summarize("resnet20", (3, 32, 32), 1)


def _valid_or_one_value_error(make_spec) -> None:
    start = time.perf_counter()
    try:
        spec = make_spec()
        if spec is None:  # a URL without ?model= describes no choice
            return
        summary = summarize(spec, natural_input_size(spec), 1)
    except ValueError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 600, message
        event(f"refused: {message.split()[0]}")
    else:
        event("summarized")
        assert isinstance(spec, ModelSpec) and spec.validate() is spec
        assert 1 <= len(spec.layers) <= MAX_STAGES and sum(spec.layers) <= MAX_TOTAL_BLOCKS
        assert max(spec.layers) <= MAX_BLOCKS_PER_STAGE
        assert summary.output_shape == (1, spec.num_classes) and summary.depth == spec.depth
        assert 0 < summary.total_params == summary.trainable_params and summary.mult_adds > 0
        assert summary.stages["blocks"].sum() == sum(spec.layers)
    assert time.perf_counter() - start < HANG_SECONDS


@EXAMPLES
@given(SPEC_FIELDS)
def test_random_specs_validate_or_raise_one_value_error(fields):
    _valid_or_one_value_error(lambda: ModelSpec(**fields).validate())


@EXAMPLES
@given(SPEC_FIELDS, mostly(st.just({}), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), JUNK,
                                                         min_size=1, max_size=2)))
def test_random_config_json_specs_load_or_raise_one_value_error(fields, extra):
    _valid_or_one_value_error(lambda: ModelSpec.from_dict({**fields, **extra}))


@EXAMPLES
@given(QUERY, st.booleans())
def test_random_query_strings_give_a_spec_or_one_value_error(params, without_model):
    if without_model:
        params = {k: v for k, v in params.items() if k != "model"}

    def from_url():
        choice = choice_from_query_params(params)
        return None if choice is None else choice.spec()

    _valid_or_one_value_error(from_url)


@EXAMPLES
@given(mostly(st.tuples(st.just(3), st.integers(1, 300), st.integers(1, 300)),
              st.one_of(st.tuples(INTS, INTS, INTS), st.lists(INTS, max_size=5), JUNK, TEXT)),
       mostly(st.integers(1, 64), st.one_of(INTS, JUNK)))
def test_random_inputs_and_batches_summarize_or_raise_one_value_error(input_size, batch):
    start = time.perf_counter()
    try:
        summary = summarize(PRESETS["resnet20"].spec, input_size, batch)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
        event(f"refused: {str(exc).split()[0]}")
    else:
        event("summarized")
        assert summary.input_size == tuple(input_size) and summary.output_shape == (batch, 10)
    assert time.perf_counter() - start < HANG_SECONDS


def test_the_reported_worst_cases_are_one_value_error_each():
    for fields, message in [
        (dict(layers=(999999,)), "layers: stage 1 has 999999 blocks; each stage needs an integer from 1 to 1000"),
        (dict(layers=(1,) * 40), "layers: 40 stages; at most 8"),  # torch's "Storage size calculation overflowed"
        (dict(layers=(1,) * 20), "layers: 20 stages; at most 8"),  # 21 quadrillion parameters reported
    ]:
        start = time.perf_counter()
        with pytest.raises(ValueError) as caught:
            summarize(ModelSpec(**fields), (3, 224, 224), 1)
        assert str(caught.value) == message and time.perf_counter() - start < 0.1
    params = {"model": "resnet20", "layers": "1000000000000000000000000000000"}
    with pytest.raises(ValueError, match=r"^layers: stage 1 has 1000000000000000000000000000000 blocks; each stage "
                                         r"needs an integer from 1 to 1000$"):
        choice_from_query_params(params)
    assert FIELDS == tuple(VALID)  # every field is drawn above


@pytest.mark.parametrize("input_size, batch, message", [
    ((3, 224), 1, "input must be three positive integers C,H,W (e.g. 3,224,224); got (3, 224)"),
    (range(10**12), 1, "input must be three positive integers C,H,W (e.g. 3,224,224); got range(0, 1000000000000)"),
    ((3, 10**30, 32), 1, f"input must have 1 to 64 channels and H, W from 1 to 4096; got (3, {10**30}, 32)"),
    ((65, 32, 32), 1, "input must have 1 to 64 channels and H, W from 1 to 4096; got (65, 32, 32)"),
    ((3, 32, 32), 10**30, f"batch must be an integer from 1 to 65536; got {10**30}"),
    ((3, 32, 32), 10**5000, "batch must be an integer from 1 to 65536; got <an integer of about 5001 digits>"),
], ids=["two dims", "endless", "huge side", "65 channels", "huge batch", "5001-digit batch"])
def test_input_bounds_are_checked_before_anything_is_built(input_size, batch, message):
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        summarize("resnet20", input_size, batch)
    assert str(caught.value) == message and time.perf_counter() - start < 0.1


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width×height RGB pixels, and a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def image_folder(root: Path) -> Path:
    """Two class folders of three small PNGs each."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_a_100_megapixel_image_in_a_folder_is_one_line_without_pillows_warning(tmp_path):
    """Pillow warns (DecompressionBombWarning, two lines on stderr) from 89 megapixels; ours refuses from 50."""
    folder = image_folder(tmp_path / "folder")
    (folder / "a" / "big.png").write_bytes(png_claiming(10_000, 10_000))
    done = run_cli("train", "resnet20", "--dataset", "imagefolder", "--data-dir", str(folder), "--steps", "1",
                   env={"RESNET_EXPLORER_RUNS": str(tmp_path / "runs")})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: data_dir holds an image of 10000×10000 = 100,000,000 pixels: {folder}/a/big.png; "
                           "images may have at most 50,000,000 (50 megapixels)\n")
    assert not (tmp_path / "runs").exists()


def test_a_fifo_in_an_image_folder_is_refused_without_blocking(tmp_path):
    folder = image_folder(tmp_path / "folder")
    os.mkfifo(folder / "b" / "3.png")
    with pytest.raises(ValueError) as caught:
        call_within(scan_folder, folder, fifos=(folder / "b" / "3.png",))
    assert str(caught.value) == (f"each image in data_dir must be a regular file; {folder}/b/3.png is a named pipe "
                                 "(FIFO)")


@pytest.mark.parametrize("reader, line", [
    (lambda path: build_model("resnet20", weights=str(path)), "weights must be a regular file; {path} is a named "
                                                              "pipe (FIFO)"),
    (load_state_file, "init_from must be a regular file; {path} is a named pipe (FIFO)"),
], ids=["weights", "init_from"])
def test_a_fifo_named_as_a_state_dict_file_is_refused_without_blocking(tmp_path, reader, line):
    path = tmp_path / "weights.pt"
    os.mkfifo(path)
    with pytest.raises(ValueError) as caught:
        call_within(reader, path, fifos=(path,))
    assert str(caught.value) == line.format(path=path)


def test_a_fifo_as_a_runs_metrics_is_skipped_like_a_missing_file(tmp_path):
    """The pages read every run's metrics; a FIFO there must not hang a page (its lines are unreadable, as a torn
    line is, and skipped)."""
    os.mkfifo(tmp_path / "metrics.jsonl")
    assert call_within(read_metrics, tmp_path, fifos=(tmp_path / "metrics.jsonl",)) == []


def test_a_fifo_as_a_degradation_groups_queued_file_reads_as_none(tmp_path):
    """The Degradation page reads <group>.queued.json from the runs folder: a FIFO there reads as a missing file."""
    os.mkfifo(queued_file("group", tmp_path))
    assert call_within(read_queued, "group", tmp_path, fifos=(queued_file("group", tmp_path),)) is None
