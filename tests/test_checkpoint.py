"""A checkpoint is read from disk, so every field is checked before a resume cuts metrics.jsonl: a spoilt one is
one ValueError naming the field."""

from __future__ import annotations

import pytest
import torch

from resnet_core.checkpoint import TrainState

SUMS = dict(loss=1.0, correct=3, images=8, seconds=0.5)


def state(**changes) -> dict:
    good = dict(step=5, model={"w": torch.zeros(2)}, optimizer={}, order=torch.randperm(8),
                generator=torch.Generator().manual_seed(0).get_state(), epoch_sum=dict(SUMS), window=dict(SUMS),
                tested_at=5, train_seconds=1.5, elapsed=2.0, eval_seconds=[0.1])
    return good | changes


def test_a_checkpoint_as_training_writes_it_loads():
    assert TrainState.from_dict(state(), "ckpt").step == 5
    assert TrainState.from_dict(state(tested_at=None, eval_seconds=[]), "ckpt").tested_at is None


@pytest.mark.parametrize(("changes", "message"), [
    (dict(elapsed="soon"), "ckpt: elapsed must be a number of seconds >= 0; got 'soon'"),
    (dict(train_seconds=float("nan")), "ckpt: train_seconds must be a number of seconds >= 0; got nan"),
    (dict(tested_at=9), "ckpt: tested_at must be a step from 0 to 5 or None; got 9"),
    (dict(eval_seconds=["x"]), "ckpt: eval_seconds must be a list of numbers"),
    (dict(order=torch.zeros(8)), "ckpt: order must be a 1-D tensor of image indices"),
    (dict(generator=torch.zeros(3)), "ckpt: generator must be a generator state (a 1-D uint8 tensor)"),
    (dict(window=dict(SUMS, loss="1")), "ckpt: window must hold the numbers loss, correct, images, seconds"),
])
def test_a_spoilt_field_is_one_line_naming_it(changes, message):
    with pytest.raises(ValueError) as error:
        TrainState.from_dict(state(**changes), "ckpt")
    assert str(error.value) == message
