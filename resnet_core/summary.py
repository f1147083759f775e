"""Introspection: `summarize` returns shapes, parameters, mult-adds, memory and per-stage tables.

Shape inference runs the model on the meta device, so batch size and resolution cost nothing.
Mult-adds are counted the way torchinfo counts them, so the two agree exactly. Formatting lives
in `format.py`; this module only returns data.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from .blocks import BlurPool2d, SelectiveKernel
from .depth import published_depth
from .model import ResNet
from .presets import get_preset, resolve_spec
from .spec import ModelSpec
from .validation import check_int, is_int, shown

Shape = tuple[int, ...]
BYTES_PER_FLOAT = 4
MAX_BATCH = 65_536
MAX_INPUT_CHANNELS = 64  # as ModelSpec.in_channels
MAX_INPUT_SIDE = 4096
OPTIMIZER_COPIES = 3  # weights + gradients + SGD momentum buffer


@dataclass(frozen=True)
class Summary:
    spec: ModelSpec
    input_size: Shape  # (C, H, W)
    batch_size: int
    total_params: int
    trainable_params: int
    mult_adds: int
    output_shape: Shape
    depth: int
    activation_bytes: int  # forward outputs autograd keeps for one training step (estimate)
    training_memory_bytes: int  # activations + input + weights, gradients and momentum (estimate)
    stages: pd.DataFrame
    layers: pd.DataFrame


def validate_input(input_size: Sequence[int], batch_size: int) -> tuple[Shape, int]:
    """(C, H, W) and the batch, checked against their bounds before anything is built or traced."""
    try:
        dims = tuple(itertools.islice(input_size, 4))  # a longer (or endless) sequence is refused unread
    except TypeError:
        dims = ()
    if len(dims) != 3 or not all(is_int(d) and d >= 1 for d in dims):
        raise ValueError(f"input must be three positive integers C,H,W (e.g. 3,224,224); got {shown(input_size)}")
    if dims[0] > MAX_INPUT_CHANNELS or max(dims[1:]) > MAX_INPUT_SIDE:
        raise ValueError(f"input must have 1 to {MAX_INPUT_CHANNELS} channels and H, W from 1 to {MAX_INPUT_SIDE}; "
                         f"got {shown(dims)}")
    check_int("batch", batch_size, 1, MAX_BATCH)
    return dims, batch_size


def summarize(model: str | ModelSpec | nn.Module = "resnet18", input_size: Sequence[int] = (3, 224, 224),
              batch_size: int = 1, **overrides: Any) -> Summary:
    """Summarize a preset name, a ModelSpec or a built ResNet for inputs of shape (batch_size, *input_size)."""
    dims, batch_size = validate_input(input_size, batch_size)
    if isinstance(model, nn.Module) and not isinstance(model, ResNet):
        raise ValueError("model must be a preset name, a ModelSpec or a resnet_core ResNet; "
                         f"got {type(model).__name__}")
    spec = resolve_spec(model.spec if isinstance(model, ResNet) else model, **overrides)
    if dims[0] != spec.in_channels:
        raise ValueError(f"input has {dims[0]} channels but the model's in_channels is {spec.in_channels}")
    summary = _summarize_spec(spec, dims, batch_size)
    if isinstance(model, ResNet) and spec == model.spec:  # frozen parameters count only in the model itself
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return summary if trainable == summary.trainable_params else _with_trainable(summary, trainable)
    return summary


def _with_trainable(summary: Summary, trainable: int) -> Summary:
    return Summary(**{**summary.__dict__, "trainable_params": trainable})


@functools.lru_cache(maxsize=512)
def _summarize_spec(spec: ModelSpec, dims: Shape, batch_size: int, repeat: bool = True) -> Summary:
    """The summary from one meta-device trace. With `repeat`, each stage is built and traced with at most two
    blocks, and the second block's rows stand for every later one (same shapes, same parameters: only the first
    block of a stage changes the shape), so a 600-block net costs about what a 6-block one does."""
    if batch_size != 1:  # every batch-dependent figure is exactly linear in the batch: trace once at 1
        return _scale_batch(_summarize_spec(spec, dims, 1, repeat), batch_size)
    traced = spec.replace(layers=tuple(min(n, 2) for n in spec.layers)) if repeat else spec
    with torch.device("meta"):
        model = ResNet(traced, init_weights=False)
    try:
        rows, stage_io, output = _trace(model, (1, *dims))
    except RuntimeError as exc:  # e.g. a 2x2 anti-aliasing pool floors an odd map that the shortcut ceils
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"input {dims[1]}×{dims[2]} does not fit this network (torch: {reason}); try a size that "
                         "stays even through every stride-2 layer, e.g. a multiple of 32") from None
    extra = {name: n - len(getattr(model, name)) for name, n in zip(model.stage_names, spec.layers)}
    repeated_params = {name: sum(p.numel() for p in getattr(model, name)[-1].parameters()) * extra[name]
                       for name in model.stage_names}
    rows = _repeat_rows(rows, extra, repeated_params)
    _fill_container_mult_adds(rows)
    layers = pd.DataFrame(rows, columns=list(_ROW_COLUMNS))
    layers[["kernel", "stride", "padding"]] = layers[["kernel", "stride", "padding"]].astype("Int64")
    total_params = sum(p.numel() for p in model.parameters()) + sum(repeated_params.values())
    leaf = layers[layers["leaf"]]
    mult_adds = int(leaf["mult_adds"].sum())
    activations = int(leaf["activation_bytes"].sum()) + _block_sum_bytes(spec, model.stage_names, stage_io)
    stages = _stage_table(model, spec, layers, stage_io, (1, *dims), tuple(output.shape), total_params, extra,
                          repeated_params)
    return Summary(spec, dims, 1, total_params, total_params, mult_adds, tuple(output.shape), spec.depth,
                   activations, _training_bytes(activations, 1, dims, total_params), stages,
                   layers.drop(columns=["activation_bytes"]))


def _repeat_rows(rows: list[dict[str, Any]], extra: dict[str, int],
                 repeated_params: dict[str, int]) -> list[dict[str, Any]]:
    """Rows with each stage's block 1 copied `extra[stage]` times (as blocks 2, 3, ...) right after it."""
    if not any(extra.values()):
        return rows
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []  # the rows of the block being copied, while they come
    prefix = stage = ""

    def flush() -> None:
        for j in range(2, 2 + extra[stage]):
            new = f"{stage}.{j}"
            out.extend({**row, "name": new + row["name"][len(prefix):]} for row in run)
        run.clear()

    for row in rows:
        name = row["name"]
        if run and not (name == prefix or name.startswith(prefix + ".")):
            flush()
        if name in extra:
            row["params"] += repeated_params[name]  # the stage's container row
        elif name.count(".") == 1 and name.endswith(".1") and extra.get(name.split(".")[0]):
            stage, prefix = name.split(".")[0], name
        if prefix and (name == prefix or name.startswith(prefix + ".")):
            run.append(row)
        out.append(row)
    if run:
        flush()
    return out


