"""The one spec type that describes every ResNet variant, and its validation.

A `ModelSpec` is plain data: presets (see `presets.py`) are tables of specs and
every override a user can make is a field here. `validate()` raises a
`ValueError` that names the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .validation import check_bool, check_choice, check_int, is_int, shown

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck", "sk_basic", "sk_bottleneck")
STEMS = ("imagenet", "cifar", "deep", "deep_tiered")
STEM_POOLS = ("max", "max_ceil", "conv", "none")
SHORTCUTS = ("A", "B", "C", "D")
ATTENTIONS = ("none", "se", "eca")
ANTI_ALIASES = ("none", "avg", "blur")
NORMS = ("batch", "group")
STRIDE_PLACEMENTS = ("v1.5", "v1")
ATTENTION_PLACEMENTS = ("before_add", "after_relu")

# Upper bounds on a spec's sizes. They are checked in `validate` (and by `coerce_layers`) before any module is built,
# so a URL, a flag or a config.json cannot make the app build, summarize or allocate without limit. Every preset is
# far inside them; the margins leave room to explore beyond the papers.
MAX_STAGES = 8  # presets have 3 (CIFAR) or 4 (ImageNet); 8 stride-2 stages already take a 224 input down to 1x1
MAX_BLOCKS_PER_STAGE = 1_000  # ResNet-1202, the deepest in He et al., has 200 per stage: 5x that
# ResNet-1202 has 600 blocks in all. 2,000 (over 3x) keeps the meta-device summary of the largest allowed net to a
# few seconds (about 3 s for 2,000 basic blocks on one core) and a real build of it feasible at small widths.
MAX_TOTAL_BLOCKS = 2_000
# Channels of any stage's output (width * 2**(stages-1) * expansion) or of a bottleneck's inner grouped conv
# (planes * width_per_group / 64 * groups). The presets' largest is 2,048 (resnet50's last stage, the inner width
# of wide_resnet101_2 and resnext101_32x8d); 8x that leaves wide variants room, while one 3x3 conv at the cap
# already holds 2.4 billion weights.
MAX_CHANNELS = 16_384

# Fields a user may override on any preset (from the CLI, a page's widgets or a URL).
OVERRIDABLE = (
    "block", "layers", "width", "stem_width", "groups", "width_per_group", "stem",
    "shortcut", "skip", "attention", "in_channels", "num_classes", "zero_init_residual",
    "stem_mid", "stem_pool", "attention_reduction", "attention_divisor", "anti_alias", "norm", "norm_groups",
    "stride_placement", "attention_placement", "stem_norm", "sk_reduction", "sk_divisor", "sk_split",
)
# Fields that config.json files written before they were replaced may still hold, and what each means now.
LEGACY_FIELDS = {"se": lambda on: dict(attention="se", attention_divisor=1) if on else dict(attention="none")}



BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class ModelSpec:
    block: str = "basic"  # basic | bottleneck | preact_basic | preact_bottleneck | sk_basic | sk_bottleneck
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; stage i has width * 2**i planes
    width: int = 64  # planes of the first stage
    stem_width: int | None = None  # channels out of the stem; None means `width`
    groups: int = 1  # grouped 3x3 conv in bottlenecks (ResNeXt cardinality)
    width_per_group: int = 64  # bottleneck inner width = int(planes * wpg / 64) * groups
    stem: str = "imagenet"  # imagenet: 7x7/2; cifar: 3x3/1, no pool; deep: three 3x3 convs; deep_tiered: same, thinner
    shortcut: str = "B"  # A: zero-pad; B: 1x1 projection where shape changes; C: always; D: avg-pool + 1x1, as B
    skip: bool = True  # False gives the plain twin: no identity addition at all
    attention: str = "none"  # none | se (squeeze-and-excitation) | eca (efficient channel attention), in every block
    in_channels: int = 3
    num_classes: int = 1000
    zero_init_residual: bool = False  # last norm of each block starts at zero
    stem_mid: int = 32  # deep stems' inner widths: deep = (mid, mid), deep_tiered = (3 * (mid // 4), mid)
    stem_pool: str | None = None  # None: the stem's own (max-pool, none for cifar); max_ceil: no padding, ceil mode;
    # conv: a 3x3/2 conv + norm + ReLU in its place (ResNet-RS)
    attention_reduction: int = 16  # SE hidden width = channels / reduction ...
    attention_divisor: int = 8  # ... rounded to a multiple of this (timm); 1: channels // reduction (Hu et al.)
    anti_alias: str = "none"  # stride-2 convs and the stem pool become stride 1 followed by a 2x2 avg-pool or a blur
    norm: str = "batch"  # batch | group (GroupNorm with norm_groups groups) everywhere a batch norm would be
    norm_groups: int = 32
    stride_placement: str = "v1.5"  # bottlenecks: v1.5 strides on the 3x3 conv (torchvision), v1 on the first 1x1
    attention_placement: str = "before_add"  # on the last norm's output; after_relu: a ReLU first (legacy SENet)
    stem_norm: bool | None = None  # norm + ReLU after the stem conv; None: yes, except in CIFAR pre-activation nets
    # sk_ blocks: a selective-kernel conv (3x3 and dilated 3x3 paths mixed by attention) replaces the first 3x3
    sk_reduction: int = 16  # SK attention hidden width = channels / reduction ...
    sk_divisor: int = 8  # ... rounded to a multiple of this (timm's make_divisible)
    sk_split: bool = True  # each path convolves half of the input channels (timm's split_input)

    def __post_init__(self) -> None:
        # numpy (and other) whole numbers become ints, so they validate and serialise like ints.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, numbers.Integral) and not isinstance(value, (int, bool)):
                object.__setattr__(self, f.name, int(value))
        if isinstance(self.layers, list) and len(self.layers) <= MAX_STAGES:
            object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.layers, tuple) and len(self.layers) <= MAX_STAGES:
            object.__setattr__(self, "layers", tuple(int(n) if isinstance(n, numbers.Integral) and not
                                                     isinstance(n, bool) else n for n in self.layers))

    @property
    def expansion(self) -> int:
        return 4 if self.block.endswith("bottleneck") else 1

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
        return self.stem_convs + sum(self.layers) * self.convs_per_block + 1

    @property
    def stem_convs(self) -> int:
        """Convs of the stem: one, or three for a deep stem, plus ResNet-RS's conv stem pool."""
        return (3 if self.deep_stem else 1) + (self.resolved_stem_pool == "conv")

    @property
    def deep_stem(self) -> bool:
        return self.stem.startswith("deep")

    @property
    def stem_widths(self) -> tuple[int, ...]:
        """Output channels of each stem conv."""
        if self.stem == "deep":
            return self.stem_mid, self.stem_mid, self.stem_channels
        if self.stem == "deep_tiered":
            return 3 * (self.stem_mid // 4), self.stem_mid, self.stem_channels
        return (self.stem_channels,)

    @property
    def has_stem_norm(self) -> bool:
        if self.stem_norm is not None:
            return self.stem_norm
        return not (self.preact and self.stem == "cifar")  # its first block's BN takes the raw conv output

    @property
    def resolved_stem_pool(self) -> str:
        if self.stem_pool is not None:
            return self.stem_pool
        return "none" if self.stem == "cifar" else "max"

    def inner_width(self, planes: int) -> int:
        """Channels of a block's middle conv(s): planes for basic blocks, int(planes * wpg / 64) * groups else."""
        if self.expansion == 1:
            return planes
        return planes * self.width_per_group // 64 * self.groups  # int(planes * wpg / 64.0), without floats

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
        unknown = sorted(set(data) - set(FIELDS) - set(LEGACY_FIELDS), key=str)  # keys of any type
        if unknown:
            raise ValueError(f"spec has unknown field {shown(unknown[0])}; the fields are {', '.join(FIELDS)}")
        fields = dict(data)
        for name, translate in LEGACY_FIELDS.items():
            if name in fields:
                old = fields.pop(name)
                check_bool(name, old)
                fields = {**translate(old), **fields}
        if "layers" in fields:
            fields["layers"] = coerce_layers(fields["layers"])
        return cls(**fields).validate()

    def validate(self) -> ModelSpec:
        """Raise one ValueError naming the field and its allowed range, before anything is built from the spec."""
        check_choice("block", self.block, BLOCKS)
        check_choice("stem", self.stem, STEMS)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        if self.stem_pool is not None:
            check_choice("stem_pool", self.stem_pool, STEM_POOLS)
        check_choice("attention", self.attention, ATTENTIONS)
        check_choice("anti_alias", self.anti_alias, ANTI_ALIASES)
        check_choice("norm", self.norm, NORMS)
        check_choice("stride_placement", self.stride_placement, STRIDE_PLACEMENTS)
        check_choice("attention_placement", self.attention_placement, ATTENTION_PLACEMENTS)
        if not isinstance(self.layers, (tuple, list)):
            raise ValueError(f"layers must be a tuple of whole numbers from 1 to {MAX_BLOCKS_PER_STAGE}, "
                             f"got {shown(self.layers)}")
        if len(self.layers) < 1:
            raise ValueError(f"layers must list the blocks of at least 1 stage, got {shown(self.layers)}")
        check_layers(self.layers)
        check_int("width", self.width, 1, 4096)
        if self.stem_width is not None:
            check_int("stem_width", self.stem_width, 1, 4096)
        check_int("groups", self.groups, 1, 4096)
        check_int("width_per_group", self.width_per_group, 1, 4096)
        check_int("in_channels", self.in_channels, 1, 64)
        check_int("num_classes", self.num_classes, 1, 100_000)
        check_int("stem_mid", self.stem_mid, 4, 4096)  # deep_tiered's first conv has 3 * (mid // 4) >= 3 channels
        check_int("attention_reduction", self.attention_reduction, 1, 1024)
        check_int("attention_divisor", self.attention_divisor, 1, 64)
        check_int("norm_groups", self.norm_groups, 1, 4096)
        check_int("sk_reduction", self.sk_reduction, 1, 1024)
        check_int("sk_divisor", self.sk_divisor, 1, 64)
        for name in ("skip", "zero_init_residual", "sk_split"):
            check_bool(name, getattr(self, name))
        if self.stem_norm is not None:
            check_bool("stem_norm", self.stem_norm)
        self._check_combinations()
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
        self._check_channels()
        if self.norm == "group":
            self._check_norm_groups()
        return self

    def _check_combinations(self) -> None:
        first_out = self.width * self.expansion  # stages only grow, so only the stem can be wider than a stage
        if self.shortcut == "A" and self.skip and first_out < self.stem_channels:
            raise ValueError(f"shortcut A zero-pads channels, so they must not shrink: stem_width {self.stem_channels} "
                             f"is wider than stage 1's {first_out} output channels; use shortcut B, C or D or a "
                             "narrower stem")
        if self.anti_alias != "none" and self.resolved_stem_pool == "max_ceil":
            raise ValueError("anti_alias: a stem_pool of max_ceil has no anti-aliased form; use stem_pool max or conv, "
                             "or anti_alias none")
        if self.block.startswith("sk_"):
            self._check_selective_kernel()
        if self.anti_alias != "none" and self.stride_placement == "v1":
            raise ValueError("anti_alias needs stride_placement v1.5 (the stride moves from the 3x3 conv to the "
                             "anti-aliasing pool); got v1")

    def _check_selective_kernel(self) -> None:
        if self.anti_alias != "none":
            raise ValueError(f"anti_alias: {self.block} blocks have no anti-aliased form; use anti_alias none")
        if self.stride_placement != "v1.5":
            raise ValueError(f"stride_placement: {self.block} blocks stride on the selective-kernel conv (v1.5); got "
                             f"{self.stride_placement}")
        if not self.sk_split:
            return
        # each of the 2 paths takes half of the SK conv's input channels, in whole groups
        if self.expansion == 1:  # a basic block's SK conv takes the block input: the stem's or a stage's output
            inputs = [("the stem", self.stem_channels)] + [(f"stage {i + 1}", p) for i, p in
                                                          enumerate(self.stage_planes)]
        else:
            inputs = [(f"stage {i + 1}", self.inner_width(p)) for i, p in enumerate(self.stage_planes)]
        for where, channels in inputs:
            if channels % (2 * self.groups):
                raise ValueError(f"sk_split: the selective-kernel conv splits its {channels} input channels ({where}) "
                                 f"between 2 paths of {self.groups} group(s) each; use widths divisible by "
                                 f"{2 * self.groups}, or sk_split false")

    def norm_channels(self) -> list[tuple[str, int]]:
        """(where, channels) of every normalisation layer's input, for the group-norm check."""
        where = [("the stem", c) for c in self.stem_widths]
        for i, planes in enumerate(self.stage_planes):
            where += [(f"stage {i + 1}", self.inner_width(planes)), (f"stage {i + 1}", planes * self.expansion)]
        return where

    def _check_norm_groups(self) -> None:
        for where, channels in self.norm_channels():
            if channels % self.norm_groups:
                raise ValueError(f"norm_groups: {self.norm_groups} groups do not divide the {channels} channels of "
                                 f"{where}; pick a divisor of every width, or norm batch")

    def _check_channels(self) -> None:
        """The last stage is the widest: its output and (for bottlenecks) its inner grouped conv."""
        stages, planes = len(self.layers), self.stage_planes[-1]
        out = planes * self.expansion
        if out > MAX_CHANNELS:
            grow = f" * expansion {self.expansion}" if self.expansion != 1 else ""
            raise ValueError(
                f"width: stage {stages} would have {out} channels (width {self.width} * 2**{stages - 1}{grow}); "
                f"at most {MAX_CHANNELS}: lower width or the number of stages"
            )
        inner = planes * self.width_per_group // 64 * self.groups
        if self.expansion != 1 and inner > MAX_CHANNELS:
            field = "groups" if self.groups > 1 else "width_per_group"
            raise ValueError(
                f"{field}: stage {stages}'s grouped conv would have {inner} channels ({planes} planes * "
                f"width_per_group {self.width_per_group} / 64 * groups {self.groups}); at most {MAX_CHANNELS}: "
                "lower width_per_group, groups or width"
            )


def check_layers(layers: tuple[Any, ...]) -> None:
    """At most MAX_STAGES stages of 1 to MAX_BLOCKS_PER_STAGE blocks each, MAX_TOTAL_BLOCKS in all."""
    if len(layers) > MAX_STAGES:
        raise ValueError(f"layers: {len(layers)} stages; at most {MAX_STAGES}")
    for i, n in enumerate(layers):
        if not is_int(n) or not 1 <= n <= MAX_BLOCKS_PER_STAGE:
            raise _stage_error(i, shown(n))
    if sum(layers) > MAX_TOTAL_BLOCKS:
        raise ValueError(f"layers: {sum(layers)} blocks in all; at most {MAX_TOTAL_BLOCKS}")


def _stage_error(i: int, blocks: str) -> ValueError:
    return ValueError(f"layers: stage {i + 1} has {blocks} blocks; each stage needs an integer from 1 to "
                      f"{MAX_BLOCKS_PER_STAGE}")


def coerce_layers(value: Any) -> tuple[int, ...]:
    """Accept (3, 4, 6, 3), [3, 4, 6, 3] or "3,4,6,3"; raise a ValueError naming `layers` otherwise.

    The bounds of `check_layers` apply here already: a string of a million stages is refused after one split,
    a 10**30-block stage without parsing the huge integer, and an iterator is read no further than the bound.
    """
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
        if len(parts) > MAX_STAGES:
            raise ValueError(f"layers: {len(parts)} stages; at most {MAX_STAGES}")
        counts = [_count_from_text(i, p) for i, p in enumerate(parts)]
        if None in counts:
            raise ValueError(f"layers must be comma-separated whole numbers from 1 to {MAX_BLOCKS_PER_STAGE} "
                             f"(e.g. 3,4,6,3), got {shown(value)}")
        value = counts
    if isinstance(value, Mapping):
        raise ValueError(f"layers must be a list of whole numbers from 1 to {MAX_BLOCKS_PER_STAGE}, got {shown(value)}")
    if hasattr(value, "__len__") and len(value) > MAX_STAGES:
        raise ValueError(f"layers: {len(value)} stages; at most {MAX_STAGES}")
    try:
        layers = tuple(itertools.islice(value, MAX_STAGES + 1))  # an endless iterator stops here too
    except TypeError:
        raise ValueError(f"layers must be a list of whole numbers from 1 to {MAX_BLOCKS_PER_STAGE}, got {shown(value)}"
                         ) from None
    if len(layers) > MAX_STAGES:
        raise ValueError(f"layers: more than {MAX_STAGES} stages; at most {MAX_STAGES}")
    if not layers:
        raise ValueError("layers must list the blocks of at least 1 stage, got an empty list")
    check_layers(layers)
    return tuple(int(n) for n in layers)


def _count_from_text(i: int, text: str) -> int | None:
    """One stage's block count from text, None if it is not a whole number. int() refuses 4,300+ digits with a
    message of its own, so such a number is refused here first, as the too-large count it is."""
    if len(text) > 4000:
        if text.lstrip("+-").replace("_", "").isdecimal():
            raise _stage_error(i, f"a {len(text)}-digit number of")
        return None
    try:
        return int(text)
    except ValueError:
        return None


FIELDS = tuple(f.name for f in dataclasses.fields(ModelSpec))
_TYPES = {f.name: str(f.type) for f in dataclasses.fields(ModelSpec)}


def field_from_text(name: str, text: str) -> Any:
    """One ModelSpec field from text (a URL value, a CLI flag): "3,4,6,3", "true", "64", "bottleneck".

    Only the type is checked here; whether the value is allowed is `ModelSpec.validate`'s job.
    """
    check_choice("field", name, FIELDS)
    default = next(f.default for f in dataclasses.fields(ModelSpec) if f.name == name)
    text = text.strip()
    if name == "layers":
        return coerce_layers(text)
    if isinstance(default, bool) or "bool" in _TYPES[name]:
        if text.lower() not in BOOL_WORDS:
            raise ValueError(f"{name} must be true or false; got {shown(text)}")
        return BOOL_WORDS[text.lower()]
    if isinstance(default, str) or "str" in _TYPES[name]:
        return text
    try:
        return int(text)
    except ValueError:  # also for 4,300+ digits, which int() refuses
        raise ValueError(f"{name} must be a whole number; got {shown(text)}") from None


def legacy_fields_from_text(name: str, text: str) -> dict[str, Any]:
    """The current fields a replaced field's text (an old link's ?se=true) stands for."""
    word = text.strip().lower()
    if word not in BOOL_WORDS:
        raise ValueError(f"{name} must be true or false; got {shown(text)}")
    return LEGACY_FIELDS[name](BOOL_WORDS[word])


def field_to_text(value: Any) -> str:
    """The inverse of `field_from_text`: (3, 4, 6, 3) -> "3,4,6,3", True -> "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def parse_shape(text: str, field: str = "input") -> tuple[int, ...]:
    """"3,224,224" -> (3, 224, 224); a ValueError naming the field otherwise (bounds are the caller's)."""
    parts = text.split(",", 3) if len(text) <= 100 else []  # no C,H,W within any bound is longer
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"{field} must be three positive integers C,H,W (e.g. 3,224,224); got {shown(text)}")
    return dims
