"""Export a network as one readable PyTorch file (torch imports only) whose `build()` returns the same network.

The file holds the block library (`blocks.py`, which imports only torch), the network's constants (its blocks per
stage and their type, widths, a pruned net's per-block widths, style), its stem and head written out from the built
modules, and the stage loop of `resnet.py`, so `build().state_dict()` has our keys and shapes and loads our (or
timm's, torchvision's, once renamed) checkpoints. It carries its spec too: `save_weights` stores it with the
weights and `load_weights` refuses, in one line, weights saved from another network (as provenance.py does). ONNX
export goes through `torch.onnx.export`, which needs the onnx and onnxscript packages. Either is written beside the
output and moved into place: an existing file is never replaced unless asked, and a symlink never written through.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import torch
from torch import nn

from ..files import write_new_file
from . import blocks
from .blocks import BLOCK_TYPES, BlockStyle, BlurPool2d, EvoNormS0, FilterResponseNormTLU, WeightStdConv2d
from .provenance import SPEC_KEY
from .resnet import ResNet
from .spec import ModelSpec, natural_input_size

FORMATS = ("py", "onnx")


def module_code(m: nn.Module | None) -> str:
    """Constructor code for one stem or head module (the kinds `ResNet` puts there)."""
    if m is None:
        return "None"
    if isinstance(m, nn.Sequential):
        return "nn.Sequential(" + ", ".join(module_code(c) for c in m) + ")"
    if isinstance(m, nn.Conv2d):
        kind = "WeightStdConv2d" if isinstance(m, WeightStdConv2d) else "nn.Conv2d"
        return (f"{kind}({m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size[0]}, stride={m.stride[0]}, "
                f"padding={m.padding[0]}, bias={m.bias is not None})")
    if isinstance(m, nn.BatchNorm2d):
        return f"nn.BatchNorm2d({m.num_features})"
    if isinstance(m, EvoNormS0):
        return f"EvoNormS0({m.weight.shape[0]}, {m.groups})"
    if isinstance(m, FilterResponseNormTLU):
        return f"FilterResponseNormTLU({m.weight.shape[0]})"
    if isinstance(m, nn.Identity):
        return "nn.Identity()"
    if isinstance(m, nn.ConstantPad2d):
        return f"nn.ConstantPad2d({m.padding[0]}, {m.value})"
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


# The exported file, filled in by `python_source` (str.format: {{ }} are literal braces).
_FILE = '''"""{name} exported by ResNet Explorer: one file, torch only. `build()` returns the network.

