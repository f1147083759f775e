"""Transfer learning: start a run from other weights and choose what trains (the tutorials' last chapter).

    init_from   a run folder (its final weights), torchvision[:WEIGHTS] (DEFAULT when no name is given; read
                from the torch hub cache when offline, with models/weights.py's message when absent), or a state_dict
                file
    finetune    head        only the classifier trains (feature extraction)
                last-stage  the last stage, a pre-activation net's final BN, and the classifier
                all         everything; `backbone_lr_scale` sets the lr of what is not the classifier

The source must have the model's architecture; only the classifier may differ, when the data have another
number of classes: then a new classifier is created (seeded, like a fresh model's). BatchNorm layers in the
frozen part stay in eval mode while the rest trains (a forward pre-hook sets them back each time), so their
running statistics are the source's, bit for bit: the tutorials' "common pitfall" is a frozen backbone whose BN
statistics drift in train mode. `apply_init` returns the `TransferFacts` that config.json stores.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.image_data import ImageData
from ..files import open_regular
from ..models.presets import Preset, get_preset, matching_preset, resolve_spec
from ..models.provenance import carried_spec, spec_difference
from ..models.resnet import ResNet
from ..models.spec import OVERRIDABLE, ModelSpec
from ..models.weights import MAX_STATE_FILE_BYTES, torchvision_weights
from ..training.config import TrainConfig
from ..training.engine import build_seeded_model, model_spec
from ..training.freeze import HEAD_KEYS, freeze
from ..validation import shown
from .contract import TransferFacts
from .store import WEIGHTS, load_weights, read_run

TORCHVISION = "torchvision"


@dataclass(frozen=True)
class InitSource:
    kind: str  # run | torchvision | file
    path: Path | None = None  # the run folder or the file
    weights: str = "DEFAULT"  # torchvision's weights name


def parse_init_from(text: str) -> InitSource:
    """`text` as a source; a ValueError when it names none."""
    if text == TORCHVISION or text.startswith(TORCHVISION + ":"):
        return InitSource(TORCHVISION, weights=text.partition(":")[2] or "DEFAULT")
    path = Path(text).expanduser()
    if path.is_dir():
        return InitSource("run", path)
    if path.is_file():
        return InitSource("file", path)
    raise ValueError(f"init_from must be a run folder, torchvision[:WEIGHTS] or a state_dict file; "
                     f"{shown(text)} is none of these")


def check_init_from(config: TrainConfig) -> None:
    """What can be checked before data are loaded or weights read, with `apply_init`'s ValueErrors: the source
    exists, a run has weights and the model's architecture, torchvision has weights for the model."""
    source = parse_init_from(config.init_from)
    spec = resolve_spec(config.model, **config.overrides)
    if source.kind == "run":
        _source_run(source.path, spec, config)
    elif source.kind == TORCHVISION:
        _torchvision_preset(spec, config)


def apply_init(model: ResNet, config: TrainConfig) -> TransferFacts:
    """Load `config.init_from` into `model` (a fresh model of the config's spec), then freeze what
    `config.finetune` does not train. A ValueError (nothing changed) for a source that does not fit."""
    source = parse_init_from(config.init_from)
    state, described = _source_state(source, model.spec, config)
    new_head = _load(model, state, described, config.model)
    trainable = freeze(model, config.finetune)
    return TransferFacts(config.init_from, described, config.finetune, trainable,
                         sum(p.numel() for p in model.parameters()), new_head)


def _source_state(source: InitSource, spec: ModelSpec, config: TrainConfig) -> tuple[dict[str, Tensor], str]:
    if source.kind == "run":
        info = _source_run(source.path, spec, config)
        try:
            state = load_weights(source.path)
        except ValueError as exc:
            raise ValueError(f"init_from: {exc}") from None
        return state, f"run {info.run_id} ({info.config.train.model})"
    if source.kind == TORCHVISION:
        preset = _torchvision_preset(spec, config)
        with contextlib.redirect_stderr(io.StringIO()):  # torch hub's "Downloading: ..." line, before its error
            state = torchvision_weights(config.model, preset.spec, source.weights)
        return state, f"torchvision {preset.torchvision} {source.weights}"
    return load_state_file(source.path), f"file {source.path}"


def _source_run(path: Path, spec: ModelSpec, config: TrainConfig) -> Any:
    """The source run's RunInfo, if it has weights and `spec`'s architecture (any class count)."""
    try:
        info = read_run(path)
    except ValueError as exc:
        raise ValueError(f"init_from: {exc}") from None
    if not info.has_weights:
        raise ValueError(f"init_from: run {info.run_id} has no weights yet ({WEIGHTS} is written when the "
                         "run ends)")
    theirs = info.config.spec
    if theirs.replace(num_classes=spec.num_classes) != spec:
        raise ValueError(f"init_from: run {info.run_id} is {describe_spec(info.config.train.model, theirs)} but "
                         f"the model to train is {describe_spec(config.model, spec)}; fine-tuning needs the "
                         "same architecture")
    return info


