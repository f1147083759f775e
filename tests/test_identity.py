"""experiments.identity and `python -m resnet_core identity`: the blocks, the measurements, the seed, the JSON shape."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.cli import main
from resnet_core.experiments.identity import (
    IdentityConfig,
    build_block,
    feature_batch,
    identity_distances,
    residual_ratio,
    train_block,
)

SHORT = IdentityConfig(steps=15)


def test_both_blocks_start_from_the_same_weights_and_differ_only_by_the_addition():
    plain, residual = build_block(SHORT, skip=False), build_block(SHORT, skip=True)
    assert (plain.skip, residual.skip) == (False, True)
    a, b = plain.state_dict(), residual.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = feature_batch(SHORT, torch.Generator().manual_seed(1))
    assert x.min() >= 0 and x.shape == (32, 16, 8, 8)
    with torch.no_grad():
        plain.eval(), residual.eval()
        branch = plain.bn2(plain.conv2(plain.relu(plain.bn1(plain.conv1(x)))))
        assert torch.allclose(plain(x), F.relu(branch))
        assert torch.allclose(residual(x), F.relu(branch + x))
    no_bn = build_block(SHORT.replace(batch_norm=False, block="bottleneck"), skip=True)
    assert not [m for m in no_bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert no_bn.conv1.in_channels == 64 and no_bn.conv1.out_channels == 16


def test_residual_ratio_is_the_branch_over_the_input():
    block = build_block(SHORT, skip=True).eval()
    x = feature_batch(SHORT, torch.Generator().manual_seed(2))
    with torch.no_grad():
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    overall, active = residual_ratio(block, x)
    assert overall == pytest.approx(float(branch.norm() / x.norm()), rel=1e-6)
    assert active == pytest.approx(float(branch[x > 0].norm() / x[x > 0].norm()), rel=1e-6)
    nn.init.zeros_(block.bn2.weight)  # the branch is now exactly 0 (bn2's bias starts at 0)
    assert residual_ratio(block, x) == (0.0, 0.0)


def test_identity_distance_is_zero_for_a_scaled_identity_kernel():
    block = build_block(SHORT, skip=False)
    with torch.no_grad():
        nn.init.dirac_(block.conv1.weight).mul_(3.0)
    distances = identity_distances(block)
    assert distances["conv1"] == pytest.approx(0.0, abs=1e-12)
    assert 1.3 < distances["conv2"] < 1.5  # a Kaiming-random kernel is nearly orthogonal to it (√2 ≈ 1.41)
    bottleneck = identity_distances(build_block(SHORT.replace(block="bottleneck"), skip=False))
    assert bottleneck["conv1"] is None and bottleneck["conv3"] is None and bottleneck["conv2"] is not None


def test_training_is_seeded_and_lowers_both_losses():
    first, again = train_block(SHORT, skip=True), train_block(SHORT, skip=True)
    assert first.loss == again.loss and len(first.loss) == SHORT.steps
    assert first.loss[-1] < first.loss[0] / 2
    assert first.residual_ratio < first.residual_ratio_start


def test_cli_json_has_the_issues_shape(capsys):
    assert main(["identity", "--block", "bottleneck", "--no-bn", "--steps", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["plain"]["loss"]) == len(out["residual"]["loss"]) == 5
    assert isinstance(out["residual"]["residual_ratio"], float)
    assert out["config"]["block"] == "bottleneck" and out["config"]["batch_norm"] is False
    assert out["plain"]["identity_distance"]["conv1"] is None  # 64 -> 16 channels: no identity exists


@pytest.mark.parametrize("args, field", [(["--steps", "0"], "steps"), (["--channels", "30", "--block", "bottleneck"],
                                                                         "channels"), (["--lr", "-1"], "lr")])
def test_cli_bad_values_are_one_line(capsys, args, field):
    assert main(["identity", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}") and err.count("\n") == 1
