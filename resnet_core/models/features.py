"""The feature index: which residual block is where, recorded while a ResNet is built (like timm's `feature_info`).

`ResNet.feature_info` holds one `BlockInfo` per residual block, in forward order: its module path ("layer2.0"),
its stage, its place in the stage, its input and output channels and its stride. So what a block is and whether
it keeps the shape of its input are known without a forward pass. `blocks_deleted` swaps blocks for the identity
and always puts them back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class BlockInfo:
    name: str  # module path, as model.get_submodule takes it: "layer2.0"
    stage: str  # "layer2"
    stage_index: int  # 0 for layer1
    index: int  # place in its stage, 0 for the first block
    in_channels: int
    out_channels: int
    stride: int  # 2 for the first block of a downsampling stage, else 1

    @property
    def changes_shape(self) -> bool:
        """Its output has another shape than its input, so the identity cannot stand in for it."""
        return self.stride != 1 or self.in_channels != self.out_channels


@contextlib.contextmanager
def blocks_deleted(model: nn.Module, blocks: Iterable[BlockInfo | str]) -> Iterator[None]:
    """Within the block, each of `blocks` (entries of a ResNet's feature index, or their names) is replaced by
    nn.Identity; the original modules are put back on leaving it, whatever was raised. A block that changes the
    shape is refused."""
    infos = [model.block_info(b) if isinstance(b, str) else b for b in blocks]
    for info in infos:
        if info.changes_shape:
            raise ValueError(f"{info.name} maps {info.in_channels} to {info.out_channels} channels at stride "
                             f"{info.stride}: the identity cannot replace it")
    originals = [(info.name, model.get_submodule(info.name)) for info in infos]
    try:
        for name, _ in originals:
            model.set_submodule(name, nn.Identity())
        yield
    finally:
        for name, block in originals:
            model.set_submodule(name, block)
