"""The configurable ResNet module and `build_model`, the single entry point that builds any variant.

Structure and names follow torchvision's `models/resnet.py`: stem (conv1, bn1, relu, maxpool),
`layer1..layerN` from `_make_layer` (the stride goes only to each stage's first block), avgpool, fc.
`feature_info` (features.py) indexes the residual blocks; `_make_layer` records each as it builds it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .blocks import BLOCK_TYPES, BlockStyle, BlurPool2d, EvoNormS0, FilterResponseNormTLU, style_shortcut
from .features import BlockInfo
from .presets import resolve_spec
from .provenance import architecture_from_path
from .spec import ModelSpec
from .weights import is_checkpoint_path, load_state_dict, read_checkpoint, torchvision_weights


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec, init_weights: bool = True) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        self.style = BlockStyle.from_spec(spec)
        stem_out = spec.stem_channels
        self._make_stem(spec, stem_out)

        self.inplanes = stem_out
        self.stage_names: list[str] = []
        self.feature_info: tuple[BlockInfo, ...] = ()  # every residual block in forward order, from _make_layer
        widths = spec.stage_block_widths() if spec.block_widths is not None else [None] * len(spec.layers)
        for i, (planes, blocks, kind) in enumerate(zip(spec.stage_planes, spec.layers, spec.stage_block_types)):
            name = f"layer{i + 1}"
            self.stage_names.append(name)
            setattr(self, name, self._make_layer(BLOCK_TYPES[kind], planes, blocks, 1 if i == 0 else 2, widths[i]))
        # Pre-activation nets end with norm-ReLU, since their blocks leave the sum un-normalised.
        self.final_norm = (nn.Sequential(self.style.norm_layer(self.inplanes), self.style.activation())
                           if spec.preact else None)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, spec.num_classes)
        if init_weights:  # skipped for meta-device shape inference, where values do not exist
            self._init_weights()

    def _make_stem(self, spec: ModelSpec, out: int) -> None:
        norm, act, conv = self.style.norm_layer, self.style.activation, self.style.conv
        if spec.deep_stem:
            first, mid, _ = spec.stem_widths
            self.conv1 = nn.Sequential(conv(spec.in_channels, first, 3, stride=2), norm(first), act(),
                                       conv(first, mid, 3), norm(mid), act(), conv(mid, out, 3))
        elif spec.stem == "imagenet":
            self.conv1 = conv(spec.in_channels, out, 7, stride=2)
        else:
            self.conv1 = conv(spec.in_channels, out, 3)
        # Pre-activation nets may feed the raw conv output to their first block's norm (spec.has_stem_norm).
        self.bn1 = norm(out) if spec.has_stem_norm else None
        self.relu = act() if spec.has_stem_norm else None
        self.maxpool = self._make_stem_pool(spec.resolved_stem_pool, out)

    def _make_stem_pool(self, kind: str, channels: int) -> nn.Module | None:
        """The stem's downsampling after conv1 (named maxpool whatever it is, as torchvision and timm name it)."""
        aa = self.spec.anti_alias
        if kind == "conv":  # ResNet-RS: a strided 3x3 conv + norm + ReLU
            layers = [self.style.conv(channels, channels, 3, stride=1 if aa != "none" else 2)]
            layers += [self.style.anti_alias_layer(channels, 2)] if aa != "none" else []
            return nn.Sequential(*layers, self.style.norm_layer(channels), self.style.activation())
        if kind == "max_ceil":  # the Caffe ResNet's pool, kept by SENet for its weights
            return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        if kind == "zero_pad_max":  # BiT's "fixed" stem: pad with zeros (not -inf), then an unpadded max-pool
            return nn.Sequential(nn.ConstantPad2d(1, 0.0), nn.MaxPool2d(kernel_size=3, stride=2, padding=0))
        if kind == "none":
            return None
        if aa == "avg":
            return nn.AvgPool2d(2)
        if aa == "blur":
            return nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), BlurPool2d(channels, 2))
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int,
                    widths: tuple[tuple[int, int, int], ...] | None = None) -> nn.Sequential:
        """The stage named last in `stage_names`; its blocks are added to `feature_info`. `widths`: each block's
        own (first 1x1, 3x3, output) widths, in a pruned net."""
        spec = self.spec
        stage, stage_index = self.stage_names[-1], len(self.stage_names) - 1
        layers, infos = [], []
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = widths[i][2] if widths else planes * block.expansion
            downsample = (style_shortcut(spec.shortcut, self.inplanes, out, s, self.style, spec.preact) if spec.skip
                          else None)
            extra = dict(widths=widths[i]) if widths else {}
            layers.append(block(self.inplanes, planes, s, downsample, self.style, **extra))
            infos.append(BlockInfo(f"{stage}.{i}", stage, stage_index, i, self.inplanes, out, s))
            self.inplanes = out
        self.feature_info += tuple(infos)
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, EvoNormS0, FilterResponseNormTLU)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if self.spec.zero_init_residual:
            for m in self.modules():
                if hasattr(m, "last_norm"):
                    nn.init.constant_(m.last_norm().weight, 0)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def block_info(self, name: str) -> BlockInfo:
        """The `feature_info` entry of the block named `name` ("layer2.0")."""
        for info in self.feature_info:
            if info.name == name:
                return info
        raise ValueError(f"block must name one of the net's {len(self.feature_info)} blocks (layer1.0 to "
                         f"{self.feature_info[-1].name}); got {name!r}")

    def block(self, entry: BlockInfo | str) -> nn.Module:
        """The module of a `feature_info` entry (or of a block name): what sits at its place now."""
        return self.get_submodule(entry if isinstance(entry, str) else entry.name)

    def forward_stem(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        return x

    def forward_head(self, x: Tensor) -> Tensor:
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.forward_head(x)


def build_model(model: str | ModelSpec = "resnet18", weights: str | None = None,
                device: str | torch.device = "cpu", **overrides: Any) -> ResNet:
    """Build a preset (by name) or a spec, with any ModelSpec field overridden.

    `weights` is a local checkpoint file (a timm or torchvision state_dict, .pt/.pth/.bin/.safetensors), loaded
    strictly through `load_state_dict`; or it names a torchvision weights enum member (e.g. "IMAGENET1K_V2"),
    which needs the preset to equal a torchvision model and the download internet access.
    """
    spec = resolve_spec(model, **overrides)
    if weights is not None and is_checkpoint_path(weights):
        state_dict = read_checkpoint(weights)  # before building: a bad path costs nothing
        with torch.device(device):
            net = ResNet(spec)
        # timm's renames are a superset of torchvision's; a timm name in the file's path says which network it is
        return load_state_dict(net, state_dict, source="timm", architecture=architecture_from_path(weights))
    with torch.device(device):
        net = ResNet(spec)
    if weights is not None:
        net.load_state_dict(torchvision_weights(model, spec, weights), strict=True)
    return net


