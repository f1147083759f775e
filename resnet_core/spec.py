"""The one spec type that describes every ResNet variant, and its validation.

A `ModelSpec` is plain data: presets (see `presets.py`) are tables of specs and
every override a user can make is a field here. `validate()` raises a
`ValueError` that names the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .validation import check_bool, check_choice, check_int, is_int

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck")
STEMS = ("imagenet", "cifar", "deep")
SHORTCUTS = ("A", "B", "C")
SE_REDUCTION = 16

# Fields a user may override on any preset (from the CLI, a page's widgets or a URL).
OVERRIDABLE = (
    "block", "layers", "width", "stem_width", "groups", "width_per_group", "stem",
    "shortcut", "skip", "se", "in_channels", "num_classes", "zero_init_residual",
)


BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class ModelSpec:
    block: str = "basic"  # basic | bottleneck | preact_basic | preact_bottleneck
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; stage i has width * 2**i planes
    width: int = 64  # planes of the first stage
    stem_width: int | None = None  # channels out of the stem; None means `width`
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
    def stage_planes(self) -> tuple[int, ...]:
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

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """The inverse of `to_dict`, validated: a ValueError names an unknown field or a bad value."""
        if not isinstance(data, Mapping):
            raise ValueError(f"spec must be a mapping of ModelSpec fields; got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"spec has unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
        fields = dict(data)
        if "layers" in fields:
            fields["layers"] = coerce_layers(fields["layers"])
        return cls(**fields).validate()

    def validate(self) -> ModelSpec:
        check_choice("block", self.block, BLOCKS)
        check_choice("stem", self.stem, STEMS)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        if not isinstance(self.layers, tuple) or len(self.layers) < 1:
            raise ValueError(f"layers must list the blocks of at least 1 stage, got {self.layers!r}")
        for i, n in enumerate(self.layers):
            if not is_int(n) or n < 1:
                raise ValueError(f"layers: stage {i + 1} has {n!r} blocks; each stage needs an integer >= 1")
        check_int("width", self.width, 1, 4096)
        if self.stem_width is not None:
            check_int("stem_width", self.stem_width, 1, 4096)
        check_int("groups", self.groups, 1, 4096)
        check_int("width_per_group", self.width_per_group, 1, 4096)
        check_int("in_channels", self.in_channels, 1, 64)
        check_int("num_classes", self.num_classes, 1, 100_000)
        for name in ("skip", "se", "zero_init_residual"):
            check_bool(name, getattr(self, name))
        if self.expansion == 1 and (self.groups != 1 or self.width_per_group != 64):
            raise ValueError(
                f"groups={self.groups}, width_per_group={self.width_per_group}: basic blocks only support "
                "groups=1 and width_per_group=64; use block='bottleneck' for ResNeXt or wide variants"
            )
        for planes in self.stage_planes:
            inner = planes * self.width_per_group // 64 * self.groups  # int(planes * wpg / 64.0), without floats
            if inner < self.groups:
                raise ValueError(
                    f"width_per_group={self.width_per_group} with width={self.width} gives a "
                    f"{planes}-plane stage less than 1 channel per group (groups={self.groups})"
                )
        return self


def coerce_layers(value: Any) -> tuple[int, ...]:
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
        if not is_int(n) or n < 1:
            raise ValueError(f"layers: stage {i + 1} has {n!r} blocks; each stage needs an integer >= 1")
    if not layers:
        raise ValueError("layers must list the blocks of at least 1 stage, got an empty list")
    return tuple(int(n) for n in layers)


FIELDS = tuple(f.name for f in dataclasses.fields(ModelSpec))


def field_from_text(name: str, text: str) -> Any:
    """One ModelSpec field from text (a URL value, a CLI flag): "3,4,6,3", "true", "64", "bottleneck".

    Only the type is checked here; whether the value is allowed is `ModelSpec.validate`'s job.
    """
    check_choice("field", name, FIELDS)
    default = next(f.default for f in dataclasses.fields(ModelSpec) if f.name == name)
    text = text.strip()
    if name == "layers":
        return coerce_layers(text)
    if isinstance(default, bool):
        if text.lower() not in BOOL_WORDS:
            raise ValueError(f"{name} must be true or false; got {text!r}")
        return BOOL_WORDS[text.lower()]
    if isinstance(default, str):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {text!r}") from None


def field_to_text(value: Any) -> str:
    """The inverse of `field_from_text`: (3, 4, 6, 3) -> "3,4,6,3", True -> "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def parse_shape(text: str, field: str = "input") -> tuple[int, ...]:
    """"3,224,224" -> (3, 224, 224); a ValueError naming the field otherwise."""
    try:
        dims = tuple(int(p) for p in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"{field} must be three positive integers C,H,W (e.g. 3,224,224); got {text!r}")
    return dims
