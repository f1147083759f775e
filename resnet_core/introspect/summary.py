"""Introspection: `summarize` returns shapes, parameters, mult-adds, memory and per-stage tables.

Shape inference runs the model on the meta device, so batch size and resolution cost nothing.
Mult-adds are counted the way torchinfo counts them, so the two agree exactly. Formatting lives
in `tables.py`; this module only returns data.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..models.blocks import (
    BlurPool2d,
    EvoNormS0,
    FilterResponseNormTLU,
    Res2NetBottleneck,
    SelectiveKernel,
    SplitAttentionBottleneck,
    WeightStdConv2d,
)
from ..models.presets import get_preset, resolve_spec
from ..models.resnet import ResNet
from ..models.spec import ModelSpec, natural_input_size
from ..validation import check_int, is_int, shown
from .depth import published_depth

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
    """The summary from one meta-device trace. With `repeat`, each stage is built and traced with its first block
    and one block for each distinct later one (one, unless a pruned net gives its blocks their own widths), and
    that block's rows stand for every later block like it (same shapes, same parameters: only the first block of a
    stage changes the shape), so a 2,000-block net costs about what an 8-block one does."""
    if batch_size != 1:  # every batch-dependent figure is exactly linear in the batch: trace once at 1
        return _scale_batch(_summarize_spec(spec, dims, 1, repeat), batch_size)
    traced, picks = trace_plan(spec, repeat)
    with torch.device("meta"):
        model = ResNet(traced, init_weights=False)
    try:
        rows, stage_io, output = _trace(model, (1, *dims))
    except RuntimeError as exc:  # e.g. a 2x2 anti-aliasing pool floors an odd map that the shortcut ceils
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"input {dims[1]}×{dims[2]} does not fit this network (torch: {reason}); try a size that "
                         "stays even through every stride-2 layer, e.g. a multiple of 32") from None
    _fill_container_mult_adds(rows)
    traced_rows = pd.DataFrame(rows, columns=list(_ROW_COLUMNS))
    traced_rows[["kernel", "stride", "padding"]] = traced_rows[["kernel", "stride", "padding"]].astype("Int64")
    rows = _expand(traced_rows, picks)
    params = _part_params(model, picks)
    total_params = sum(params.values())
    leaf = rows.layers["leaf"].to_numpy()
    leaf_mult_adds = pd.Series(rows.layers["mult_adds"].to_numpy()[leaf]).groupby(rows.parts[leaf]).sum()
    mult_adds = int(leaf_mult_adds.sum())
    activations = int(rows.activation_bytes[leaf].sum()) + _block_sum_bytes(spec, model.stage_names, stage_io)
    stages = _stage_table(model, spec, leaf_mult_adds, stage_io, ((1, *dims), tuple(output.shape)), params, picks)
    return Summary(spec, dims, 1, total_params, total_params, mult_adds, tuple(output.shape), spec.depth,
                   activations, _training_bytes(activations, 1, dims, total_params), stages, rows.layers)


Picks = dict[str, tuple[int, ...]]  # stage -> for each of its blocks, the traced block that stands for it


def trace_plan(spec: ModelSpec, repeat: bool = True) -> tuple[ModelSpec, Picks]:
    """The spec to build and trace, and which traced block stands for each block of `spec`. With `repeat`, a
    stage keeps its first block and one of each distinct later block (a later block differs from another only
    in a pruned net's per-block widths); without, every block is traced."""
    names = [f"layer{i + 1}" for i in range(len(spec.layers))]
    if not repeat:
        return spec, {name: tuple(range(n)) for name, n in zip(names, spec.layers)}
    pruned = spec.block_widths is not None
    widths = spec.stage_block_widths() if pruned else [(None,) * n for n in spec.layers]
    layers, kept, picks = [], [], {}
    for name, stage in zip(names, widths):
        later = list(dict.fromkeys(stage[1:]))  # the distinct later blocks: [None] when they are all alike
        picks[name] = (0, *(1 + later.index(w) for w in stage[1:]))
        layers.append(1 + len(later))
        kept += [stage[0], *later]
    traced = spec.replace(layers=tuple(layers), block_widths=tuple(kept) if pruned else None)
    return traced, picks


_STEM_PARTS = {"conv1": "stem", "bn1": "stem", "relu": "stem", "maxpool": "stem"}


@dataclass(frozen=True)
class _Rows:
    """The whole net's rows (`layers`, Summary's columns) and, row by row, what the totals need: the activation
    bytes autograd keeps and the part (stem, a stage, head) each row belongs to."""

    layers: pd.DataFrame
    activation_bytes: np.ndarray
    parts: np.ndarray  # object array of part names


def _expand(traced: pd.DataFrame, picks: Picks) -> _Rows:
    """The traced model's rows as the rows of the whole net: each stage's blocks in order, each taken from the
    traced block that stands for it and renamed (by index arrays: a 2,000-block net has tens of thousands of
    rows). A stage's own row sums its blocks' parameters and mult-adds."""
    names = traced["name"].tolist()
    blocks: dict[tuple[str, int], list[int]] = {}
    suffixes = np.empty(len(names), dtype=object)  # a block's row's name after its block: ".conv1", "" for the block
    for i, name in enumerate(names):
        top, _, rest = name.partition(".")
        if top in picks and rest:
            block, dot, tail = rest.partition(".")
            blocks.setdefault((top, int(block)), []).append(i)
            suffixes[i] = dot + tail
    params, mult_adds = traced["params"].to_numpy().copy(), traced["mult_adds"].to_numpy().copy()
    index, prefixes, parts = [], [], []
    for i, name in enumerate(names):
        top, _, rest = name.partition(".")
        if top in picks and rest:
            continue  # a block's row: written below with its stage
        index.append(np.array([i]))
        prefixes.append(np.array([name], dtype=object))
        parts.append(np.array([top if top in picks else _STEM_PARTS.get(top, "head")], dtype=object))
        if name in picks:  # a stage's own row: its blocks follow it
            rows = [np.asarray(blocks[(name, t)]) for t in picks[name]]
            index += rows
            prefixes.append(np.repeat(np.array([f"{name}.{j}" for j in range(len(rows))], dtype=object),
                                      [len(r) for r in rows]))
            parts.append(np.full(sum(len(r) for r in rows), name, dtype=object))
            firsts = [r[0] for r in rows]  # each block's own row
            params[i], mult_adds[i] = params[firsts].sum(), mult_adds[firsts].sum()
    order = np.concatenate(index)
    tails = suffixes[order]
    joined = np.concatenate(prefixes) + np.where(tails == None, "", tails)  # noqa: E711 (elementwise)
    columns = {c: traced[c].array.take(order) for c in traced.columns if c not in ("name", "params", "mult_adds")}
    columns.update(name=pd.array(joined, dtype=traced["name"].dtype), params=params[order],
                   mult_adds=mult_adds[order])
    layers = pd.DataFrame({c: columns[c] for c in traced.columns if c != "activation_bytes"})
    return _Rows(layers, columns["activation_bytes"].to_numpy(), np.concatenate(parts))


def _part_params(model: ResNet, picks: Picks) -> dict[str, int]:
    """Parameters of the stem, each stage (every block through the traced block standing for it) and the head."""
    params = dict.fromkeys(["stem", *picks, "head"], 0)
    for name, child in model.named_children():
        if name in picks:
            sizes = [sum(p.numel() for p in block.parameters()) for block in child]
            params[name] = sum(sizes[t] for t in picks[name])
        else:
            params[_STEM_PARTS.get(name, "head")] += sum(p.numel() for p in child.parameters())
    return params


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
        own = sum(p.numel() for n, p in module.named_parameters(recurse=False) if n in ("weight", "bias"))
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
        # Norms are shape-preserving; BN's meta kernel decomposes and costs ~10x the rest of the pass. A
        # weight-standardised conv has a plain conv's shapes.
        forward = (_identity if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, EvoNormS0, FilterResponseNormTLU))
                   else functools.partial(nn.Conv2d.forward, module) if isinstance(module, WeightStdConv2d)
                   else module.forward)
        if name:
            module.forward = recorder(name, module, forward)
    with torch.no_grad():
        output = model(torch.empty(shape, device="meta"))
    return rows, stage_io, output


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _mult_adds(module: nn.Module, own_params: int, out_shape: Shape) -> int:
    """torchinfo's rule: conv weights count once per output position, other weights once per sample; only
    parameters named weight or bias count (EvoNorm-S0's v and FRN's tau do not, as in torchinfo)."""
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