def _training_bytes(activations: int, batch_size: int, dims: Shape, params: int) -> int:
    input_bytes = batch_size * math.prod(dims) * BYTES_PER_FLOAT
    return activations + input_bytes + OPTIMIZER_COPIES * params * BYTES_PER_FLOAT


def largest_batch_within(summary: Summary, budget_bytes: int) -> int:
    """The largest batch whose training memory (same estimate as `training_memory_bytes`) fits `budget_bytes`;
    0 when even the weights, gradients and momentum alone do not fit."""
    per_image = summary.activation_bytes // summary.batch_size + math.prod(summary.input_size) * BYTES_PER_FLOAT
    fixed = OPTIMIZER_COPIES * summary.total_params * BYTES_PER_FLOAT
    return max(0, (budget_bytes - fixed) // per_image)


def _scale_batch(one: Summary, batch_size: int) -> Summary:
    def rebatch(shape: Shape) -> Shape:
        return (batch_size, *shape[1:])

    tables = []
    for table in (one.stages, one.layers):
        table = table.copy()
        table["input_shape"] = table["input_shape"].map(rebatch)
        table["output_shape"] = table["output_shape"].map(rebatch)
        table["mult_adds"] = table["mult_adds"] * batch_size
        tables.append(table)
    activations = one.activation_bytes * batch_size
    return Summary(one.spec, one.input_size, batch_size, one.total_params, one.trainable_params,
                   one.mult_adds * batch_size, rebatch(one.output_shape), one.depth, activations,
                   _training_bytes(activations, batch_size, one.input_size, one.total_params), *tables)


_ROW_COLUMNS = ("name", "type", "depth", "leaf", "input_shape", "output_shape", "params", "mult_adds",
                "kernel", "stride", "padding", "output_size", "activation_bytes")


def _trace(model: ResNet, shape: Shape):
    """Run the throwaway meta model once, recording one row per module call in call order.

    Each module's `forward` is wrapped on the instance rather than hooked: the model is private to
    this call, and registering ~7,000 hook handles costs more than the whole pass.
    """
    rows: list[dict[str, Any]] = []
    stage_io: dict[str, tuple[Shape, Shape]] = {}
    stages = {id(getattr(model, n)): n for n in model.stage_names}

    def recorder(name: str, module: nn.Module, forward: Callable[..., torch.Tensor]):
        leaf = next(iter(module.children()), None) is None
        own = sum(p.numel() for p in module.parameters(recurse=False))
        params = sum(p.numel() for p in module.parameters())
        geometry = isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))

        def recorded(x: torch.Tensor, *args: Any) -> torch.Tensor:
            row = dict.fromkeys(_ROW_COLUMNS)
            row.update(name=name, type=type(module).__name__, depth=name.count(".") + 1, leaf=leaf,
                       input_shape=tuple(x.shape), params=params, mult_adds=0, activation_bytes=0)
            rows.append(row)
            out = forward(x, *args)
            row["output_shape"] = tuple(out.shape)
            if leaf:
                row["mult_adds"] = _mult_adds(module, own, row["output_shape"])
                row["activation_bytes"] = 0 if getattr(module, "inplace", False) else out.numel() * BYTES_PER_FLOAT
            if geometry:
                _conv_geometry(module, row)
            if id(module) in stages:
                stage_io[stages[id(module)]] = (row["input_shape"], row["output_shape"])
            return out

        return recorded

    for name, module in model.named_modules():
        # BN is shape-preserving; its meta kernel decomposes and costs ~10x the rest of the pass.
        forward = _identity if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) else module.forward
        if name:
            module.forward = recorder(name, module, forward)
    with torch.no_grad():
        output = model(torch.empty(shape, device="meta"))
    return rows, stage_io, output


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _mult_adds(module: nn.Module, own_params: int, out_shape: Shape) -> int:
    """torchinfo's rule: conv weights count once per output position, other weights once per sample."""
    if own_params == 0:
        return 0
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return own_params * out_shape[0] * math.prod(out_shape[2:])
    return own_params * out_shape[0]


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv_geometry(module: nn.Module, row: dict[str, Any]) -> None:
    k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
    row.update(kernel=k[0], stride=s[0], padding=p[0])
    n_in, n_out = row["input_shape"][2], row["output_shape"][2]
    floor = "⌈⌉" if getattr(module, "ceil_mode", False) else "⌊⌋"
    row["output_size"] = f"{floor[0]}({n_in}+2·{p[0]}−{k[0]})/{s[0]}{floor[1]}+1 = {n_out}"


