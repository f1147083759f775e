"""The memory guard: a run's training memory estimated from the model summary at its batch and input size, plus
its data, against a budget ($RESNET_EXPLORER_MEMORY_BUDGET, else half of the RAM available); a run that would not
fit is refused before anything is loaded, with both figures.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..data.image_data import ImageData
from ..data.sets import held_bytes, train_size
from ..formatting import format_bytes
from ..introspect.summary import BYTES_PER_FLOAT, summarize
from ..models.presets import resolve_spec
from ..training.config import TrainConfig
from ..training.image_side import train_side

MEMORY_BUDGET_ENV = "RESNET_EXPLORER_MEMORY_BUDGET"  # e.g. 8G; unset: MEMORY_FRACTION of the available RAM


MEMORY_FRACTION = 0.5  # the default budget is this share of the RAM available when a run is submitted


SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}  # binary, as format_bytes prints


class MemoryRefused(ValueError):
    """The estimated training memory exceeds the budget; the message holds both figures."""


@dataclass(frozen=True)
class MemoryCheck:
    needed_bytes: int  # training step (activations, input, weights, grads, optimizer state) + data
    training_bytes: int  # from summarize(...).training_memory_bytes, plus Adam's second moment
    data_bytes: int  # the uint8 images held in memory
    budget_bytes: int
    available_bytes: int
    budget_source: str  # where the budget comes from, for messages

    @property
    def ok(self) -> bool:
        return self.needed_bytes <= self.budget_bytes


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes); falls back to total physical memory elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:  # closed at once: an open file left to the collector warns
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_check(config: TrainConfig, budget: int | None = None, data: ImageData | None = None) -> MemoryCheck:
    """Estimate a run's memory from the model summary at its batch size and input size, against the budget.

    Before `data` is loaded, its size comes from `held_bytes` (for an image folder, from its files' headers, with
    the decoding of its largest image). A batch is never larger than the training images there are.
    """
    spec = resolve_spec(config.model, **config.overrides)
    side = data.image_size if data is not None else train_side(config)
    images = len(data.train_labels) if data is not None else train_size(config.dataset, config.data_dir)
    batch = min(config.batch_size, config.train_subset or config.batch_size, images or config.batch_size)
    summary = summarize(spec, (spec.in_channels, side, side), batch)
    training = summary.training_memory_bytes
    if config.optimizer in ("adam", "adamw"):
        training += summary.total_params * BYTES_PER_FLOAT  # a second moment next to the first
    if data is not None:
        data_bytes = (len(data.train_labels) + len(data.test_labels)) * spec.in_channels * side * side
    else:
        data_bytes = held_bytes(config.dataset, config.data_dir, spec.in_channels, side)
    available = available_memory()
    budget, source = (budget, "the set budget") if budget is not None else default_memory_budget(available)
    return MemoryCheck(training + data_bytes, training, data_bytes, budget, available, source)


def default_memory_budget(available: int) -> tuple[int, str]:
    """(bytes, where they come from): $RESNET_EXPLORER_MEMORY_BUDGET (a size such as 8G, 512M or a byte
    count), else MEMORY_FRACTION of `available`."""
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if not text:
        return int(MEMORY_FRACTION * available), f"{MEMORY_FRACTION:.0%} of the {format_bytes(available)} available"
    match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([KMGT]?)(?:iB|B)?", text, re.IGNORECASE)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{MEMORY_BUDGET_ENV} must be a size above zero such as 8G, 512M or a byte count; "
                         f"got {text!r}")
    return int(float(match[1]) * SIZE_UNITS[match[2].upper()]), f"set by {MEMORY_BUDGET_ENV}"


def guard_memory(config: TrainConfig, budget: int | None = None, data: ImageData | None = None) -> None:
    """Raise MemoryRefused, with the estimate and the budget, when the run would not fit."""
    check = memory_check(config, budget, data)
    if not check.ok:
        raise MemoryRefused(_refusal_message(config, check))


def _refusal_message(config: TrainConfig, check: MemoryCheck) -> str:
    data_note = f", data {format_bytes(check.data_bytes)}" if check.data_bytes else ""
    # Name only what the caller can change: the Train page has batch_size but no image_size control.
    if check.data_bytes >= check.budget_bytes:
        remedy = "the data alone exceeds it: choose a smaller data set (or a lower image_size on the command line)"
    else:
        remedy = "lower batch_size (or image_size on the command line)"
    return (f"batch_size {config.batch_size}: training {config.model} needs about {format_bytes(check.needed_bytes)} "
            f"(training step {format_bytes(check.training_bytes)}{data_note}) but the "
            f"memory budget is {format_bytes(check.budget_bytes)} ({check.budget_source}); {remedy}")
