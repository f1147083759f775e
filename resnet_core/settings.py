"""What a run's "auto" settings become, and why: augmentation that fits the data, precision that fits the hardware.

The default recipe has to suit data nobody tuned it on. A horizontal flip turns a 2 into something that is
not a digit (on scikit-learn's 1,797 real digits the flip costs 4.5 points), so "auto" crops every data set
and flips only those known to be mirror-invariant (data.MIRROR_INVARIANT). bfloat16 autocast is fast only
where the hardware has bf16 units (hardware.native_bf16: AMX or a CUDA GPU); elsewhere it is slower than
fp32, so "auto" then trains in fp32. The resolved settings and their reasons are stored with the run (config.json)
and shown on the Train page and in the CLI's final line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig, resolve_device
from .data import MIRROR_INVARIANT
from .hardware import native_bf16
from .validation import check_choice, shown


@dataclass(frozen=True)
class RunSettings:
    augment: str  # none | crop | crop+flip
    augment_reason: str
    precision: str  # fp32 | bf16
    precision_reason: str

    @property
    def crop(self) -> bool:
        return self.augment != "none"

    @property
    def flip(self) -> bool:
        return self.augment == "crop+flip"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunSettings:
        if not isinstance(data, Mapping):
            raise ValueError(f"settings must be a JSON object; got {type(data).__name__}")
        for name in ("augment_reason", "precision_reason"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"settings.{name} must be text; got {shown(data.get(name))}")
        check_choice("settings.augment", data.get("augment"), ("none", "crop", "crop+flip"))
        check_choice("settings.precision", data.get("precision"), ("fp32", "bf16"))
        return cls(data["augment"], data["augment_reason"], data["precision"], data["precision_reason"])

    @classmethod
    def as_set(cls, config: TrainConfig) -> RunSettings:
        """A stored run from before "auto" existed: its settings were what it asked for."""
        return cls(config.augment, "set in the run's config", config.precision, "set in the run's config")


def resolve_settings(config: TrainConfig) -> RunSettings:
    augment, augment_reason = _augment(config)
    precision, precision_reason = _precision(config)
    return RunSettings(augment, augment_reason, precision, precision_reason)


def precision_warning(config: TrainConfig) -> str | None:
    """One line when bf16 is asked for on hardware without bf16 units (allowed, but slower than fp32)."""
    device = resolve_device(config.device)
    if config.precision == "bf16" and not native_bf16(device):
        return (f"precision bf16: {_hardware(device)} has no bf16 units (AMX), so bf16 autocast "
                "will train slower than fp32")
    return None


def _augment(config: TrainConfig) -> tuple[str, str]:
    if config.augment != "auto":
        return config.augment, "set by the user"
    if config.dataset in MIRROR_INVARIANT:
        return "crop+flip", f"auto: random crops, and flips because {MIRROR_INVARIANT[config.dataset]}"
    what = "an image folder's classes" if config.dataset == "imagefolder" else f"{config.dataset}'s classes"
    return "crop", f"auto: random crops only; {what} are not known to survive a mirror (a flipped 2 is not a 2)"


def _precision(config: TrainConfig) -> tuple[str, str]:
    if config.precision != "auto":
        return config.precision, "set by the user"
    device = resolve_device(config.device)
    if native_bf16(device):
        return "bf16", f"auto: {_hardware(device)} has bf16 units, where bf16 trains faster than fp32"
    return "fp32", f"auto: {_hardware(device)} has no bf16 units (AMX), where bf16 trains slower than fp32"


def _hardware(device) -> str:
    return "this GPU" if device.type == "cuda" else "this CPU"
