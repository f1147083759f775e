"""The two ways papers count a ResNet's depth, both counted on the built model.

Ours (the `depth` of `list` and the Architecture page's "Depth"; He et al. 2015): the weighted layers on the
main path: stem convs + block convs + the classifier; projection (1×1) shortcut convs are not counted, so
resnet50 = 1 + 48 + 1 and the CIFAR ResNets are 6n + 2.
Zagoruyko & Komodakis 2016 name WRN-n-k by n = every convolutional layer, the 1×1 shortcut convs included and
the classifier not: 6N + 4 = 1 stem conv + 3 groups × (2N block convs + 1 shortcut conv). WRN-28-10 is
therefore 26 deep in our count (1 + 24 + 1) and has 28 conv layers (1 + 24 + 3).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.presets import ZAGORUYKO2016, get_preset
from ..models.resnet import ResNet
from ..models.spec import ModelSpec

DEPTH_RULE = ("depth = stem convs + block convs + classifier (He et al. 2015; the Architecture page's Depth); "
              "the published WRN-n-k names count every conv layer including the 1×1 shortcut convs and not the "
              "classifier (Zagoruyko & Komodakis 2016: n = 6N+4 = 1 stem + 3 groups × (2N block convs + 1 "
              "shortcut conv))")


def conv_layers(spec: ModelSpec) -> int:
    """Every Conv2d of the model (shortcut convs included), counted on a weightless copy on the meta device."""
    with torch.device("meta"):
        model = ResNet(spec)
    return sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))


def published_depth(name: str) -> int:
    """The depth in the preset's published name, counted the way its paper counts it."""
    preset = get_preset(name)
    if preset.reference.get("source") == ZAGORUYKO2016:
        return conv_layers(preset.spec)
    return preset.spec.depth