def receptive_fields(model: ResNet, picks: Picks | None = None) -> dict[str, int]:
    """Receptive field (pixels) of each stage's output along the main path: rf += (k-1)·jump; jump *= stride.

    `picks[stage]` lists, for each block of the whole net, the built block that stands for it (see `trace_plan`);
    by default every built block stands for itself."""
    rf, jump = 1, 1
    result: dict[str, int] = {}
    for part in (model.conv1, model.maxpool):
        if part is not None:
            grow, stride = _path_window([part])
            rf, jump = rf + grow * jump, jump * stride
    result["stem"] = rf
    for name in model.stage_names:
        stage = getattr(model, name)
        windows = [_path_window(main_path(block)) for block in stage]  # once per built block
        for t in (picks or {}).get(name, range(len(stage))):
            rf, jump = rf + windows[t][0] * jump, jump * windows[t][1]
        result[name] = rf
    return result


def _path_window(parts: list[nn.Module]) -> tuple[int, int]:
    """(growth, stride) of layers run in order: the receptive field grows by growth * the jump before them, and
    the jump is multiplied by stride (rf += (k-1)·jump; jump *= s, layer by layer)."""
    grow, jump = 0, 1

    def step(module: nn.Module) -> None:
        nonlocal grow, jump
        window = _window(module)
        if window is None:
            for child in module.children():
                step(child)
        else:
            grow += (window[0] - 1) * jump
            jump *= window[1]

    for part in parts:
        step(part)
    return grow, jump


