"""Checkpoints from timm and torchvision onto our module names, loaded strictly and only into the same network.

Our names are torchvision's, and timm's ResNet keeps them (it started as a copy), so most keys map to themselves,
Res2Net's `convs`/`bns` and ResNeSt's split-attention `conv2.conv/bn0/fc1/bn1/fc2` included. timm's port of the
Caffe SENet (`legacy_seresnet*`, `legacy_seresnext*`, `legacy_senet154`) names its stem `layer0` (three convs in
SENet-154), its attention `se_module` and its classifier `last_linear`; timm's pre-activation `resnetv2_*` has
`stem.conv` (or `stem.conv1..3` with `norm1..2` when deep), `stages.i.blocks.j` with `norm1..3`, projection
shortcuts `downsample.conv` (after an average pool when avg-down), a final `norm` and a 1x1-conv classifier
`head.fc` (reshaped to our Linear); those are renamed, and so are the conv+norm pairs (`convN.conv`, `convN.bn`) of
timm's selective-kernel blocks (`skresnet*`, `skresnext*`) to our `convN`, `bnN`. Anything that still does not fit
is one ValueError naming the first bad key, before any weight of the model is touched; so is a checkpoint whose
keys fit but whose network computes something else (provenance.py: a weight-standardised BiT checkpoint into plain
convs, a spec our own files carry that differs from the model's).
"""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..files import open_regular
from ..validation import check_choice, shown
from .blocks import WeightStdConv2d
from .presets import get_preset
from .provenance import (
    carried_spec,
    check_carried_spec,
    check_meaning,
    checkpoint_evidence,
    field_text,
    standardize_conv_weights,
    unknown_fields,
    with_spec,
)
from .spec import ModelSpec

