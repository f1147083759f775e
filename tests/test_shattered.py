"""Shattered gradients: the correlation measure itself, plain vs residual stacks at init, and `flow --shattered`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from resnet_core.cli import main
from resnet_core.experiments.flow import data_batch, set_mode
from resnet_core.experiments.flow_stack import FlowConfig, FlowStack
from resnet_core.experiments.shattered import (
    ShatteredConfig,
    describe,
    input_line,
    measure_shattering,
    measured_depths,
    neighbour_correlation,
)


def test_the_correlation_of_smooth_noisy_and_alternating_gradients():
    base = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert neighbour_correlation(base.repeat(5, 1, 1, 1) * torch.arange(1.0, 6.0).view(-1, 1, 1, 1)) == \
        pytest.approx(1.0)
    assert neighbour_correlation(base.repeat(4, 1, 1, 1) * torch.tensor([1.0, -1, 1, -1]).view(-1, 1, 1, 1)) == \
        pytest.approx(-1.0)
    noise = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert abs(neighbour_correlation(noise)) < 0.02  # white noise: independent neighbours


def test_plain_stacks_shatter_and_residual_ones_keep_correlation():
    result = measure_shattering(FlowConfig(blocks=12), ShatteredConfig(points=16))
    assert result.depth == measured_depths(12) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    assert result.plain[0] > 0.9 and result.residual[0] > 0.9  # one block: still smooth
    assert result.plain[-1] < 0.2 < 0.5 < result.residual[-1]  # measured: about 0.0 vs 0.65 at depth 12
    assert "as Balduzzi et al. predict" in describe(result)[-1]


def test_a_point_measured_alone_has_the_gradient_it_has_in_the_grid():
    """BN in eval mode: the grid's batch does not mix the points, so the correlation is of true per-input
    gradients. Checked at depth 3 against each point's own backward pass."""
    config, grid = FlowConfig(blocks=3, width=8), ShatteredConfig(points=5)
    images, _, classes = data_batch("synthetic", 1, seed=0)
    x0 = F.adaptive_avg_pool2d(images[:1].float(), config.resolution)[0]
    line = input_line(x0, grid, 0)
    torch.manual_seed(0)
    stack = FlowStack(config, skip=True, in_channels=3, num_classes=classes)

    def run(x: torch.Tensor) -> torch.Tensor:
        h = stack.stem(x)
        for block in stack.blocks:
            h = block(h)
        return h

    set_mode(stack, "eval", lambda: run(line))
    readout = torch.randn(8, 8, 8, generator=torch.Generator().manual_seed(1))
    x = line.clone().requires_grad_(True)
    (batched,) = torch.autograd.grad((run(x) * readout).sum(), x)
    for t in range(grid.points):
        xt = line[t:t + 1].clone().requires_grad_(True)
        (alone,) = torch.autograd.grad((run(xt) * readout).sum(), xt)
        torch.testing.assert_close(alone[0], batched[t], rtol=1e-4, atol=1e-6)


def test_cli_json_and_bad_points(capsys):
    assert main(["flow", "--shattered", "--blocks", "4", "--points", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["depth"] == [1, 2, 3, 4] and len(out["plain"]) == len(out["residual"]) == 4
    assert out["grid"] == {"points": 8, "radius": 0.5}
    assert main(["flow", "--shattered", "--points", "2"]) == 2
    assert capsys.readouterr().err == "error: points must be an integer from 3 to 1024; got 2\n"
