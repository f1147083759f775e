"""Block anatomy: the path of one tensor through each residual block type, traced from the real modules.

Each block is built from `models/blocks.py` on the meta device and run once on a meta tensor while module
hooks and a torch-function mode record every step (op, output shape, parameters), so nothing is
hand-written. Also the seeds' comparison, two 3x3 convs against a bottleneck at the same width.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..models.blocks import (
    BLOCK_TYPES,
    BlockStyle,
    BlurPool2d,
    WeightStdConv2d,
    ZeroPadShortcut,
    make_shortcut,
    style_shortcut,
)
from ..models.spec import SHORTCUTS
from ..validation import check_choice, check_int
from .hooks import HookSet

Shape = tuple[int, ...]
MAX_CHANNELS = 4096
MAX_SIZE = 1024


@dataclass(frozen=True)
class BlockVariant:
    label: str  # shown in the app
    block: str  # key in blocks.BLOCK_TYPES
    groups: int = 1  # grouped 3x3 conv (ResNeXt cardinality)
    width_per_group: int = 64  # bottleneck inner width = int(planes * wpg / 64) * groups
    attention: str = "none"  # none | se | eca, before the addition
    anti_alias: str = "none"  # none | avg | blur after the strided conv (which then runs at stride 1)
    norm: str = "batch"  # batch | group (32 groups)
    stride_placement: str = "v1.5"  # v1: the bottleneck strides on its first 1x1 conv
    res2net_scale: int = 4  # Res2Net: groups of the inner width in the 3x3 stage
    radix: int = 2  # split attention: maps per group the attention mixes
    avg_downsample: str = "none"  # split attention: a 3x3 average pool takes the stride before or after the conv
    weight_standardization: bool = False  # convs standardise their weights (BiT)
    note: str = ""  # one line on where the block is used

    def style(self, skip: bool) -> BlockStyle:
        return BlockStyle(groups=self.groups, base_width=self.width_per_group, skip=skip, attention=self.attention,
                          anti_alias=self.anti_alias, norm=self.norm, stride_placement=self.stride_placement,
                          res2net_scale=self.res2net_scale, radix=self.radix, avg_downsample=self.avg_downsample,
                          weight_standardization=self.weight_standardization)


VARIANTS: dict[str, BlockVariant] = {
    "basic": BlockVariant("Basic", "basic", note="two 3×3 convs; ResNet-18/34 and the CIFAR ResNets"),
    "preact_basic": BlockVariant("PreAct basic", "preact_basic",
                                 note="BN-ReLU before each conv, nothing after the sum (He et al. 2016)"),
    "bottleneck": BlockVariant("Bottleneck", "bottleneck",
                               note="1×1 reduce, 3×3, 1×1 expand; ResNet-50/101/152 (stride on the 3×3, V1.5)"),
    "preact_bottleneck": BlockVariant("PreAct bottleneck", "preact_bottleneck",
                                      note="the bottleneck in pre-activation order (He et al. 2016)"),
    "resnext": BlockVariant("ResNeXt 32×4d", "bottleneck", groups=32, width_per_group=4,
                            note="a bottleneck whose 3×3 conv has 32 groups of 4 channels per 64 planes"),
    "se": BlockVariant("SE bottleneck", "bottleneck", attention="se",
                       note="a bottleneck whose output is re-weighted per channel by squeeze-and-excitation"),
    "eca": BlockVariant("ECA bottleneck", "bottleneck", attention="eca",
                        note="channel gates from one 1-D conv across the pooled channels (timm's ecaresnet*)"),
    "aa": BlockVariant("Anti-aliased bottleneck", "bottleneck", anti_alias="avg",
                       note="stride-2 3×3 runs at stride 1, then a 2×2 average pool (timm's resnetaa*)"),
    "blur": BlockVariant("Blur-pool bottleneck", "bottleneck", anti_alias="blur",
                         note="stride-2 3×3 runs at stride 1, then a fixed binomial blur, stride 2 (resnetblur*)"),
    "gn": BlockVariant("GroupNorm bottleneck", "bottleneck", norm="group",
                       note="every batch norm replaced by a 32-group GroupNorm (timm's resnet50_gn)"),
    "v1": BlockVariant("Bottleneck v1", "bottleneck", stride_placement="v1",
                       note="the stride on the first 1×1 conv, as in the original ResNet and SENet"),
    "sk": BlockVariant("Selective-kernel bottleneck", "sk_bottleneck",
                       note="the 3×3 becomes a 3×3 and a dilated 3×3 path on half the channels each, mixed per "
                            "channel by softmax attention (timm's skresnet50)"),
    "res2net": BlockVariant("Res2Net bottleneck (26w·4s)", "res2net_bottleneck", width_per_group=26,
                            note="the 1×1 makes 4 groups of 26 channels per 64 planes; each 3×3 also takes the "
                                 "previous group's output, so the last sees the widest window (timm's res2net50)"),
    "split_attention": BlockVariant("Split-attention bottleneck (ResNeSt)", "split_attention_bottleneck",
                                    avg_downsample="after_conv",
                                    note="the 3×3 makes 2 maps per channel, mixed by a softmax from their pooled "
                                         "sum; a 3×3 average pool takes the stride (timm's resnest50d)"),
    "bit": BlockVariant("Weight-standardised pre-act bottleneck (BiT)", "preact_bottleneck", norm="group",
                        weight_standardization=True,
                        note="every conv standardises its weights per output channel before convolving, with "
                             "32-group norms (timm's resnetv2_50x1_bit)"),
}


@dataclass(frozen=True)
class Step:
    branch: str  # input | main | se | shortcut | sum
    module: str  # module path inside the block ("conv1", "downsample.0"); "" for functional ops
    op: str  # what the step does, e.g. "conv 3×3, 64→64, stride 2"
    shape: Shape  # output shape, (N, C, H, W)
    params: int  # parameters of this step's module (0 for functional ops)


@dataclass(frozen=True)
class BlockAnatomy:
    key: str  # key in VARIANTS
    variant: BlockVariant
    in_channels: int
    out_channels: int
    stride: int
    shortcut: str  # A | B | C, as in ModelSpec
    skip: bool
    steps: tuple[Step, ...]
    params: int  # every parameter of the block module

    @property
    def input_shape(self) -> Shape:
        return self.steps[0].shape

    @property
    def output_shape(self) -> Shape:
        return self.steps[-1].shape

    @property
    def shortcut_path(self) -> str:
        """identity, zero-pad, projection, or none (plain block)."""
        if not self.skip:
            return "none"
        ops = [s for s in self.steps if s.branch == "shortcut"]
        if not ops:
            return "identity"
        return "projection" if any("conv" in s.op for s in ops) else "zero-pad"

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([dict(branch=s.branch, op=s.op, module=s.module,
                                  output_shape="×".join(map(str, s.shape[1:])), params=s.params)
                             for s in self.steps])


def trace_block(key: str, in_channels: int = 256, out_channels: int = 256, stride: int = 1, size: int = 56,
                shortcut: str = "B", skip: bool = True) -> BlockAnatomy:
    """The steps of block `key` (see VARIANTS) mapping in_channels x size x size to out_channels."""
    _check_args(key, in_channels, out_channels, stride, size, shortcut)
    return _trace_block(key, in_channels, out_channels, stride, size, shortcut, skip)


@functools.lru_cache(maxsize=256)
def _trace_block(key: str, in_channels: int, out_channels: int, stride: int, size: int, shortcut: str,
                 skip: bool) -> BlockAnatomy:
    variant = VARIANTS[key]
    block_cls = BLOCK_TYPES[variant.block]
    preact = variant.block.startswith("preact")
    style = variant.style(skip)
    with torch.device("meta"):
        downsample = style_shortcut(shortcut, in_channels, out_channels, stride, style, preact) if skip else None
        block = block_cls(in_channels, out_channels // block_cls.expansion, stride, downsample, style).eval()
    x = torch.empty(1, in_channels, size, size, device="meta")
    steps = [Step("input", "", "input", tuple(x.shape), 0)] + _StepRecorder(block).run(x)
    return BlockAnatomy(key, variant, in_channels, out_channels, stride, shortcut, skip, tuple(steps),
                        sum(p.numel() for p in block.parameters()))


class _StepRecorder(TorchFunctionMode):
    """Runs a block once and records, in call order, each leaf module call and each tensor op the block's
    own code makes between them (F.relu, the addition, the SE gate's mean/sigmoid/multiply, a Res2Net block's split,
    additions and concatenation). The addition of the shortcut is the one that adds the block's input or its
    projection.

    Per-module hooks and a torch-function mode (thread-local) only, so other threads are never affected.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.steps: list[Step] = []
        self.scopes: list[str] = []  # names of the modules running now, outermost first
        self.summed = False
        self.shortcuts: list[torch.Tensor] = []  # the block input and its projection: what the shortcut adds

    def run(self, x: torch.Tensor) -> list[Step]:
        self.shortcuts.append(x)
        with HookSet() as hooks:
            for name, module in self.block.named_modules():
                if name:
                    hooks.pre_forward(module, functools.partial(self._enter, name))
                    hooks.forward(module, functools.partial(self._leave, name))
            with torch.no_grad(), self:
                self.block(x)
        return self.steps

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inside_leaf = any(_is_leaf(self.block.get_submodule(name)) for name in self.scopes)
        if isinstance(out, torch.Tensor) and not inside_leaf:
            name = getattr(func, "__name__", str(func))
            adds_shortcut = name in ("add", "__add__") and any(a is t for a in args for t in self.shortcuts)
            op = SUM_OP if adds_shortcut else _FUNCTION_OPS.get(name, name)
            self.summed = self.summed or adds_shortcut
            self._record("", op, out, 0)
        elif getattr(func, "__name__", "") == "split" and not inside_leaf:  # a Res2Net block's groups: a tuple
            self._record("", f"split the channels into {len(out)} groups", out[0], 0)
        return out

    def _enter(self, name: str, module: nn.Module, args: tuple) -> None:
        self.scopes.append(name)

    def _leave(self, name: str, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.scopes.pop()
        if name == "downsample":
            self.shortcuts.append(out)
        if _is_leaf(module):
            self._record(name, _describe_module(module), out, sum(p.numel() for p in module.parameters()),
                         scope=name)

    def _record(self, module: str, op: str, out: torch.Tensor, params: int, scope: str = "") -> None:
        top = {name.split(".")[0] for name in [*self.scopes, scope] if name}
        branch = ("sum" if self.summed else "shortcut" if "downsample" in top else "se" if "se" in top
                  else "main")
        self.steps.append(Step(branch, module, op, tuple(out.shape), params))


SUM_OP = "add: main path + shortcut"
_FUNCTION_OPS = {"relu": "ReLU", "mean": "global average pool", "sigmoid": "sigmoid gate",
                 "mul": "scale channels by the gate", "__mul__": "scale channels by the gate",
                 "unsqueeze": "pooled channels as a 1-D sequence",
                 "view": "gates back to one per channel", "stack": "stack the paths",
                 "sum": "sum over the paths", "softmax": "softmax across the paths, per channel",
                 "add": "add the previous group's output",
                 "__add__": "add the previous group's output", "cat": "concatenate the scale groups",
                 "reshape": "reshape: the radix maps apart", "transpose": "radix first, for the softmax"}


def _is_leaf(module: nn.Module) -> bool:
    return next(iter(module.children()), None) is None


def _describe_module(module: nn.Module) -> str:
    if isinstance(module, nn.Conv1d):
        return f"1-D conv across channels, kernel {module.kernel_size[0]}"
    if isinstance(module, nn.Conv2d):
        k, s = module.kernel_size[0], module.stride[0]
        text = f"conv {k}×{k}, {module.in_channels}→{module.out_channels}"
        if isinstance(module, WeightStdConv2d):
            text = "weight-standardised " + text
        if s > 1:
            text += f", stride {s}"
        if module.groups > 1:
            text += f", {module.groups} groups"
        if module.dilation[0] > 1:
            text += f", dilation {module.dilation[0]}"
        return text
    if isinstance(module, nn.BatchNorm2d):
        return "batch norm"
    if isinstance(module, nn.GroupNorm):
        return f"group norm, {module.num_groups} groups"
    if isinstance(module, nn.AvgPool2d):
        return f"avg-pool {module.kernel_size}×{module.kernel_size}, stride {module.stride}"
    if isinstance(module, BlurPool2d):
        return f"blur 3×3, stride {module.stride}"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, ZeroPadShortcut):
        subsample = f"subsample, stride {module.stride} · " if module.stride > 1 else ""
        return f"{subsample}zero-pad {module.pad_front}+{module.pad_back} channels"
    return type(module).__name__


