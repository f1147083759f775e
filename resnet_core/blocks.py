"""Residual blocks (basic, bottleneck, their pre-activation and selective-kernel forms), shortcuts, channel
attention, anti-aliasing.

Module names follow torchvision's `models/resnet.py` (conv1, bn1, ..., downsample) and timm's additions to it
(se for any channel attention, aa for the anti-aliasing pool, paths/attn inside a selective-kernel conv), so both
libraries' state_dicts load strictly (timm's SK blocks after checkpoints.py renames their conv+norm pairs).
`skip=False` turns any block into its plain twin. `BlockStyle` carries the per-block ModelSpec fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class BlockStyle:
    groups: int = 1  # grouped 3x3 conv in bottlenecks (ResNeXt cardinality)
    base_width: int = 64  # bottleneck inner width = int(planes * base_width / 64) * groups
    skip: bool = True  # False: the plain block, no addition
    attention: str = "none"  # none | se | eca, on the main path just before the addition
    attention_reduction: int = 16  # SE hidden width = channels / reduction, rounded as below
    attention_divisor: int = 8  # multiple the SE hidden width is rounded to; 1: channels // reduction
    anti_alias: str = "none"  # none | avg | blur: the stride-2 conv runs at stride 1, then this pool downsamples
    norm: str = "batch"  # batch | group
    norm_groups: int = 32  # groups of GroupNorm
    stride_placement: str = "v1.5"  # bottleneck stride on the 3x3 (v1.5) or on the first 1x1 (v1)
    attention_placement: str = "before_add"  # after_relu: a ReLU between the last norm and the attention
    sk_reduction: int = 16  # selective-kernel attention hidden width = channels / reduction, rounded as below
    sk_divisor: int = 8  # multiple the SK hidden width is rounded to
    sk_split: bool = True  # each SK path convolves its own half of the input channels (timm's split_input)

    @classmethod
    def from_spec(cls, spec: Any) -> BlockStyle:
        return cls(groups=spec.groups, base_width=spec.width_per_group, skip=spec.skip, attention=spec.attention,
                   attention_reduction=spec.attention_reduction, attention_divisor=spec.attention_divisor,
                   anti_alias=spec.anti_alias, norm=spec.norm, norm_groups=spec.norm_groups,
                   stride_placement=spec.stride_placement, attention_placement=spec.attention_placement,
                   sk_reduction=spec.sk_reduction, sk_divisor=spec.sk_divisor, sk_split=spec.sk_split)

    def norm_layer(self, channels: int) -> nn.Module:
        return nn.GroupNorm(self.norm_groups, channels) if self.norm == "group" else nn.BatchNorm2d(channels)

    def attention_layer(self, channels: int) -> nn.Module | None:
        if self.attention == "se":
            gate = SqueezeExcite(channels, se_hidden(channels, self.attention_reduction, self.attention_divisor))
        elif self.attention == "eca":
            gate = EfficientChannelAttention(channels)
        else:
            return None
        gate.after_relu = self.attention_placement == "after_relu"
        return gate

    def anti_alias_layer(self, channels: int, stride: int) -> nn.Module | None:
        if self.anti_alias == "none" or stride == 1:
            return None
        return nn.AvgPool2d(2) if self.anti_alias == "avg" else BlurPool2d(channels, stride)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def se_hidden(channels: int, reduction: int, divisor: int) -> int:
    """SE hidden width: channels / reduction rounded to the nearest multiple of `divisor` (at least `divisor`),
    as timm's make_divisible with round_limit 0; divisor 1 is Hu et al.'s channels // reduction (at least 1)."""
    if divisor == 1:
        return max(1, channels // reduction)
    nearest = (2 * channels + divisor * reduction) // (2 * reduction)  # int(channels / reduction + divisor / 2)
    return max(divisor, nearest // divisor * divisor)


def sk_hidden(channels: int, reduction: int, divisor: int) -> int:
    """SK attention hidden width: channels / reduction rounded to the nearest multiple of `divisor` (at least
    `divisor`) and one `divisor` more if that lost over 10% (timm's make_divisible, round_limit 0.9)."""
    value = channels / reduction
    hidden = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return hidden + divisor if hidden < 0.9 * value else hidden


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel gates from global average pooling through a small MLP."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(s))))


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020): channel gates from a 1-D conv across the pooled channels, kernel size from C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        t = int(abs(math.log(channels, 2) + 1) / 2)  # the paper's k = |log2(C) / gamma + b / gamma|_odd, gamma 2, b 1
        kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.mean((2, 3)).unsqueeze(1))  # (N, 1, C): the channels are the 1-D conv's sequence
        return x * torch.sigmoid(y).view(x.shape[0], -1, 1, 1)


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): a fixed 3x3 binomial blur per channel, then the stride."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels, self.stride = channels, stride
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer("filt", (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).clone(),
                             persistent=False)  # fixed, so not in the state_dict (as in timm)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=self.stride, groups=self.channels)


