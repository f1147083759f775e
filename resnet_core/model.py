"""The configurable ResNet module and `build_model`, the single entry point that builds any variant.

Structure and names follow torchvision's `models/resnet.py`: stem (conv1, bn1, relu, maxpool),
`layer1..layerN` from `_make_layer` (the stride goes only to each stage's first block), avgpool, fc.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .blocks import BLOCK_TYPES, conv3x3, make_shortcut
from .presets import get_preset, resolve_spec
from .spec import ModelSpec

DEEP_STEM_MID = 32  # inner width of the three-conv "deep" stem (ResNet-C/D)


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec, init_weights: bool = True) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        block = BLOCK_TYPES[spec.block]
        stem_out = spec.stem_channels
        self._make_stem(spec, stem_out)

        self.inplanes = stem_out
        self.stage_names: list[str] = []
        for i, (planes, blocks) in enumerate(zip(spec.stage_planes, spec.layers)):
            name = f"layer{i + 1}"
            setattr(self, name, self._make_layer(block, planes, blocks, stride=1 if i == 0 else 2))
            self.stage_names.append(name)
        # Pre-activation nets end with BN-ReLU, since their blocks leave the sum un-normalised.
        self.final_norm = nn.Sequential(nn.BatchNorm2d(self.inplanes), nn.ReLU(inplace=True)) if spec.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, spec.num_classes)
        if init_weights:  # skipped for meta-device shape inference, where values do not exist
            self._init_weights()

    def _make_stem(self, spec: ModelSpec, out: int) -> None:
        if spec.stem == "deep":
            mid = DEEP_STEM_MID
            self.conv1 = nn.Sequential(
                nn.Conv2d(spec.in_channels, mid, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True), conv3x3(mid, mid), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                conv3x3(mid, out),
            )
        elif spec.stem == "imagenet":
            self.conv1 = nn.Conv2d(spec.in_channels, out, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(spec.in_channels, out)
        # A CIFAR-stem pre-activation net feeds the raw conv output to its first block's BN.
        plain_cifar_preact = spec.preact and spec.stem == "cifar"
        self.bn1 = None if plain_cifar_preact else nn.BatchNorm2d(out)
        self.relu = None if plain_cifar_preact else nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if spec.stem != "cifar" else None

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        spec = self.spec
        layers = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = planes * block.expansion
            downsample = (make_shortcut(spec.shortcut, self.inplanes, out, s, norm=not spec.preact)
                          if spec.skip else None)
            layers.append(block(self.inplanes, planes, s, downsample, groups=spec.groups,
                                base_width=spec.width_per_group, skip=spec.skip, se=spec.se))
            self.inplanes = out
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if self.spec.zero_init_residual:
            for m in self.modules():
                if hasattr(m, "last_norm"):
                    nn.init.constant_(m.last_norm().weight, 0)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

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

    `weights` names a torchvision weights enum member (e.g. "IMAGENET1K_V2") and needs the
    preset to equal a torchvision model; the download needs internet access.
    """
    spec = resolve_spec(model, **overrides)
    with torch.device(device):
        net = ResNet(spec)
    if weights is not None:
        net.load_state_dict(_torchvision_weights(model, spec, weights), strict=True)
    return net


def _torchvision_weights(model: str | ModelSpec, spec: ModelSpec, weights: str) -> dict:
    import torchvision

    tv_name = get_preset(model).torchvision if isinstance(model, str) else None
    if tv_name is None or get_preset(model).spec != spec:
        raise ValueError(f"weights={weights!r}: pretrained weights exist only for unmodified torchvision presets")
    enum = torchvision.models.get_model_weights(tv_name)
    try:
        member = enum[weights]
    except KeyError:
        allowed = ", ".join(m.name for m in enum)
        raise ValueError(f"weights for {tv_name} must be one of {allowed}; got {weights!r}") from None
    try:
        return member.get_state_dict(progress=False)
    except Exception as exc:  # urllib raises URLError, OSError, socket errors...
        raise RuntimeError(
            f"could not download {tv_name} weights {member.name} from {member.url} ({type(exc).__name__}: {exc}); "
            "this needs internet access, or the file placed in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints)"
        ) from None