SOURCES = ("timm", "torchvision")
CONVERSIONS = ("standardize",)


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but some field of its network cannot be told from it."""


# (pattern, replacement) applied in order to every key of a timm checkpoint
_TIMM_RENAMES = (
    (re.compile(r"^layer0\.(conv1|bn1)\."), r"\1."),
    (re.compile(r"\.se_module\."), ".se."),
    (re.compile(r"^last_linear\."), "fc."),
    (re.compile(r"^stem\.conv\."), "conv1."),  # resnetv2 (pre-activation)
    (re.compile(r"^stem\.norm3?\."), "bn1."),  # a post-activation stem's norm
    (re.compile(r"^stem\.conv([123])\."), lambda m: f"conv1.{3 * (int(m[1]) - 1)}."),  # deep: conv1.0, .3, .6
    (re.compile(r"^stem\.norm([12])\."), lambda m: f"conv1.{3 * (int(m[1]) - 1) + 1}."),  # deep: conv1.1, .4
    (re.compile(r"^norm\."), "final_norm.0."),
    (re.compile(r"^head\.fc\."), "fc."),
)
_SK_RENAMES = (  # skresnet: the conv+norm pairs of a block (ResNeSt's split-attention conv2.conv stays as it is)
    (re.compile(r"^(layer\d+\.\d+\.conv\d)\.conv\."), r"\1."),
    (re.compile(r"^(layer\d+\.\d+\.)conv(\d)\.bn\."), r"\1bn\2."),
)
_SK_PAIR = re.compile(r"^layer\d+\.\d+\.conv\d\.bn\.")
_V2_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# A state_dict file (weights, a checkpoint with its optimizer): resnext101_32x32d with two Adam moments is 5.6 GB.
MAX_STATE_FILE_BYTES = 16 * 2**30


def map_keys(state_dict: Mapping[str, torch.Tensor], source: str,
             spec: ModelSpec | None = None) -> dict[str, torch.Tensor]:
    """`state_dict` with its keys renamed from `source`'s module names to ours. A ResNetV2 projection shortcut's
    conv is named alike whether an average pool precedes it or not: it becomes ours as `spec` has it (shortcut D:
    `downsample.1`, else `downsample.0`; provenance.py checks that the checkpoint's network has that shortcut)."""
    check_choice("source", source, SOURCES)
    if source == "torchvision":
        return dict(state_dict)
    v2_shortcut = "downsample.1." if spec is not None and spec.shortcut == "D" else "downsample.0."
    deep_layer0 = "layer0.conv2.weight" in state_dict  # SENet-154's three-conv Caffe stem
    renames = _TIMM_RENAMES + (_SK_RENAMES if any(_SK_PAIR.match(k) for k in state_dict) else ())
    mapped = {}
    for key, value in state_dict.items():
        new = _deep_layer0(key) if deep_layer0 else key
        for pattern, replacement in renames:
            new = pattern.sub(replacement, new)
        stage = _V2_BLOCK.match(new)
        if stage:  # resnetv2: stages.i.blocks.j.norm1 -> layer{i+1}.j.bn1, downsample.conv -> downsample.0 or .1
            rest = re.sub(r"^norm(\d)\.", r"bn\1.", new[stage.end():]).replace("downsample.conv.", v2_shortcut)
            new = f"layer{int(stage[1]) + 1}.{stage[2]}.{rest}"
        if new == "fc.weight" and key == "head.fc.weight" and value.dim() == 4:  # resnetv2's 1x1-conv classifier
            value = value.flatten(1)
        mapped[new] = value
    return mapped


def _deep_layer0(key: str) -> str:
    """SENet-154's Caffe stem onto our deep stem: layer0.conv1..3 -> conv1.0/.3/.6, bn1..2 -> conv1.1/.4, bn3 ->
    bn1."""
    found = re.match(r"^layer0\.(conv|bn)([123])\.", key)
    if not found:
        return key
    kind, i = found[1], int(found[2])
    new = "bn1." if (kind, i) == ("bn", 3) else f"conv1.{3 * (i - 1) + (kind == 'bn')}."
    return new + key[found.end():]


def load_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "timm",
                    architecture: str | None = None, convert: str | None = None) -> nn.Module:
    """Load a timm or torchvision checkpoint (or one of ours) into `model` strictly, and only if it is the same
    network: a ValueError names the first bad key, or the first field where the checkpoint's network differs
    (provenance.py). `architecture`, a timm model name, says which network the checkpoint is; fields that cannot be
    told without it give one CheckpointWarning. `convert="standardize"` loads a weight-standardised checkpoint (BiT)
    into plain convs by standardising its weights once, on purpose."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to tensors; got {type(state_dict).__name__}")
    bad = next((k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None or any(not isinstance(k, str) for k in state_dict):
        raise ValueError(f"state_dict: key {shown(bad)} does not map a name to a tensor")
    if convert is not None:
        check_choice("convert", convert, CONVERSIONS)
    carried = carried_spec(state_dict)
    spec = getattr(model, "spec", None) if isinstance(getattr(model, "spec", None), ModelSpec) else None
    mapped = map_keys(state_dict, source, spec)
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
    if spec is not None:
        mapped = _same_network(model, spec, state_dict, mapped, carried, source, architecture, convert)
    model.load_state_dict(mapped, strict=True)
    return model


def _same_network(model: nn.Module, spec: ModelSpec, original: Mapping[str, torch.Tensor],
                  mapped: dict[str, torch.Tensor], carried: ModelSpec | None, source: str, architecture: str | None,
                  convert: str | None) -> dict[str, torch.Tensor]:
    """`mapped`, converted if asked, once the checkpoint's network is known to be the model's (else a ValueError)."""
    if carried is not None:
        converting = convert == "standardize" and carried.weight_standardization and not spec.weight_standardization
        if convert is not None and not converting:
            raise ValueError("convert: standardize is for a weight-standardised checkpoint loaded into plain convs")
        check_carried_spec(spec, carried, ignore=("weight_standardization",) if converting else ())
        return _standardized(model, spec, mapped) if converting else mapped
    evidence = checkpoint_evidence(original, source, architecture)
    std = evidence.facts.get("weight_standardization", (None, ""))[0]
    converting = convert == "standardize" and std is True and not spec.weight_standardization
    if convert is not None and not converting:
        raise ValueError("convert: standardize is for a weight-standardised checkpoint loaded into plain convs; "
                         f"this one's convs are {'plain' if std is False else 'of an unknown kind'} or the model's "
                         "are weight-standardised already")
    check_meaning(spec.replace(weight_standardization=True) if converting else spec, evidence, source)
    unknown = unknown_fields(spec, evidence)
    if unknown:
        told = ", ".join(f"{f} {field_text(spec, f)}" for f in unknown)
        warnings.warn(f"state_dict: {', '.join(unknown)} cannot be told from this {source} checkpoint (no key or "
                      f"shape shows them); loaded as this model's {told}; pass architecture= (a timm name) or save "
                      "with resnet_core.save_weights, which stores the spec", CheckpointWarning, stacklevel=3)
    return _standardized(model, spec, mapped) if converting else mapped


def _standardized(model: nn.Module, spec: ModelSpec, mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`mapped` with the weights of every conv a weight-standardised twin of the model standardises, standardised."""
    with torch.device("meta"):
        twin = type(model)(spec.replace(weight_standardization=True), init_weights=False)
    keys = {f"{name}.weight" for name, m in twin.named_modules() if isinstance(m, WeightStdConv2d)}
    return standardize_conv_weights(mapped, keys, WeightStdConv2d.eps)


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """`model`'s state_dict in a torch file that carries its spec, so that loading it into another network is
    refused (load_state_dict) instead of computing something else."""
    path, spec = Path(path), getattr(model, "spec", None)
    torch.save(with_spec(cpu_state_dict(model), spec) if isinstance(spec, ModelSpec) else cpu_state_dict(model), path)
    return path