def conv_norm_relu(in_planes: int, out_planes: int, stride: int, dilation: int, groups: int,
                   norm: NormFactory) -> nn.Sequential:
    """One selective-kernel path: a 3x3 conv (dilation 2 stands for a 5x5), its norm and a ReLU."""
    path = nn.Sequential()
    path.add_module("conv", nn.Conv2d(in_planes, out_planes, 3, stride, padding=dilation, dilation=dilation,
                                      groups=groups, bias=False))
    path.add_module("bn", norm(out_planes))
    path.add_module("relu", nn.ReLU(inplace=True))
    return path


class SelectiveKernelAttention(nn.Module):
    """Softmax weights across the paths, per channel, from the pooled sum of the paths (Li et al. 2019)."""

    def __init__(self, channels: int, hidden: int, num_paths: int = 2) -> None:
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(hidden)  # batch norm whatever the block's norm, as in timm
        self.relu = nn.ReLU(inplace=True)
        self.fc_select = nn.Conv2d(hidden, channels * num_paths, kernel_size=1, bias=False)

    def forward(self, paths: Tensor) -> Tensor:
        s = paths.sum(1).mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        weights = self.fc_select(self.relu(self.bn(self.fc_reduce(s))))
        return torch.softmax(weights.view(weights.shape[0], self.num_paths, -1, 1, 1), dim=1)


