"""What a checkpoint says about the network it was saved from, so that a load that succeeds means the same network.

Keys and shapes cannot tell every network apart: a weight-standardised conv (BiT) stores the same tensor as a
plain one, an anti-aliasing pool or a ceil-mode stem pool has no weights at all. So:

- Our own checkpoints carry their spec: `with_spec` puts the spec's JSON in the module list torch.save keeps with a
  state_dict (`_metadata`, under the root module as SPEC_KEY), so the keys stay exactly the model's and plain
  `load_state_dict` still takes the file (run folders' weights.pt, `save_weights`, exported files' `save_weights`);
  `carried_spec` reads it back.
- A foreign (timm or torchvision) state_dict is recognised from its keys and shapes, from timm's naming (ResNetV2's
  `stem.`/`stages.`, the Caffe SENet's `layer0.`) read against timm's registry, from the module list torch.save keeps
  with a state_dict (`_metadata`), and from a timm model name in the file's path or a `config.json` beside it
  (`architecture_from_path`). `checkpoint_evidence` returns what that fixes (`facts`) and what it cannot tell.
- `check_meaning` raises one ValueError naming the first field where the model is another network than the
  checkpoint's; `standardize_conv_weights` converts a weight-standardised checkpoint into plain convs on purpose.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..validation import shown
from .presets import PRESETS
from .spec import FIELDS, ModelSpec

SPEC_KEY = "resnet_explorer_spec"  # in state_dict._metadata[""]: torch keeps it through torch.save and torch.load
MAX_SPEC_BYTES = 1 << 20  # a spec's JSON is at most ~40 KB (2,000 pruned blocks' widths)
MAX_CONFIG_BYTES = 1 << 20
TIMM_VERSION = "1.0.31"
# Fields that change what a network computes but no key or shape of ours shows (the shortcut only in timm's ResNetV2
# naming, where an average pool before the projection leaves no key; skip where no shortcut has weights).
SILENT_FIELDS = ("weight_standardization", "stem_pool", "skip", "shortcut", "anti_alias", "stride_placement",
                 "attention_placement", "norm_groups", "avg_downsample")
_SILENT_IN_OUR_NAMING = tuple(f for f in SILENT_FIELDS if f != "shortcut")
INIT_ONLY = ("zero_init_residual",)  # how weights start, not what the network computes
TIMM_NAMES = {p.timm: p.name for p in PRESETS.values() if p.timm and p.name == p.timm}


@dataclass(frozen=True)
class Evidence:
    """What a checkpoint fixes about its network: field -> (value, why), and the fields it cannot tell."""

    facts: dict[str, tuple[Any, str]] = field(default_factory=dict)
    cannot_tell: tuple[str, ...] = ()
    architecture: str | None = None  # the timm model it names, when it names one


def with_spec(state_dict: Mapping[str, torch.Tensor], spec: ModelSpec) -> OrderedDict:
    """`state_dict` (the same keys and tensors) carrying `spec` in its module list, for a file that should say which
    network it holds."""
    out = OrderedDict(state_dict)
    modules = OrderedDict(getattr(state_dict, "_metadata", None) or {})
    modules[""] = {**modules.get("", {"version": 1}), SPEC_KEY: json.dumps(spec.to_dict(), sort_keys=True)}
    out._metadata = modules
    return out


def carried_spec(state_dict: Mapping[str, Any]) -> ModelSpec | None:
    """The spec `state_dict` carries (see `with_spec`), or None; one that does not read is a ValueError."""
    modules = getattr(state_dict, "_metadata", None)
    root = modules.get("") if isinstance(modules, Mapping) else None
    text = root.get(SPEC_KEY) if isinstance(root, Mapping) else None
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_SPEC_BYTES:
        raise ValueError(f"state_dict: the spec it carries must be a spec's JSON (at most {MAX_SPEC_BYTES:,} "
                         "characters)")
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("state_dict: the spec it carries is not JSON") from None
    try:
        return ModelSpec.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"state_dict: the spec it carries is not valid: {exc}") from None


def spec_difference(model: ModelSpec, carried: ModelSpec, ignore: tuple[str, ...] = ()) -> str | None:
    """The first field (in ModelSpec order) where `carried` describes another network than `model`, as text. Two
    ways of writing one network are not a difference (stem_width None or equal to width; a field the blocks do not
    use)."""
    mine, theirs = canonical(model), canonical(carried)
    for name in FIELDS:
        if name not in INIT_ONLY and name not in ignore and mine[name] != theirs[name]:
            return f"{name} is {_text(theirs[name])} in the checkpoint's network but {_text(mine[name])} in this model"
    return None


def canonical(spec: ModelSpec) -> dict[str, Any]:
    """The spec's fields as the network uses them: defaults resolved, fields its blocks ignore blanked."""
    values = {name: (_resolved(spec, name) if _matters(spec, name) else None) for name in FIELDS}
    values.update(stem_width=spec.stem_channels, stem_norm=spec.has_stem_norm, stage_blocks=spec.stage_block_types,
                  stage_widths=spec.stage_planes, block=None, width=None)  # the last two live on in stage_*
    return values


