"""bf16 or fp32 for a run whose precision is "auto": decided by a measurement on the run's own model, never by CPU
flags (AVX512-BF16 trained ResNet-20 0.78× as fast as fp32 on a Xeon without AMX; on this AVX512-BF16 AMD EPYC,
shared, 1.18× faster in whole runs and 1.26–1.64× per step at a load average of 2–5, and slower at other times).

`decide` is the rule: bf16 only where it measured at least SPEEDUP (1.15×) faster than fp32 (fp32 with TF32 where
torch allows it, on CUDA) AND its accuracy guard holds: on scikit-learn's real digits (load_digits, about 120 steps)
bf16 ended no more than GUARD_POINTS (0.5) below fp32's test accuracy for models of that size class. The guards are
data measured by `benchmarks/bench_precision.py` and committed in bf16_guard.json with their date, CPU and gap; a
size class never checked keeps fp32.

`measure_rates` is the measurement: a copy of the run's model at its batch size, forward + backward (no optimizer
step, which costs the same in both precisions), fp32 and bf16 steps interleaved after untimed warm-up steps of
each (oneDNN sets up its kernels over the first steps: in a fresh process bf16 took up to four steps to reach its
pace here), and the median timed step of each kept: steps that other processes disturb fall on either side of
it, and unlike the best step it does not credit either precision with a lucky quiet moment the run will not have.
The timed pairs stop after MEASURE_SECONDS, or MEASURE_SHARE of the run's estimated time when that is more (a long
run of a big model), but never before MIN_PAIRS. Only a run that cannot afford even the shortest measurement
(MEASURE_MIN_STEPS steps) within twice that allowance is not measured and trains in fp32: a big model on a short
run. The verdict is remembered, so a machine pays this once per run shape; it was measured under the load of its
day, which its reason states (delete the cache file to measure again).

`PrecisionKey` is what a verdict holds for: this processor, its cores and the torch threads used, torch's version,
the device, the model's size class (log2 of its forward mult-adds per image), the batch and the memory format.
`verdicts.py` keeps the measured rates under that key in the user's cache folder.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..introspect.summary import summarize
from ..models.presets import resolve_spec
from ..models.spec import natural_input_size
from ..validation import check_float, check_int, from_fields
from .config import TrainConfig, cores
from .hardware import cpu_features, device_name, torch_threads
from .image_side import train_side

SPEEDUP = 1.15  # bf16 must train at least this much faster than fp32 to be chosen
# A measurement that got less than this share of its threads' CPU time is not trusted. Measured here (resnet20,
# 32×32, batch 128, 2 threads), share → bf16's speed-up read: quiet 0.98, 0.99 → 1.68×, 1.71×; beside another
# benchmark 0.83, 0.84 → 1.66×, 1.52× (still sound); one busy core 0.65 → 0.95×, 2.06×; busier 0.50 → 0.15×, 0.16×;
# at 8×8 0.34 → 15× (noise).
MIN_CPU_SHARE = 0.75
GUARD_POINTS = 0.5  # ... and end no more than this many points of test accuracy below fp32 on load_digits
MEASURE_SECONDS = 2.0  # what the timed pairs aim to spend ...
MEASURE_SHARE = 0.05  # ... or this share of the run's estimated time, when that is more
WARMUPS, MAX_WARMUPS = 2, 6  # untimed steps of each precision first: at least, at most
WARM_SPREAD = 1.25  # a precision is warm when its latest warm-up step is within this factor of its fastest
MIN_PAIRS, MAX_PAIRS = 3, 12  # timed fp32/bf16 pairs after the warm-ups
MEASURE_MIN_STEPS = 2 * (WARMUPS + MIN_PAIRS)  # steps of the shortest measurement
# bf16 warm (its warm-ups steady) and this many times as slow as fp32 ends the measurement before the pairs: where
# bf16 has no units (an AVX2 first-generation Zen: fp32 1.2–1.7 s, bf16 11.5–12.5 s a step of ResNet-20 at batch
# 128, every step alike) the pairs would stall the run for a minute to learn what two steps show.
SLOW_BF16 = 4.0
GUARD_FILE = Path(__file__).with_name("bf16_guard.json")
MAX_TEXT = 200  # characters of any text field read from a file


@dataclass(frozen=True)
class PrecisionKey:
    """What a measured verdict holds for; another value of any field is another machine or another run shape."""

    device: str  # cpu | cuda
    device_name: str  # the CPU's model string or the GPU's name
    features: str  # the CPU's vector capability and a digest of its flags ("" on CUDA)
    cores: int
    threads: int  # torch threads of the run (0 on CUDA)
    torch: str
    size_class: int  # floor(log2(forward mult-adds of one image))
    batch: int  # images a step (each process's share under torchrun)
    channels_last: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Any) -> PrecisionKey:
        key = from_fields(cls, data, "key")
        for name in ("device", "device_name", "features", "torch"):
            if len(getattr(key, name)) > MAX_TEXT:
                raise ValueError(f"key.{name} must be at most {MAX_TEXT} characters")
        for name, high in (("cores", 1 << 20), ("threads", 1 << 20), ("size_class", 128), ("batch", 1 << 20)):
            check_int(f"key.{name}", getattr(key, name), 0, high)
        return key


@dataclass(frozen=True)
class Rates:
    """One measurement: images/s of forward + backward at the key's batch, from the median timed step of each."""

    fp32: float
    bf16: float
    pairs: int  # timed pairs
    seconds: float  # what the measurement took, warm-ups included
    measured: float  # when (epoch seconds)
    load: float  # the 1-minute load average then
    cpu_share: float = 1.0  # the process's CPU time over the measurement's wall time × its threads (CPU only)

    @property
    def trusted(self) -> bool:
        """It had the cores it timed with: a measurement on a busy machine reads noise, not the precisions."""
        return self.cpu_share >= MIN_CPU_SHARE

    @property
    def speedup(self) -> float:
        return self.bf16 / self.fp32

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Any) -> Rates:
        rates = from_fields(cls, data, "rates")
        for name in ("fp32", "bf16"):
            check_float(f"rates.{name}", getattr(rates, name), 0.0, 1e12, low_open=True)
        check_int("rates.pairs", rates.pairs, 1, 10_000)
        check_float("rates.seconds", rates.seconds, 0.0, 1e7)
        check_float("rates.measured", rates.measured, 0.0, 1e11)
        check_float("rates.load", rates.load, 0.0, 1e6)
        check_float("rates.cpu_share", rates.cpu_share, 0.0, 1e3)
        return rates