def main_path(block: nn.Module) -> list[nn.Module]:
    """The spatial layers of a block's longest main path, in call order: a Res2Net block's chained 3x3 convs (one
    where it changes the shape, where the scales do not chain), a split-attention block's pool and conv."""
    if isinstance(block, Res2NetBottleneck):
        return [block.conv1, *(block.convs[:1] if block.is_first else block.convs), block.conv3]
    if isinstance(block, SplitAttentionBottleneck):
        parts = [block.conv1, block.avd_first, block.conv2.conv, block.avd_last, block.conv3]
    else:  # aa after the strided conv
        parts = [getattr(block, part, None) for part in ("conv1", "conv2", "aa", "conv3")]
    return [p for p in parts if p is not None]


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


def _stage_table(model: ResNet, spec: ModelSpec, mult_adds: pd.Series, stage_io: dict[str, tuple[Shape, Shape]],
                 ends: tuple[Shape, Shape], params: dict[str, int], picks: Picks) -> pd.DataFrame:
    """One row per part (stem, each stage, head), with the leaf mult-adds of each part; `ends` are the net's input
    and output shapes."""
    rfs = receptive_fields(model, picks)
    first_stage, last_stage = model.stage_names[0], model.stage_names[-1]
    io = {"stem": (ends[0], stage_io[first_stage][0]), **stage_io, "head": (stage_io[last_stage][1], ends[1])}
    blocks = dict(zip(model.stage_names, spec.layers))
    total = sum(params.values())
    records = [dict(stage=part, blocks=blocks.get(part, 0), input_shape=io[part][0], output_shape=io[part][1],
                    params=params[part], params_pct=round(100.0 * params[part] / total, 2),
                    mult_adds=int(mult_adds.get(part, 0)), receptive_field=rfs.get(part, rfs[last_stage]))
               for part in ["stem", *model.stage_names, "head"]]
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


def preset_row(name: str) -> dict[str, Any]:
    """One preset at its natural input size, batch 1: the row of `list` and of the family chart."""
    preset = get_preset(name)
    summary = summarize(preset.spec, natural_input_size(preset.spec), 1)
    return dict(model=name, family=preset.family, block=preset.spec.block, skip=preset.spec.skip,
                depth=summary.depth, published_depth=published_depth(name), params=summary.total_params,
                mult_adds=summary.mult_adds, torchvision=preset.torchvision)
