"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies, from the last feature map.

The feature map is the one the classifier pools (the input of `avgpool`: the last stage's output, after the
final BN-ReLU of a pre-activation net). For class k, each of its channels is weighted by the mean gradient of
logit k over its positions; the weighted sum, through a ReLU, is upsampled (bilinear) to the input's size and
divided by its maximum, so it lies in [0, 1] (all zeros when no position has positive evidence).

Implemented here with one forward hook (a HookSet, removed whatever happens) and `torch.autograd.grad`, so it
works on any model of this package in eval mode without a library. The backbone runs without an autograd graph:
the gradient needed only runs through the pooling and the classifier.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..introspect.hooks import HookSet
from ..models.resnet import ResNet

# Hooks live on the model object, which a server shares between sessions (one cached model per run): two passes
# measured at once would each see the other's hooks. One hooked pass at a time per process; each takes milliseconds
# to a second.
HOOKED_PASS = threading.RLock()
SELVARAJU2017 = ("Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra. Grad-CAM: Visual Explanations from Deep "
                 "Networks via Gradient-based Localization. ICCV 2017 (arXiv:1610.02391)")


def grad_cam(model: ResNet, x: Tensor, classes: Sequence[int] = (),
             predicted: bool = True) -> tuple[Tensor, dict[int, Tensor]]:
    """(logits (1, num_classes), {class: map (H, W) in [0, 1] at x's size}) for one image x (1, C, H, W): for each
    of `classes`, and for the predicted class (the largest logit) when `predicted`.

    One forward pass (with whatever other hooks the caller has on the model) and one gradient per class.
    """
    if x.shape[0] != 1:
        raise ValueError(f"grad_cam takes one image; got a batch of {x.shape[0]}")
    for k in classes:
        if not 0 <= k < model.spec.num_classes:
            raise ValueError(f"class must be an index from 0 to {model.spec.num_classes - 1}; got {k}")
    captured: dict[str, Tensor] = {}

    def keep(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Tensor]:
        # The gradient of a logit with respect to the features only runs through avgpool and fc: the backbone runs
        # without a graph (no_grad below), and only from here on is one recorded, from a leaf copy of the features.
        features = captured["features"] = args[0].detach().requires_grad_(True)
        torch.set_grad_enabled(True)  # thread-local; the no_grad block below restores the mode when it exits
        return (features,)

    with HOOKED_PASS, HookSet() as hooks:
        hooks.pre_forward(model.avgpool, keep)
        with torch.no_grad():
            logits = model(x)
        with torch.enable_grad():
            features = captured["features"]
            maps = {}
            wanted = [*classes, int(logits[0].argmax())] if predicted else list(classes)
            for k in dict.fromkeys(wanted):
                (grad,) = torch.autograd.grad(logits[0, k], features, retain_graph=True)
                maps[k] = _cam(features.detach(), grad, tuple(x.shape[-2:]))
    return logits.detach(), maps


def _cam(features: Tensor, grad: Tensor, size: tuple[int, int]) -> Tensor:
    weights = grad.float().mean((2, 3), keepdim=True)
    cam = F.relu((weights * features.float()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0]
    top = cam.max()
    return cam / top if top > 0 else torch.zeros_like(cam)
