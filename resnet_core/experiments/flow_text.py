"""The text under the signal-flow figures: Markdown sentences written from the measured numbers only."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import pandas as pd

from .flow import FlowResult, ModelFlow, StackFlow, spread
from .flow_stack import FlowConfig

STEEP = 1e3  # an end-to-end gradient ratio beyond which the text calls it exploding / vanishing


def describe_stacks(result: FlowResult) -> list[str]:
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
    shortcut = _shortcut_sentence(result.residual, c.activation)
    if shortcut:
        lines.append(shortcut)
    return lines


def _shortcut_sentence(residual: StackFlow, activation: str) -> str | None:
    """Why a residual stack's gradient vanishes too, when it does: the activation after the addition sits on the
    shortcut. Its measured slope, multiplied over the blocks, is what the shortcut alone would pass back."""
    grads, slopes = residual.grad_norm, residual.act_slope
    if len(grads) < 2 or grads[-1] <= 0 or grads[0] / grads[-1] > 1 / STEEP:
        return None
    ratio = grads[0] / grads[-1]
    through = math.prod(slopes[1:])  # block n back to block 1 crosses the activations of blocks 2..n
    bound = " (the sigmoid's slope is at most 0.25)" if activation == "sigmoid" else ""
    text = (f"**Why the residual stack vanishes too:** these blocks (the original ResNet's) apply the {activation} "
            f"*after* the addition, act(F(x) + x), so the shortcut passes through its slope at every block{bound}. "
            f"Measured mean slope after each block: {_num(statistics.mean(slopes))} ({_num(min(slopes))} to "
            f"{_num(max(slopes))}); multiplied over the {len(slopes) - 1} blocks between block {len(slopes)} and "
            f"block 1: {_num(through)}, against the measured gradient ratio {_num(ratio)} (block 1 / block "
            f"{len(grads)})")
    if through == 0 or ratio == 0:
        text += "."
    elif abs(math.log10(ratio / through)) <= 2:
        text += " — the shortcut's own slope accounts for the loss; the identity path is not an identity here."
    elif ratio > through:
        text += " — the residual branches carry back more gradient than the shortcut alone would."
    else:
        text += " — steeper than the shortcut's slope alone."
    return text + (" A pre-activation block (He et al. 2016, *Identity Mappings in Deep Residual Networks*) "
                   "puts nothing after the addition, x + F(x), so its shortcut's slope is exactly 1.")


def describe_model(flow: ModelFlow, model_name: str) -> list[str]:
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


def describe_training_flow(frames: dict[str, pd.DataFrame]) -> list[str]:
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
