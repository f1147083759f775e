"""Export a network as one readable PyTorch file (torch imports only) whose `build()` returns the same network.

The file holds the block library (`blocks.py`, which imports only torch), the network's constants (its blocks per
stage, widths, style), its stem and head written out from the built modules, and the stage loop of `model.py`, so
`build().state_dict()` has our keys and shapes and loads our (or timm's, torchvision's) checkpoints. ONNX export
goes through `torch.onnx.export`, which needs the onnx and onnxscript packages.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import torch
from torch import nn

from . import blocks
from .blocks import BlockStyle, BlurPool2d
from .model import ResNet
from .spec import ModelSpec
from .summary import natural_input_size

FORMATS = ("py", "onnx")


def module_code(m: nn.Module | None) -> str:
    """Constructor code for one stem or head module (the kinds `ResNet` puts there)."""
    if m is None:
        return "None"
    if isinstance(m, nn.Sequential):
        return "nn.Sequential(" + ", ".join(module_code(c) for c in m) + ")"
    if isinstance(m, nn.Conv2d):
        return (f"nn.Conv2d({m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size[0]}, stride={m.stride[0]}, "
                f"padding={m.padding[0]}, bias={m.bias is not None})")
    if isinstance(m, nn.BatchNorm2d):
        return f"nn.BatchNorm2d({m.num_features})"
    if isinstance(m, nn.GroupNorm):
        return f"nn.GroupNorm({m.num_groups}, {m.num_channels})"
    if isinstance(m, nn.ReLU):
        return f"nn.ReLU(inplace={m.inplace})"
    if isinstance(m, nn.MaxPool2d):
        return (f"nn.MaxPool2d(kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding}, "
                f"ceil_mode={m.ceil_mode})")
    if isinstance(m, nn.AvgPool2d):
        return f"nn.AvgPool2d({m.kernel_size})"
    if isinstance(m, BlurPool2d):
        return f"BlurPool2d({m.channels}, {m.stride})"
    raise ValueError(f"export: no code for a {type(m).__name__} in the stem or head")


def python_source(spec: ModelSpec, name: str = "custom") -> str:
    """The whole exported file for `spec` (`name` only labels it)."""
    with torch.device("meta"):
        model = ResNet(spec, init_weights=False)
    style = BlockStyle.from_spec(spec)
    block_class = type(model.layer1[0]).__name__
    library = inspect.getsource(blocks).split('"""', 2)[2].lstrip()  # blocks.py without its docstring
    library = library.replace("from __future__ import annotations\n\n", "")
    constants = (f"STYLE = {style!r}\n"
                 f"LAYERS = {spec.layers!r}  # blocks per stage\n"
                 f"STAGE_PLANES = {spec.stage_planes!r}\n"
                 f"STEM_CHANNELS = {spec.stem_channels}\n"
                 f"SHORTCUT = {spec.shortcut!r}  # A zero-pad, B project on shape change, C always, D avg-pool + 1x1\n"
                 f"NUM_CLASSES = {spec.num_classes}\n")
    norm_in_shortcut = "None" if spec.preact else "STYLE.norm_layer"
    return f'''"""{name} exported by ResNet Explorer: one file, torch only. `build()` returns the network.

Spec: {spec.to_dict()}
Load weights saved from resnet_core with `build().load_state_dict(torch.load(path))`.
"""

from __future__ import annotations

{library}

{constants}

class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = {module_code(model.conv1)}
        self.bn1 = {module_code(model.bn1)}
        self.relu = {module_code(model.relu)}
        self.maxpool = {module_code(model.maxpool)}
        inplanes = STEM_CHANNELS
        for i, (planes, blocks) in enumerate(zip(STAGE_PLANES, LAYERS)):
            layers = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                out = planes * {block_class}.expansion
                downsample = make_shortcut(SHORTCUT, inplanes, out, stride, {norm_in_shortcut}) if STYLE.skip else None
                layers.append({block_class}(inplanes, planes, stride, downsample, STYLE))
                inplanes = out
            setattr(self, f"layer{{i + 1}}", nn.Sequential(*layers))
        self.final_norm = {module_code(model.final_norm)}
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(len(LAYERS)):
            x = getattr(self, f"layer{{i + 1}}")(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build() -> ResNet:
    return ResNet()
'''


def export(spec: ModelSpec, path: str | Path, fmt: str = "py", name: str = "custom",
           input_size: tuple[int, int, int] | None = None) -> Path:
    """Write `spec` as a .py file, or as ONNX (random weights unless loaded later) for `input_size`."""
    path = Path(path)
    if fmt == "py":
        path.write_text(python_source(spec, name))
        return path
    if fmt != "onnx":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
    if missing:
        raise RuntimeError(f"--format onnx needs the {' and '.join(missing)} package(s): "
                           f"pip install {' '.join(missing)}")
    model = ResNet(spec).eval()
    side = input_size or (spec.in_channels, *(natural_input_size(spec)[1:]))
    torch.onnx.export(model, (torch.zeros(1, *side),), str(path))
    return path


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