class SelectiveKernel(nn.Module):
    """Selective-kernel conv (Li et al. 2019, as timm builds it): a 3x3 path and a dilated 3x3 path (a 5x5's
    window), each conv-norm-ReLU, mixed per channel by softmax attention. With `split`, each path sees its own
    half of the input channels (timm's split_input, fewer parameters)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int, style: BlockStyle) -> None:
        super().__init__()
        self.split = style.sk_split
        path_in = in_planes // 2 if self.split else in_planes
        self.paths = nn.ModuleList(conv_norm_relu(path_in, out_planes, stride, dilation, groups, style.norm_layer)
                                   for dilation in (1, 2))
        self.attn = SelectiveKernelAttention(out_planes, sk_hidden(out_planes, style.sk_reduction, style.sk_divisor))

    def forward(self, x: Tensor) -> Tensor:
        inputs = torch.split(x, x.shape[1] // 2, 1) if self.split else (x, x)
        paths = torch.stack([path(part) for path, part in zip(self.paths, inputs)], dim=1)  # (N, 2, C, H, W)
        return (paths * self.attn(paths)).sum(1)


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2015): subsample by the stride and zero-pad the new channels. No parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"shortcut A zero-pads channels, so it cannot go from {in_planes} to {out_planes} "
                             "channels; use shortcut B, C or D")
        self.stride = stride
        self.pad_front = (out_planes - in_planes) // 2
        self.pad_back = out_planes - in_planes - self.pad_front

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))


def make_shortcut(kind: str, in_planes: int, out_planes: int, stride: int,
                  norm: NormFactory | None) -> nn.Module | None:
    """The shortcut module for one block, or None for the identity.

    kind A pads with zeros, B projects only where the shape changes, C always projects, D projects where B does
    but average-pools (2x2, ceil mode) before a stride-1 1x1 conv ('ResNet-D', He et al. 2019).
    Pre-activation blocks project without a norm (norm=None), as in He et al. 2016.
    """
    changes_shape = stride != 1 or in_planes != out_planes
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride) if changes_shape else None
    if kind in ("B", "D") and not changes_shape:
        return None
    if kind == "D":
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        layers = [pool, conv1x1(in_planes, out_planes)]
    else:
        layers = [conv1x1(in_planes, out_planes, stride)]
    return nn.Sequential(*layers, *([norm(out_planes)] if norm is not None else []))


def add_shortcut(block: nn.Module, out: Tensor, x: Tensor, shortcut_input: Tensor) -> Tensor:
    """The end every block shares: its attention (if any) on the branch output `out`, then, unless the block is
    plain, the shortcut added: `x` itself, or `block.downsample(shortcut_input)` (pre-activation blocks project
    their pre-activated input)."""
    if block.se is not None:
        out = block.se(F.relu(out) if block.se.after_relu else out)
    if block.skip:
        out = out + (x if block.downsample is None else block.downsample(shortcut_input))
    return out


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        self.aa = style.anti_alias_layer(planes, stride)
        self.conv1 = conv3x3(inplanes, planes, 1 if self.aa is not None else stride)
        self.bn1 = style.norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = style.norm_layer(planes)
        self.se = style.attention_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.aa is not None:
            out = self.aa(out)
        out = self.bn2(self.conv2(out))
        return self.relu(add_shortcut(self, out, x, x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped), 1x1 expand. The stride sits on the 3x3 (torchvision's V1.5) or, with
    stride_placement v1, on the first 1x1 (the original Caffe ResNet and SENet)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        width = int(planes * (style.base_width / 64.0)) * style.groups
        v1 = style.stride_placement == "v1"
        self.conv1 = conv1x1(inplanes, width, stride if v1 else 1)
        self.bn1 = style.norm_layer(width)
        self.aa = None if v1 else style.anti_alias_layer(width, stride)
        self.conv2 = conv3x3(width, width, 1 if v1 or self.aa is not None else stride, style.groups)
        self.bn2 = style.norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = style.norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = style.attention_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.aa is not None:
            out = self.aa(out)
        out = self.bn3(self.conv3(out))
        return self.relu(add_shortcut(self, out, x, x))


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv ordering (He et al. 2016); the shortcut takes the pre-activated input when it projects."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        self.bn1 = style.norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.aa = style.anti_alias_layer(planes, stride)
        self.conv1 = conv3x3(inplanes, planes, 1 if self.aa is not None else stride)
        self.bn2 = style.norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.se = style.attention_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        if self.aa is not None:
            out = self.aa(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return add_shortcut(self, out, x, pre)


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        width = int(planes * (style.base_width / 64.0)) * style.groups
        v1 = style.stride_placement == "v1"
        self.bn1 = style.norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(inplanes, width, stride if v1 else 1)
        self.bn2 = style.norm_layer(width)
        self.aa = None if v1 else style.anti_alias_layer(width, stride)
        self.conv2 = conv3x3(width, width, 1 if v1 or self.aa is not None else stride, style.groups)
        self.bn3 = style.norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.se = style.attention_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.aa is not None:
            out = self.aa(out)
        out = self.conv3(self.relu(self.bn3(out)))
        return add_shortcut(self, out, x, pre)


class SKBasicBlock(nn.Module):
    """A basic block whose first 3x3 conv (with its norm and ReLU) is a selective-kernel conv (timm's skresnet)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        self.conv1 = SelectiveKernel(inplanes, planes, stride, 1, style)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = style.norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = style.attention_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.conv1(x)))
        return self.relu(add_shortcut(self, out, x, x))


class SKBottleneck(nn.Module):
    """A bottleneck whose (grouped) 3x3 conv, norm and ReLU are a selective-kernel conv (timm's skresnext)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        width = int(planes * (style.base_width / 64.0)) * style.groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = style.norm_layer(width)
        self.conv2 = SelectiveKernel(width, width, stride, style.groups, style)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = style.norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = style.attention_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.conv2(out)))
        return self.relu(add_shortcut(self, out, x, x))


BLOCK_TYPES = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
    "sk_basic": SKBasicBlock,
    "sk_bottleneck": SKBottleneck,
}