def _check_args(key: str, in_channels: int, out_channels: int, stride: int, size: int, shortcut: str) -> None:
    check_choice("block", key, VARIANTS)
    check_int("in_channels", in_channels, 1, MAX_CHANNELS)
    check_int("out_channels", out_channels, 1, MAX_CHANNELS)
    check_int("size", size, 1, MAX_SIZE)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2; got {stride!r}")
    check_choice("shortcut", shortcut, SHORTCUTS)
    if shortcut == "A" and out_channels < in_channels:
        raise ValueError(f"shortcut A zero-pads channels, so out_channels must be >= in_channels ({in_channels}); "
                         f"got {out_channels}")
    variant = VARIANTS[key]
    expansion = BLOCK_TYPES[variant.block].expansion
    if out_channels % expansion:
        raise ValueError(f"out_channels of a {variant.label} block must be a multiple of {expansion}; "
                         f"got {out_channels}")
    planes = out_channels // expansion
    if variant.norm == "group":
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % 32:
                raise ValueError(f"{name} of a {variant.label} block must be a multiple of its 32 norm groups; "
                                 f"got {channels}")
    if expansion > 1 and int(planes * variant.width_per_group / 64) < 1:
        least = expansion * -(-64 // variant.width_per_group)
        raise ValueError(f"out_channels of a {variant.label} block must be at least {least} "
                         f"(one channel per group); got {out_channels}")


@dataclass(frozen=True)
class BottleneckSaving:
    """Two 3x3 convs at `channels` (a basic block) against a channels-channels/4-channels/4-channels bottleneck."""

    basic: BlockAnatomy
    bottleneck: BlockAnatomy

    @property
    def ratio(self) -> float:
        return self.basic.params / self.bottleneck.params

    @property
    def conv_ratio(self) -> float:
        """The same ratio counting conv weights only (no batch norm)."""
        return _conv_params(self.basic) / _conv_params(self.bottleneck)


def bottleneck_saving(channels: int = 256, size: int = 56) -> BottleneckSaving:
    return BottleneckSaving(trace_block("basic", channels, channels, size=size),
                            trace_block("bottleneck", channels, channels, size=size))


def _conv_params(anatomy: BlockAnatomy) -> int:
    return sum(s.params for s in anatomy.steps if s.op.startswith("conv"))


def shortcut_options(in_channels: int, out_channels: int, stride: int, preact: bool = False) -> pd.DataFrame:
    """What each shortcut kind (A, B, C) is for this channel change and stride, with its parameters."""
    rows = []
    for kind in SHORTCUTS:
        if kind == "A" and out_channels < in_channels:
            rows.append(dict(shortcut=kind, path="not possible (A cannot drop channels)", params=None))
            continue
        with torch.device("meta"):
            module = make_shortcut(kind, in_channels, out_channels, stride, None if preact else nn.BatchNorm2d)
        if module is None:
            path = "identity"
        elif any(isinstance(m, nn.AvgPool2d) for m in module.modules()):
            path = f"2×2 avg-pool, stride {stride}, then 1×1 conv {in_channels}→{out_channels}"
            path += "" if preact else " + batch norm"
        elif any(isinstance(m, nn.Conv2d) for m in module.modules()):
            path = f"1×1 conv {in_channels}→{out_channels}" + (f", stride {stride}" if stride > 1 else "")
            path += "" if preact else " + batch norm"
        else:
            path = (f"subsample (stride {stride}), " if stride > 1 else "") + \
                   f"zero-pad {in_channels}→{out_channels} channels"
        rows.append(dict(shortcut=kind, path=path,
                         params=sum(p.numel() for p in module.parameters()) if module is not None else 0))
    return pd.DataFrame(rows).astype({"params": "Int64"})
