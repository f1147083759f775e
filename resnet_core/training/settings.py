"""What a run's "auto" settings become, and why: augmentation that fits the data, a step budget that fits its size,
and the precision measured fastest on this machine.

The default recipe has to suit data nobody tuned it on. A horizontal flip turns a 2 into something that is
not a digit (on scikit-learn's 1,797 real digits the flip costs 4.5 points), so "auto" crops every data set
and flips only those known to be mirror-invariant (data.MIRROR_INVARIANT). The auto budget is budget.py's. bf16
autocast is chosen by measurement (precision.py: bf16 only where it trains ≥ 1.15× faster here and its accuracy
guard holds), in the first three runs of each machine and run shape, remembered in the user's cache and decided by
their median (verdicts.py). The resolved settings
and their reasons are stored with the run (config.json) and shown on the Train page and in the CLI's final line.

`resolve_settings` measures only when it is given the run's model and data; `preview_settings` (the Train page,
before Start) never measures: it reports a remembered verdict or says the run will measure. A run of one process
on auto starts from `deferred_settings`: its step 1 trains in fp32 and any measurement follows it (about 2 s;
12–27 s for ResNet-20 on a first-generation Zen, which emulates bf16), so its first curve point does not wait for
the measurement.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.image_data import ImageData
from ..data.sets import MIRROR_INVARIANT, train_size
from ..data.transforms import normalize
from ..validation import check_choice, check_float, check_int, shown
from .budget import run_budget
from .config import TrainConfig, resolve_device
from .distributed import SINGLE, Replicas
from .image_side import crop_pad, side_reason, train_side
from .precision import (
    MEASURE_MIN_STEPS,
    MEASURE_SECONDS,
    Rates,
    decide,
    load_guards,
    measure_rates,
    precision_key,
    unguarded_reason,
)
from .verdicts import MEASUREMENTS, recall, remember, typical

STEP_ONE = "step 1 trained in fp32, as on auto it always does"
STARTING = "auto: fp32 for step 1; after it, fp32 against bf16 measured or recalled"
# fields added later: absent in older config.json
_OPTIONAL = ("fp32_rate", "bf16_rate", "steps", "budget_reason", "images_reason", "threads", "threads_reason")


@dataclass(frozen=True)
class RunSettings:
    augment: str  # none | crop | crop+flip
    augment_reason: str
    precision: str  # fp32 | bf16 (auto only in a preview, before the run has measured)
    precision_reason: str
    fp32_rate: float | None = None  # images/s measured (forward + backward at the run's batch) when auto measured
    bf16_rate: float | None = None
    steps: int | None = None  # the step budget the run was given (None in runs stored before the auto budget)
    budget_reason: str = ""
    images_reason: str = ""  # "8×8 images (auto: …); crops padded 1 pixel (auto: …)"; unset in older runs
    threads: int | None = None  # torch threads chosen for a run of one process that left them open (thread_choice)
    threads_reason: str = ""

    @property
    def crop(self) -> bool:
        return self.augment != "none"

    @property
    def flip(self) -> bool:
        return self.augment == "crop+flip"

    def to_dict(self) -> dict[str, Any]:
        """The fields, leaving out the later ones that are unset (a run stored before them reads back equal)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _OPTIONAL or v not in (None, "")}

    @classmethod
    def from_dict(cls, data: Any) -> RunSettings:
        if not isinstance(data, Mapping):
            raise ValueError(f"settings must be a JSON object; got {type(data).__name__}")
        for name in ("augment_reason", "precision_reason"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"settings.{name} must be text; got {shown(data.get(name))}")
        check_choice("settings.augment", data.get("augment"), ("none", "crop", "crop+flip"))
        check_choice("settings.precision", data.get("precision"), ("fp32", "bf16"))
        for name in ("fp32_rate", "bf16_rate"):
            if data.get(name) is not None:
                check_float(f"settings.{name}", data[name], 0.0, 1e12, low_open=True)
        if data.get("steps") is not None:
            check_int("settings.steps", data["steps"], 1, 10**12)
        if data.get("threads") is not None:
            check_int("settings.threads", data["threads"], 1, 1 << 20)
        for name in ("budget_reason", "images_reason", "threads_reason"):
            if not isinstance(data.get(name, ""), str):
                raise ValueError(f"settings.{name} must be text; got {shown(data.get(name))}")
        rates = [None if data.get(n) is None else float(data[n]) for n in ("fp32_rate", "bf16_rate")]
        return cls(data["augment"], data["augment_reason"], data["precision"], data["precision_reason"], *rates,
                   data.get("steps"), data.get("budget_reason", ""), data.get("images_reason", ""),
                   data.get("threads"), data.get("threads_reason", ""))

    @classmethod
    def as_set(cls, config: TrainConfig) -> RunSettings:
        """A stored run from before "auto" existed: its settings were what it asked for."""
        return cls(config.augment, "set in the run's config", config.precision, "set in the run's config")


