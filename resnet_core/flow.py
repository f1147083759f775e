"""Signal flow: per-block gradient and activation magnitudes of plain vs residual stacks, measured.

`measure_stacks` measures N blocks of one set of weights twice, as a plain stack and as a
residual stack (the only difference is the identity addition): one batch forward and backward
each, recording for each block the gradient norm of its first conv weight and the mean/std of
its output.
`measure_model` takes the same measurements on any `ResNet`, per block and per stage.
`describe_stacks` / `describe_model` write the text under the plots from the measured numbers.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import normalize, prepare
from .model import ResNet
from .runstore import read_metrics

INITS = ("kaiming", "xavier", "normal")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
MODES = ("train", "eval")
LOSSES = ("cross_entropy", "sum")
MAX_BLOCKS = 500
STEEP = 1e3  # an end-to-end gradient ratio beyond which the text calls it exploding / vanishing


@dataclass(frozen=True)
class FlowConfig:
    blocks: int = 50  # blocks per stack
    width: int = 16  # channels of every conv in the stack
    batch_norm: bool = True  # conv-BN-act, or conv-act without normalisation
    mode: str = "train"  # train: BN uses batch statistics; eval: running statistics (estimated on this batch)
    init: str = "kaiming"  # kaiming (He normal, fan_in, relu gain) | xavier (Glorot normal) | normal
    init_std: float = 0.02  # std of the "normal" init
    activation: str = "relu"  # relu | tanh | sigmoid
    batch_size: int = 32
    resolution: int = 8  # images are average-pooled to this side before the stem
    loss: str = "cross_entropy"  # cross_entropy through a linear head on pooled features | sum of the outputs
    seed: int = 0  # weights of both stacks, head and stem

    def validate(self) -> "FlowConfig":
        _int_range("blocks", self.blocks, 1, MAX_BLOCKS)
        _int_range("width", self.width, 1, 512)
        _int_range("batch_size", self.batch_size, 1, 1024)
        _int_range("resolution", self.resolution, 1, 64)
        _int_range("seed", self.seed, 0, 2**31 - 1)
        _choice("mode", self.mode, MODES)
        _choice("init", self.init, INITS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"batch_norm must be true or false; got {self.batch_norm!r}")
        if not isinstance(self.init_std, (int, float)) or not 0 < self.init_std <= 10:
            raise ValueError(f"init_std must be a number in (0, 10]; got {self.init_std!r}")
        if self.batch_norm and self.mode == "train" and self.batch_size * self.resolution**2 < 2:
            raise ValueError("batch_size * resolution**2 must be at least 2 for BatchNorm in train mode; got 1")
        return self


def make_activation(name: str) -> nn.Module:
    _choice("activation", name, ACTIVATIONS)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


class FlowBlock(nn.Module):
    """act(norm(conv2(act(norm(conv1(x))))) [+ x]): the CIFAR basic block with a chosen activation and norm."""

    def __init__(self, width: int, batch_norm: bool, activation: str, skip: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.act2 = make_activation(activation)
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + x if self.skip else out)


class FlowStack(nn.Module):
    """Stem conv (image channels -> width), N FlowBlocks, and a linear head on globally pooled features."""

    def __init__(self, config: FlowConfig, skip: bool, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, config.width, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList(
            FlowBlock(config.width, config.batch_norm, config.activation, skip) for _ in range(config.blocks))
        self.head = nn.Linear(config.width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init_conv(m.weight, config.init, config.init_std)

    def set_skip(self, skip: bool) -> None:
        for block in self.blocks:
            block.skip = skip


def init_conv(weight: Tensor, init: str, std: float) -> None:
    _choice("init", init, INITS)
    if init == "kaiming":
        nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
    elif init == "xavier":
        nn.init.xavier_normal_(weight)
    else:
        nn.init.normal_(weight, 0.0, std)


@dataclass
class StackFlow:
    """Measurements of one stack, one entry per block (block 1 is next to the input)."""

    kind: str  # plain | residual
    grad_norm: List[float]  # ||dL/dW|| of each block's first conv weight
    act_mean: List[float]  # mean of each block's output
    act_std: List[float]  # std of each block's output
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
                   dataset: str = "batch", device: "str | torch.device" = "cpu") -> FlowResult:
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


def data_batch(dataset: str = "synthetic", batch_size: int = 32, data_dir: Optional[str] = None, seed: int = 0,
               channels: Optional[int] = None, image_size: Optional[int] = None) -> Tuple[Tensor, Tensor, int]:
    """A seeded random batch of normalised training images, its labels, and the set's class count."""
    data = prepare(dataset, data_dir, channels=channels, image_size=image_size)
    _int_range("batch_size", batch_size, 1, len(data.train_labels))
    pick = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return normalize(data.train_images[pick], data.mean, data.std), data.train_labels[pick], data.num_classes


