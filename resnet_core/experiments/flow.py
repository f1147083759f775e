"""Signal flow: per-block gradient and activation magnitudes of plain vs residual stacks, measured.

`measure_stacks` measures N blocks of one set of weights twice, as a plain stack and as a
residual stack (the only difference is the identity addition): one batch forward and backward
each, recording for each block the gradient norm of its first conv weight and the mean/std of
its output.
`measure_model` takes the same measurements on any `ResNet`, per block and per stage, and
`measure_twins` on a model and its twin with the identity shortcuts toggled.
The stacks are in flow_stack.py; the text under the plots is written by flow_text.py.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.sets import prepare
from ..data.transforms import normalize
from ..introspect.hooks import HookSet
from ..models.presets import resolve_spec
from ..models.resnet import ResNet
from ..training.engine import build_seeded_model
from ..validation import check_choice, check_int
from .flow_stack import LOSSES, MODES, FlowConfig, FlowStack, activation_slope


@dataclass
class StackFlow:
    """Measurements of one stack, one entry per block (block 1 is next to the input)."""

    kind: str  # plain | residual
    grad_norm: list[float]  # ||dL/dW|| of each block's first conv weight
    act_mean: list[float]  # mean of each block's output
    act_std: list[float]  # std of each block's output
    act_slope: list[float]  # mean derivative of each block's last activation (the one after the addition)
    loss: float
    seconds: float  # forward + backward + measurement

    @property
    def grad_spread(self) -> float:
        return spread(self.grad_norm)

    @property
    def act_std_spread(self) -> float:
        return spread(self.act_std)

    @property
    def zero_grad_blocks(self) -> int:
        """Blocks whose gradient is exactly 0: it underflowed float32 on the way back."""
        return sum(1 for g in self.grad_norm if g == 0.0)

    def to_dict(self) -> dict:
        return dict(kind=self.kind, grad_norm=self.grad_norm, act_mean=self.act_mean, act_std=self.act_std,
                    act_slope=self.act_slope,
                    grad_spread=_finite_or_none(self.grad_spread), act_std_spread=_finite_or_none(self.act_std_spread),
                    zero_grad_blocks=self.zero_grad_blocks, loss=_finite_or_none(self.loss), seconds=self.seconds)


@dataclass
class FlowResult:
    config: FlowConfig
    plain: StackFlow
    residual: StackFlow
    dataset: str  # where the batch came from

    def to_dict(self) -> dict:
        return dict(config=dataclasses.asdict(self.config), dataset=self.dataset,
                    plain=self.plain.to_dict(), residual=self.residual.to_dict())


def spread(values: Sequence[float]) -> float:
    """max/min of the magnitudes; inf when some value is exactly 0, nan when empty or non-finite."""
    mags = [abs(v) for v in values]
    if not mags or not all(math.isfinite(v) for v in mags):
        return math.nan
    low, high = min(mags), max(mags)
    if low == 0.0:
        return math.inf if high > 0 else 1.0
    return high / low


def measure_stacks(config: FlowConfig, images: Tensor, labels: Tensor, num_classes: int,
                   dataset: str = "batch", device: str | torch.device = "cpu") -> FlowResult:
    """Measure one stack of seeded weights on one batch, without and then with the identity additions.

    `images` is (B, C, H, W) with B >= config.batch_size; only the first batch_size are used.
    """
    config.validate()
    if images.dim() != 4 or images.shape[0] < config.batch_size:
        raise ValueError(f"images must be (B, C, H, W) with B >= batch_size={config.batch_size}; "
                         f"got {tuple(images.shape)}")
    x = F.adaptive_avg_pool2d(images[: config.batch_size].to(device, torch.float32), config.resolution)
    y = labels[: config.batch_size].to(device)
    torch.manual_seed(config.seed)
    with torch.device(device):
        stack = FlowStack(config, skip=False, in_channels=x.shape[1], num_classes=num_classes)
    plain = _measure_stack("plain", stack, config, x, y)
    stack.zero_grad(set_to_none=True)
    stack.set_skip(True)  # the same weights, now with + x in every block
    return FlowResult(config, plain, _measure_stack("residual", stack, config, x, y), dataset=dataset)


def data_batch(dataset: str = "synthetic", batch_size: int = 32, data_dir: str | None = None, seed: int = 0,
               channels: int | None = None, image_size: int | None = None) -> tuple[Tensor, Tensor, int]:
    """A seeded random batch of normalised training images, its labels, and the set's class count."""
    data = prepare(dataset, data_dir, channels=channels, image_size=image_size)
    check_int("batch_size", batch_size, 1, len(data.train_labels))
    pick = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return normalize(data.train_images[pick], data.mean, data.std), data.train_labels[pick], data.num_classes


def run_flow(config: FlowConfig, dataset: str = "synthetic", data_dir: str | None = None,
             device: str | torch.device = "cpu") -> FlowResult:
    """`measure_stacks` on a batch of `dataset` (drawn with the config's seed)."""
    config.validate()
    images, labels, classes = data_batch(dataset, config.batch_size, data_dir, config.seed)
    return measure_stacks(config, images, labels, classes, dataset=dataset, device=device)


