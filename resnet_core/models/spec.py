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

from ..validation import check_bool, check_choice, check_int, is_int, shown

BLOCKS = ("basic", "bottleneck", "preact_basic", "preact_bottleneck", "sk_basic", "sk_bottleneck",
          "res2net_bottleneck", "split_attention_bottleneck")
STEMS = ("imagenet", "cifar", "deep", "deep_tiered")
STEM_POOLS = ("max", "max_ceil", "conv", "zero_pad_max", "none")
SHORTCUTS = ("A", "B", "C", "D")
ATTENTIONS = ("none", "se", "eca")
ANTI_ALIASES = ("none", "avg", "blur")
NORMS = ("batch", "group", "evonorm_s0", "frn_tlu")
NORM_ACTS = ("evonorm_s0", "frn_tlu")  # a norm and its activation in one layer: no ReLU follows them
STRIDE_PLACEMENTS = ("v1.5", "v1")
ATTENTION_PLACEMENTS = ("before_add", "after_relu")
AVG_DOWNSAMPLES = ("none", "before_conv", "after_conv")
SHORTCUT_KERNELS = (1, 3)
EXPANSION = {"basic": 1, "preact_basic": 1, "sk_basic": 1}  # every other block is a bottleneck (4)
RES2NET_SCALES = (2, 8)  # the smallest and largest Res2Net scale (timm's presets use 2, 4, 6 and 8)
MAX_RADIX = 8  # split attention's radix (timm's ResNeSt presets use 1, 2 and 4)
MAX_REDUCE_FIRST = 64

# Upper bounds on a spec's sizes. They are checked in `validate` (and by `coerce_layers`) before any module is built,
# so a URL, a flag or a config.json cannot make the app build, summarize or allocate without limit. Every preset is
# far inside them; the margins leave room to explore beyond the papers.
MAX_STAGES = 8  # presets have 3 (CIFAR) or 4 (ImageNet); 8 stride-2 stages already take a 224 input down to 1x1
MAX_BLOCKS_PER_STAGE = 1_000  # ResNet-1202, the deepest in He et al., has 200 per stage: 5x that
# ResNet-1202 has 600 blocks in all. 2,000 (over 3x) keeps the meta-device summary of the largest allowed net to a
# few seconds (about 3 s for 2,000 basic blocks on one core) and a real build of it feasible at small widths.
MAX_TOTAL_BLOCKS = 2_000
# Channels of any stage's output (width * 2**(stages-1) * expansion) or of a bottleneck's inner grouped conv
# (planes * width_per_group / 64 * groups). The presets' largest are 8,192 (resnetv2_152x4_bit's last stage, BiT at
# width factor 4; the inner width of resnext101_32x32d); 2x that leaves wide variants room, while one 3x3 conv at
# the cap already holds 2.4 billion weights.
MAX_CHANNELS = 16_384