def _fill_container_mult_adds(rows: list[dict[str, Any]]) -> None:
    totals: dict[str, int] = {}
    for row in rows:
        if row["leaf"]:
            parts = row["name"].split(".")
            for i in range(1, len(parts)):
                prefix = ".".join(parts[:i])
                totals[prefix] = totals.get(prefix, 0) + row["mult_adds"]
    for row in rows:
        if not row["leaf"]:
            row["mult_adds"] = totals.get(row["name"], 0)


def _block_sum_bytes(spec: ModelSpec, stage_names: list[str], stage_io: dict[str, tuple[Shape, Shape]]) -> int:
    """Each block's residual sum is a new tensor that no module hook sees."""
    if not spec.skip:
        return 0
    return sum(n * math.prod(stage_io[name][1]) * BYTES_PER_FLOAT for name, n in zip(stage_names, spec.layers))


def receptive_fields(model: ResNet, extra: dict[str, int] | None = None) -> dict[str, int]:
    """Receptive field (pixels) of each stage's output along the main path: rf += (k-1)·jump; jump *= stride.

    `extra[stage]` more copies of each stage's block 1 are counted as if built (they have stride 1)."""
    rf, jump = 1, 1
    result: dict[str, int] = {}

    def step(module: nn.Module) -> None:
        nonlocal rf, jump
        window = _window(module)
        if window is None:
            for child in module.children():
                step(child)
        else:
            rf += (window[0] - 1) * jump
            jump *= window[1]

    step(model.conv1)
    if model.maxpool is not None:
        step(model.maxpool)
    result["stem"] = rf
    for name in model.stage_names:
        for i, block in enumerate(getattr(model, name)):
            for _ in range(1 + (extra or {}).get(name, 0) if i == 1 else 1):
                for part in ("conv1", "conv2", "aa", "conv3"):  # the main path in call order (aa after the stride)
                    if getattr(block, part, None) is not None:
                        step(getattr(block, part))
        result[name] = rf
    return result