def cpu_state_dict(model: nn.Module) -> OrderedDict:
    """`model.state_dict()` detached on the CPU, contiguous, with its module list (`_metadata`)."""
    state = model.state_dict()
    out = OrderedDict((k, v.detach().to("cpu", memory_format=torch.contiguous_format)) for k, v in state.items())
    out._metadata = getattr(state, "_metadata", OrderedDict())
    return out


def is_checkpoint_path(weights: str) -> bool:
    """A local file (as opposed to a torchvision weights name such as IMAGENET1K_V2)."""
    return weights.endswith(CHECKPOINT_SUFFIXES) or os.sep in weights or Path(weights).is_file()


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a local .pt/.pth/.bin (tensors only, no pickled code) or .safetensors file: a regular file
    (never a FIFO or a device) of at most MAX_STATE_FILE_BYTES."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise RuntimeError("weights: reading .safetensors files needs the safetensors package "
                               "(pip install safetensors)") from None
    try:
        file = open_regular(path, "weights", MAX_STATE_FILE_BYTES)
    except FileNotFoundError:
        raise ValueError(f"weights: no such file {shown(str(path))}") from None
    except OSError as exc:
        raise ValueError(f"weights: {shown(str(path))} cannot be read: {exc.strerror or exc}") from None
    with file:
        try:
            if path.suffix == ".safetensors":
                data = load_safetensors(file.read())
            else:
                data = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refusals, truncated or foreign files
            raise ValueError(f"weights: {path.name} is not a readable checkpoint ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):  # training scripts often save {"state_dict": ..., "epoch": ...}
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping):
        raise ValueError(f"weights: {path.name} holds a {type(data).__name__}, not a state_dict")
    return _keeping_module_list(data)


def _keeping_module_list(data: Mapping) -> dict:
    """A plain copy of a state_dict that keeps the module list torch.save stores with it (`_metadata`), which
    tells some networks apart that share every key (provenance.py)."""
    out = OrderedDict(data)
    if isinstance(getattr(data, "_metadata", None), Mapping):
        out._metadata = data._metadata
    return out


def torchvision_weights(model: str | ModelSpec, spec: ModelSpec, weights: str) -> dict:
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
