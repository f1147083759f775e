"""Shattered gradients (Balduzzi, Frean, Leary, Lewis, Ma, McWilliams 2017): at initialisation, how alike are
the input gradients of nearby inputs, as a function of depth, in plain and residual stacks?

A 1-D grid of nearby inputs x_t = x0 + t·u (x0 one training image pooled to the stack's resolution, u a random
direction of the same norm, t evenly spaced in [-radius, radius]) goes through one `FlowStack` of seeded weights
(flow_stack.py), once as a plain stack and once with the identity additions (the same weights). After every
block d a fixed random readout r_d·h_d(x) gives a scalar, and its gradient g_d(x_t) = ∂(r_d·h_d)/∂x is taken
at every grid point. The measure is the Pearson correlation between the gradients of neighbouring grid points,
averaged along the grid: near 1 for a smooth function of the input, near 0 for white noise. Balduzzi et al.
find it decays exponentially with depth in plain ReLU nets and far more slowly in ResNets.

BatchNorm runs in eval mode with statistics estimated on the grid itself (flow.set_mode), so each point's
gradient does not depend on the other points in the batch.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_float, check_int
from .flow import data_batch, set_mode
from .flow_stack import FlowConfig, FlowStack

BALDUZZI2017 = ("Balduzzi, Frean, Leary, Lewis, Ma, McWilliams. The Shattered Gradients Problem: If resnets are the "
                "answer, then what is the question? ICML 2017 (arXiv:1702.08591)")
HALF = 0.5  # the text reports the first depth where the correlation falls below this


@dataclass(frozen=True)
class ShatteredConfig:
    points: int = 64  # grid points along the line of inputs
    radius: float = 0.5  # t runs over [-radius, radius]; u has the norm of x0, so this is a relative distance

    def validate(self) -> ShatteredConfig:
        check_int("points", self.points, 3, 1024)
        check_float("radius", self.radius, 0.0, 100.0, low_open=True)
        return self


@dataclass
class ShatteredResult:
    flow: FlowConfig  # the stacks: blocks, width, norm, activation, init, resolution, seed
    grid: ShatteredConfig
    depth: list[int]  # the blocks after which it is measured (`measured_depths`)
    plain: list[float]  # mean neighbouring-gradient correlation after each block
    residual: list[float]
    dataset: str
    seconds: float

    def to_dict(self) -> dict:
        return dict(flow=dataclasses.asdict(self.flow), grid=dataclasses.asdict(self.grid), depth=self.depth,
                    plain=self.plain, residual=self.residual, dataset=self.dataset, seconds=self.seconds)


def input_line(x0: Tensor, config: ShatteredConfig, seed: int) -> Tensor:
    """(points, C, H, W): x0 + t·u for t evenly spaced in [-radius, radius], u random with the norm of x0."""
    u = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    u = u * (x0.norm() / u.norm())
    t = torch.linspace(-config.radius, config.radius, config.points).view(-1, 1, 1, 1)
    return x0.unsqueeze(0) + t * u.unsqueeze(0)


def neighbour_correlation(grads: Tensor) -> float:
    """Mean Pearson correlation between the flattened gradients of neighbouring grid points."""
    g = grads.flatten(1).double()
    g = g - g.mean(1, keepdim=True)
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return float((g[1:] * g[:-1]).sum(1).mean())


def measured_depths(blocks: int) -> list[int]:
    """Every block up to 10, then every 5th, and the last: each depth costs a backward pass through it."""
    return sorted({*range(1, min(10, blocks) + 1), *range(15, blocks + 1, 5), blocks})


def stack_correlations(stack: FlowStack, line: Tensor, seed: int, depths: list[int]) -> list[float]:
    """The neighbouring-gradient correlation after the given blocks of `stack` (BN in eval mode, estimated on
    `line`); block d has its own fixed random readout, the same for the plain and the residual stack."""
    def forward() -> None:
        h = stack.stem(line)
        for block in stack.blocks:
            h = block(h)

    set_mode(stack, "eval", forward)
    stack.zero_grad(set_to_none=True)
    x = line.clone().requires_grad_(True)
    outputs, h = [], stack.stem(x)
    for block in stack.blocks:
        h = block(h)
        outputs.append(h)
    generator = torch.Generator().manual_seed(seed + 1)
    correlations = []
    for depth, out in enumerate(outputs, start=1):
        readout = torch.randn(out.shape[1:], generator=generator)
        if depth not in depths:
            continue
        value = (out * readout).sum()
        (grad,) = torch.autograd.grad(value, x, retain_graph=True)
        correlations.append(neighbour_correlation(grad))
    return correlations


def measure_shattering(flow: FlowConfig, grid: ShatteredConfig, dataset: str = "synthetic",
                       data_dir: str | None = None) -> ShatteredResult:
    """Plain and residual stacks of the same seeded weights at initialisation; correlation against depth."""
    flow.validate()
    grid.validate()
    start = time.perf_counter()
    images, _, classes = data_batch(dataset, 1, data_dir, flow.seed)
    x0 = F.adaptive_avg_pool2d(images[:1].float(), flow.resolution)[0]
    line = input_line(x0, grid, flow.seed)
    torch.manual_seed(flow.seed)
    stack = FlowStack(flow, skip=False, in_channels=x0.shape[0], num_classes=classes)
    depths = measured_depths(flow.blocks)
    plain = stack_correlations(stack, line, flow.seed, depths)
    stack.set_skip(True)
    residual = stack_correlations(stack, line, flow.seed, depths)
    return ShatteredResult(flow, grid, depths, plain, residual, dataset,
                           time.perf_counter() - start)


def describe(result: ShatteredResult) -> list[str]:
    """Sentences from the numbers: the correlation at the first and last depth, and where each falls below HALF."""
    lines = [f"{result.grid.points} inputs on a line of relative length ±{result.grid.radius:g} around one "
             f"`{result.dataset}` image at {result.flow.resolution}×{result.flow.resolution}; {result.flow.blocks} "
             f"blocks of width {result.flow.width}, "
             f"{'BatchNorm (eval mode, statistics of the grid)' if result.flow.batch_norm else 'no BatchNorm'}, "
             f"{result.flow.activation}, {result.flow.init} init, seed {result.flow.seed}."]
    for kind, values in (("Plain", result.plain), ("Residual", result.residual)):
        below = next((d for d, v in zip(result.depth, values) if v < HALF), None)
        lines.append(f"**{kind}**: neighbouring-gradient correlation {values[0]:.3f} after block {result.depth[0]}, "
                     f"{values[-1]:.3f} after block {result.depth[-1]}; "
                     + (f"first below {HALF} after block {below}." if below is not None
                        else f"never below {HALF} in {result.depth[-1]} blocks."))
    p, r = result.plain[-1], result.residual[-1]
    if r > p:
        lines.append(f"At depth {result.depth[-1]} the residual stack keeps more correlation ({r:.3f} vs {p:.3f}), "
                     "as Balduzzi et al. predict.")
    else:
        lines.append(f"At depth {result.depth[-1]} the plain stack keeps as much or more correlation ({p:.3f} vs "
                     f"{r:.3f}): these settings do not show the shattering Balduzzi et al. describe.")
    return lines
