"""Residual blocks (basic, bottleneck and their pre-activation forms), shortcuts and SE.

Module names follow torchvision's `models/resnet.py` (conv1, bn1, ..., downsample) so its
state_dicts load strictly. `skip=False` turns any block into its plain twin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spec import SE_REDUCTION


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel gates from global average pooling."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(s))))


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2015): subsample by the stride and zero-pad the new channels. No parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_front = (out_planes - in_planes) // 2
        self.pad_back = out_planes - in_planes - self.pad_front

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))


def make_shortcut(kind: str, in_planes: int, out_planes: int, stride: int, norm: bool) -> nn.Module | None:
    """The shortcut module for one block, or None for the identity.

    kind A pads with zeros, B projects only where the shape changes, C always projects.
    Pre-activation blocks project without a BN (norm=False), as in He et al. 2016.
    """
    changes_shape = stride != 1 or in_planes != out_planes
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride) if changes_shape else None
    if kind == "B" and not changes_shape:
        return None
    conv = conv1x1(in_planes, out_planes, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(out_planes)) if norm else nn.Sequential(conv)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, skip: bool = True, se: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes) if se else None
        self.downsample = downsample
        self.stride = stride
        self.skip = skip

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped, carries the stride as in torchvision's V1.5), 1x1 expand."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, skip: bool = True, se: bool = False) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(planes * self.expansion) if se else None
        self.downsample = downsample
        self.stride = stride
        self.skip = skip

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv ordering (He et al. 2016); the shortcut takes the pre-activated input when it projects."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, skip: bool = True, se: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.se = SqueezeExcite(planes) if se else None
        self.downsample = downsample
        self.stride = stride
        self.skip = skip

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.se is not None:
            out = self.se(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(pre))
        return out


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, skip: bool = True, se: bool = False) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(inplanes, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.se = SqueezeExcite(planes * self.expansion) if se else None
        self.downsample = downsample
        self.stride = stride
        self.skip = skip

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.se is not None:
            out = self.se(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(pre))
        return out


BLOCK_TYPES = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}