Spec: {spec}
Load weights saved from resnet_core with `load_weights(build(), torch.load(path, weights_only=True))`: weights that
carry another network's spec are refused. `save_weights(model, path)` saves them with this network's spec.
"""

from __future__ import annotations

import json

{library}

{constants}

class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = {conv1}
        self.bn1 = {bn1}
        self.relu = {relu}
        self.maxpool = {maxpool}
        inplanes = STEM_CHANNELS
        widths = iter(BLOCK_WIDTHS) if BLOCK_WIDTHS is not None else None
        for i, (planes, blocks, block_class) in enumerate(zip(STAGE_PLANES, LAYERS, STAGE_BLOCKS)):
            layers = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                extra = dict(widths=next(widths)) if widths is not None else {{}}
                out = extra["widths"][2] if extra else planes * block_class.expansion
                downsample = style_shortcut(SHORTCUT, inplanes, out, stride, STYLE, PREACT) if STYLE.skip else None
                layers.append(block_class(inplanes, planes, stride, downsample, STYLE, **extra))
                inplanes = out
            setattr(self, f"layer{{i + 1}}", nn.Sequential(*layers))
        self.final_norm = {final_norm}
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


def load_weights(model: ResNet, state_dict: dict) -> ResNet:
    """Load `state_dict` strictly; a ValueError if it carries the spec of another network than this file's (in the
    module list torch.save keeps with it, as resnet_core stores it)."""
    carried = (getattr(state_dict, "_metadata", None) or {{}}).get("", {{}}).get(SPEC_KEY)
    if carried is not None:
        theirs = json.loads(carried)
        differ = [k for k in SPEC if k != "zero_init_residual" and theirs.get(k) != SPEC[k]]
        if differ:
            raise ValueError(f"state_dict: saved from another network: {{differ[0]}} is {{theirs.get(differ[0])!r}} "
                             f"there but {{SPEC[differ[0]]!r}} in this file's network")
    model.load_state_dict(state_dict, strict=True)
    return model


def save_weights(model: ResNet, path: str) -> None:
    """`model`'s weights with this file's spec, so that loading them into another network is refused."""
    state = model.state_dict()
    state._metadata[""] = {{**state._metadata.get("", {{}}), SPEC_KEY: json.dumps(SPEC, sort_keys=True)}}
    torch.save(state, path)
'''


def python_source(spec: ModelSpec, name: str = "custom") -> str:
    """The whole exported file for `spec` (`name` only labels it)."""
    with torch.device("meta"):
        model = ResNet(spec, init_weights=False)
    style = BlockStyle.from_spec(spec)
    library = inspect.getsource(blocks).split('"""', 2)[2].lstrip()  # blocks.py without its docstring
    library = library.replace("from __future__ import annotations\n\n", "")
    stage_blocks = ", ".join(BLOCK_TYPES[b].__name__ for b in spec.stage_block_types)
    constants = (f"STYLE = {style!r}\n"
                 f"LAYERS = {spec.layers!r}  # blocks per stage\n"
                 f"STAGE_BLOCKS = ({stage_blocks},)  # the block type of each stage\n"
                 f"STAGE_PLANES = {spec.stage_planes!r}\n"
                 f"BLOCK_WIDTHS = {spec.block_widths!r}  # a pruned net's (first 1x1, 3x3, output) per block\n"
                 f"STEM_CHANNELS = {spec.stem_channels}\n"
                 f"SHORTCUT = {spec.shortcut!r}  # A zero-pad, B project on shape change, C always, D avg-pool + 1x1\n"
                 f"PREACT = {spec.preact!r}  # pre-activation blocks: projections without a norm\n"
                 f"NUM_CLASSES = {spec.num_classes}\n"
                 f"SPEC_KEY = {SPEC_KEY!r}\n"
                 f"SPEC = json.loads({json.dumps(spec.to_dict(), sort_keys=True)!r})\n")
    return _FILE.format(name=name, spec=spec.to_dict(), library=library, constants=constants,
                        **{part: module_code(getattr(model, part))
                           for part in ("conv1", "bn1", "relu", "maxpool", "final_norm")})


def export(spec: ModelSpec, path: str | Path, fmt: str = "py", name: str = "custom",
           input_size: tuple[int, int, int] | None = None, *, force: bool = False, what: str = "output",
           force_hint: str = "force=True") -> Path:
    """Write `spec` as a .py file, or as ONNX (random weights unless loaded later) for `input_size`. Nothing at `path`
    is replaced unless `force`, and never through a symlink (see files.write_new_file); `what` and `force_hint` name
    the output and the way to replace it in the one-line ValueError."""
    if fmt == "py":
        source = python_source(spec, name)
        return write_new_file(path, lambda tmp: tmp.write_text(source), what, force=force, force_hint=force_hint)
    if fmt != "onnx":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
    if missing:
        raise RuntimeError(f"--format onnx needs the {' and '.join(missing)} package(s): "
                           f"pip install {' '.join(missing)}")
    model = ResNet(spec).eval()
    side = input_size or (spec.in_channels, *(natural_input_size(spec)[1:]))
    return write_new_file(path, lambda tmp: torch.onnx.export(model, (torch.zeros(1, *side),), str(tmp)), what,
                          force=force, force_hint=force_hint)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
