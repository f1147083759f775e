"""A stored run's model and data, read back: its final weights loaded strictly into its spec, the exact images it
trained and tested on, and its evaluation on them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.image_data import ImageData
from ..models.provenance import carried_spec, spec_difference
from ..models.resnet import ResNet
from ..training.engine import Evaluation, evaluate, load_data
from .store import WEIGHTS, load_weights, read_run


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ResNet:
    """The run's model with its final weights, in eval mode; a ValueError when the weights do not fit its spec."""
    info = read_run(path)
    model, state = ResNet(info.config.spec, init_weights=False), load_weights(path)  # every value is loaded below
    expected = model.state_dict()
    for key in sorted(set(expected) | set(state)):
        if key not in state or key not in expected or state[key].shape != expected[key].shape:
            found = tuple(state[key].shape) if key in state else "missing"
            wanted = tuple(expected[key].shape) if key in expected else "no such parameter"
            raise ValueError(f"run {info.run_id}: {WEIGHTS} does not fit its model spec: {key} is {found}, "
                             f"the model has {wanted}")
    carried = carried_spec(state)  # weights written since the spec went with them (models/provenance.py)
    difference = None if carried is None else spec_difference(info.config.spec, carried)
    if difference is not None:
        raise ValueError(f"run {info.run_id}: {WEIGHTS} was saved from another network than its config.json's: "
                         f"{difference}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def load_run_data(path: str | Path) -> ImageData:
    """The exact train/test images the run used (same data set, size, channels and train subset)."""
    return load_data(read_run(path).config.train)


def evaluate_run(path: str | Path) -> tuple[Evaluation, ImageData]:
    """The run's final weights evaluated on the test images it was evaluated on, and those data."""
    info, data = read_run(path), load_run_data(path)
    return evaluate(load_model(path), data, limit=info.config.train.test_subset,
                    precision=info.config.settings.precision), data
