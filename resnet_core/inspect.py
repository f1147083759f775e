"""Inside a trained net: what a stored run's model does with one image.

One forward pass with hooks (all removed in `finally`) measures
- the prediction: softmax probabilities and the top 5;
- per stage (the stem, then each stage) its output's shape, mean |activation| and its strongest channels
  (highest mean |activation|), kept as maps for display;
- per block the residual ratio ‖F(x)‖ / ‖x‖: the norm of the block's residual branch (its output before the
  shortcut is added; the whole block for a plain twin) over the norm of the block's input. Veit et al. read small
  ratios as blocks that only nudge their input, so that the net behaves like an ensemble of shallower paths.
  A block that changes the shape (stride 2, more channels) compares tensors of different sizes; it is marked;
- Grad-CAM (gradcam.py) for the predicted class and any other chosen class.

`inspect_run` does it for a stored run (its weights, classes, input size and normalisation from config.json), on
an image from its test set or any decoded image (images.py). `plain_twin` finds the run to compare with.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .blocks import PreActBasicBlock, PreActBottleneck
from .gradcam import HOOKED_PASS, grad_cam
from .images import model_input
from .model import ResNet
from .runstore import RunInfo, load_model, read_run
from .validation import shown

TOP_K = 5
TOP_CHANNELS = 8  # feature maps kept per stage


@dataclass(frozen=True)
class StageView:
    name: str  # "stem", "layer1", ...
    shape: tuple[int, int, int]  # (C, H, W) of the stage's output
    mean_abs: float  # mean |activation| over the whole output
    channels: tuple[int, ...]  # the strongest channels, strongest first
    maps: np.ndarray  # float32 (len(channels), H, W): those channels' activations


@dataclass(frozen=True)
class BlockRatio:
    name: str  # "layer1.0", ...
    residual_ratio: float  # ‖F(x)‖ / ‖x‖
    branch_norm: float  # ‖F(x)‖
    input_norm: float  # ‖x‖
    changes_shape: bool  # the block's output has another shape than its input (the ratio compares unlike sizes)


@dataclass(frozen=True)
class Inspection:
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]  # softmax, one per class
    predicted: int
    stages: tuple[StageView, ...]
    blocks: tuple[BlockRatio, ...]
    gradcam: dict[int, np.ndarray]  # class -> float32 (H, W) in [0, 1] at the input's size
    seen: Tensor  # uint8 (C, H, W): the image resized to the model's input, before normalisation
    normalized: Tensor  # float (C, H, W): what the model takes
    skip: bool  # residual or plain twin
    seconds: float  # the forward pass, hooks and Grad-CAM

    def top(self, k: int = TOP_K) -> list[tuple[int, float]]:
        order = np.argsort(-np.asarray(self.probabilities), kind="stable")[:k]
        return [(int(i), self.probabilities[i]) for i in order]

    def to_json(self, target: int | None = None) -> dict[str, Any]:
        """The CLI's JSON: prediction, stages, blocks, and gradcam for `target` (default: the predicted class)."""
        target = self.predicted if target is None else target
        return dict(
            prediction={"class": self.classes[self.predicted], "index": self.predicted,
                        "probability": self.probabilities[self.predicted],
                        "top5": [{"class": self.classes[i], "index": i, "probability": p} for i, p in self.top()]},
            stages=[dict(name=s.name, shape=list(s.shape), mean_abs_activation=s.mean_abs) for s in self.stages],
            blocks=[dict(name=b.name, residual_ratio=b.residual_ratio, changes_shape=b.changes_shape)
                    for b in self.blocks],
            gradcam_class={"class": self.classes[target], "index": target},
            gradcam=np.round(self.gradcam[target], 4).tolist(),
        )