@dataclass(frozen=True)
class Guard:
    """bf16 against fp32 on real data for one size class, as bench_precision measured it."""

    size_class: int
    model: str
    data: str
    steps: int
    seeds: int
    fp32_acc: float  # mean test accuracy over the seeds, 0..1
    bf16_acc: float
    date: str
    cpu: str
    load: float

    @property
    def gap_points(self) -> float:
        """How far bf16 ended below fp32, in points of test accuracy (negative: above)."""
        return 100 * (self.fp32_acc - self.bf16_acc)

    @property
    def holds(self) -> bool:
        return self.gap_points <= GUARD_POINTS

    @classmethod
    def from_dict(cls, data: Any) -> Guard:
        guard = from_fields(cls, data, "guard")
        check_int("guard.size_class", guard.size_class, 0, 128)
        for name in ("fp32_acc", "bf16_acc"):
            check_float(f"guard.{name}", getattr(guard, name), 0.0, 1.0)
        return guard


def load_guards(path: Path = GUARD_FILE) -> dict[int, Guard]:
    """size class -> its guard, from the committed table; an entry that does not validate is left out."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("guards", [])
    except (OSError, ValueError, AttributeError):
        return {}
    guards = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            guard = Guard.from_dict(entry)
        except ValueError:
            continue
        guards[guard.size_class] = guard
    return guards


def decide(fp32: float, bf16: float, guard: Guard | None, source: str = "measured here",
           baseline: str = "fp32") -> tuple[str, str]:
    """(precision, reason) from measured images/s: bf16 only when it is at least SPEEDUP× faster and its accuracy
    guard holds; fp32 otherwise. `source` says where the rates come from, `baseline` names fp32 (fp32/TF32 on
    CUDA)."""
    speed = bf16 / fp32
    figures = f"{source} ({baseline} {fp32:.0f} vs bf16 {bf16:.0f} images/s)"
    if speed < SPEEDUP:
        short = "" if speed < 1 else f", under the {SPEEDUP:g}× it must gain"
        return "fp32", f"auto: {baseline}; bf16 {speed:.2f}× as fast, {figures}{short}"
    if guard is None:
        return "fp32", (f"auto: {baseline}; bf16 {speed:.2f}× faster, {figures}, but its accuracy was never checked on "
                        "real data for a model of this size")
    if not guard.holds:
        return "fp32", f"auto: {baseline}; bf16 {speed:.2f}× faster, {figures}, but it ended {_gap(guard)}"
    return "bf16", f"auto: bf16 {speed:.2f}× faster, {figures}; it ended {_gap(guard)}"


def unguarded_reason(baseline: str, guard: Guard | None) -> str:
    """Why auto keeps fp32 without timing bf16: its accuracy guard is missing for this size, or did not hold."""
    if guard is None:
        return (f"auto: {baseline}; bf16 not measured: its accuracy was never checked on real data for a model of "
                "this size and input (bf16_guard.json)")
    return f"auto: {baseline}; bf16 not measured: it ended {_gap(guard)}"


def _gap(guard: Guard) -> str:
    return (f"{guard.gap_points:.2f} points {'below' if guard.gap_points >= 0 else 'above'} fp32 on {guard.data} "
            f"({guard.model}, {guard.steps} steps, {guard.seeds} seeds)")


def input_shape(config: TrainConfig) -> tuple[int, int, int]:
    """(channels, side, side) of the run's images, as `engine.load_data` adapts them."""
    spec = resolve_spec(config.model, **config.overrides)
    try:
        side = train_side(config)
    except ValueError:  # an image folder that cannot be read yet: the run itself reports it
        side = natural_input_size(spec)[1]
    return spec.in_channels, side, side