def resolve_settings(config: TrainConfig, data: ImageData | None = None, model: nn.Module | None = None,
                     replicas: Replicas = SINGLE, threads: int | None = None) -> RunSettings:
    """What "auto" becomes for `config`. With the run's `data` and `model`, a precision verdict this machine has
    not remembered is measured now (on a copy of the model; every process of a torchrun job measures its share and
    bf16 needs all of them); without them a remembered verdict applies, else fp32 (nothing to measure on).
    `threads`: the run's torch threads when its config leaves them open (default: torch's now)."""
    return _resolve(config, data, model, replicas, threads, preview=False)


def deferred_settings(config: TrainConfig, data: ImageData, model: nn.Module,
                      threads: int | None = None) -> tuple[RunSettings, Callable[[], RunSettings]] | None:
    """For a run of one process on auto precision: the settings its step 1 trains with (fp32, nothing measured), and
    the call, made after step 1, that returns the run's settings (measured on `model` where this machine has still to
    measure, else recalled), their reason saying that step 1 was fp32. Every such run trains step 1 in fp32, so that
    two runs of one seed and one verdict train alike whether or not one of them measured. None unless on auto."""
    if config.precision != "auto":
        return None
    start = resolve_settings(config, data, None, SINGLE, threads)  # no model: nothing measured

    def settle() -> RunSettings:
        settings = resolve_settings(config, data, model, SINGLE, threads)
        return dataclasses.replace(settings, precision_reason=f"{settings.precision_reason}; {STEP_ONE}")

    return dataclasses.replace(start, precision="fp32", precision_reason=STARTING, fp32_rate=None,
                               bf16_rate=None), settle


def preview_settings(config: TrainConfig, threads: int | None = None) -> RunSettings:
    """What a run of `config` will resolve, before it starts (the Train page's caption): nothing is measured, so
    where this machine remembers no verdict the precision reads "auto" with what the run will do about it."""
    return _resolve(config, None, None, SINGLE, threads, preview=True)


def measures_after_step_one(config: TrainConfig, threads: int | None = None) -> bool:
    """Whether a new run of `config` in one process times fp32 against bf16 right after its step 1 (auto precision,
    a size whose bf16 accuracy was checked, and this machine has not yet measured it often enough)."""
    return preview_settings(config, threads).precision == "auto"


def _resolve(config: TrainConfig, data: ImageData | None, model: nn.Module | None, replicas: Replicas,
             threads: int | None, preview: bool) -> RunSettings:
    augment, augment_reason = _augment(config)
    images = train_images(config, data)
    budget = run_budget(config, images) if images is not None else None
    threads = config.threads or threads or torch.get_num_threads()
    steps = budget.steps if budget is not None else None
    precision, reason, rates = _precision(config, steps, images, data, model, replicas, threads, preview)
    return RunSettings(augment, augment_reason, precision, reason, rates[0], rates[1], steps,
                       budget.reason if budget is not None else "", images_reason(config, data, augment != "none"))


