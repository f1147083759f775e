"""The one spec type that describes every ResNet variant, and its validation.

A `ModelSpec` is plain data: presets (see `presets.py`) are tables of specs and
every override a user can make is a field here. `validate()` raises a
`ValueError` that names the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Tuple

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck")
STEMS = ("imagenet", "cifar", "deep")
SHORTCUTS = ("A", "B", "C")
SE_REDUCTION = 16

# Fields a user may override on any preset, with a short description for CLI/UI help.
OVERRIDABLE = (
    "block", "layers", "width", "stem_width", "groups", "width_per_group", "stem",
    "shortcut", "skip", "se", "in_channels", "num_classes", "zero_init_residual",
)


@dataclass(frozen=True)
class ModelSpec:
    block: str = "basic"  # basic | bottleneck | preact_basic | preact_bottleneck
    layers: Tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; stage i has width * 2**i planes
    width: int = 64  # planes of the first stage
    stem_width: Optional[int] = None  # channels out of the stem; None means `width`
    groups: int = 1  # grouped 3x3 conv in bottlenecks (ResNeXt cardinality)
    width_per_group: int = 64  # bottleneck inner width = int(planes * wpg / 64) * groups
    stem: str = "imagenet"  # imagenet: 7x7/2 + max-pool; cifar: 3x3/1; deep: three 3x3 convs
    shortcut: str = "B"  # A: zero-pad identity; B: projection where shape changes; C: always
    skip: bool = True  # False gives the plain twin: no identity addition at all
    se: bool = False  # squeeze-and-excitation (reduction 16) in every block
    in_channels: int = 3
    num_classes: int = 1000
    zero_init_residual: bool = False  # last BN of each block starts at zero

    @property
    def expansion(self) -> int:
        return 4 if self.block in ("bottleneck", "preact_bottleneck") else 1

    @property
    def preact(self) -> bool:
        return self.block.startswith("preact")

    @property
    def stage_planes(self) -> Tuple[int, ...]:
        return tuple(self.width * 2**i for i in range(len(self.layers)))

    @property
    def stem_channels(self) -> int:
        return self.stem_width if self.stem_width is not None else self.width

    @property
    def convs_per_block(self) -> int:
        return 3 if self.expansion == 4 else 2

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: stem convs + block convs + the classifier."""
        stem_convs = 3 if self.stem == "deep" else 1
        return stem_convs + sum(self.layers) * self.convs_per_block + 1

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def validate(self) -> "ModelSpec":
        _choice("block", self.block, BLOCKS)
        _choice("stem", self.stem, STEMS)
        _choice("shortcut", self.shortcut, SHORTCUTS)
        if not isinstance(self.layers, tuple) or len(self.layers) < 1:
            raise ValueError(f"layers must list the blocks of at least 1 stage, got {self.layers!r}")
        for i, n in enumerate(self.layers):
            if not _is_int(n) or n < 1:
                raise ValueError(f"layers: stage {i + 1} has {n!r} blocks; each stage needs an integer >= 1")
        _positive("width", self.width, 4096)
        if self.stem_width is not None:
            _positive("stem_width", self.stem_width, 4096)
        _positive("groups", self.groups, 4096)
        _positive("width_per_group", self.width_per_group, 4096)
        _positive("in_channels", self.in_channels, 64)
        _positive("num_classes", self.num_classes, 100_000)
        for name in ("skip", "se", "zero_init_residual"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.expansion == 1 and (self.groups != 1 or self.width_per_group != 64):
            raise ValueError(
                f"groups={self.groups}, width_per_group={self.width_per_group}: basic blocks only support "
                "groups=1 and width_per_group=64; use block='bottleneck' for ResNeXt or wide variants"
            )
        for planes in self.stage_planes:
            inner = int(planes * (self.width_per_group / 64.0)) * self.groups
            if inner < self.groups:
                raise ValueError(
                    f"width_per_group={self.width_per_group} with width={self.width} gives a "
                    f"{planes}-plane stage less than 1 channel per group (groups={self.groups})"
                )
        return self


def coerce_layers(value: Any) -> Tuple[int, ...]:
    """Accept (3, 4, 6, 3), [3, 4, 6, 3] or "3,4,6,3"; raise a ValueError naming `layers` otherwise."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"layers must be comma-separated whole numbers >= 1 (e.g. 3,4,6,3), got {value!r}"
            ) from None
    try:
        layers = tuple(value)
    except TypeError:
        raise ValueError(f"layers must be a list of whole numbers >= 1, got {value!r}") from None
    for i, n in enumerate(layers):
        if not _is_int(n) or n < 1:
            raise ValueError(f"layers: stage {i + 1} has {n!r} blocks; each stage needs an integer >= 1")
    if not layers:
        raise ValueError("layers must list the blocks of at least 1 stage, got an empty list")
    return tuple(int(n) for n in layers)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(field: str, value: Any, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


def _positive(field: str, value: Any, upper: int) -> None:
    if not _is_int(value) or not 1 <= value <= upper:
        raise ValueError(f"{field} must be an integer from 1 to {upper}, got {value!r}")
