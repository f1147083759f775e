"""Inside a trained net: what a stored run's model does with one image.

One forward pass with hooks (a HookSet, removed whatever happens) measures
- the prediction: softmax probabilities and the top 5;
- per stage (the stem, then each stage) its output's shape, mean |activation| and its strongest channels
  (highest mean |activation|), kept as maps for display;
- per block the residual ratio ‖F(x)‖ / ‖x‖: the norm of the block's residual branch (its output before the
  shortcut is added; the whole block for a plain twin) over the norm of the block's input. Veit et al. read small
  ratios as blocks that only nudge their input, so that the net behaves like an ensemble of shallower paths.
  A block that changes the shape (stride 2, more channels: the model's feature index tells) compares tensors of
  different sizes; it is marked;
- Grad-CAM (gradcam.py) for the predicted class and any other chosen class;
- the features the classifier takes (the input of `fc`) and the logits, for familiarity.py to judge how far the
  image lies from the run's training images.

`inspect_run` does it for a stored run (its weights, classes, input size and normalisation from config.json), on
an image from its test set or any decoded image (data/images.py), and times its two phases (resize and normalise;
the hooked pass with Grad-CAM). `Waited` adds up every phase a user waits for, from the image's bytes to the
result. `plain_twin` finds the run to compare with.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.images import model_input
from ..introspect.hooks import HookSet
from ..models.blocks import PreActBasicBlock, PreActBottleneck
from ..models.resnet import ResNet
from ..runs.loading import load_model
from ..runs.pairing import run_differences
from ..runs.store import RunInfo, read_run
from ..validation import shown
from .gradcam import HOOKED_PASS, grad_cam

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
    seconds: float  # resize, normalise, the forward pass, hooks and Grad-CAM
    features: Tensor  # float (D,): what the classifier took (the pooled output of the last stage)
    logits: Tensor  # float (num_classes,)
    phases: tuple[tuple[str, float], ...] = ()  # (what, seconds) of `seconds`, in order

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
    kept = _PassRecord()
    with HOOKED_PASS, HookSet() as hooks:  # see gradcam.py: a shared model must not carry two callers' hooks at once
        kept.attach(model, hooks)
        logits, maps = grad_cam(model, x, targets)  # the one forward pass these hooks measure
    probabilities = torch.softmax(logits[0].float(), 0)
    views = [_stage_view(name, out[0], top_channels) for name, out in kept.stage_out.items()]
    blocks = [BlockRatio(info.name, kept.branch_norms[info.name] / max(kept.input_norms[info.name], 1e-12),
                         kept.branch_norms[info.name], kept.input_norms[info.name], info.changes_shape)
              for info in model.feature_info]
    measured = dict(probabilities=tuple(float(p) for p in probabilities), predicted=int(probabilities.argmax()),
                    stages=tuple(views), blocks=tuple(blocks), features=kept.features[0], logits=logits[0].float())
    return measured, {k: v.numpy() for k, v in maps.items()}


@dataclass
class _PassRecord:
    """What the hooks of one inspected pass keep: each stage's output (the stem's is stage 1's input), each
    block's input norm and residual-branch norm, and the features the classifier takes."""

    stage_out: dict[str, Tensor] = field(default_factory=dict)
    input_norms: dict[str, float] = field(default_factory=dict)
    branch_norms: dict[str, float] = field(default_factory=dict)
    features: Tensor | None = None

    def attach(self, model: ResNet, hooks: HookSet) -> None:
        hooks.pre_forward(model.stages()[0], lambda _m, args: self._keep_stage("stem", args[0]))
        hooks.pre_forward(model.fc, self._features_hook)
        for name, stage in zip(model.stage_names, model.stages()):
            hooks.forward(stage, functools.partial(self._stage_hook, name))
        for info in model.feature_info:
            block = model.block(info)
            hooks.pre_forward(block, functools.partial(self._input_hook, info.name))
            hooks.forward(branch_end(block), functools.partial(self._branch_hook, info.name))

    def _features_hook(self, _m: nn.Module, args: Any) -> None:
        self.features = args[0].detach().float().clone()

    def _keep_stage(self, name: str, out: Tensor) -> None:
        self.stage_out[name] = out.detach().clone()

    def _stage_hook(self, name: str, _m: nn.Module, _args: Any, out: Tensor) -> None:
        self._keep_stage(name, out)

    def _input_hook(self, name: str, _m: nn.Module, args: Any) -> None:
        self.input_norms[name] = float(torch.linalg.vector_norm(args[0].detach().float()))

    def _branch_hook(self, name: str, _m: nn.Module, _args: Any, out: Tensor) -> None:
        self.branch_norms[name] = float(torch.linalg.vector_norm(out.detach().float()))


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
    waited = Waited()
    with waited.phase(f"resize to {facts.image_size}×{facts.image_size} and normalise"):
        seen, x = model_input(pixels, facts.channels, facts.image_size, facts.mean, facts.std)
    with waited.phase("forward pass, hooks and Grad-CAM"):
        measured, maps = inspect_model(model, x, facts.classes, targets)
    return Inspection(classes=tuple(facts.classes), gradcam=maps, seen=seen, normalized=x[0], skip=info.skip,
                      seconds=waited.total, phases=tuple(waited.phases), **measured)


@dataclass
class Waited:
    """The phases a user waits for, each timed as it happens: (what, seconds) in order."""

    phases: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[None]:
        tick = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append((what, time.perf_counter() - tick))

    def extend(self, phases: Iterable[tuple[str, float]]) -> None:
        self.phases.extend(phases)

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.phases)

    def text(self) -> str:
        """"decode 0.68 s, resize to 32×32 and normalise 0.26 s, …": every phase, in order."""
        return ", ".join(f"{what} {_seconds(seconds)}" for what, seconds in self.phases)


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def plain_twin(info: RunInfo, runs: Iterable[RunInfo]) -> RunInfo | None:
    """The newest run with weights of the same net without shortcuts (or with them, for a plain run) on the same
    data set and input: the run whose residual ratios go side by side with `info`'s. A twin trained like `info`
    (runs.pairing: the same steps and precision too) is preferred to a newer one that was not."""
    twin_spec = info.config.spec.replace(skip=not info.skip)
    facts = info.config.data
    matches = [r for r in runs if r.config.spec == twin_spec and r.has_weights
               and (r.config.data.name, r.config.data.image_size, r.config.data.channels)
               == (facts.name, facts.image_size, facts.channels)]
    return max(matches, key=lambda r: (not run_differences(info, r), r.created), default=None)