# Fields a user may override on any preset (from the CLI, a page's widgets or a URL).
OVERRIDABLE = (
    "block", "layers", "width", "stem_width", "groups", "width_per_group", "stem",
    "shortcut", "skip", "attention", "in_channels", "num_classes", "zero_init_residual",
    "stem_mid", "stem_pool", "attention_reduction", "attention_divisor", "anti_alias", "norm", "norm_groups",
    "stride_placement", "attention_placement", "stem_norm", "sk_reduction", "sk_divisor", "sk_split",
    "res2net_scale", "radix", "avg_downsample", "weight_standardization", "shortcut_kernel", "reduce_first",
    "stage_blocks", "stage_widths", "block_widths",
)
# Fields whose None is a value to set, not "not given": it clears the preset's list (resolve_spec, the CLI, URLs).
CLEARABLE = ("stage_blocks", "stage_widths", "block_widths")
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
    res2net_scale: int = 4  # res2net_bottleneck: the 3x3 stage splits its input into this many groups of width
    # int(planes * width_per_group / 64) * groups, each (but the last) convolved after adding the previous group's
    # output
    radix: int = 2  # split_attention_bottleneck: the 3x3 conv makes radix feature-map groups, mixed by attention
    avg_downsample: str = "none"  # split_attention_bottleneck: the stride moves to a 3x3 average pool before or
    # after the 3x3 conv (ResNeSt's "avd")
    weight_standardization: bool = False  # every stem, block and shortcut conv standardises its weights per output
    # channel before convolving (BiT; timm's StdConv2d with eps 1e-8)
    shortcut_kernel: int = 1  # 3: a strided projection shortcut is a 3x3 conv (SENet-154); 1x1 where it keeps the size
    reduce_first: int = 1  # the block's first conv outputs its inner width // reduce_first (SENet-154: 2)
    stage_blocks: tuple[str, ...] | None = None  # one block type per stage; None: `block` in every stage
    stage_widths: tuple[int, ...] | None = None  # planes of each stage; None: width * 2**i
    block_widths: tuple[tuple[int, int, int], ...] | None = None  # per bottleneck, in forward order: its first 1x1,
    # its 3x3 and its output channels (pruned nets; the stage's nominal planes still size its ECA kernel)

    def __post_init__(self) -> None:
        # numpy (and other) whole numbers become ints, so they validate and serialise like ints.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, numbers.Integral) and not isinstance(value, (int, bool)):
                object.__setattr__(self, f.name, int(value))
        if isinstance(self.layers, list) and len(self.layers) <= MAX_STAGES:
            object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.layers, tuple) and len(self.layers) <= MAX_STAGES:
            object.__setattr__(self, "layers", _whole_numbers(self.layers))
        for name, bound in (("stage_blocks", MAX_STAGES), ("stage_widths", MAX_STAGES)):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) <= bound:  # longer: refused by validate, unread
                object.__setattr__(self, name, _whole_numbers(value))
        if isinstance(self.block_widths, (list, tuple)) and len(self.block_widths) <= MAX_TOTAL_BLOCKS:
            object.__setattr__(self, "block_widths", tuple(_whole_numbers(w) if isinstance(w, (list, tuple))
                                                           and len(w) <= 3 else w for w in self.block_widths))

    @property
    def expansion(self) -> int:
        """Output channels per plane of `block` (the first stage's block when `stage_blocks` is set)."""
        return EXPANSION.get(self.block, 4)

    @property
    def preact(self) -> bool:
        return self.block.startswith("preact")

    @property
    def stage_block_types(self) -> tuple[str, ...]:
        return tuple(self.stage_blocks) if self.stage_blocks is not None else (self.block,) * len(self.layers)

    @property
    def stage_planes(self) -> tuple[int, ...]:
        if self.stage_widths is not None:
            return tuple(self.stage_widths)
        return tuple(self.width * 2**i for i in range(len(self.layers)))

    @property
    def stage_out_channels(self) -> tuple[int, ...]:
        """Channels out of each stage: planes * expansion, or a pruned stage's own output width."""
        if self.block_widths is not None:
            return tuple(widths[-1][-1] for widths in self.stage_block_widths())
        return tuple(p * EXPANSION.get(b, 4) for p, b in zip(self.stage_planes, self.stage_block_types))

    def stage_block_widths(self) -> tuple[tuple[tuple[int, int, int], ...], ...]:
        """`block_widths` cut into its stages."""
        ends = list(itertools.accumulate(self.layers))
        return tuple(tuple(self.block_widths[end - n:end]) for n, end in zip(self.layers, ends))

    @property
    def stem_channels(self) -> int:
        return self.stem_width if self.stem_width is not None else self.width

    @property
    def convs_per_block(self) -> int:
        return 3 if self.expansion == 4 else 2

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: stem convs + block convs + the classifier."""
        per_block = [3 if EXPANSION.get(b, 4) == 4 else 2 for b in self.stage_block_types]
        return self.stem_convs + sum(n * c for n, c in zip(self.layers, per_block)) + 1

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

    @property
    def norm_acts(self) -> bool:
        """The norm layers apply their own activation (EvoNorm-S0, FRN + TLU): no ReLU follows them."""
        return self.norm in NORM_ACTS

    def inner_width(self, planes: int, block: str | None = None) -> int:
        """Channels of a block's middle conv(s): planes for basic blocks, int(planes * wpg / 64) * groups else
        (one of a Res2Net block's scales; one radix group of a split-attention conv)."""
        if EXPANSION.get(block or self.block, 4) == 1:
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
        self._check_fields()
        self._check_stage_fields()
        self._check_combinations()
        self._check_groups()
        self._check_channels()
        if self.norm in ("group", "evonorm_s0"):
            self._check_norm_groups()
        return self

    def _check_fields(self) -> None:
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
        check_choice("avg_downsample", self.avg_downsample, AVG_DOWNSAMPLES)
        if not isinstance(self.layers, (tuple, list)):
            raise ValueError(f"layers must be a tuple of whole numbers from 1 to {MAX_BLOCKS_PER_STAGE}, "
                             f"got {shown(self.layers)}")
        if len(self.layers) < 1:
            raise ValueError(f"layers must list the blocks of at least 1 stage, got {shown(self.layers)}")
        check_layers(self.layers)
        self._check_numbers()
        for name in ("skip", "zero_init_residual", "sk_split", "weight_standardization"):
            check_bool(name, getattr(self, name))
        if self.stem_norm is not None:
            check_bool("stem_norm", self.stem_norm)

    def _check_numbers(self) -> None:
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
        check_int("res2net_scale", self.res2net_scale, *RES2NET_SCALES)
        check_int("radix", self.radix, 1, MAX_RADIX)
        check_int("reduce_first", self.reduce_first, 1, MAX_REDUCE_FIRST)
        if self.shortcut_kernel not in SHORTCUT_KERNELS or not is_int(self.shortcut_kernel):
            raise ValueError(f"shortcut_kernel must be 1 or 3; got {shown(self.shortcut_kernel)}")

    def _check_stage_fields(self) -> None:
        """stage_blocks, stage_widths and block_widths: one entry per stage (per block), each in range."""
        stages = len(self.layers)
        if self.stage_blocks is not None:
            _check_per_stage("stage_blocks", self.stage_blocks, stages, "block types")
            for i, block in enumerate(self.stage_blocks):
                check_choice(f"stage_blocks (stage {i + 1})", block, BLOCKS)
            if self.block != self.stage_blocks[0]:
                raise ValueError(f"block: stage_blocks gives stage 1 {self.stage_blocks[0]} blocks, so block must be "
                                 f"{self.stage_blocks[0]}; got {shown(self.block)}")
            if len({b.startswith("preact") for b in self.stage_blocks}) > 1:
                raise ValueError("stage_blocks: pre-activation and post-activation blocks cannot be mixed (the "
                                 "stem and the head differ); got " + ",".join(self.stage_blocks))
        if self.stage_widths is not None:
            _check_per_stage("stage_widths", self.stage_widths, stages, "widths")
            for i, planes in enumerate(self.stage_widths):
                check_int(f"stage_widths (stage {i + 1})", planes, 1, 4096)
        if self.block_widths is not None:
            self._check_block_widths()

    def _check_block_widths(self) -> None:
        widths, blocks = self.block_widths, sum(self.layers)
        if not isinstance(widths, (tuple, list)) or len(widths) != blocks:
            count = f"{len(widths)} entries" if isinstance(widths, (tuple, list)) else shown(widths)
            raise ValueError(f"block_widths must give 3 widths for each of the {blocks} blocks (layers "
                             f"{','.join(map(str, self.layers))}); got {count}; none clears it")
        if any(b != "bottleneck" for b in self.stage_block_types):
            raise ValueError("block_widths: per-block widths are for bottleneck blocks; use block bottleneck or "
                             "block_widths none")
        for i, w in enumerate(widths):
            if not isinstance(w, tuple) or len(w) != 3 or not all(is_int(c) and 1 <= c <= MAX_CHANNELS for c in w):
                raise ValueError(f"block_widths: block {i + 1} must be three widths (first 1x1, 3x3, output) from 1 "
                                 f"to {MAX_CHANNELS}; got {shown(w)}")
        for i, stage in enumerate(self.stage_block_widths()):
            if len({w[2] for w in stage}) > 1:
                raise ValueError(f"block_widths: the blocks of stage {i + 1} add their outputs, so they need one "
                                 f"output width; got {sorted({w[2] for w in stage})}")
        if self.groups != 1 or self.attention == "se" or self.reduce_first != 1:
            raise ValueError("block_widths: per-block widths take groups 1, attention none or eca and reduce_first "
                             f"1; got groups {self.groups}, attention {self.attention}, reduce_first "
                             f"{self.reduce_first}")

    def _check_groups(self) -> None:
        types = self.stage_block_types
        if any(EXPANSION.get(b, 4) == 1 for b in types) and (self.groups != 1 or self.width_per_group != 64):
            raise ValueError(
                f"groups={self.groups}, width_per_group={self.width_per_group}: basic blocks only support "
                "groups=1 and width_per_group=64; use block='bottleneck' for ResNeXt or wide variants"
            )
        for planes, block in zip(self.stage_planes, types):
            inner = self.inner_width(planes, block)
            if EXPANSION.get(block, 4) == 4 and inner < self.groups:
                raise ValueError(
                    f"width_per_group={self.width_per_group} with width={self.width} gives a "
                    f"{planes}-plane stage less than 1 channel per group (groups={self.groups})"
                )
            if inner // self.reduce_first < 1:
                raise ValueError(f"reduce_first: {self.reduce_first} leaves the first conv of a {planes}-plane "
                                 f"stage ({inner} channels) with none; at most {inner}")

    def _check_combinations(self) -> None:
        outs = self.stage_out_channels
        if self.shortcut == "A" and self.skip and outs[0] < self.stem_channels:
            raise ValueError(f"shortcut A zero-pads channels, so they must not shrink: stem_width {self.stem_channels} "
                             f"is wider than stage 1's {outs[0]} output channels; use shortcut B, C or D or a "
                             "narrower stem")
        shrinks = next((i for i in range(1, len(outs)) if outs[i] < outs[i - 1]), None)  # per-stage widths may
        if self.shortcut == "A" and self.skip and shrinks is not None:
            raise ValueError(f"shortcut A zero-pads channels, so they must not shrink: stage {shrinks + 1} has "
                             f"{outs[shrinks]} output channels after stage {shrinks}'s {outs[shrinks - 1]}; use "
                             "shortcut B, C or D")
        if self.anti_alias != "none" and self.resolved_stem_pool in ("max_ceil", "zero_pad_max"):
            raise ValueError(f"anti_alias: a stem_pool of {self.resolved_stem_pool} has no anti-aliased form; use "
                             "stem_pool max or conv, or anti_alias none")
        if any(b.startswith("sk_") for b in self.stage_block_types):
            self._check_selective_kernel()
        if self.anti_alias != "none" and self.stride_placement == "v1":
            raise ValueError("anti_alias needs stride_placement v1.5 (the stride moves from the 3x3 conv to the "
                             "anti-aliasing pool); got v1")
        self._check_timm_blocks()

    def _check_timm_blocks(self) -> None:
        """What Res2Net, split-attention and SENet-154's options combine with."""
        types = set(self.stage_block_types)
        if self.norm_acts and not all(b.startswith("preact") for b in types):
            raise ValueError(f"norm: {self.norm} is a norm and its activation in one, built here for pre-activation "
                             "blocks (timm's resnetv2); use block preact_basic or preact_bottleneck, or norm batch")
        special = types & {"res2net_bottleneck", "split_attention_bottleneck"}
        fixed = (("anti_alias", self.anti_alias, "none"), ("reduce_first", self.reduce_first, 1),
                 ("stride_placement", self.stride_placement, "v1.5"))
        for block in sorted(special):
            for name, value, allowed in fixed:
                if value != allowed:
                    raise ValueError(f"{name}: {block} blocks take {name} {allowed}; got {value}")
        if "split_attention_bottleneck" in types:
            self._check_split_attention()
        if self.avg_downsample != "none" and types != {"split_attention_bottleneck"}:
            raise ValueError("avg_downsample moves the stride of split_attention_bottleneck blocks; use that block or "
                             f"avg_downsample none; got {self.avg_downsample}")
        if self.shortcut_kernel == 3 and self.shortcut not in ("B", "C"):
            raise ValueError(f"shortcut_kernel 3 makes a strided projection a 3x3 conv; it needs shortcut B or C, "
                             f"got {self.shortcut}")
        if self.reduce_first != 1 and not types <= {"basic", "bottleneck"}:
            raise ValueError("reduce_first narrows the first conv of basic and bottleneck blocks; use those blocks or "
                             f"reduce_first 1; got {self.reduce_first}")

    def _check_split_attention(self) -> None:
        """The conv makes radix maps per group in groups * radix conv groups; its attention MLP is grouped too."""
        if self.attention != "none":
            raise ValueError(f"attention: split_attention_bottleneck blocks have their own attention; use attention "
                             f"none; got {self.attention}")
        for i, (planes, block) in enumerate(zip(self.stage_planes, self.stage_block_types)):
            if block != "split_attention_bottleneck":
                continue
            inner = self.inner_width(planes, block)
            hidden = split_attention_hidden(inner, self.radix)
            if inner % (self.groups * self.radix):
                raise ValueError(f"radix: the split-attention conv of stage {i + 1} convolves its {inner} channels in "
                                 f"groups * radix = {self.groups * self.radix} groups; use widths divisible by it")
            if hidden % self.groups:
                raise ValueError(f"groups: the split-attention MLP of stage {i + 1} has {hidden} hidden channels in "
                                 f"{self.groups} groups; use groups dividing it")

    def _check_selective_kernel(self) -> None:
        if self.anti_alias != "none":
            raise ValueError(f"anti_alias: {self.block} blocks have no anti-aliased form; use anti_alias none")
        if self.stride_placement != "v1.5":
            raise ValueError(f"stride_placement: {self.block} blocks stride on the selective-kernel conv (v1.5); got "
                             f"{self.stride_placement}")
        if not self.sk_split:
            return
        # each of the 2 paths takes half of the SK conv's input channels, in whole groups
        inputs = []
        previous = ("the stem", self.stem_channels)
        for i, (planes, block, out) in enumerate(zip(self.stage_planes, self.stage_block_types,
                                                     self.stage_out_channels)):
            if block == "sk_basic":  # a basic block's SK conv takes the block input: the stem's or a stage's output
                inputs += [previous, (f"stage {i + 1}", out)]
            elif block == "sk_bottleneck":
                inputs.append((f"stage {i + 1}", self.inner_width(planes, block)))
            previous = (f"stage {i + 1}", out)
        for where, channels in inputs:
            if channels % (2 * self.groups):
                raise ValueError(f"sk_split: the selective-kernel conv splits its {channels} input channels ({where}) "
                                 f"between 2 paths of {self.groups} group(s) each; use widths divisible by "
                                 f"{2 * self.groups}, or sk_split false")

    def block_inner_channels(self, planes: int, block: str) -> list[int]:
        """Channels of a block's inner layers: its first conv's output, its 3x3's, and the wider maps some
        blocks make there (a Res2Net block's scales side by side, a split-attention conv's radix groups and its
        attention's hidden width)."""
        inner = self.inner_width(planes, block)
        if block == "res2net_bottleneck":
            return [inner * self.res2net_scale, inner]
        if block == "split_attention_bottleneck":
            return [inner, inner * self.radix, split_attention_hidden(inner, self.radix)]
        return [inner // self.reduce_first, inner] if self.reduce_first != 1 else [inner]

    def norm_channels(self) -> list[tuple[str, int]]:
        """(where, channels) of every normalisation layer's input, for the group-norm check."""
        where = [("the stem", c) for c in self.stem_widths]
        if self.block_widths is not None:
            return where + [(f"block {i + 1}", c) for i, w in enumerate(self.block_widths) for c in w]
        for i, (planes, block, out) in enumerate(zip(self.stage_planes, self.stage_block_types,
                                                     self.stage_out_channels)):
            where += [(f"stage {i + 1}", c) for c in (*self.block_inner_channels(planes, block), out)]
        return where

    def _check_norm_groups(self) -> None:
        for where, channels in self.norm_channels():
            if channels % self.norm_groups:
                raise ValueError(f"norm_groups: {self.norm_groups} groups do not divide the {channels} channels of "
                                 f"{where}; pick a divisor of every width, or norm batch")

    def _check_channels(self) -> None:
        """The widest stage output and the widest inner layer of any block (the last stage's, in every preset)."""
        stages = list(zip(range(1, len(self.layers) + 1), self.stage_out_channels, self.stage_planes,
                          self.stage_block_types))
        i, out, planes, block = max(reversed(stages), key=lambda s: s[1])
        if out > MAX_CHANNELS:
            grow = f" * expansion {EXPANSION.get(block, 4)}" if EXPANSION.get(block, 4) != 1 else ""
            made = f"width {self.width} * 2**{i - 1}" if self.stage_widths is None else f"{planes} planes"
            raise ValueError(f"width: stage {i} would have {out} channels ({made}{grow}); at most {MAX_CHANNELS}: "
                             "lower width or the number of stages")
        bottlenecks = [s for s in stages if EXPANSION.get(s[3], 4) != 1]
        if not bottlenecks:
            return
        i, planes, block = max(reversed([(s[0], s[2], s[3]) for s in bottlenecks]),
                               key=lambda s: max(self.block_inner_channels(s[1], s[2])))
        inner = max(self.block_inner_channels(planes, block))
        if inner > MAX_CHANNELS:
            field = "groups" if self.groups > 1 else "width_per_group"
            raise ValueError(
                f"{field}: stage {i}'s grouped conv would have {inner} channels ({planes} planes * width_per_group "
                f"{self.width_per_group} / 64 * groups {self.groups}); at most {MAX_CHANNELS}: lower "
                "width_per_group, groups or width"
            )


def split_attention_hidden(channels: int, radix: int) -> int:
    """A split-attention conv's attention width: channels * radix / 4 to the nearest multiple of 8, at least 32, one
    8 more if that lost over 10% (timm's make_divisible, min_value 32)."""
    value = channels * radix / 4
    hidden = max(32, int(value + 4) // 8 * 8)
    return hidden + 8 if hidden < 0.9 * value else hidden


def _check_per_stage(name: str, value: Any, stages: int, what: str) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != stages:
        count = f"{len(value)}" if isinstance(value, (tuple, list)) else shown(value)
        raise ValueError(f"{name} must give one of the {what} for each of the {stages} stages; got {count}; none "
                         "clears it")


def _whole_numbers(values: Any) -> Any:
    """`values` as a tuple, numpy (and other) whole numbers as ints."""
    return tuple(int(n) if isinstance(n, numbers.Integral) and not isinstance(n, bool) else n for n in values)


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
    """One ModelSpec field from text (a URL value, a CLI flag): "3,4,6,3", "true", "64", "bottleneck",
    "basic,basic,bottleneck" (stage_blocks), "47:18:19,52:22:19" (block_widths), "none" (an optional number or list).

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
    if _TYPES[name].startswith("str"):  # stem_pool's None is not text: "none" is a pool kind
        return text
    if _TYPES[name].endswith("| None") and text.lower() in ("none", ""):
        return None
    if name == "stage_blocks":
        return tuple(_parts(name, text, ",", MAX_STAGES))
    if name == "stage_widths":
        return tuple(_whole_number(name, part) for part in _parts(name, text, ",", MAX_STAGES))
    if name == "block_widths":
        return tuple(tuple(_whole_number(name, w) for w in _parts(name, block, ":", 3))
                     for block in _parts(name, text, ",", MAX_TOTAL_BLOCKS))
    try:
        return int(text)
    except ValueError:  # also for 4,300+ digits, which int() refuses
        raise ValueError(f"{name} must be a whole number; got {shown(text)}") from None


def _parts(name: str, text: str, sep: str, most: int) -> list[str]:
    """`text` split at `sep`, refused in one line beyond `most` parts (before it is all split)."""
    parts = text.split(sep, most)
    if len(parts) > most:
        raise ValueError(f"{name}: more than {most} {'stages' if most == MAX_STAGES else 'entries'} in {shown(text)}")
    return [p.strip() for p in parts]


def _whole_number(name: str, text: str) -> int:
    if len(text) > 12:  # no allowed value has more digits: refused before int() reads a huge number
        raise ValueError(f"{name} must be whole numbers in range; got a {len(text)}-character value")
    try:
        return int(text)
    except ValueError:
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
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
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


def natural_input_size(spec: ModelSpec) -> tuple[int, int, int]:
    """(channels, side, side): 32×32 for a CIFAR stem, else ImageNet's 224×224."""
    side = 32 if spec.stem == "cifar" else 224
    return (spec.in_channels, side, side)
