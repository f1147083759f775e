"""The configurable ResNet module and `build_model`, the single entry point that builds any variant.

Structure and names follow torchvision's `models/resnet.py`: stem (conv1, bn1, relu, maxpool),
`layer1..layerN` from `_make_layer` (the stride goes only to each stage's first block), avgpool, fc.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .blocks import BLOCK_TYPES, BlockStyle, BlurPool2d, conv3x3, make_shortcut
from .checkpoints import is_checkpoint_path, load_state_dict, read_checkpoint
from .presets import get_preset, resolve_spec
from .spec import ModelSpec


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec, init_weights: bool = True) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        self.style = BlockStyle.from_spec(spec)
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
        self.final_norm = (nn.Sequential(self.style.norm_layer(self.inplanes), nn.ReLU(inplace=True)) if spec.preact
                           else None)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, spec.num_classes)
        if init_weights:  # skipped for meta-device shape inference, where values do not exist
            self._init_weights()

    def _make_stem(self, spec: ModelSpec, out: int) -> None:
        norm = self.style.norm_layer
        if spec.deep_stem:
            first, mid, _ = spec.stem_widths
            self.conv1 = nn.Sequential(
                nn.Conv2d(spec.in_channels, first, 3, stride=2, padding=1, bias=False), norm(first),
                nn.ReLU(inplace=True), conv3x3(first, mid), norm(mid), nn.ReLU(inplace=True), conv3x3(mid, out),
            )
        elif spec.stem == "imagenet":
            self.conv1 = nn.Conv2d(spec.in_channels, out, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(spec.in_channels, out)
        # Pre-activation nets may feed the raw conv output to their first block's norm (spec.has_stem_norm).
        self.bn1 = norm(out) if spec.has_stem_norm else None
        self.relu = nn.ReLU(inplace=True) if spec.has_stem_norm else None
        self.maxpool = self._make_stem_pool(spec.resolved_stem_pool, out)

    def _make_stem_pool(self, kind: str, channels: int) -> nn.Module | None:
        """The stem's downsampling after conv1 (named maxpool whatever it is, as torchvision and timm name it)."""
        aa = self.spec.anti_alias
        if kind == "conv":  # ResNet-RS: a strided 3x3 conv + norm + ReLU
            layers = [conv3x3(channels, channels, stride=1 if aa != "none" else 2)]
            layers += [self.style.anti_alias_layer(channels, 2)] if aa != "none" else []
            return nn.Sequential(*layers, self.style.norm_layer(channels), nn.ReLU(inplace=True))
        if kind == "max_ceil":  # the Caffe ResNet's pool, kept by SENet for its weights
            return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        if kind == "none":
            return None
        if aa == "avg":
            return nn.AvgPool2d(2)
        if aa == "blur":
            return nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), BlurPool2d(channels, 2))
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        spec = self.spec
        layers = []
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = planes * block.expansion
            norm = None if spec.preact else self.style.norm_layer
            downsample = make_shortcut(spec.shortcut, self.inplanes, out, s, norm) if spec.skip else None
            layers.append(block(self.inplanes, planes, s, downsample, self.style))
            self.inplanes = out
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
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

    `weights` is a local checkpoint file (a timm or torchvision state_dict, .pt/.pth/.bin/.safetensors), loaded
    strictly through `load_state_dict`; or it names a torchvision weights enum member (e.g. "IMAGENET1K_V2"),
    which needs the preset to equal a torchvision model and the download internet access.
    """
    spec = resolve_spec(model, **overrides)
    if weights is not None and is_checkpoint_path(weights):
        state_dict = read_checkpoint(weights)  # before building: a bad path costs nothing
        with torch.device(device):
            net = ResNet(spec)
        return load_state_dict(net, state_dict, source="timm")  # timm's renames are a superset of torchvision's
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
