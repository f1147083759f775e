"""What trains when a run starts from other weights: freezing by part of the net, frozen BatchNorms kept in eval
mode, and the optimizer groups of the trainable parameters (with a slower backbone if asked).

BatchNorm layers in the frozen part stay in eval mode while the rest trains (a forward pre-hook sets them back each
time), so their running statistics are the source's, bit for bit: the tutorials' "common pitfall" is a frozen
backbone whose BN statistics drift in train mode.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.resnet import ResNet

HEAD_KEYS = ("fc.weight", "fc.bias")


def trainable_modules(model: ResNet, finetune: str) -> list[nn.Module]:
    if finetune == "head":
        return [model.fc]
    if finetune == "last-stage":
        return [model.stages()[-1], *([model.final_norm] if model.final_norm is not None else []), model.fc]
    return [model]


def freeze(model: ResNet, finetune: str) -> int:
    """Only the parts `finetune` trains keep requires_grad; BatchNorm elsewhere stays in eval mode. Returns the
    number of trainable parameters."""
    trainable = trainable_modules(model, finetune)
    model.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)
    keep_frozen_norms_in_eval(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """Every BatchNorm whose parameters are all frozen stays in eval mode. Called again after a layer swap (torchrun's
    --sync-bn replaces the BatchNorms, and their hooks with them)."""
    for m in model.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm) or any(p.requires_grad for p in m.parameters()):
            continue
        if _keep_eval not in m._forward_pre_hooks.values():
            m.register_forward_pre_hook(_keep_eval)


def _keep_eval(module: nn.Module, args: Any) -> None:
    module.train(False)  # model.train() each epoch sets it back to train mode: frozen statistics must not move


def param_groups(model: nn.Module, backbone_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups: one group, or with `backbone_lr_scale` != 1 the classifier
    at the lr and the rest at lr × scale (the trainer multiplies each group's lr by its `lr_scale`)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if backbone_lr_scale == 1.0:
        return [dict(params=[p for _, p in named], lr_scale=1.0)]
    head = [p for name, p in named if name in HEAD_KEYS]
    backbone = [p for name, p in named if name not in HEAD_KEYS]
    return [group for group in (dict(params=backbone, lr_scale=backbone_lr_scale), dict(params=head, lr_scale=1.0))
            if group["params"]]