def inspect_model(model: ResNet, x: Tensor, classes: Sequence[str], targets: Iterable[int] = (),
                  top_channels: int = TOP_CHANNELS) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """(measurements, Grad-CAM maps) of `model` (eval mode) on one normalised image x (1, C, H, W); Grad-CAM for
    the predicted class and each of `targets`."""
    if len(classes) != model.spec.num_classes:
        raise ValueError(f"classes must name the model's {model.spec.num_classes} outputs; got {len(classes)}")
    targets = list(targets)
    for k in targets:
        check_class(k, classes)
    model.eval()
    stage_out: dict[str, Tensor] = {}
    input_norms: dict[str, float] = {}
    branch_norms: dict[str, float] = {}
    shapes: dict[str, bool] = {}
    hooks = []

    def store_stage(name: str):
        def hook(_m: nn.Module, args: Any, out: Tensor | None = None) -> None:
            stage_out[name] = (args[0] if out is None else out).detach().clone()
        return hook

    def store_input(name: str):
        def hook(_m: nn.Module, args: Any) -> None:
            input_norms[name] = float(torch.linalg.vector_norm(args[0].detach().float()))
        return hook

    def store_output(name: str):
        def hook(_m: nn.Module, args: Any, out: Tensor) -> None:
            shapes[name] = tuple(args[0].shape) != tuple(out.shape)
        return hook

    def store_branch(name: str):
        def hook(_m: nn.Module, args: Any, out: Tensor) -> None:
            branch_norms[name] = float(torch.linalg.vector_norm(out.detach().float()))
        return hook

    with HOOKED_PASS:  # see gradcam.py: a shared model must not carry two callers' hooks at once
        try:
            stages = model.stages()
            hooks.append(stages[0].register_forward_pre_hook(store_stage("stem")))
            for stage_name, stage in zip(model.stage_names, stages):
                hooks.append(stage.register_forward_hook(store_stage(stage_name)))
                for i, block in enumerate(stage):
                    name = f"{stage_name}.{i}"
                    hooks.append(block.register_forward_pre_hook(store_input(name)))
                    hooks.append(block.register_forward_hook(store_output(name)))
                    hooks.append(branch_end(block).register_forward_hook(store_branch(name)))
            logits, maps = grad_cam(model, x, targets)  # the one forward pass these hooks measure
        finally:
            for h in hooks:
                h.remove()
    probabilities = torch.softmax(logits[0].float(), 0)
    views = [_stage_view(name, out[0], top_channels) for name, out in stage_out.items()]
    blocks = [BlockRatio(name, branch_norms[name] / max(input_norms[name], 1e-12), branch_norms[name],
                         input_norms[name], shapes[name]) for name in input_norms]
    measured = dict(probabilities=tuple(float(p) for p in probabilities), predicted=int(probabilities.argmax()),
                    stages=tuple(views), blocks=tuple(blocks))
    return measured, {k: v.numpy() for k, v in maps.items()}


def branch_end(block: nn.Module) -> nn.Module:
    """The module whose output is the block's residual branch F(x): SE if the block has it, else the last conv of a
    pre-activation block or the last BN of a post-activation one."""
    if block.se is not None:
        return block.se
    if isinstance(block, PreActBottleneck):
        return block.conv3
    if isinstance(block, PreActBasicBlock):
        return block.conv2
    return block.last_norm()


def _stage_view(name: str, out: Tensor, top_channels: int) -> StageView:
    strength = out.abs().float().mean((1, 2))
    order = torch.argsort(strength, descending=True, stable=True)[:top_channels]
    return StageView(name, tuple(out.shape), float(out.abs().float().mean()), tuple(int(c) for c in order),
                     out[order].float().numpy())


def check_class(k: Any, classes: Sequence[str]) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(classes):
        raise ValueError(f"class must be an index from 0 to {len(classes) - 1}; got {shown(k)}")
    return k


def class_index(text: str, classes: Sequence[str]) -> int:
    """A class given as its index or its name (as the CLI takes it); a ValueError naming both forms."""
    if text in classes:
        return list(classes).index(text)
    try:
        return check_class(int(text), classes)
    except ValueError:
        raise ValueError(f"class must be an index from 0 to {len(classes) - 1} or one of "
                         f"{', '.join(classes)}; got {shown(text)}") from None


def inspect_run(run: str | Path | RunInfo, pixels: Tensor, targets: Iterable[int] = (),
                model: ResNet | None = None) -> Inspection:
    """`inspect_model` on a stored run's final weights, for uint8 pixels (C, H, W) of any size: converted to the
    run's channels and side and normalised with its training statistics. Pass `model` to reuse a loaded one."""
    info = run if isinstance(run, RunInfo) else read_run(run)
    facts = info.config.data
    model = model if model is not None else load_model(info.path)
    tick = time.perf_counter()
    seen, x = model_input(pixels, facts.channels, facts.image_size, facts.mean, facts.std)
    measured, maps = inspect_model(model, x, facts.classes, targets)
    return Inspection(classes=tuple(facts.classes), gradcam=maps, seen=seen, normalized=x[0], skip=info.skip,
                      seconds=time.perf_counter() - tick, **measured)


def plain_twin(info: RunInfo, runs: Iterable[RunInfo]) -> RunInfo | None:
    """The newest run with weights of the same net without shortcuts (or with them, for a plain run) on the same
    data set and input: the run whose residual ratios go side by side with `info`'s."""
    twin_spec = info.config.spec.replace(skip=not info.skip)
    facts = info.config.data
    matches = [r for r in runs if r.config.spec == twin_spec and r.has_weights
               and (r.config.data.name, r.config.data.image_size, r.config.data.channels)
               == (facts.name, facts.image_size, facts.channels)]
    return max(matches, key=lambda r: r.created, default=None)