def check_carried_spec(model: ModelSpec, carried: ModelSpec | None, ignore: tuple[str, ...] = ()) -> None:
    difference = None if carried is None else spec_difference(model, carried, ignore)
    if difference is not None:
        raise ValueError(f"state_dict: saved from another network: {difference}")


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


# ------------------------------------------------------------------------------------------ foreign checkpoints


def architecture_from_path(path: str | Path) -> str | None:
    """The timm model a checkpoint file names: its file name (timm's `resnet50d.ra2_in1k.pth`, torchvision's
    `resnet50-11ad3fa6.pth`), a Hugging Face cache folder (`models--timm--resnet50d.ra2_in1k/...`), or `architecture`
    in a config.json beside it (timm's Hub files); None when it names none."""
    path = Path(path)
    hub = next((m[1] for part in path.parts if (m := re.fullmatch(r"models--timm--([\w.]+)", part))), None)
    for name in (path.name.split(".")[0].split("-")[0], (hub or "").split(".")[0]):
        if name in TIMM_NAMES:
            return name
    config = path.parent / "config.json"
    try:
        if config.is_file() and config.stat().st_size <= MAX_CONFIG_BYTES:
            name = json.loads(config.read_text()).get("architecture")
            return name if isinstance(name, str) and name in TIMM_NAMES else None
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        return None
    return None


def checkpoint_evidence(state_dict: Mapping[str, Any], source: str = "timm",
                        architecture: str | None = None) -> Evidence:
    """What `state_dict` (timm's or torchvision's keys) fixes about the network it came from. A known
    `architecture` (a timm model name) fixes every field; otherwise the keys, shapes, timm's naming and the module
    list torch.save keeps (`_metadata`) fix what they can, read against the library's registry when the checkpoint
    is shaped like one of its nets (timm's ResNetV2 or legacy SENet naming, or an ImageNet stem), and the rest is
    `cannot_tell`."""
    if architecture is not None:
        if architecture not in TIMM_NAMES:
            raise ValueError(f"architecture must be one of timm's {len(TIMM_NAMES)} ResNet-family names built here; "
                             f"got {shown(architecture)}")
        spec = PRESETS[TIMM_NAMES[architecture]].spec
        why = f"the checkpoint names timm's {architecture}"
        return Evidence({f: (_resolved(spec, f), why) for f in SILENT_FIELDS}, (), architecture)
    keys = [k for k in state_dict if isinstance(k, str)]
    modules = set(getattr(state_dict, "_metadata", None) or ())
    if any(k.startswith("stages.") for k in keys):
        return _resnetv2_evidence(keys, modules)
    if any(k.startswith("layer0.") for k in keys):
        return _legacy_senet_evidence(state_dict, keys)
    if _registry_stem(state_dict):
        return _torchvision_evidence() if source == "torchvision" else _resnet_evidence(keys, modules)
    projects = any(".downsample." in k for k in keys)
    facts = {"skip": (True, "it has projection shortcuts, so its blocks add their shortcuts")} if projects else {}
    return Evidence(facts, tuple(f for f in _SILENT_IN_OUR_NAMING if f not in facts))


def _registry_stem(state_dict: Mapping[str, Any]) -> bool:
    """A stem like every ImageNet net of timm's resnet.py and torchvision's: one 7x7 conv, or three 3x3 convs."""
    conv = state_dict.get("conv1.weight")
    seven = isinstance(conv, torch.Tensor) and conv.dim() == 4 and tuple(conv.shape[2:]) == (7, 7)
    return seven or "conv1.6.weight" in state_dict