def size_class(config: TrainConfig) -> int:
    """floor(log2) of the model's forward mult-adds for one image: models within a factor of 2 share a class."""
    spec = resolve_spec(config.model, **config.overrides)
    return int(math.floor(math.log2(max(1, summarize(spec, input_shape(config), 1).mult_adds))))


def precision_key(config: TrainConfig, device: torch.device, threads: int, batch: int) -> PrecisionKey:
    cuda = device.type == "cuda"
    return PrecisionKey(device.type, device_name(device), "" if cuda else cpu_features(), cores(),
                        0 if cuda else threads, torch.__version__, size_class(config), batch, config.channels_last)


def allowance(steps: int, step_seconds: float) -> float:
    """Seconds the timed pairs may take: MEASURE_SECONDS, or MEASURE_SHARE of the run's estimated time
    (`steps` × `step_seconds`) when that is more."""
    return max(MEASURE_SECONDS, MEASURE_SHARE * steps * step_seconds)


def measure_rates(model: nn.Module, x: Tensor, y: Tensor, steps: int, threads: int,
                  channels_last: bool) -> Rates | None:
    """Time forward + backward of a copy of `model` on (x, y), fp32 and bf16 autocast interleaved, with `threads`
    torch threads, in the run's memory format; the run's own model is left untouched. None when even the shortest
    measurement (MEASURE_MIN_STEPS steps) would cost more than twice its allowance: a slow model on a short run."""
    twin = copy.deepcopy(model).train()
    if channels_last:
        twin.to(memory_format=torch.channels_last)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with torch_threads(threads):
            first = _timed_step(twin, x, y, False)
            if MEASURE_MIN_STEPS * first > 2 * allowance(steps, first):
                return None
            warm = _warm_up(twin, x, y, first)
            times = warm if bf16_hopeless(*warm) else _timed_pairs(twin, x, y, steps)
    finally:
        del twin
        if x.device.type == "cuda":
            torch.cuda.empty_cache()
    seconds = time.perf_counter() - start
    share = 1.0 if x.device.type == "cuda" else (time.process_time() - cpu_start) / (seconds * threads)
    return Rates(len(x) / statistics.median(times[0]), len(x) / statistics.median(times[1]), len(times[0]),
                 seconds, time.time(), os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, share)


def bf16_hopeless(fp32_steps: list[float], bf16_steps: list[float]) -> bool:
    """Whether the warm-up steps already show bf16 cannot win: bf16 is warm (two steps at least, the latest within
    WARM_SPREAD of its best: not a first step setting up its kernels) and SLOW_BF16 times as slow as fp32."""
    return (len(bf16_steps) >= 2 and bf16_steps[-1] <= WARM_SPREAD * min(bf16_steps)
            and min(bf16_steps) > SLOW_BF16 * min(fp32_steps))


def _timed_pairs(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> tuple[list[float], list[float]]:
    """fp32/bf16 pairs after the warm-ups: at least MIN_PAIRS, then until the allowance is spent or MAX_PAIRS."""
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < MAX_PAIRS:
        for i, bf16 in enumerate((False, True)):
            times[i].append(_timed_step(model, x, y, bf16))
        spent = time.perf_counter() - start
        if len(times[0]) >= MIN_PAIRS and spent + times[0][-1] + times[1][-1] > allowance(steps, min(times[0])):
            break
    return times


def _warm_up(model: nn.Module, x: Tensor, y: Tensor, first: float) -> tuple[list[float], list[float]]:
    """fp32 and bf16 steps in turns (the first fp32 one already taken, `first` seconds) until each precision has had
    WARMUPS steps and its latest is within WARM_SPREAD of its best so far (oneDNN sets up its kernels over the first
    steps, in a fresh process up to four of them for bf16), at most MAX_WARMUPS each, or until bf16 is hopeless.
    Returns each precision's warm-up times."""
    seen: tuple[list[float], list[float]] = ([first], [])
    while not bf16_hopeless(*seen):
        pending = [i for i in (0, 1) if len(seen[i]) < MAX_WARMUPS and
                   (len(seen[i]) < WARMUPS or seen[i][-1] > WARM_SPREAD * min(seen[i]))]
        if not pending:
            break
        for i in pending:
            seen[i].append(_timed_step(model, x, y, bool(i)))
    return seen


def _timed_step(model: nn.Module, x: Tensor, y: Tensor, bf16: bool) -> float:
    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(x.device)
    tick = time.perf_counter()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - tick