def train_images(config: TrainConfig, data: ImageData | None = None) -> int | None:
    """The training images the run will have (after its subset), without loading them when `data` is None; None
    when they cannot be counted yet (a folder that is not there: the run itself reports it)."""
    if data is not None:
        return len(data.train_labels)
    try:
        available = train_size(config.dataset, config.data_dir)
    except (ValueError, OSError):
        return None
    return min(available, config.train_subset) if config.train_subset else available


def precision_warning(config: TrainConfig, threads: int | None = None) -> str | None:
    """One line when bf16 is asked for where this machine measured it slower than fp32 for this run's shape (allowed;
    nothing is claimed from CPU flags, and an unmeasured shape gets no warning)."""
    if config.precision != "bf16":
        return None
    device = resolve_device(config.device)
    measured = recall(precision_key(config, device, config.threads or threads or torch.get_num_threads(),
                                    _batch(config, train_images(config), SINGLE)))
    rates = typical(measured) if measured else None
    if rates is None or rates.speedup >= 1:
        return None
    return (f"precision bf16: measured {rates.speedup:.2f}× as fast as fp32 for this model and batch on this machine "
            f"(fp32 {rates.fp32:.0f} vs bf16 {rates.bf16:.0f} images/s); auto would train in fp32")


def images_reason(config: TrainConfig, data: ImageData | None, crop: bool) -> str:
    """The side the run trains at and, with crops, their padding, each with why ("" while an image folder cannot
    be read: the run itself reports it)."""
    try:
        side = data.image_size if data is not None else train_side(config)
    except (ValueError, OSError):
        return ""
    if not crop:
        return side_reason(config, side)
    pad = crop_pad(config, side)
    why = "set by the user" if config.pad is not None else "auto: an eighth of the side, as CIFAR's 4 of 32"
    return f"{side_reason(config, side)}; crops padded {pad} pixel{'s' if pad != 1 else ''} ({why})"


def _augment(config: TrainConfig) -> tuple[str, str]:
    if config.augment != "auto":
        return config.augment, "set by the user"
    if config.dataset in MIRROR_INVARIANT:
        return "crop+flip", f"auto: random crops, and flips because {MIRROR_INVARIANT[config.dataset]}"
    what = "an image folder's classes" if config.dataset == "imagefolder" else f"{config.dataset}'s classes"
    return "crop", f"auto: random crops only; {what} are not known to survive a mirror (a flipped 2 is not a 2)"


