"""Common mistakes, built for real: each function builds the broken block (or model) from `models/blocks.py` and
`models/resnet.py`, runs it, and returns what PyTorch says or what was measured, next to the correct version.

- `skip_mismatch`: the skip added across a channel or stride change without a projection (the real exception),
  and the three fixes A, B, C run on the same input.
- `relu_placement`: ReLU after the addition (post-activation) against nothing after it (pre-activation): what the
  closing ReLU does to the identity path.
- `bn_on_shortcut`: a BatchNorm on the identity shortcut against the bare identity.
- `bn_train_mode_eval`: a stored run evaluated with BatchNorm in eval mode and left in train mode.
- `zero_init_gradients`: first-step gradient norms with and without `zero_init_residual`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.transforms import normalize
from ..models.blocks import BLOCK_TYPES, BasicBlock, BlockStyle, PreActBasicBlock, make_shortcut
from ..models.presets import resolve_spec
from ..models.spec import SHORTCUTS
from ..runs.loading import load_model, load_run_data
from ..runs.store import read_run
from ..training.engine import build_seeded_model, evaluate
from ..validation import check_choice, check_int
from .flow import data_batch
from .identity import kaiming_init_

MAX_CHANNELS = 512  # real tensors here, not the meta device: keep them small
MAX_SIZE = 64
STACK_BLOCKS = 10  # blocks in the stacks of relu_placement and bn_on_shortcut
STACK_CHANNELS = 16


def _params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- the skip across a shape change


@dataclass(frozen=True)
class Fix:
    shortcut: str  # A | B | C
    output_shape: tuple[int, ...] | None  # None when the fix is not possible
    params: int  # parameters of the shortcut
    note: str


@dataclass(frozen=True)
class MismatchResult:
    input_shape: tuple[int, ...]
    main_shape: tuple[int, ...]  # what the residual branch returns
    error: str | None  # PyTorch's exception text, None when the shapes agree and the identity works
    error_type: str | None
    fixes: tuple[Fix, ...]

    def explanation(self) -> str:
        if self.error is None:
            return (f"The main path keeps the shape {_shape(self.input_shape)}, so `out + x` works: no projection "
                    "is needed.")
        (_, c_in, h_in, w_in), (_, c_out, h_out, w_out) = self.input_shape, self.main_shape
        parts = []
        if c_in != c_out:
            parts.append(f"channels {c_in} → {c_out} (dimension 1)")
        if (h_in, w_in) != (h_out, w_out):
            parts.append(f"height × width {h_in}×{w_in} → {h_out}×{w_out} (dimensions 2, 3)")
        return (f"The main path maps {_shape(self.input_shape)} to {_shape(self.main_shape)}: "
                f"{' and '.join(parts)}. `out + x` adds tensors elementwise, so PyTorch cannot broadcast one onto "
                "the other; the shortcut must change the shape too.")


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape[1:]))


def skip_mismatch(in_channels: int = 64, out_channels: int = 128, stride: int = 2, size: int = 16,
                  block: str = "basic") -> MismatchResult:
    """Build `block` with skip=True and no downsample module, run it on a real tensor and catch what PyTorch
    raises; then run it with each shortcut kind in place."""
    check_choice("block", block, ("basic", "bottleneck"))
    check_int("in_channels", in_channels, 1, MAX_CHANNELS)
    check_int("out_channels", out_channels, 1, MAX_CHANNELS)
    check_int("size", size, 1, MAX_SIZE)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2; got {stride!r}")
    block_cls = BLOCK_TYPES[block]
    if out_channels % block_cls.expansion:
        raise ValueError(f"out_channels of a {block} block must be a multiple of {block_cls.expansion}; "
                         f"got {out_channels}")
    planes = out_channels // block_cls.expansion
    x = torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(0))
    broken = block_cls(in_channels, planes, stride, downsample=None).eval()
    plain_twin = block_cls(in_channels, planes, stride, style=BlockStyle(skip=False)).eval()
    plain_twin.load_state_dict(broken.state_dict())
    with torch.no_grad():
        main_shape = tuple(plain_twin(x).shape)
        error = error_type = None
        try:
            broken(x)
        except RuntimeError as exc:
            error, error_type = str(exc), type(exc).__name__
        fixes = []
        for kind in SHORTCUTS:
            if kind == "A" and out_channels < in_channels:
                fixes.append(Fix(kind, None, 0, "not possible: zero-padding cannot drop channels"))
                continue
            shortcut = make_shortcut(kind, in_channels, out_channels, stride, norm=nn.BatchNorm2d)
            fixed = block_cls(in_channels, planes, stride, downsample=shortcut).eval()
            note = {"A": "subsample and zero-pad the new channels, no parameters",
                    "B": "1×1 conv (+ BN) only where the shape changes", "C": "1×1 conv (+ BN) in every block",
                    "D": "where B projects, a 2×2 average pool, then a stride-1 1×1 conv (+ BN) (ResNet-D)"}[kind]
            if shortcut is None:
                note = "the identity: the shape does not change"
            fixes.append(Fix(kind, tuple(fixed(x).shape), _params(shortcut), note))
    return MismatchResult(tuple(x.shape), main_shape, error, error_type, tuple(fixes))


# ---------------------------------------------------------------- ReLU after the addition


@dataclass(frozen=True)
class PlacementRow:
    order: str  # "ReLU after the addition (original)" | "nothing after the addition (pre-activation)"
    identity_error: float  # ‖y − x‖/‖x‖ with the residual branch zeroed: 0 when the identity path is intact
    dead_input_grads: float  # share of input entries whose gradient is exactly 0 through the zeroed-branch stack
    clipped_share: float  # at initialisation, the share of the sum's entries the closing ReLU sets to 0 (mean)


def relu_placement(channels: int = STACK_CHANNELS, size: int = 8, blocks: int = STACK_BLOCKS,
                   seed: int = 0) -> list[PlacementRow]:
    """A stack of `blocks` basic blocks in each order on the same mixed-sign input: with each residual branch
    zeroed (the last BN's weight 0) the stack should be the identity; at initialisation, how much of each sum
    the closing ReLU removes."""
    check_int("channels", channels, 1, MAX_CHANNELS)
    check_int("size", size, 1, MAX_SIZE)
    check_int("blocks", blocks, 1, 100)
    x = torch.randn(8, channels, size, size, generator=torch.Generator().manual_seed(seed))
    rows = []
    for label, cls in (("ReLU after the addition (original)", BasicBlock),
                       ("nothing after the addition (pre-activation)", PreActBasicBlock)):
        stack = kaiming_init_(nn.Sequential(*[cls(channels, channels) for _ in range(blocks)]),
                              torch.Generator().manual_seed(seed))
        clipped = _clipped_share(stack, x) if cls is BasicBlock else 0.0
        for block in stack:
            nn.init.zeros_(block.last_norm().weight)
        xin = x.clone().requires_grad_(True)
        y = stack(xin)
        y.sum().backward()
        error = float((y.detach() - x).double().norm() / x.double().norm())
        rows.append(PlacementRow(label, error, float((xin.grad == 0).double().mean()), clipped))
    return rows


def _clipped_share(stack: nn.Sequential, x: Tensor) -> float:
    """Mean over blocks of the share of (F(x) + x) entries below zero, which the closing ReLU sets to 0."""
    shares = []
    with torch.no_grad():
        for block in stack:
            out = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) + x
            shares.append(float((out < 0).double().mean()))
            x = F.relu(out)
    return sum(shares) / len(shares)


# ---------------------------------------------------------------- BatchNorm on the shortcut


@dataclass(frozen=True)
class ShortcutNormRow:
    shortcut: str  # "identity" | "BatchNorm"
    identity_error: float  # ‖y − x‖/‖x‖ through the zeroed-branch stack, on non-negative input of mean/std ≠ 0/1
    output_std: float  # std of the stack's output (the input's is `input_std`)
    input_std: float
    input_grad_norm: float  # ‖∂(Σ y)/∂x‖ through the zeroed-branch stack
    params: int  # parameters the shortcuts add to the stack


def bn_on_shortcut(channels: int = STACK_CHANNELS, size: int = 8, blocks: int = STACK_BLOCKS, scale: float = 3.0,
                   seed: int = 0) -> list[ShortcutNormRow]:
    """A stack of basic blocks whose residual branches are zeroed, with the identity shortcut and with a
    BatchNorm (train mode) as the shortcut, on features scale · ReLU(N(0, 1)) (non-negative, as inside a
    post-activation net, and not unit-scaled)."""
    check_int("channels", channels, 1, MAX_CHANNELS)
    check_int("size", size, 1, MAX_SIZE)
    check_int("blocks", blocks, 1, 100)
    x = scale * F.relu(torch.randn(8, channels, size, size, generator=torch.Generator().manual_seed(seed)))
    rows = []
    for label in ("identity", "BatchNorm"):
        stack = kaiming_init_(nn.Sequential(*[BasicBlock(channels, channels, downsample=nn.BatchNorm2d(channels)
                                                         if label == "BatchNorm" else None) for _ in range(blocks)]),
                              torch.Generator().manual_seed(seed))
        for block in stack:
            nn.init.zeros_(block.last_norm().weight)
        xin = x.clone().requires_grad_(True)
        y = stack(xin)
        y.sum().backward()
        rows.append(ShortcutNormRow(label, float((y.detach() - x).double().norm() / x.double().norm()),
                                    float(y.detach().std()), float(x.std()), float(xin.grad.double().norm()),
                                    sum(_params(b.downsample) for b in stack)))
    return rows


# ---------------------------------------------------------------- BatchNorm left in train mode


@dataclass(frozen=True)
class ModeRow:
    mode: str  # "eval (running statistics)" | "train (batch statistics)"
    batch_size: int
    acc: float | None  # None when PyTorch refused (error holds its message)
    loss: float | None
    error: str | None = None


def bn_train_mode_eval(run_dir: str | Path, batch_sizes: tuple[int, ...] = (500, 8),
                       limit: int | None = None) -> list[ModeRow]:
    """A stored run's test accuracy with the model in eval mode (as `evaluate` does), then with BatchNorm left in
    train mode at each batch size (a copy of the model, so the stored one is not changed)."""
    for b in batch_sizes:
        check_int("batch_size", b, 1, 10_000)
    if limit is not None:
        check_int("limit", limit, 1, 10**9)
    info = read_run(run_dir)
    model, data = load_model(run_dir), load_run_data(run_dir)
    limit = limit if limit is not None else info.config.train.test_subset
    ev = evaluate(model, data, limit=limit)
    rows = [ModeRow("eval (running statistics)", 500, ev.acc, ev.loss)]
    images, labels = data.test_images, data.test_labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    for batch_size in batch_sizes:
        broken = copy.deepcopy(model).train()
        correct, total_loss = 0, 0.0
        try:
            with torch.no_grad():
                for start in range(0, len(labels), batch_size):
                    x = normalize(images[start:start + batch_size], data.mean, data.std)
                    y = labels[start:start + batch_size]
                    logits = broken(x)
                    total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                    correct += int((logits.argmax(1) == y).sum())
        except (RuntimeError, ValueError) as exc:  # e.g. a batch of one at 1×1: BN has one value per channel
            rows.append(ModeRow("train (batch statistics)", batch_size, None, None, str(exc)))
            continue
        n = max(1, len(labels))
        rows.append(ModeRow("train (batch statistics)", batch_size, correct / n, total_loss / n))
    return rows


# ---------------------------------------------------------------- zero_init_residual


@dataclass(frozen=True)
class ZeroInitResult:
    blocks: pd.DataFrame  # block, zero_init, conv_grad (all convs of the block's branch), last_norm_grad
    totals: pd.DataFrame  # zero_init, loss, grad_norm (every parameter), branch_conv_grad (all block convs)


def zero_init_gradients(model: str = "resnet20", overrides: dict | None = None, side: int = 32, batch_size: int = 8,
                        seed: int = 0, dataset: str = "synthetic") -> ZeroInitResult:
    """One forward/backward of the same seeded model on the same batch, without and with zero_init_residual."""
    spec = resolve_spec(model, **(overrides or {}))
    check_int("side", side, 8, 224)
    check_int("batch_size", batch_size, 2, 64)
    images, labels, classes = data_batch(dataset, batch_size, seed=seed, channels=spec.in_channels, image_size=side)
    block_rows, total_rows = [], []
    for zero_init in (False, True):
        net = build_seeded_model(spec.replace(zero_init_residual=zero_init, num_classes=classes), seed).train()
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        branch_total = 0.0
        for info in net.feature_info:
            block = net.block(info)
            convs = [m for name, m in block.named_modules() if isinstance(m, nn.Conv2d)
                     and not name.startswith("downsample")]
            conv_grad = math.sqrt(sum(float(m.weight.grad.double().norm()) ** 2 for m in convs))
            branch_total += conv_grad**2
            block_rows.append(dict(block=info.name, zero_init=zero_init, conv_grad=conv_grad,
                                   last_norm_grad=float(block.last_norm().weight.grad.double().norm())))
        grads = [p.grad.double().norm() for p in net.parameters() if p.grad is not None]
        total_rows.append(dict(zero_init=zero_init, loss=float(loss.detach()),
                               grad_norm=float(torch.stack(grads).norm()), branch_conv_grad=math.sqrt(branch_total)))
    return ZeroInitResult(pd.DataFrame(block_rows), pd.DataFrame(total_rows))