def _torchvision_preset(spec: ModelSpec, config: TrainConfig) -> Preset:
    preset = get_preset(config.model)
    if preset.torchvision is None or preset.spec.replace(num_classes=spec.num_classes) != spec:
        raise ValueError(f"init_from torchvision: torchvision has weights only for its own ResNets "
                         f"(resnet18 ... resnext101_32x8d, unmodified); the model to train is "
                         f"{describe_spec(config.model, spec)}")
    return preset


def load_state_file(path: Path) -> dict[str, Tensor]:
    """A state_dict file (a regular file: never a FIFO or a device), loaded with weights_only=True; anything else is
    one ValueError."""
    try:
        file = open_regular(path, "init_from", MAX_STATE_FILE_BYTES)
    except OSError as exc:
        raise ValueError(f"init_from: {path} cannot be read: {exc.strerror or exc}") from None
    with file:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # see load_weights: torch's own text may suggest running the file's code
            raise ValueError(f"init_from: {path} cannot be read as a state_dict of tensors "
                             f"({type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a checkpoint wrapping its weights
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ValueError(f"init_from: {path} holds a {type(state).__name__}, not a state_dict of tensors")
    return state


def describe_spec(model: str, spec: ModelSpec) -> str:
    """The preset's name when `spec` is it (any class count), another preset's name when it is that one (resnet20
    without shortcuts is plain20), else the preset's name with what differs: "resnet20 (width=8, layers=1,1,1)"."""
    preset = get_preset(model).spec
    if preset.replace(num_classes=spec.num_classes) == spec:
        return model
    same = matching_preset(spec.replace(num_classes=preset.num_classes))
    if same is not None:
        return same.name
    changed = [f"{f}={_text(getattr(spec, f))}" for f in OVERRIDABLE
               if f != "num_classes" and getattr(spec, f) != getattr(preset, f)]
    return f"{model} ({', '.join(changed)})"


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _load(model: ResNet, state: dict[str, Tensor], described: str, model_name: str) -> bool:
    """Copy `state` into `model`, keeping the model's fresh classifier when the class count differs; True then.
    Weights that carry their spec (models/provenance.py) must be of the model's architecture, any class count."""
    carried = carried_spec(state)
    difference = None if carried is None else spec_difference(model.spec, carried, ignore=("num_classes",))
    if difference is not None:
        raise ValueError(f"init_from: {described} was saved from another network than "
                         f"{describe_spec(model_name, model.spec)}: {difference}; fine-tuning needs the same "
                         "architecture")
    expected = model.state_dict()
    for key in sorted(set(expected) | set(state)):
        if key in HEAD_KEYS:
            continue
        if key not in state or key not in expected or state[key].shape != expected[key].shape:
            found = tuple(state[key].shape) if key in state else "missing"
            wanted = tuple(expected[key].shape) if key in expected else "no such parameter"
            raise ValueError(f"init_from: {described} does not fit {describe_spec(model_name, model.spec)}: {key} is "
                             f"{found} there, the model has {wanted}; fine-tuning needs the same architecture")
    head_fits = all(k in state and state[k].shape == expected[k].shape for k in HEAD_KEYS)
    merged = {k: (state[k] if k not in HEAD_KEYS or head_fits else v) for k, v in expected.items()}
    model.load_state_dict(merged, strict=True)
    return not head_fits


@dataclass(frozen=True)
class TransferSummary:
    """How a stored run began and how much of it trained: its TransferFacts' init_from, finetune and
    trainable_params, or for a run from fresh weights None, None and every parameter."""

    init_from: str | None
    finetune: str | None
    trainable_params: int


def transfer_summary(run_dir: str | Path) -> TransferSummary:
    """The TransferSummary of a stored run, from its config.json."""
    config = read_run(run_dir).config
    if config.transfer is not None:
        t = config.transfer
        return TransferSummary(t.init_from, t.finetune, t.trainable_params)
    return TransferSummary(None, None, sum(p.numel() for p in ResNet(config.spec).parameters()))


def initial_model(config: TrainConfig, data: ImageData,
                  device: str | torch.device = "cpu") -> tuple[ResNet, TransferFacts | None]:
    """The model a run starts from: fresh and seeded, then loaded from `config.init_from` if set."""
    model = build_seeded_model(model_spec(config, data), config.seed, device)
    return model, apply_init(model, config) if config.init_from is not None else None