def _measure_stack(kind: str, stack: FlowStack, config: FlowConfig, x: Tensor, y: Tensor) -> StackFlow:
    start = time.perf_counter()
    set_mode(stack, config.mode, lambda: _run_stack(stack, x, record=None))
    outputs: list[Tensor] = []
    features = _run_stack(stack, x, record=outputs)
    outputs_for_loss = stack.head(features.mean((2, 3))) if config.loss == "cross_entropy" else features
    loss = _loss(outputs_for_loss, y, config.loss)
    loss.backward()
    means, stds = _moments(outputs)
    slopes = [float(activation_slope(config.activation, o.double()).mean()) for o in outputs]
    grads = _norms([b.conv1.weight.grad for b in stack.blocks])
    return StackFlow(kind, grads, means, stds, slopes, float(loss.detach()), time.perf_counter() - start)


def _run_stack(stack: FlowStack, x: Tensor, record: list[Tensor] | None) -> Tensor:
    x = stack.stem(x)
    for block in stack.blocks:
        x = block(x)
        if record is not None:
            record.append(x.detach())
    return x


def set_mode(model: nn.Module, mode: str, forward: Callable[[], object]) -> None:
    """train: BN normalises with batch statistics. eval: BN uses running statistics, which are first
    estimated from `forward()` (cumulative average over one pass), so a fresh net is normalised too."""
    check_choice("mode", mode, MODES)
    model.train()
    if mode == "eval":
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        with torch.no_grad():
            forward()
        model.eval()


def _loss(outputs: Tensor, labels: Tensor, loss: str) -> Tensor:
    check_choice("loss", loss, LOSSES)
    return F.cross_entropy(outputs, labels) if loss == "cross_entropy" else outputs.sum()


def _moments(outputs: Sequence[Tensor]) -> tuple[list[float], list[float]]:
    # float64: the std of float32 activations near 1e-20 would underflow in float32
    pairs = [torch.std_mean(o.double()) for o in outputs]
    return [float(m) for _, m in pairs], [float(sd) for sd, _ in pairs]


def _norms(grads: Sequence[Tensor | None]) -> list[float]:
    # float64: squares of float32 gradients near 1e-20 would underflow a float32 norm
    return [0.0 if g is None else float(g.double().norm()) for g in grads]


# ---------------------------------------------------------------- any resnet_core model


@dataclass
class ModelFlow:
    blocks: pd.DataFrame  # block ("layer2.1"), stage, index, grad_norm (first conv), act_mean, act_std
    stages: pd.DataFrame  # stage, blocks, grad_norm (all convs of the stage), act_mean, act_std (stage output)
    loss: float
    seconds: float


def measure_model(model: ResNet, images: Tensor, labels: Tensor, loss: str = "cross_entropy",
                  mode: str = "train") -> ModelFlow:
    """One forward/backward of `model` on a batch; per block and per stage gradient and activation magnitudes.

    Changes the model's gradients and, in eval mode, its BN running statistics (see `set_mode`).
    """
    check_choice("loss", loss, LOSSES)
    start = time.perf_counter()
    device = next(model.parameters()).device
    images, labels = images.to(device, torch.float32), labels.to(device)
    set_mode(model, mode, lambda: model(images))
    model.zero_grad(set_to_none=True)
    index, outputs = model.feature_info, []
    with HookSet() as hooks:
        for info in index:
            hooks.forward(model.block(info), lambda _m, _i, out: outputs.append(out.detach()))
        value = _loss(model(images), labels, loss)
    value.backward()
    means, stds = _moments(outputs)
    blocks = pd.DataFrame(dict(
        block=[i.name for i in index], stage=[i.stage for i in index], index=[i.index for i in index],
        grad_norm=_norms([model.block(i).conv1.weight.grad for i in index]), act_mean=means, act_std=stds))
    stage_rows = []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        conv_grads = [m.weight.grad for m in stage.modules() if isinstance(m, nn.Conv2d)]
        last = blocks[blocks.stage == stage_name].iloc[-1]
        stage_rows.append(dict(stage=stage_name, blocks=len(stage),
                               grad_norm=math.sqrt(sum(g**2 for g in _norms(conv_grads))),
                               act_mean=last.act_mean, act_std=last.act_std))
    return ModelFlow(blocks, pd.DataFrame(stage_rows), float(value.detach()), time.perf_counter() - start)


@dataclass
class TwinFlow:
    name: str  # the preset, or "<preset>, plain twin" / "<preset>, residual twin"
    skip: bool
    flow: ModelFlow


def measure_twins(model: str, overrides: dict, dataset: str = "synthetic", side: int = 32, batch_size: int = 8,
                  loss: str = "cross_entropy", mode: str = "train", seed: int = 0) -> list[TwinFlow]:
    """`measure_model` on the chosen model and on its twin with the identity shortcuts toggled: the same seed
    (so the same initial weights), the same batch of `dataset` at `side`×`side`; the chosen model first."""
    spec = resolve_spec(model, **overrides)
    images, labels, classes = data_batch(dataset, batch_size, seed=seed, channels=spec.in_channels, image_size=side)
    twins = []
    for skip in (spec.skip, not spec.skip):
        name = model if skip == spec.skip else f"{model}, {'residual' if skip else 'plain'} twin"
        net = build_seeded_model(spec.replace(skip=skip, num_classes=classes), seed)
        twins.append(TwinFlow(name, skip, measure_model(net, images, labels, loss=loss, mode=mode)))
    return twins


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
