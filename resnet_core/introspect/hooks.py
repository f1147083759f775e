"""Forward hooks that are always removed: `HookSet` registers forward and pre-forward hooks and removes every
one of them on `close()`, which leaving its `with` block calls whatever was raised (as torchinfo does).

Enter it around one pass, or keep it for a whole run and close it at the end (the training probes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle


class HookSet:
    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, hook: Callable[[nn.Module, tuple[Any, ...], Any], Any]) -> None:
        """`hook(module, args, output)` after each forward pass of `module`."""
        self._handles.append(module.register_forward_hook(hook))

    def pre_forward(self, module: nn.Module, hook: Callable[[nn.Module, tuple[Any, ...]], Any]) -> None:
        """`hook(module, args)` before each forward pass of `module`."""
        self._handles.append(module.register_forward_pre_hook(hook))

    def close(self) -> None:
        """Remove every hook registered so far; closing twice is harmless."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
