"""The nets of the degradation experiment, by name: plain<depth> and resnet<depth>, He et al.'s CIFAR nets of three
stages of `blocks` basic blocks each (depth = 6 × blocks + 2), without and with identity shortcuts.

`Net` is one of them; `parse_net` reads one back from its name (a run folder's or a queued file's). Both
degradation.py and degradation_status.py import this module, which imports neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NET_NAME = re.compile(r"(plain|resnet)(\d+)")


@dataclass(frozen=True)
class Net:
    name: str  # "plain56"
    skip: bool  # identity shortcuts (resnet…) or none (plain…)
    depth: int  # layers with weights: 6 × blocks + 2
    blocks: int  # basic blocks per stage

    @classmethod
    def of(cls, skip: bool, blocks: int) -> Net:
        """The net of `blocks` blocks per stage: Net.of(False, 9) is plain56."""
        depth = 6 * blocks + 2
        return cls(f"{'resnet' if skip else 'plain'}{depth}", skip, depth, blocks)


def parse_net(name: str) -> Net:
    """"plain56" -> Net("plain56", skip=False, depth=56, blocks=9): the inverse of `Net.of`'s names."""
    match = NET_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"net name must be plain<depth> or resnet<depth>; got {name!r}")
    depth = int(match.group(2))
    return Net(name, match.group(1) == "resnet", depth, (depth - 2) // 6)
