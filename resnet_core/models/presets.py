"""Presets: a table of named ModelSpecs, plus the published reference figures they are checked against.

Presets are data. `resolve_spec(name, **overrides)` turns a name and overrides into a validated spec.
Plain twins (`plain20`, `plain50`, ...) are generated from the residual rows with `skip=False`. Every name timm
registers in its ResNet-family modules is a preset of that name (`Preset.timm`, `Preset.timm_module`), the pruned
nets' per-block widths included as data.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

from ..validation import shown
from .spec import CLEARABLE, OVERRIDABLE, ModelSpec, coerce_layers

_IMAGENET = dict(stem="imagenet", width=64, shortcut="B", num_classes=1000)
_CIFAR = dict(stem="cifar", width=16, shortcut="A", num_classes=10)


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # imagenet | cifar | wrn
    spec: ModelSpec
    torchvision: str | None = None  # name in torchvision.models with identical structure
    reference: dict[str, Any] = field(default_factory=dict)  # published figures, with "source"
    timm: str | None = None  # name in timm with identical structure (its checkpoints load through load_state_dict)
    timm_module: str | None = None  # timm module registering it: resnet, resnetv2, res2net, resnest, senet, sknet


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
    "se_resnet50": ("imagenet", dict(_IMAGENET, block="bottleneck", layers=(3, 4, 6, 3), attention="se"), None, {}),
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


# timm's ResNet family (timm 1.0.31: models/resnet.py, resnetv2.py, res2net.py, resnest.py, senet.py and sknet.py,
# every name each registers), named as timm names them. Its suffixes:
# c = deep stem (32-32-64); d = deep stem + avg-pool shortcut D; s = deep stem 64-64-128; t = tiered stem 24-32-64
# + D; aa/blur = anti-aliased downsampling; se/eca = channel attention; rs = ResNet-RS (Bello et al. 2021: deep
# stem, conv stem pool, D, SE at reduction 4); legacy_ = the Caffe SENet port (stride on the first 1x1, ceil-mode
# stem pool, SE hidden width channels // 16; its basic block applies a ReLU before the SE; its ResNeXt strides on
# the 3x3); sk = selective-kernel blocks (Li et al. 2019 as timm builds them: each path takes half the input in
# skresnet, attention hidden width channels/8 to a multiple of 16 in skresnet18/34, channels/16 to a multiple of 8
# in skresnet50/50d; skresnext's paths take the whole input, hidden channels/16 to a multiple of 32).
_C = dict(stem="deep", stem_mid=32, stem_width=64)
_D = dict(_C, shortcut="D")
_S = dict(stem="deep", stem_mid=64, stem_width=128)
_T = dict(stem="deep_tiered", stem_mid=32, stem_width=64, shortcut="D")
_SE, _ECA = dict(attention="se"), dict(attention="eca")
_SENET154 = dict(groups=64, width_per_group=4, shortcut_kernel=3, reduce_first=2)
_RS = dict(_D, stem_pool="conv", attention="se", attention_reduction=4)
_LEGACY = dict(stride_placement="v1", stem_pool="max_ceil", attention="se", attention_divisor=1)
_X32x4, _X32x8, _X64x4 = dict(groups=32, width_per_group=4), dict(groups=32, width_per_group=8), \
    dict(groups=64, width_per_group=4)
_B, _N = dict(block="basic"), dict(block="bottleneck")
R18, R26, R34, R50, R101 = (2, 2, 2, 2), (2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 6, 3), (3, 4, 23, 3)
R152, R200, R269 = (3, 8, 36, 3), (3, 24, 36, 3), (3, 30, 48, 8)


# The pruned ECA-ResNet-D nets' widths, one (first 1x1, 3x3, output) per block, from timm 1.0.31's
# models/_pruned/ecaresnet50d_pruned.txt and ecaresnet101d_pruned.txt (stem, ECA kernels and classifier input follow)
_PRUNED50 = (
    (47, 18, 19), (52, 22, 19), (64, 35, 19),
    (85, 37, 171), (107, 80, 171), (120, 85, 171), (125, 87, 171),
    (198, 126, 818), (255, 232, 818), (256, 233, 818), (253, 235, 818), (256, 225, 818), (256, 239, 818),
    (492, 237, 2022), (512, 500, 2022), (512, 490, 2022),
)
_PRUNED101 = (
    (45, 25, 26), (53, 20, 26), (60, 27, 26),
    (81, 24, 142), (93, 49, 142), (102, 54, 142), (122, 78, 142),
    (101, 25, 278), (239, 160, 278), (234, 156, 278), (250, 176, 278), (253, 191, 278), (251, 175, 278),
    (230, 128, 278), (244, 154, 278), (244, 159, 278), (238, 97, 278), (244, 149, 278), (253, 181, 278),
    (245, 119, 278), (255, 216, 278), (256, 201, 278), (253, 149, 278), (254, 141, 278), (256, 190, 278),
    (256, 217, 278), (255, 156, 278), (256, 155, 278), (256, 232, 278), (256, 214, 278),
    (499, 289, 2042), (512, 512, 2042), (512, 502, 2042),
)


def _merge(*parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {k: v for part in (*parts, fields) for k, v in part.items()}


# name: spec fields (on top of the ImageNet defaults)
_TIMM_TABLE: dict[str, dict[str, Any]] = {
    "resnet10t": _merge(_B, _T, layers=(1, 1, 1, 1)),
    "resnet14t": _merge(_N, _T, layers=(1, 1, 1, 1)),
    "resnet18d": _merge(_B, _D, layers=R18),
    "resnet26": _merge(_N, layers=R26),
    "resnet26d": _merge(_N, _D, layers=R26),
    "resnet26t": _merge(_N, _T, layers=R26),
    "resnet34d": _merge(_B, _D, layers=R34),
    "resnet50c": _merge(_N, _C, layers=R50),
    "resnet50d": _merge(_N, _D, layers=R50),
    "resnet50s": _merge(_N, _S, layers=R50),
    "resnet50t": _merge(_N, _T, layers=R50),
    "resnet101c": _merge(_N, _C, layers=R101),
    "resnet101d": _merge(_N, _D, layers=R101),
    "resnet101s": _merge(_N, _S, layers=R101),
    "resnet152c": _merge(_N, _C, layers=R152),
    "resnet152d": _merge(_N, _D, layers=R152),
    "resnet152s": _merge(_N, _S, layers=R152),
    "resnet200": _merge(_N, layers=R200),
    "resnet200d": _merge(_N, _D, layers=R200),
    "resnet50_gn": _merge(_N, layers=R50, norm="group", norm_groups=32),
    "resnext50d_32x4d": _merge(_N, _D, _X32x4, layers=R50),
    "resnext101_32x4d": _merge(_N, _X32x4, layers=R101),
    "resnext101_32x16d": _merge(_N, layers=R101, groups=32, width_per_group=16),
    "resnext101_32x32d": _merge(_N, layers=R101, groups=32, width_per_group=32),
    "resnext101_64x4d": _merge(_N, _X64x4, layers=R101),
    "ecaresnet26t": _merge(_N, _T, _ECA, layers=R26),
    "ecaresnet50d": _merge(_N, _D, _ECA, layers=R50),
    "ecaresnet50t": _merge(_N, _T, _ECA, layers=R50),
    "ecaresnetlight": _merge(_N, _ECA, layers=(1, 1, 11, 3), shortcut="D"),
    "ecaresnet101d": _merge(_N, _D, _ECA, layers=R101),
    "ecaresnet200d": _merge(_N, _D, _ECA, layers=R200),
    "ecaresnet269d": _merge(_N, _D, _ECA, layers=R269),
    "ecaresnext26t_32x4d": _merge(_N, _T, _ECA, _X32x4, layers=R26),
    "ecaresnext50t_32x4d": _merge(_N, _T, _ECA, _X32x4, layers=R50),
    "seresnet18": _merge(_B, _SE, layers=R18),
    "seresnet34": _merge(_B, _SE, layers=R34),
    "seresnet50": _merge(_N, _SE, layers=R50),
    "seresnet50t": _merge(_N, _T, _SE, layers=R50),
    "seresnet101": _merge(_N, _SE, layers=R101),
    "seresnet152": _merge(_N, _SE, layers=R152),
    "seresnet152d": _merge(_N, _D, _SE, layers=R152),
    "seresnet200d": _merge(_N, _D, _SE, layers=R200),
    "seresnet269d": _merge(_N, _D, _SE, layers=R269),
    "seresnext26d_32x4d": _merge(_N, _D, _SE, _X32x4, layers=R26),
    "seresnext26t_32x4d": _merge(_N, _T, _SE, _X32x4, layers=R26),
    "seresnext50_32x4d": _merge(_N, _SE, _X32x4, layers=R50),
    "seresnext101_32x4d": _merge(_N, _SE, _X32x4, layers=R101),
    "seresnext101_32x8d": _merge(_N, _SE, _X32x8, layers=R101),
    "seresnext101d_32x8d": _merge(_N, _D, _SE, _X32x8, layers=R101),
    "seresnext101_64x4d": _merge(_N, _SE, _X64x4, layers=R101),
    "resnetblur18": _merge(_B, layers=R18, anti_alias="blur"),
    "resnetblur50": _merge(_N, layers=R50, anti_alias="blur"),
    "resnetblur50d": _merge(_N, _D, layers=R50, anti_alias="blur"),
    "resnetblur101d": _merge(_N, _D, layers=R101, anti_alias="blur"),
    "resnetaa34d": _merge(_B, _D, layers=R34, anti_alias="avg"),
    "resnetaa50": _merge(_N, layers=R50, anti_alias="avg"),
    "resnetaa50d": _merge(_N, _D, layers=R50, anti_alias="avg"),
    "resnetaa101d": _merge(_N, _D, layers=R101, anti_alias="avg"),
    "seresnetaa50d": _merge(_N, _D, _SE, layers=R50, anti_alias="avg"),
    "seresnextaa101d_32x8d": _merge(_N, _D, _SE, _X32x8, layers=R101, anti_alias="avg"),
    "seresnextaa201d_32x8d": _merge(_N, _S, _SE, _X32x8, layers=(3, 24, 36, 4), shortcut="D", anti_alias="avg"),
    "resnetrs50": _merge(_N, _RS, layers=R50),
    "resnetrs101": _merge(_N, _RS, layers=R101),
    "resnetrs152": _merge(_N, _RS, layers=R152),
    "resnetrs200": _merge(_N, _RS, layers=R200),
    "resnetrs270": _merge(_N, _RS, layers=(4, 29, 53, 4)),
    "resnetrs350": _merge(_N, _RS, layers=(4, 36, 72, 4)),
    "resnetrs420": _merge(_N, _RS, layers=(4, 44, 87, 4)),
    "resnetv2_18": _merge(layers=R18, block="preact_basic", stem_norm=False),
    "resnetv2_34": _merge(layers=R34, block="preact_basic", stem_norm=False),
    "resnetv2_50": _merge(layers=R50, block="preact_bottleneck", stem_norm=False),
    "resnetv2_101": _merge(layers=R101, block="preact_bottleneck", stem_norm=False),
    "legacy_seresnet18": _merge(_B, _LEGACY, layers=R18, attention_placement="after_relu"),
    "legacy_seresnet34": _merge(_B, _LEGACY, layers=R34, attention_placement="after_relu"),
    "legacy_seresnet50": _merge(_N, _LEGACY, layers=R50),
    "legacy_seresnet101": _merge(_N, _LEGACY, layers=R101),
    "legacy_seresnet152": _merge(_N, _LEGACY, layers=R152),
    "legacy_seresnext26_32x4d": _merge(_N, _LEGACY, _X32x4, stride_placement="v1.5", layers=R26),
    "legacy_seresnext50_32x4d": _merge(_N, _LEGACY, _X32x4, stride_placement="v1.5", layers=R50),
    "legacy_seresnext101_32x4d": _merge(_N, _LEGACY, _X32x4, stride_placement="v1.5", layers=R101),
    "skresnet18": _merge(layers=R18, block="sk_basic", sk_reduction=8, sk_divisor=16),
    "skresnet34": _merge(layers=R34, block="sk_basic", sk_reduction=8, sk_divisor=16),
    "skresnet50": _merge(layers=R50, block="sk_bottleneck"),
    "skresnet50d": _merge(_D, layers=R50, block="sk_bottleneck"),
    "skresnext50_32x4d": _merge(_X32x4, layers=R50, block="sk_bottleneck", sk_reduction=16, sk_divisor=32,
                                sk_split=False),
    # SENet-154 (Hu et al. 2018): 64 groups of 4, the first 1x1 at half the inner width, 3x3 projection shortcuts;
    # timm's resnet.py rounds the SE width to a multiple of 8, the Caffe port (legacy_) does not and pools in ceil mode
    "senet154": _merge(_N, _S, _SE, _SENET154, layers=R152),
    "legacy_senet154": _merge(_N, _S, _SE, _SENET154, layers=R152, stem_pool="max_ceil", attention_divisor=1),
    # ResNet-D with ECA, pruned (Aflalo et al. 2020): every block's widths from timm's _pruned/ files
    "ecaresnet50d_pruned": _merge(_N, _D, _ECA, layers=R50, block_widths=_PRUNED50),
    "ecaresnet101d_pruned": _merge(_N, _D, _ECA, layers=R101, block_widths=_PRUNED101),
    # timm's smallest test net: a block type and a width per stage
    "test_resnet": _merge(_B, layers=(1, 1, 1, 1), stem="deep", stem_mid=16, stem_width=32, shortcut="D",
                          stage_blocks=("basic", "basic", "bottleneck", "basic"), stage_widths=(32, 48, 48, 96)),
}
# Res2Net (Gao et al. 2019; timm's res2net.py): res2net50_26w_4s has 4 scales of 26 channels per 64 planes
_RES2 = dict(block="res2net_bottleneck")
_TIMM_TABLE.update({
    "res2net50_26w_4s": _merge(_RES2, layers=R50, width_per_group=26, res2net_scale=4),
    "res2net101_26w_4s": _merge(_RES2, layers=R101, width_per_group=26, res2net_scale=4),
    "res2net50_26w_6s": _merge(_RES2, layers=R50, width_per_group=26, res2net_scale=6),
    "res2net50_26w_8s": _merge(_RES2, layers=R50, width_per_group=26, res2net_scale=8),
    "res2net50_48w_2s": _merge(_RES2, layers=R50, width_per_group=48, res2net_scale=2),
    "res2net50_14w_8s": _merge(_RES2, layers=R50, width_per_group=14, res2net_scale=8),
    "res2next50": _merge(_RES2, layers=R50, width_per_group=4, groups=8, res2net_scale=4),
    "res2net50d": _merge(_RES2, _D, layers=R50, width_per_group=26, res2net_scale=4),
    "res2net101d": _merge(_RES2, _D, layers=R101, width_per_group=26, res2net_scale=4),
})
# ResNeSt (Zhang et al. 2020; timm's resnest.py): split attention of radix 2, the stride on a 3x3 average pool after
# the 3x3 conv; d = deep stem 32-32-64, e = deep stem 64-64-128, both with avg-pool shortcuts
_NEST = dict(block="split_attention_bottleneck", radix=2, avg_downsample="after_conv")
_TIMM_TABLE.update({
    "resnest14d": _merge(_NEST, _D, layers=(1, 1, 1, 1)),
    "resnest26d": _merge(_NEST, _D, layers=(2, 2, 2, 2)),
    "resnest50d": _merge(_NEST, _D, layers=R50),
    "resnest101e": _merge(_NEST, _S, layers=R101, shortcut="D"),
    "resnest200e": _merge(_NEST, _S, layers=R200, shortcut="D"),
    "resnest269e": _merge(_NEST, _S, layers=R269, shortcut="D"),
    "resnest50d_4s2x40d": _merge(_NEST, _D, layers=R50, radix=4, groups=2, width_per_group=40,
                                 avg_downsample="before_conv"),
    "resnest50d_1s4x24d": _merge(_NEST, _D, layers=R50, radix=1, groups=4, width_per_group=24,
                                 avg_downsample="before_conv"),
})
# timm's resnetv2.py: pre-activation, no norm after the stem conv; d/t = deep/tiered stem with avg-pool shortcuts;
# BiT (Kolesnikov et al. 2020): group norm, weight-standardised convs, the "fixed" stem (zero padding, then an
# unpadded max pool) and a width factor k (width = stem width = 64k)
_V2 = dict(stem_norm=False)
_BIT = dict(_V2, block="preact_bottleneck", norm="group", weight_standardization=True, stem_pool="zero_pad_max")
_TIMM_TABLE.update({
    "resnetv2_18d": _merge(_V2, _D, layers=R18, block="preact_basic"),
    "resnetv2_34d": _merge(_V2, _D, layers=R34, block="preact_basic"),
    "resnetv2_50d": _merge(_V2, _D, layers=R50, block="preact_bottleneck"),
    "resnetv2_50t": _merge(_V2, _T, layers=R50, block="preact_bottleneck"),
    "resnetv2_101d": _merge(_V2, _D, layers=R101, block="preact_bottleneck"),
    "resnetv2_152": _merge(_V2, layers=R152, block="preact_bottleneck"),
    "resnetv2_152d": _merge(_V2, _D, layers=R152, block="preact_bottleneck"),
    "resnetv2_50d_gn": _merge(_V2, _D, layers=R50, block="preact_bottleneck", norm="group"),
    "resnetv2_50d_evos": _merge(_V2, _D, layers=R50, block="preact_bottleneck", norm="evonorm_s0"),
    "resnetv2_50d_frn": _merge(_V2, _D, layers=R50, block="preact_bottleneck", norm="frn_tlu"),
    **{f"resnetv2_{depth}x{k}_bit": _merge(_BIT, layers=layers, width=64 * k, stem_width=64 * k)
       for depth, layers, k in ((50, R50, 1), (50, R50, 3), (101, R101, 1), (101, R101, 3), (152, R152, 2),
                                (152, R152, 4))},
})
# The timm module that registers each name (timm.list_models(module=...); checked in tests/test_timm_oracle.py).
_TIMM_MODULES = dict.fromkeys(_TIMM_TABLE, "resnet")
_TIMM_MODULES.update({n: m for n in _TIMM_TABLE for prefix, m in (
    ("resnetv2_", "resnetv2"), ("res2ne", "res2net"), ("resnest", "resnest"), ("legacy_se", "senet"),
    ("sk", "sknet")) if n.startswith(prefix)})
# Our presets whose network timm builds under the same or another name.
_TIMM_TWINS = {name: name for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
                                       "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d")}
_TIMM_TWINS["se_resnet50"] = "seresnet50"


def _build_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for name, (family, fields, tv_name, reference) in _TABLE.items():
        presets[name] = Preset(name, family, ModelSpec(**fields).validate(), tv_name, reference,
                               timm=_TIMM_TWINS.get(name))
    for name, preset in list(presets.items()):
        if name.startswith("resnet") and name[6:].isdigit():
            plain = "plain" + name[6:]
            presets[plain] = Preset(plain, preset.family, preset.spec.replace(skip=False))
    for name, fields in _TIMM_TABLE.items():
        presets[name] = Preset(name, "imagenet", ModelSpec(**{**_IMAGENET, **fields}).validate(), timm=name,
                               timm_module=_TIMM_MODULES[name])
    for name, preset in presets.items():
        if preset.timm and preset.timm_module is None:  # torchvision's nets, which timm's resnet.py builds too
            presets[name] = dataclasses.replace(preset, timm_module="resnet")
    return presets


PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        close = difflib.get_close_matches(name, PRESETS, 3) if isinstance(name, str) else []
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"model must be one of the {len(PRESETS)} presets ({', '.join(list(PRESETS)[:5])}, ...; "
                         f"`list` shows all); {hint}got {shown(name)}") from None


def resolve_spec(model: str | ModelSpec, **overrides: Any) -> ModelSpec:
    """A validated spec from a preset name (or a spec) and field overrides."""
    spec = model if isinstance(model, ModelSpec) else get_preset(model).spec
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown override {shown(unknown[0])}; allowed overrides are {', '.join(OVERRIDABLE)}")
    changes = {k: v for k, v in overrides.items() if v is not None or k in CLEARABLE}
    if "layers" in changes:
        changes["layers"] = coerce_layers(changes["layers"])
    return spec.replace(**changes)


def matching_preset(spec: ModelSpec) -> Preset | None:
    """The preset whose spec equals `spec` exactly, if any."""
    for preset in PRESETS.values():
        if preset.spec == spec:
            return preset
    return None