def _batch(config: TrainConfig, images: int | None, replicas: Replicas) -> int:
    """Each process's images a step: the batch, never more than the training images there are."""
    batch = config.batch_size if images is None else min(config.batch_size, max(1, images))
    return max(1, batch // replicas.world_size)


def _precision(config: TrainConfig, steps: int | None, images: int | None, data: ImageData | None,
               model: nn.Module | None, replicas: Replicas, threads: int,
               preview: bool) -> tuple[str, str, tuple[float | None, float | None]]:
    """(precision, reason, (fp32, bf16) images/s or Nones); in a torchrun job every process takes part in the
    agreement, whatever path its own verdict took."""
    if config.precision != "auto":
        return config.precision, "set by the user", (None, None)
    device = resolve_device(config.device)
    baseline = "fp32/TF32" if device.type == "cuda" else "fp32"
    precision, reason, rates = _auto(config, device, baseline, steps, images, data, model, replicas, threads, preview)
    if replicas.distributed:
        precision, reason = _agree(precision, reason, replicas, device, baseline)
    return precision, reason, rates


def _auto(config: TrainConfig, device: torch.device, baseline: str, steps: int | None, images: int | None,
          data: ImageData | None, model: nn.Module | None, replicas: Replicas, threads: int,
          preview: bool) -> tuple[str, str, tuple[float | None, float | None]]:
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_bf16_supported()):
        return "fp32", f"auto: {baseline}; this {device.type} device has no bf16 autocast to measure", (None, None)
    key = precision_key(config, device, threads, _batch(config, images, replicas))
    guard = load_guards().get(key.size_class)
    if guard is None or not guard.holds:  # bf16 could not be chosen, however fast: nothing to measure
        return "fp32", unguarded_reason(baseline, guard), (None, None)
    measured, fresh = recall(key), None
    can_measure = not preview and model is not None and data is not None and steps is not None
    if len(measured) < MEASUREMENTS and can_measure:
        fresh = _measure(model, data, config, key.batch, steps, threads, replicas)
        if fresh is None and not measured:
            return "fp32", (f"auto: {baseline}; bf16 not measured: a step of this model is too slow for a run of "
                            f"{steps:,} steps to pay for timing {MEASURE_MIN_STEPS} of them"), (None, None)
        if fresh is not None and fresh.trusted:
            remember(key, fresh)
            measured = [*measured, fresh]
        elif fresh is not None and not measured:
            return "fp32", busy_reason(baseline, fresh, threads), (fresh.fp32, fresh.bf16)
    if not measured and preview:
        return "auto", (f"measured when the run starts: {baseline} against bf16 on this model for about "
                        f"{MEASURE_SECONDS:g} s in each of its first {MEASUREMENTS} runs, then remembered for this "
                        "machine"), (None, None)
    if not measured:
        return "fp32", f"auto: {baseline}; bf16 not measured (no model to time it on)", (None, None)
    rates = typical(measured)
    source = _source(measured, rates, fresh)
    precision, reason = decide(rates.fp32, rates.bf16, guard, source, baseline)
    return precision, reason, (rates.fp32, rates.bf16)


def busy_reason(baseline: str, rates: Rates, threads: int) -> str:
    """Why a measurement the machine was too busy for decides nothing."""
    return (f"auto: {baseline}; bf16 not judged: its timing got {rates.cpu_share:.0%} of the CPU time of its "
            f"{threads} thread(s), the machine being busy, so its figures ({baseline} {rates.fp32:.0f} vs bf16 "
            f"{rates.bf16:.0f} images/s) were neither trusted nor remembered; the next run measures again")


def _source(measured: list[Rates], rates: Rates, fresh: Rates | None) -> str:
    """Where the rates a verdict goes by come from: "measured here in 2.1 s at load average 1.5", "measured here on
    2026-12-04 …", or "the median of 3 measurements here (0.23×, 1.30×, 1.41×; …)"."""
    when = (f"in {rates.seconds:.1f} s" if rates is fresh else
            f"on {time.strftime('%Y-%m-%d', time.localtime(rates.measured))}")
    one = f"measured here {when} at load average {rates.load:.1f}"
    if len(measured) == 1:
        return one
    speeds = ", ".join(f"{r.speedup:.2f}×" for r in sorted(measured, key=lambda r: r.speedup))
    return f"the median of {len(measured)} measurements here ({speeds}; that one {one.removeprefix('measured here ')})"


def _measure(model: nn.Module, data: ImageData, config: TrainConfig, batch: int, steps: int, threads: int,
             replicas: Replicas) -> Rates | None:
    """Time this process's share of a batch of the run's first training images."""
    device = next(model.parameters()).device
    share = slice(replicas.rank * batch, (replicas.rank + 1) * batch)
    x = normalize(data.train_images[share].to(device), data.mean, data.std, config.channels_last)
    return measure_rates(model, x, data.train_labels[share].to(device), steps, threads, config.channels_last)


def _agree(precision: str, reason: str, replicas: Replicas, device: torch.device, baseline: str) -> tuple[str, str]:
    """bf16 only when every process of the job chose it, so that all train alike."""
    votes = replicas.sum_tensor(torch.tensor([float(precision == "bf16")], device=device))
    if precision == "bf16" and int(votes.item()) < replicas.world_size:
        return "fp32", f"auto: {baseline}; this process measured bf16 faster but another did not ({reason})"
    return precision, reason
