"""Residual blocks (basic, bottleneck, their pre-activation and selective-kernel forms, Res2Net's multi-scale and
ResNeSt's split-attention bottlenecks), shortcuts, channel attention, anti-aliasing, and the layers they are made
of: weight-standardised convs (BiT), EvoNorm-S0 and FRN + TLU (norms with their own activation).

Module names follow torchvision's `models/resnet.py` (conv1, bn1, ..., downsample) and timm's additions to it
(se for any channel attention, aa for the anti-aliasing pool, paths/attn inside a selective-kernel conv, convs/bns
in a Res2Net block, conv/bn0/fc1/bn1/fc2 in a split-attention conv), so both libraries' state_dicts load strictly
(timm's SK blocks after weights.py renames their conv+norm pairs). `skip=False` turns any block into its plain
twin. `BlockStyle` carries the per-block ModelSpec fields. This file imports only torch: `export.py` copies it.
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
    norm: str = "batch"  # batch | group | evonorm_s0 | frn_tlu (the last two apply their own activation)
    norm_groups: int = 32  # groups of GroupNorm and of EvoNorm-S0's statistics
    stride_placement: str = "v1.5"  # bottleneck stride on the 3x3 (v1.5) or on the first 1x1 (v1)
    attention_placement: str = "before_add"  # after_relu: a ReLU between the last norm and the attention
    sk_reduction: int = 16  # selective-kernel attention hidden width = channels / reduction, rounded as below
    sk_divisor: int = 8  # multiple the SK hidden width is rounded to
    sk_split: bool = True  # each SK path convolves its own half of the input channels (timm's split_input)
    res2net_scale: int = 4  # Res2Net: the 3x3 stage works on this many groups of the inner width
    radix: int = 2  # split attention: feature-map groups the 3x3 conv makes and the attention mixes
    avg_downsample: str = "none"  # split attention: none | before_conv | after_conv, a 3x3 avg pool takes the stride
    weight_standardization: bool = False  # convs standardise their weights per output channel (BiT)
    shortcut_kernel: int = 1  # 3: a strided projection shortcut is a 3x3 conv (SENet-154)
    reduce_first: int = 1  # the first conv outputs inner width // reduce_first

    @classmethod
    def from_spec(cls, spec: Any) -> BlockStyle:
        return cls(groups=spec.groups, base_width=spec.width_per_group, skip=spec.skip, attention=spec.attention,
                   attention_reduction=spec.attention_reduction, attention_divisor=spec.attention_divisor,
                   anti_alias=spec.anti_alias, norm=spec.norm, norm_groups=spec.norm_groups,
                   stride_placement=spec.stride_placement, attention_placement=spec.attention_placement,
                   sk_reduction=spec.sk_reduction, sk_divisor=spec.sk_divisor, sk_split=spec.sk_split,
                   res2net_scale=spec.res2net_scale, radix=spec.radix, avg_downsample=spec.avg_downsample,
                   weight_standardization=spec.weight_standardization, shortcut_kernel=spec.shortcut_kernel,
                   reduce_first=spec.reduce_first)

    def norm_layer(self, channels: int) -> nn.Module:
        if self.norm == "group":
            return nn.GroupNorm(self.norm_groups, channels)
        if self.norm == "evonorm_s0":
            return EvoNormS0(channels, self.norm_groups)
        if self.norm == "frn_tlu":
            return FilterResponseNormTLU(channels)
        return nn.BatchNorm2d(channels)

    def activation(self) -> nn.Module:
        """What follows a norm: a ReLU, or nothing for the norms that apply their own activation."""
        return nn.Identity() if self.norm in ("evonorm_s0", "frn_tlu") else nn.ReLU(inplace=True)

    def conv(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1, groups: int = 1,
             dilation: int = 1) -> nn.Conv2d:
        """A bias-free conv padded to keep the size at stride 1: plain, or weight-standardised."""
        conv = WeightStdConv2d if self.weight_standardization else nn.Conv2d
        return conv(in_planes, out_planes, kernel_size, stride, padding=dilation * (kernel_size - 1) // 2,
                    dilation=dilation, groups=groups, bias=False)

    def attention_layer(self, channels: int, kernel_channels: int | None = None) -> nn.Module | None:
        """The block's channel attention on `channels`; ECA sizes its kernel from `kernel_channels` if given (a
        pruned block keeps the kernel of its unpruned width, as timm does)."""
        if self.attention == "se":
            gate = SqueezeExcite(channels, se_hidden(channels, self.attention_reduction, self.attention_divisor))
        elif self.attention == "eca":
            gate = EfficientChannelAttention(channels if kernel_channels is None else kernel_channels)
        else:
            return None
        gate.after_relu = self.attention_placement == "after_relu"
        return gate

    def anti_alias_layer(self, channels: int, stride: int) -> nn.Module | None:
        if self.anti_alias == "none" or stride == 1:
            return None
        return nn.AvgPool2d(2) if self.anti_alias == "avg" else BlurPool2d(channels, stride)

    def inner_width(self, planes: int) -> int:
        return int(planes * (self.base_width / 64.0)) * self.groups


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Conv2d:
    return conv(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Conv2d:
    return conv(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def make_divisible(value: float, divisor: int, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """`value` to the nearest multiple of `divisor` (at least `min_value`, default `divisor`), one `divisor` more
    if that lost over 1 - round_limit of it (timm's make_divisible)."""
    rounded = max(min_value or divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


class WeightStdConv2d(nn.Conv2d):
    """A conv whose weights are standardised per output channel (zero mean, unit variance over its inputs and
    window, eps 1e-8) each time it runs (Qiao et al. 2019; BiT's convs, timm's StdConv2d with eps 1e-8)."""

    eps = 1e-8

    def forward(self, x: Tensor) -> Tensor:
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                              momentum=0.0, eps=self.eps).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class EvoNormS0(nn.Module):
    """EvoNorm-S0 (Liu et al. 2020), a norm and its activation in one: x * sigmoid(v * x) divided by the standard
    deviation of x's channel group, then a per-channel scale and shift (timm's EvoNorm2dS0)."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        grouped = x.reshape(n, self.groups, c // self.groups, h, w)
        std = grouped.float().var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(self.eps).sqrt().to(x.dtype)
        x = x * (x * self.v.view(1, -1, 1, 1)).sigmoid() / std.expand(grouped.shape).reshape(n, c, h, w)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class FilterResponseNormTLU(nn.Module):
    """Filter response normalisation with a thresholded linear unit (Singh & Krishnan 2020), a norm and its
    activation in one: x over the root mean square of its channel, scaled and shifted, then max(x, tau)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        inv_rms = x.square().float().mean(dim=(2, 3), keepdim=True).add(self.eps).rsqrt().to(x.dtype)
        x = x * inv_rms.expand(x.shape)
        x = x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return torch.maximum(x, self.tau.reshape(1, -1, 1, 1))


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
    return make_divisible(channels / reduction, divisor)


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
                   style: BlockStyle) -> nn.Sequential:
    """One selective-kernel path: a 3x3 conv (dilation 2 stands for a 5x5), its norm and a ReLU."""
    path = nn.Sequential()
    path.add_module("conv", style.conv(in_planes, out_planes, 3, stride, groups, dilation))
    path.add_module("bn", style.norm_layer(out_planes))
    path.add_module("relu", style.activation())
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
        self.paths = nn.ModuleList(conv_norm_relu(path_in, out_planes, stride, dilation, groups, style)
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


def make_shortcut(kind: str, in_planes: int, out_planes: int, stride: int, norm: NormFactory | None,
                  kernel: int = 1, conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Module | None:
    """The shortcut module for one block, or None for the identity.

    kind A pads with zeros, B projects only where the shape changes, C always projects, D projects where B does
    but average-pools (2x2, ceil mode) before a stride-1 1x1 conv ('ResNet-D', He et al. 2019). With `kernel` 3 a
    strided projection is a 3x3 conv (SENet-154). Pre-activation blocks project without a norm (norm=None), as in
    He et al. 2016; `conv` is the class of the projection (a weight-standardised conv in BiT).
    """
    changes_shape = stride != 1 or in_planes != out_planes
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride) if changes_shape else None
    if kind in ("B", "D") and not changes_shape:
        return None
    if kind == "D":
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        layers = [pool, conv1x1(in_planes, out_planes, conv=conv)]
    elif kernel == 3 and stride > 1:
        layers = [conv3x3(in_planes, out_planes, stride, conv=conv)]
    else:
        layers = [conv1x1(in_planes, out_planes, stride, conv=conv)]
    return nn.Sequential(*layers, *([norm(out_planes)] if norm is not None else []))


def style_shortcut(kind: str, in_planes: int, out_planes: int, stride: int, style: BlockStyle,
                   preact: bool) -> nn.Module | None:
    """`make_shortcut` with the style's norm (none in pre-activation blocks), kernel and conv."""
    conv = WeightStdConv2d if style.weight_standardization else nn.Conv2d
    return make_shortcut(kind, in_planes, out_planes, stride, None if preact else style.norm_layer,
                         style.shortcut_kernel, conv)


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
        first = planes // style.reduce_first
        self.aa = style.anti_alias_layer(first, stride)
        self.conv1 = style.conv(inplanes, first, 3, 1 if self.aa is not None else stride)
        self.bn1 = style.norm_layer(first)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = style.conv(first, planes, 3)
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
    stride_placement v1, on the first 1x1 (the original Caffe ResNet and SENet). `widths` (first 1x1, 3x3, output)
    replace the widths the planes give (a pruned net's block); its ECA kernel still comes from the planes."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle(), widths: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        width = style.inner_width(planes)
        first, width, out = widths or (width // style.reduce_first, width, planes * self.expansion)
        v1 = style.stride_placement == "v1"
        self.conv1 = style.conv(inplanes, first, 1, stride if v1 else 1)
        self.bn1 = style.norm_layer(first)
        self.aa = None if v1 else style.anti_alias_layer(width, stride)
        self.conv2 = style.conv(first, width, 3, 1 if v1 or self.aa is not None else stride, style.groups)
        self.bn2 = style.norm_layer(width)
        self.conv3 = style.conv(width, out, 1)
        self.bn3 = style.norm_layer(out)
        self.relu = nn.ReLU(inplace=True)
        self.se = style.attention_layer(out, planes * self.expansion)
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
    """Norm-ReLU-conv ordering (He et al. 2016); the shortcut takes the pre-activated input when it projects. With
    EvoNorm-S0 or FRN + TLU the norm is its own activation (timm's resnetv2_50d_evos, _frn)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        self.bn1 = style.norm_layer(inplanes)
        self.relu = style.activation()
        self.aa = style.anti_alias_layer(planes, stride)
        self.conv1 = style.conv(inplanes, planes, 3, 1 if self.aa is not None else stride)
        self.bn2 = style.norm_layer(planes)
        self.conv2 = style.conv(planes, planes, 3)
        self.se = style.attention_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        if self.aa is not None:
            out = self.aa(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return add_shortcut(self, out, x, pre)


class PreActBottleneck(nn.Module):
    """The bottleneck in pre-activation order (timm's resnetv2 and BiT)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        width = style.inner_width(planes)
        v1 = style.stride_placement == "v1"
        self.bn1 = style.norm_layer(inplanes)
        self.relu = style.activation()
        self.conv1 = style.conv(inplanes, width, 1, stride if v1 else 1)
        self.bn2 = style.norm_layer(width)
        self.aa = None if v1 else style.anti_alias_layer(width, stride)
        self.conv2 = style.conv(width, width, 3, 1 if v1 or self.aa is not None else stride, style.groups)
        self.bn3 = style.norm_layer(width)
        self.conv3 = style.conv(width, planes * self.expansion, 1)
        self.se = style.attention_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
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
        self.conv2 = style.conv(planes, planes, 3)
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
        width = style.inner_width(planes)
        self.conv1 = style.conv(inplanes, width, 1)
        self.bn1 = style.norm_layer(width)
        self.conv2 = SelectiveKernel(width, width, stride, style.groups, style)
        self.conv3 = style.conv(width, planes * self.expansion, 1)
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


class Res2NetBottleneck(nn.Module):
    """Res2Net's multi-scale bottleneck (Gao et al. 2019, as timm builds it): the first 1x1 conv makes `scale`
    groups of the inner width; each group but the last gets its own 3x3 conv, after the previous group's output
    is added to it, so later groups see ever larger windows; the last group passes through (average-pooled with the
    stride in a block that changes the shape, where no group is added to the next). The groups are concatenated
    and expanded by the last 1x1 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        self.width, self.scale = style.inner_width(planes), style.res2net_scale
        self.is_first = stride > 1 or inplanes != planes * self.expansion  # where the shortcut projects
        self.conv1 = style.conv(inplanes, self.width * self.scale, 1)
        self.bn1 = style.norm_layer(self.width * self.scale)
        self.convs = nn.ModuleList(style.conv(self.width, self.width, 3, stride, style.groups)
                                   for _ in range(self.scale - 1))
        self.bns = nn.ModuleList(style.norm_layer(self.width) for _ in range(self.scale - 1))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.is_first else None
        self.conv3 = style.conv(self.width * self.scale, planes * self.expansion, 1)
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
        groups = torch.split(out, self.width, 1)
        outputs, group = [], groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            group = groups[i] if i == 0 or self.is_first else group + groups[i]
            group = self.relu(bn(conv(group)))
            outputs.append(group)
        outputs.append(self.pool(groups[-1]) if self.pool is not None else groups[-1])
        out = self.bn3(self.conv3(torch.cat(outputs, 1)))
        return self.relu(add_shortcut(self, out, x, x))


class SplitAttention(nn.Module):
    """Split attention (Zhang et al. 2020, as timm's SplitAttn builds it): one grouped 3x3 conv makes `radix`
    feature maps per group; their sum, pooled, goes through a small MLP whose outputs, a softmax across the radix
    (a sigmoid for radix 1), weight the maps before they are summed."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int, style: BlockStyle) -> None:
        super().__init__()
        self.radix, self.groups = style.radix, groups
        mid = out_planes * self.radix
        hidden = make_divisible(in_planes * self.radix * 0.25, 8, min_value=32)
        self.conv = style.conv(in_planes, mid, 3, stride, groups * self.radix)
        self.bn0 = style.norm_layer(mid)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_planes, hidden, 1, groups=groups)
        self.bn1 = style.norm_layer(hidden)
        self.fc2 = nn.Conv2d(hidden, mid, 1, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        n, rc, h, w = x.shape
        if self.radix > 1:
            x = x.reshape((n, self.radix, rc // self.radix, h, w))
            pooled = x.sum(dim=1).mean((2, 3), keepdim=True)
        else:
            pooled = x.mean((2, 3), keepdim=True)
        attn = self.fc2(self.relu(self.bn1(self.fc1(pooled))))
        if self.radix > 1:
            attn = F.softmax(attn.view(n, self.groups, self.radix, -1).transpose(1, 2), dim=1).reshape(n, -1)
            return (x * attn.view(n, -1, 1, 1).reshape((n, self.radix, rc // self.radix, 1, 1))).sum(dim=1)
        return (x * torch.sigmoid(attn).view(n, -1, 1, 1)).contiguous()


class SplitAttentionBottleneck(nn.Module):
    """ResNeSt's bottleneck: the 3x3 conv, norm and ReLU are a split-attention conv. With `avg_downsample` the
    stride moves to a 3x3 average pool before or after it (ResNeSt's avd)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 style: BlockStyle = BlockStyle()) -> None:
        super().__init__()
        width = style.inner_width(planes)
        pooled = style.avg_downsample != "none" and stride > 1
        pool = nn.AvgPool2d(3, stride, padding=1) if pooled else None
        self.conv1 = style.conv(inplanes, width, 1)
        self.bn1 = style.norm_layer(width)
        self.avd_first = pool if style.avg_downsample == "before_conv" else None
        self.conv2 = SplitAttention(width, width, 1 if pooled else stride, style.groups, style)
        self.avd_last = pool if style.avg_downsample == "after_conv" else None
        self.conv3 = style.conv(width, planes * self.expansion, 1)
        self.bn3 = style.norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = None
        self.downsample = downsample
        self.stride = stride
        self.skip = style.skip

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.avd_first is not None:
            out = self.avd_first(out)
        out = self.conv2(out)
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.bn3(self.conv3(out))
        return self.relu(add_shortcut(self, out, x, x))


BLOCK_TYPES = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
    "sk_basic": SKBasicBlock,
    "sk_bottleneck": SKBottleneck,
    "res2net_bottleneck": Res2NetBottleneck,
    "split_attention_bottleneck": SplitAttentionBottleneck,
}