def _v1_facts(why: str) -> dict[str, tuple[Any, str]]:
    return dict(weight_standardization=(False, why), stride_placement=("v1.5", why), skip=(True, why),
                attention_placement=("before_add", why), norm_groups=(32, why))


def _torchvision_evidence() -> Evidence:
    why = "torchvision's ResNets are residual, v1.5, with no anti-aliasing, weight standardisation or other pooling"
    return Evidence(dict(_v1_facts(why), anti_alias=("none", why), stem_pool=("max", why)))


def _resnet_evidence(keys: list[str], modules: set[str]) -> Evidence:
    """timm's resnet.py (and res2net, resnest, sknet): conv1/bn1/layerN/fc with an ImageNet stem."""
    why = f"every ImageNet-stem net of timm {TIMM_VERSION}'s resnet.py is residual, never standardises conv " \
          "weights, strides bottlenecks on the 3x3 conv (v1.5), gates before the addition and uses 32 norm groups"
    facts = _v1_facts(why)
    cannot = ["avg_downsample"] if any(".conv2.fc1." in k for k in keys) else []  # ResNeSt: before or after the 3x3
    if any(k.startswith("maxpool.") for k in keys):
        facts["stem_pool"] = ("conv", "the stem pool has weights: ResNet-RS's conv pool")
        if any(k.startswith("maxpool.1.") for k in keys):  # its norm right after the conv: no pool between
            facts["anti_alias"] = ("none", "the conv stem pool's norm follows its conv: no anti-aliasing pool")
        else:
            cannot.insert(0, "anti_alias")
        return Evidence(facts, tuple(cannot))
    facts["stem_pool"] = ("max", why + "; its stem pool has no weights, so it is the max pool (anti-aliased or not)")
    if modules and "maxpool.1" in modules:  # a max pool, then a blur pool: resnetblur*
        facts["anti_alias"] = ("blur", "its module list has a blur pool after the stem's max pool")
    else:
        cannot.insert(0, "anti_alias")  # resnet50 and resnetaa50 share every key and shape
    return Evidence(facts, tuple(cannot))


def _resnetv2_evidence(keys: list[str], modules: set[str]) -> Evidence:
    """timm's resnetv2.py: stem.*, stages.i.blocks.j.*, norm, head.fc."""
    norm = ("evonorm_s0" if any(k.endswith(".v") for k in keys) else "frn_tlu" if any(k.endswith(".tau") for k in keys)
            else "batch" if any(k.endswith(".running_var") for k in keys) else "group")
    deep = any(k.startswith("stem.conv1.") for k in keys)
    registry = f"in timm {TIMM_VERSION}'s registry"
    bit = norm == "group" and not deep
    why = (f"{registry} every ResNetV2 with group norms and a 7x7 stem is BiT (resnetv2_*_bit): weight-standardised "
           "convs and a zero-padded stem pool" if bit else
           f"{registry} only BiT (group norms and a 7x7 stem) standardises conv weights or zero-pads its stem pool")
    facts: dict[str, tuple[Any, str]] = dict(
        weight_standardization=(bit, why), stem_pool=("zero_pad_max" if bit else "max", why),
        anti_alias=("none", f"{registry} no ResNetV2 is anti-aliased"), stride_placement=("v1.5", registry),
        norm_groups=(32, f"{registry} every ResNetV2 norm with groups has 32"), skip=(True, registry))
    pooled = [m for m in modules if m.endswith(".downsample.pool")]
    if modules and any(m.endswith(".downsample") for m in modules):
        facts["shortcut"] = ("D" if pooled else "B", "its module list " + ("has" if pooled else "has no") +
                             " average pool in the projection shortcuts")
    else:
        facts["shortcut"] = ("D" if deep else "B", f"{registry} a ResNetV2 average-pools its projection shortcuts "
                             "exactly when its stem is deep")
    if modules and "stem.pad" in modules:
        facts["stem_pool"] = ("zero_pad_max", "its module list has the zero padding of BiT's fixed stem")
    return Evidence(facts)


