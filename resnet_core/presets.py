"""Presets: a table of named ModelSpecs, plus the published reference figures they are checked against.

Presets are data. `resolve_spec(name, **overrides)` turns a name and overrides into a validated spec.
Plain twins (`plain20`, `plain50`, ...) are generated from the residual rows with `skip=False`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import OVERRIDABLE, ModelSpec, coerce_layers
from .validation import shown

_IMAGENET = dict(stem="imagenet", width=64, shortcut="B", num_classes=1000)
_CIFAR = dict(stem="cifar", width=16, shortcut="A", num_classes=10)


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # imagenet | cifar | wrn
    spec: ModelSpec
    torchvision: str | None = None  # name in torchvision.models with identical structure
    reference: dict[str, Any] = field(default_factory=dict)  # published figures, with "source"


HE2015 = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv:1512.03385), Table 6"
ZAGORUYKO2016 = "Zagoruyko, Komodakis. Wide Residual Networks. BMVC 2016 (arXiv:1605.07146), Table 4"

# name: (family, spec fields, torchvision name, reference)
_TABLE = {
    "resnet18": ("imagenet", dict(_IMAGENET, block="basic", layers=(2, 2, 2, 2)), "resnet18", {}),
    "resnet34": ("imagenet", dict(_IMAGENET, block="basic", layers=(3, 4, 6, 3)), "resnet34", {}),
    "resnet50": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 6, 3)), "resnet50", {}),
    "resnet101": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 23, 3)), "resnet101", {}),
    "resnet152": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 8, 36, 3)), "resnet152", {}),
    "wide_resnet50_2": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 6, 3), width_per_group=128),
                        "wide_resnet50_2", {}),
    "wide_resnet101_2": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 23, 3), width_per_group=128),
                         "wide_resnet101_2", {}),
    "resnext50_32x4d": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 6, 3), groups=32,
                                         width_per_group=4), "resnext50_32x4d", {}),
    "resnext101_32x8d": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 23, 3), groups=32,
                                          width_per_group=8), "resnext101_32x8d", {}),
    "preact_resnet18": ("imagenet", dict(_IMAGENET, block="preact_basic", layers=(2, 2, 2, 2)), None, {}),
    "preact_resnet50": ("imagenet", dict(_IMAGENET, block="preact_bottleneck", layers=(3, 4, 6, 3)), None, {}),
    "se_resnet50": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 6, 3), se=True), None, {}),
    "resnet20": ("cifar", dict(_CIFAR, layers=(3, 3, 3)), None,
                 dict(params=270_000, params_paper="0.27M", test_error=8.75, source=HE2015)),
    "resnet32": ("cifar", dict(_CIFAR, layers=(5, 5, 5)), None,
                 dict(params=460_000, params_paper="0.46M", test_error=7.51, source=HE2015)),
    "resnet44": ("cifar", dict(_CIFAR, layers=(7, 7, 7)), None,
                 dict(params=660_000, params_paper="0.66M", test_error=7.17, source=HE2015)),
    "resnet56": ("cifar", dict(_CIFAR, layers=(9, 9, 9)), None,
                 dict(params=850_000, params_paper="0.85M", test_error=6.97, source=HE2015)),
    "resnet110": ("cifar", dict(_CIFAR, layers=(18, 18, 18)), None,
                  dict(params=1_700_000, params_paper="1.7M", test_error=6.43, source=HE2015)),
    "resnet1202": ("cifar", dict(_CIFAR, layers=(200, 200, 200)), None,
                   dict(params=19_400_000, params_paper="19.4M", test_error=7.93, source=HE2015)),
    "preact_resnet110": ("cifar", dict(_CIFAR, block="preact_basic", layers=(18, 18, 18), shortcut="B"), None, {}),
    "wrn16_4": ("wrn", dict(_CIFAR, block="preact_basic", layers=(2, 2, 2), width=64, stem_width=16,
                            shortcut="B"), None,
                dict(params=2_700_000, params_paper="2.7M", test_error=5.02, source=ZAGORUYKO2016)),
    "wrn28_10": ("wrn", dict(_CIFAR, block="preact_basic", layers=(4, 4, 4), width=160, stem_width=16,
                             shortcut="B"), None,
                 dict(params=36_500_000, params_paper="36.5M", test_error=4.17, source=ZAGORUYKO2016)),
}


def _build_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for name, (family, fields, tv_name, reference) in _TABLE.items():
        presets[name] = Preset(name, family, ModelSpec(**fields).validate(), tv_name, reference)
    for name, preset in list(presets.items()):
        if name.startswith("resnet") and name[6:].isdigit():
            plain = "plain" + name[6:]
            presets[plain] = Preset(plain, preset.family, preset.spec.replace(skip=False))
    return presets


PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(f"model must be one of {', '.join(PRESETS)}; got {shown(name)}") from None


def resolve_spec(model: str | ModelSpec, **overrides: Any) -> ModelSpec:
    """A validated spec from a preset name (or a spec) and field overrides."""
    spec = model if isinstance(model, ModelSpec) else get_preset(model).spec
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown override {shown(unknown[0])}; allowed overrides are {', '.join(OVERRIDABLE)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "layers" in changes:
        changes["layers"] = coerce_layers(changes["layers"])
    return spec.replace(**changes)


def matching_preset(spec: ModelSpec) -> Preset | None:
    """The preset whose spec equals `spec` exactly, if any."""
    for preset in PRESETS.values():
        if preset.spec == spec:
            return preset
    return None
