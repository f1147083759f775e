"""experiments.mistakes: every broken block is built for real; the text and numbers are PyTorch's own or recomputed
here by hand from the same tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnet_core.data.transforms import normalize
from resnet_core.experiments.mistakes import (
    bn_on_shortcut,
    bn_train_mode_eval,
    relu_placement,
    skip_mismatch,
    zero_init_gradients,
)
from resnet_core.runs.loading import evaluate_run, load_model, load_run_data

FIXTURE_RUN = "tests/fixtures/run-v1"


def torch_error(a: tuple[int, ...], b: tuple[int, ...]) -> str:
    with pytest.raises(RuntimeError) as exc:
        torch.zeros(a) + torch.zeros(b)
    return str(exc.value)


def test_skip_across_a_shape_change_raises_pytorchs_error_and_each_fix_runs():
    result = skip_mismatch(64, 128, stride=2, size=16)
    assert result.error == torch_error((2, 128, 8, 8), (2, 64, 16, 16))
    assert result.error_type == "RuntimeError" and result.main_shape == (2, 128, 8, 8)
    assert "channels 64 → 128" in result.explanation() and "16×16 → 8×8" in result.explanation()
    fixes = {f.shortcut: (f.output_shape, f.params) for f in result.fixes}
    projection = 64 * 128 + 2 * 128  # 1x1 conv + BN
    assert fixes == {"A": ((2, 128, 8, 8), 0), "B": ((2, 128, 8, 8), projection), "C": ((2, 128, 8, 8), projection),
                     "D": ((2, 128, 8, 8), projection)}  # D pools 2×2 first: the same 1×1 conv + BN at stride 1

    channels_only = skip_mismatch(256, 128, stride=1, size=8, block="bottleneck")
    assert channels_only.error == torch_error((2, 128, 8, 8), (2, 256, 8, 8))
    assert channels_only.fixes[0].output_shape is None  # A cannot drop channels

    same = skip_mismatch(64, 64, stride=1, size=8)
    assert same.error is None
    assert {f.shortcut: f.params for f in same.fixes} == {"A": 0, "B": 0, "C": 64 * 64 + 2 * 64, "D": 0}


def test_relu_after_the_addition_breaks_the_identity_path():
    post, pre = relu_placement(channels=8, size=4, blocks=3, seed=5)
    x = torch.randn(8, 8, 4, 4, generator=torch.Generator().manual_seed(5))
    assert post.identity_error == pytest.approx(float((F.relu(x) - x).double().norm() / x.double().norm()))
    assert post.dead_input_grads == pytest.approx(float((x < 0).double().mean()))
    assert 0 < post.clipped_share < 1
    assert (pre.identity_error, pre.dead_input_grads, pre.clipped_share) == (0.0, 0.0, 0.0)


def test_bn_on_the_shortcut_renormalises_what_the_identity_carries():
    identity, bn = bn_on_shortcut(channels=8, size=4, blocks=3, scale=3.0, seed=1)
    x = 3.0 * F.relu(torch.randn(8, 8, 4, 4, generator=torch.Generator().manual_seed(1)))
    y = x
    for _ in range(3):  # zeroed branch: each block is ReLU(BN(y)) with BN's batch statistics, weight 1, bias 0
        y = F.relu(F.batch_norm(y, None, None, training=True))
    assert bn.identity_error == pytest.approx(float((y - x).double().norm() / x.double().norm()), rel=1e-4)
    assert bn.params == 3 * 2 * 8
    assert identity.identity_error == 0.0 and identity.output_std == identity.input_std and identity.params == 0
    assert bn.input_grad_norm < identity.input_grad_norm


def test_bn_left_in_train_mode_is_measured_on_a_stored_run():
    rows = bn_train_mode_eval(FIXTURE_RUN, batch_sizes=(500, 8))
    evaluation, _ = evaluate_run(FIXTURE_RUN)
    assert rows[0].acc == evaluation.acc
    model, data = load_model(FIXTURE_RUN).train(), load_run_data(FIXTURE_RUN)
    images = data.test_images[:50]  # the run's test_subset
    x = normalize(images, data.mean, data.std)
    with torch.no_grad():
        by_hand = float((model(x).argmax(1) == data.test_labels[:50]).double().mean())
    assert [(r.mode, r.batch_size) for r in rows[1:]] == [("train (batch statistics)", 500),
                                                          ("train (batch statistics)", 8)]
    assert rows[1].acc == pytest.approx(by_hand)


def test_zero_init_residual_zeroes_every_branch_conv_gradient_on_the_first_step():
    result = zero_init_gradients("resnet20", {"width": 4, "layers": (1, 1, 1)}, side=16, batch_size=4)
    blocks = result.blocks
    assert (blocks[blocks.zero_init].conv_grad == 0.0).all()
    assert (blocks[blocks.zero_init].last_norm_grad > 0).all()
    assert (blocks[~blocks.zero_init].conv_grad > 0).all()
    totals = result.totals.set_index("zero_init")
    assert totals.loc[True, "branch_conv_grad"] == 0.0 < totals.loc[False, "branch_conv_grad"]