def run_flow(config: FlowConfig, dataset: str = "synthetic", data_dir: Optional[str] = None,
             device: "str | torch.device" = "cpu") -> FlowResult:
    """`measure_stacks` on a batch of `dataset` (drawn with the config's seed)."""
    config.validate()
    images, labels, classes = data_batch(dataset, config.batch_size, data_dir, config.seed)
    return measure_stacks(config, images, labels, classes, dataset=dataset, device=device)


def _measure_stack(kind: str, stack: FlowStack, config: FlowConfig, x: Tensor, y: Tensor) -> StackFlow:
    start = time.perf_counter()
    set_mode(stack, config.mode, lambda: _run_stack(stack, x, record=None))
    outputs: List[Tensor] = []
    features = _run_stack(stack, x, record=outputs)
    outputs_for_loss = stack.head(features.mean((2, 3))) if config.loss == "cross_entropy" else features
    loss = _loss(outputs_for_loss, y, config.loss)
    loss.backward()
    means, stds = _moments(outputs)
    grads = _norms([b.conv1.weight.grad for b in stack.blocks])
    return StackFlow(kind, grads, means, stds, float(loss.detach()), time.perf_counter() - start)


def _run_stack(stack: FlowStack, x: Tensor, record: Optional[List[Tensor]]) -> Tensor:
    x = stack.stem(x)
    for block in stack.blocks:
        x = block(x)
        if record is not None:
            record.append(x.detach())
    return x


def set_mode(model: nn.Module, mode: str, forward: Callable[[], object]) -> None:
    """train: BN normalises with batch statistics. eval: BN uses running statistics, which are first
    estimated from `forward()` (cumulative average over one pass), so a fresh net is normalised too."""
    _choice("mode", mode, MODES)
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
    _choice("loss", loss, LOSSES)
    return F.cross_entropy(outputs, labels) if loss == "cross_entropy" else outputs.sum()


def _moments(outputs: Sequence[Tensor]) -> Tuple[List[float], List[float]]:
    # float64: the std of float32 activations near 1e-20 would underflow in float32
    pairs = [torch.std_mean(o.double()) for o in outputs]
    return [float(m) for _, m in pairs], [float(sd) for sd, _ in pairs]


def _norms(grads: Sequence[Optional[Tensor]]) -> List[float]:
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
    _choice("loss", loss, LOSSES)
    start = time.perf_counter()
    device = next(model.parameters()).device
    images, labels = images.to(device, torch.float32), labels.to(device)
    set_mode(model, mode, lambda: model(images))
    model.zero_grad(set_to_none=True)
    names, outputs, hooks = [], [], []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        for i, block in enumerate(stage):
            names.append((f"{stage_name}.{i}", stage_name, i))
            hooks.append(block.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach())))
    try:
        value = _loss(model(images), labels, loss)
    finally:
        for h in hooks:
            h.remove()
    value.backward()
    block_modules = [block for stage in model.stages() for block in stage]
    means, stds = _moments(outputs)
    blocks = pd.DataFrame(dict(
        block=[n[0] for n in names], stage=[n[1] for n in names], index=[n[2] for n in names],
        grad_norm=_norms([b.conv1.weight.grad for b in block_modules]), act_mean=means, act_std=stds))
    stage_rows = []
    for stage_name, stage in zip(model.stage_names, model.stages()):
        conv_grads = [m.weight.grad for m in stage.modules() if isinstance(m, nn.Conv2d)]
        last = blocks[blocks.stage == stage_name].iloc[-1]
        stage_rows.append(dict(stage=stage_name, blocks=len(stage),
                               grad_norm=math.sqrt(sum(g**2 for g in _norms(conv_grads))),
                               act_mean=last.act_mean, act_std=last.act_std))
    return ModelFlow(blocks, pd.DataFrame(stage_rows), float(value.detach()), time.perf_counter() - start)