def _window(m: nn.Module) -> tuple[int, int] | None:
    """(kernel, stride) of a spatial layer along the main path, None for layers that do not move the window.
    A dilated kernel spans dilation * (k - 1) + 1 pixels; a selective-kernel conv's parallel paths, the widest."""
    if isinstance(m, BlurPool2d):
        return 3, m.stride
    if isinstance(m, SelectiveKernel):
        return max(_window(path.conv)[0] for path in m.paths), m.paths[0].conv.stride[0]
    if isinstance(m, nn.Conv2d):
        return m.dilation[0] * (m.kernel_size[0] - 1) + 1, m.stride[0]
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pair(m.kernel_size)[0], _pair(m.stride or m.kernel_size)[0]
    return None


def _stage_table(model: ResNet, spec: ModelSpec, layers: pd.DataFrame, stage_io: dict[str, tuple[Shape, Shape]],
                 input_shape: Shape, output_shape: Shape, total_params: int, extra: dict[str, int],
                 repeated_params: dict[str, int]) -> pd.DataFrame:
    leaf = layers[layers["leaf"]]
    top = leaf["name"].str.split(".").str[0]
    stage_of = {"conv1": "stem", "bn1": "stem", "relu": "stem", "maxpool": "stem"}
    stage_col = top.map(lambda t: stage_of.get(t, t if t in stage_io else "head"))
    rfs = receptive_fields(model, extra)
    first_stage = model.stage_names[0]
    last_stage = model.stage_names[-1]
    io = {"stem": (input_shape, stage_io[first_stage][0]), **stage_io,
          "head": (stage_io[last_stage][1], output_shape)}
    params = {n: repeated_params.get(n, 0) for n in io}
    blocks = dict(zip(model.stage_names, spec.layers))
    for name, p in model.named_parameters():
        t = name.split(".")[0]
        params[stage_of.get(t, t if t in stage_io else "head")] += p.numel()
    records = []
    for stage in ["stem", *model.stage_names, "head"]:
        records.append(dict(
            stage=stage,
            blocks=blocks.get(stage, 0),
            input_shape=io[stage][0],
            output_shape=io[stage][1],
            params=params[stage],
            params_pct=round(100.0 * params[stage] / total_params, 2),
            mult_adds=int(leaf.loc[stage_col == stage, "mult_adds"].sum()),
            receptive_field=rfs.get(stage, rfs[last_stage]),
        ))
    return pd.DataFrame.from_records(records)


def stage_table_json(summary: Summary) -> list[dict[str, Any]]:
    """The stage table as JSON-ready dicts (shapes as lists)."""
    out = []
    for rec in summary.stages.to_dict(orient="records"):
        out.append({k: (list(v) if isinstance(v, tuple) else (v.item() if hasattr(v, "item") else v))
                    for k, v in rec.items()})
    return out


def summary_json(summary: Summary) -> dict[str, Any]:
    return dict(
        spec=summary.spec.to_dict(),
        input_size=list(summary.input_size),
        batch_size=summary.batch_size,
        total_params=summary.total_params,
        trainable_params=summary.trainable_params,
        mult_adds=summary.mult_adds,
        output_shape=list(summary.output_shape),
        depth=summary.depth,
        activation_bytes=summary.activation_bytes,
        training_memory_bytes=summary.training_memory_bytes,
        stages=stage_table_json(summary),
    )


def preset_summary(name: str, input_size: Sequence[int] | None = None, batch_size: int = 1) -> Summary:
    """Summary of a preset at its family's natural resolution (224 for ImageNet, 32 for CIFAR)."""
    spec = resolve_spec(name)
    if input_size is None:
        input_size = natural_input_size(spec)
    return summarize(spec, input_size, batch_size)


def natural_input_size(spec: ModelSpec) -> Shape:
    side = 32 if spec.stem == "cifar" else 224
    return (spec.in_channels, side, side)


def preset_row(name: str) -> dict[str, Any]:
    """One preset at its natural input size, batch 1: the row of `list` and of the family chart."""
    preset = get_preset(name)
    summary = summarize(preset.spec, natural_input_size(preset.spec), 1)
    return dict(model=name, family=preset.family, block=preset.spec.block, skip=preset.spec.skip,
                depth=summary.depth, published_depth=published_depth(name), params=summary.total_params,
                mult_adds=summary.mult_adds, torchvision=preset.torchvision)
