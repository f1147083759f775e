"""Checkpoints from timm and torchvision onto our module names, loaded strictly.

Our names are torchvision's, and timm's ResNet keeps them (it started as a copy), so most keys map to themselves.
timm's port of the Caffe SENet (`legacy_seresnet*`, `legacy_seresnext*`) names its stem `layer0`, its attention
`se_module` and its classifier `last_linear`; timm's pre-activation `resnetv2_*` has `stem.conv`,
`stages.i.blocks.j` with `norm1..3`, a final `norm` and a 1x1-conv classifier `head.fc` (reshaped to our Linear);
those are renamed, and so are the conv+norm pairs (`convN.conv`, `convN.bn`) of timm's selective-kernel blocks
(`skresnet*`, `skresnext*`) to our `convN`, `bnN`. Anything that still does not fit is one
ValueError naming the first bad key, before any weight of the model is touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .validation import check_choice, shown

SOURCES = ("timm", "torchvision")
# (pattern, replacement) applied in order to every key of a timm checkpoint
_TIMM_RENAMES = (
    (re.compile(r"^layer0\.(conv1|bn1)\."), r"\1."),
    (re.compile(r"\.se_module\."), ".se."),
    (re.compile(r"^last_linear\."), "fc."),
    (re.compile(r"^stem\.conv\."), "conv1."),  # resnetv2 (pre-activation)
    (re.compile(r"^norm\."), "final_norm.0."),
    (re.compile(r"^head\.fc\."), "fc."),
    (re.compile(r"^(layer\d+\.\d+\.conv\d)\.conv\."), r"\1."),  # skresnet: conv+norm pairs of a block
    (re.compile(r"^(layer\d+\.\d+\.)conv(\d)\.bn\."), r"\1bn\2."),
)
_V2_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def map_keys(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """`state_dict` with its keys renamed from `source`'s module names to ours."""
    check_choice("source", source, SOURCES)
    if source == "torchvision":
        return dict(state_dict)
    mapped = {}
    for key, value in state_dict.items():
        new = key
        for pattern, replacement in _TIMM_RENAMES:
            new = pattern.sub(replacement, new)
        stage = _V2_BLOCK.match(new)
        if stage:  # resnetv2: stages.i.blocks.j.norm1 -> layer{i+1}.j.bn1, downsample.conv -> downsample.0
            rest = re.sub(r"^norm(\d)\.", r"bn\1.", new[stage.end():]).replace("downsample.conv.", "downsample.0.")
            new = f"layer{int(stage[1]) + 1}.{stage[2]}.{rest}"
        if new == "fc.weight" and key == "head.fc.weight" and value.dim() == 4:  # resnetv2's 1x1-conv classifier
            value = value.flatten(1)
        mapped[new] = value
    return mapped


def load_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "timm") -> nn.Module:
    """Load a timm or torchvision checkpoint into `model` strictly; a ValueError names the first bad key."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to tensors; got {type(state_dict).__name__}")
    bad = next((k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None or any(not isinstance(k, str) for k in state_dict):
        raise ValueError(f"state_dict: key {shown(bad)} does not map a name to a tensor")
    mapped = map_keys(state_dict, source)
    ours = model.state_dict()
    for key, tensor in ours.items():
        if key not in mapped:
            raise ValueError(f"state_dict: missing key {key!r} (shape {tuple(tensor.shape)}) from the {source} "
                             "checkpoint; it was made for a different network")
        if mapped[key].shape != tensor.shape:
            raise ValueError(f"state_dict: key {key!r} has shape {tuple(mapped[key].shape)} in the {source} "
                             f"checkpoint but {tuple(tensor.shape)} in this model")
    extra = next((k for k in mapped if k not in ours), None)
    if extra is not None:
        raise ValueError(f"state_dict: unexpected key {shown(extra)} in the {source} checkpoint; this model has "
                         "no such parameter or buffer")
    model.load_state_dict(mapped, strict=True)
    return model


def is_checkpoint_path(weights: str) -> bool:
    """A local file (as opposed to a torchvision weights name such as IMAGENET1K_V2)."""
    return weights.endswith(CHECKPOINT_SUFFIXES) or os.sep in weights or Path(weights).is_file()


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a local .pt/.pth/.bin (tensors only, no pickled code) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights: no such file {shown(str(path))}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise RuntimeError("weights: reading .safetensors files needs the safetensors package "
                               "(pip install safetensors)") from None
    try:
        if path.suffix == ".safetensors":
            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals, truncated or foreign files
        raise ValueError(f"weights: {path.name} is not a readable checkpoint ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):  # training scripts often save {"state_dict": ..., "epoch": ...}
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping):
        raise ValueError(f"weights: {path.name} holds a {type(data).__name__}, not a state_dict")
    return dict(data)