# ---------------------------------------------------------------- during training (probe records of a run)


def probe_frame(records: Sequence[dict]) -> pd.DataFrame:
    """Probe records (see train.py) in long format: step, unit, stage, grad_norm, act_mean, act_std."""
    rows = [dict(step=r["step"], unit=unit, stage=stage, grad_norm=g, act_mean=m, act_std=sd)
            for r in records if r.get("kind") == "probe"
            for unit, stage, g, m, sd in zip(r["units"], r["stages"], r["grad_norm"], r["act_mean"], r["act_std"])]
    return pd.DataFrame(rows, columns=["step", "unit", "stage", "grad_norm", "act_mean", "act_std"])


def run_probes(run_dir: "str | Path") -> pd.DataFrame:
    """The probe records a run has written so far (its metrics.jsonl is read afresh each call)."""
    return probe_frame(read_metrics(run_dir, "probe"))


def stage_activations(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each stage's last unit: the stage's output statistics at every probe step."""
    return frame.groupby(["step", "stage"], sort=False).tail(1).reset_index(drop=True)


def describe_training_flow(frames: Dict[str, pd.DataFrame]) -> List[str]:
    """Per run: how widely the blocks' gradient norms spread at the first and at the latest probe step."""
    lines = []
    for name, frame in frames.items():
        blocks = frame[~frame.unit.isin(("stem", "head"))]
        if blocks.empty:
            lines.append(f"{name}: no probe records yet.")
            continue
        steps = sorted(blocks.step.unique())
        parts = []
        for step in dict.fromkeys((steps[0], steps[-1])):
            at = blocks[blocks.step == step]
            first, last = at.iloc[0], at.iloc[-1]
            parts.append(f"at step {step} the block gradient norms span {format_ratio(spread(at.grad_norm.tolist()))} "
                         f"({first.unit} {_num(first.grad_norm)}, {last.unit} {_num(last.grad_norm)})")
        lines.append(f"**{name}**: " + "; ".join(parts) + f" — {len(steps)} probe steps.")
    return lines


# ---------------------------------------------------------------- text from the numbers


def describe_stacks(result: FlowResult) -> List[str]:
    """Markdown sentences about what was measured, one per finding; every number comes from `result`."""
    c = result.config
    norm = f"BatchNorm in {c.mode} mode" if c.batch_norm else "no BatchNorm"
    lines = [f"Measured on one batch of {c.batch_size} `{result.dataset}` images at {c.resolution}×{c.resolution}, "
             f"{c.blocks} blocks of width {c.width}, {norm}, {c.activation}, {_init_text(c)} init, "
             f"loss = {_loss_text(c.loss)}."]
    for stack in (result.plain, result.residual):
        lines.append(_gradient_sentence(stack))
    lines.append(_compare_spreads(result.plain, result.residual))
    for stack in (result.plain, result.residual):
        lines.append(_activation_sentence(stack))
    return lines


def describe_model(flow: ModelFlow, model_name: str) -> List[str]:
    b = flow.blocks
    if b.empty:
        return [f"{model_name} has no blocks to measure."]
    lines = [_trend_sentence(f"{model_name}", b.grad_norm.tolist(), b.block.tolist())]
    top, bottom = b.loc[b.grad_norm.idxmax()], b.loc[b.grad_norm.idxmin()]
    lines.append(f"Largest first-conv gradient: {top.block} ({_num(top.grad_norm)}); smallest: {bottom.block} "
                 f"({_num(bottom.grad_norm)}); spread {format_ratio(spread(b.grad_norm.tolist()))}.")
    lines.append(f"Activation std after each block runs from {_num(b.act_std.min())} to {_num(b.act_std.max())} "
                 f"(spread {format_ratio(spread(b.act_std.tolist()))}); the last block's output has std "
                 f"{_num(b.act_std.iloc[-1])}.")
    return lines


def _gradient_sentence(stack: StackFlow) -> str:
    text = _trend_sentence(f"**{stack.kind.capitalize()}**", stack.grad_norm,
                           [f"block {i + 1}" for i in range(len(stack.grad_norm))])
    if stack.zero_grad_blocks:
        text += (f" {stack.zero_grad_blocks} of {len(stack.grad_norm)} blocks get a gradient of exactly 0 "
                 "(it underflowed float32 on the way back): they cannot learn at all.")
    return text


def _trend_sentence(who: str, grads: Sequence[float], names: Sequence[str]) -> str:
    """How the first-conv gradient changes from the output end back to the input end."""
    first, last = grads[0], grads[-1]
    head = (f"{who}: the first-conv gradient norm is {_num(last)} at {names[-1]} (output end) and "
            f"{_num(first)} at {names[0]} (input end)")
    if len(grads) == 1:
        return head + "."
    if last == 0 and first == 0:
        return head + ": no gradient reaches either end."
    if last == 0:
        return head + ": no gradient reaches the output end."
    ratio = first / last
    if ratio == 0:
        return head + ": the gradient **vanishes** before it reaches the input."
    if ratio >= 10:
        return head + f": it **grows {format_ratio(ratio)}** toward the input" + (
            " — exploding, not vanishing." if ratio >= STEEP else ".")
    if ratio <= 0.1:
        return head + f": it **shrinks {format_ratio(1 / ratio)}** toward the input" + (
            " — vanishing." if ratio <= 1 / STEEP else ".")
    return head + (f": within a factor {format_ratio(max(ratio, 1 / ratio))} of each other, "
                   f"spread {format_ratio(spread(grads))}.")


def _compare_spreads(plain: StackFlow, residual: StackFlow) -> str:
    p, r = plain.grad_spread, residual.grad_spread
    text = f"Gradient-norm spread (max/min over blocks): plain {format_ratio(p)}, residual {format_ratio(r)}"
    if not (math.isfinite(p) and math.isfinite(r)):
        text += "."
    elif p >= r:
        text += f": the residual stack's is {format_ratio(p / r)} narrower."
    else:
        text += f": here the plain stack's is {format_ratio(r / p)} narrower."
    p_mid, r_mid = statistics.median(plain.grad_norm), statistics.median(residual.grad_norm)
    if p_mid > 0 and r_mid > 0:
        text += f" Median gradient norm: plain {_num(p_mid)}, residual {_num(r_mid)}"
        low, ratio = ("plain", r_mid / p_mid) if p_mid < r_mid else ("residual", p_mid / r_mid)
        text += (f": the {low} stack's gradients are {format_ratio(ratio)} smaller across the board."
                 if ratio >= STEEP else ".")
    return text


def _activation_sentence(stack: StackFlow) -> str:
    stds = stack.act_std
    return (f"{stack.kind.capitalize()} activations: std {_num(stds[0])} after block 1, {_num(stds[-1])} after block "
            f"{len(stds)} (spread {format_ratio(stack.act_std_spread)}); mean {_num(stack.act_mean[0])} → "
            f"{_num(stack.act_mean[-1])}.")


def _init_text(c: FlowConfig) -> str:
    return f"normal(std={c.init_std:g})" if c.init == "normal" else c.init


def _loss_text(loss: str) -> str:
    return "cross-entropy through a linear head" if loss == "cross_entropy" else "sum of the last block's outputs"


def _num(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def format_ratio(value: float) -> str:
    """A max/min ratio for text: 3.2×, 1.1e+05×, or 'unbounded' when a value was exactly 0."""
    if math.isinf(value):
        return "unbounded (some values are exactly 0)"
    if math.isnan(value):
        return "undefined"
    return f"{value:.3g}×" if value < 1e4 else f"{value:.1e}×"


def _finite_or_none(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def _int_range(field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{field} must be an integer from {low} to {high}; got {value!r}")


def _choice(field: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
