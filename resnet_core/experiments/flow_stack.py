"""The stacks of the signal-flow experiment: N blocks of one width, with a chosen norm, activation and init.

`FlowStack` holds the same weights whether its blocks add the identity or not (`set_skip`), so the
plain and residual measurements in flow.py differ only in the shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..validation import check_bool, check_choice, check_float, check_int

INITS = ("kaiming", "xavier", "normal")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
MODES = ("train", "eval")
LOSSES = ("cross_entropy", "sum")
MAX_BLOCKS = 500


@dataclass(frozen=True)
class FlowConfig:
    blocks: int = 50  # blocks per stack
    width: int = 16  # channels of every conv in the stack
    batch_norm: bool = True  # conv-BN-act, or conv-act without normalisation
    mode: str = "train"  # train: BN uses batch statistics; eval: running statistics (estimated on this batch)
    init: str = "kaiming"  # kaiming (He normal, fan_in, relu gain) | xavier (Glorot normal) | normal
    init_std: float = 0.02  # std of the "normal" init
    activation: str = "relu"  # relu | tanh | sigmoid
    batch_size: int = 32
    resolution: int = 8  # images are average-pooled to this side before the stem
    loss: str = "cross_entropy"  # cross_entropy through a linear head on pooled features | sum of the outputs
    seed: int = 0  # weights of both stacks, head and stem

    def validate(self) -> FlowConfig:
        check_int("blocks", self.blocks, 1, MAX_BLOCKS)
        check_int("width", self.width, 1, 512)
        check_int("batch_size", self.batch_size, 1, 1024)
        check_int("resolution", self.resolution, 1, 64)
        check_int("seed", self.seed, 0, 2**31 - 1)
        check_choice("mode", self.mode, MODES)
        check_choice("init", self.init, INITS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("loss", self.loss, LOSSES)
        check_bool("batch_norm", self.batch_norm)
        check_float("init_std", self.init_std, 0.0, 10.0, low_open=True)
        if self.batch_norm and self.mode == "train" and self.batch_size * self.resolution**2 < 2:
            raise ValueError("batch_size * resolution**2 must be at least 2 for BatchNorm in train mode; got 1")
        return self


def make_activation(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


def activation_slope(name: str, output: Tensor) -> Tensor:
    """The activation's derivative at each element, from its output: sigmoid a(1 - a) (at most 0.25),
    tanh 1 - a² and relu 1 where a > 0, else 0."""
    check_choice("activation", name, ACTIVATIONS)
    if name == "sigmoid":
        return output * (1 - output)
    if name == "tanh":
        return 1 - output * output
    return (output > 0).to(output.dtype)


class FlowBlock(nn.Module):
    """act(norm(conv2(act(norm(conv1(x))))) [+ x]): the CIFAR basic block with a chosen activation and norm."""

    def __init__(self, width: int, batch_norm: bool, activation: str, skip: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.act2 = make_activation(activation)
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + x if self.skip else out)


class FlowStack(nn.Module):
    """Stem conv (image channels -> width), N FlowBlocks, and a linear head on globally pooled features."""

    def __init__(self, config: FlowConfig, skip: bool, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, config.width, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList(
            FlowBlock(config.width, config.batch_norm, config.activation, skip) for _ in range(config.blocks))
        self.head = nn.Linear(config.width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init_conv(m.weight, config.init, config.init_std)

    def set_skip(self, skip: bool) -> None:
        for block in self.blocks:
            block.skip = skip


def init_conv(weight: Tensor, init: str, std: float) -> None:
    check_choice("init", init, INITS)
    if init == "kaiming":
        nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
    elif init == "xavier":
        nn.init.xavier_normal_(weight)
    else:
        nn.init.normal_(weight, 0.0, std)