def _legacy_senet_evidence(state_dict: Mapping[str, Any], keys: list[str]) -> Evidence:
    """timm's senet.py (the Caffe SENet port): layer0.*, se_module, last_linear."""
    registry = f"timm {TIMM_VERSION}'s legacy SENets"
    basic = not any(k.endswith(".conv3.weight") for k in keys)
    conv2 = next((state_dict[k] for k in keys if re.match(r"layer1\.0\.conv2\.weight$", k)), None)
    grouped = conv2 is not None and conv2.dim() == 4 and conv2.shape[1] * 2 <= conv2.shape[0] and not basic
    facts: dict[str, tuple[Any, str]] = dict(
        weight_standardization=(False, registry + " never standardise conv weights"),
        stem_pool=("max_ceil", registry + " keep the Caffe stem pool (unpadded, ceil mode)"), skip=(True, registry),
        anti_alias=("none", registry + " are not anti-aliased"),
        attention_placement=("after_relu" if basic else "before_add",
                             registry + ": the basic block applies a ReLU before its SE gate, the bottlenecks not"))
    if not basic:
        facts["stride_placement"] = ("v1.5" if grouped else "v1", registry + ": SE-ResNet bottlenecks stride on the "
                                     "first 1x1 conv, grouped (SE-ResNeXt, SENet-154) ones on the 3x3")
    return Evidence(facts)


def field_text(spec: ModelSpec, name: str) -> str:
    """The value `name` has in the network `spec` builds, as text ("max" for the stem pool an ImageNet stem
    resolves None to)."""
    return _text(_resolved(spec, name))


def _resolved(spec: ModelSpec, name: str) -> Any:
    return spec.resolved_stem_pool if name == "stem_pool" else getattr(spec, name)


def _matters(spec: ModelSpec, name: str) -> bool:
    """Whether `name` changes what this model computes (a basic block has no stride placement, ...)."""
    types = set(spec.stage_block_types)
    if name == "stride_placement":
        return any(t.endswith("bottleneck") for t in types)
    if name == "attention_placement":
        return spec.attention != "none"
    if name == "norm_groups":
        return spec.norm in ("group", "evonorm_s0")
    if name == "avg_downsample":
        return "split_attention_bottleneck" in types
    if name == "res2net_scale":
        return "res2net_bottleneck" in types
    if name == "radix":
        return "split_attention_bottleneck" in types
    if name in ("sk_reduction", "sk_divisor", "sk_split"):
        return any(t.startswith("sk_") for t in types)
    if name in ("attention_reduction", "attention_divisor"):
        return spec.attention == "se"
    if name == "stem_mid":
        return spec.deep_stem
    if name in ("groups", "width_per_group"):
        return any(t not in ("basic", "preact_basic", "sk_basic") for t in types)
    return True


def check_meaning(spec: ModelSpec, evidence: Evidence, source: str = "timm") -> None:
    """One ValueError naming the first field where `spec` is another network than the checkpoint's."""
    for name, (value, why) in evidence.facts.items():
        mine = _resolved(spec, name)
        if _matters(spec, name) and mine != value:
            fix = (" (or convert it on purpose: load_state_dict(..., convert='standardize') standardises its "
                   "weights into plain convs)" if name == "weight_standardization" and value else "")
            raise ValueError(f"state_dict: this {source} checkpoint's network has {name} {_text(value)} ({why}) but "
                             f"this model has {name} {_text(mine)}: the same weights would compute another function; "
                             f"build the model with {name} {_text(value)}{fix}")


def unknown_fields(spec: ModelSpec, evidence: Evidence) -> list[str]:
    """The fields `evidence` cannot tell that change what this model computes."""
    return [f for f in evidence.cannot_tell if _matters(spec, f)]


def standardize_conv_weights(state_dict: Mapping[str, torch.Tensor], conv_keys: set[str],
                             eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """The weights a plain conv needs to compute what a weight-standardised conv (BiT) computes with `state_dict`:
    each of `conv_keys` standardised per output channel, as WeightStdConv2d does at every forward pass."""
    out = dict(state_dict)
    for key in conv_keys:
        w = state_dict[key]
        out[key] = torch.nn.functional.batch_norm(w.reshape(1, w.shape[0], -1), None, None, training=True,
                                                  momentum=0.0, eps=eps).reshape_as(w)
    return out
