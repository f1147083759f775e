"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes (download=True); offline and
missing, a RuntimeError says where to put the files.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .image_data import ImageData, channel_stats
from .location import DATA_FOLDER_WHERE

_TORCHVISION = {
    # name: (torchvision class, where to get the files, how to place them under the data folder)
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
              "{root}/MNIST/raw/{{train-images-idx3,train-labels-idx1,t10k-images-idx3,t10k-labels-idx1}}-ubyte "
              "(or the .gz files)"),
    "fashion_mnist": ("FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "{root}/FashionMNIST/raw/{{train-images-idx3,train-labels-idx1,t10k-images-idx3,"
                      "t10k-labels-idx1}}-ubyte (or the .gz files)"),
    "cifar10": ("CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "{root}/cifar-10-python.tar.gz (or extracted: {root}/cifar-10-batches-py/)"),
}


def load_torchvision_set(name: str, root: Path) -> ImageData:
    import torchvision.datasets as tvd

    class_name, url, placement = _TORCHVISION[name]
    try:
        train, test = _open_torchvision(getattr(tvd, class_name), root)
    except Exception as exc:  # URLError, OSError, RuntimeError("Dataset not found or corrupted") ...
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise RuntimeError(
            f"dataset {name} is not in {root} and could not be downloaded ({type(exc).__name__}: {detail}). "
            f"Without internet, download them from {url} on another machine and place them as "
            f"{placement.format(root=root)}; or choose a data folder that holds them ({DATA_FOLDER_WHERE})"
        ) from None
    return from_torchvision(name, train, test, source=str(root))


def _open_torchvision(cls: type, root: Path):
    """Both splits of a torchvision set; tries the files on disk first, then download=True."""
    try:
        return cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    except RuntimeError:
        pass
    with contextlib.redirect_stdout(sys.stderr):  # torchvision prints download progress on stdout
        return cls(str(root), train=True, download=True), cls(str(root), train=False, download=True)


def from_torchvision(name: str, train, test, source: str = "") -> ImageData:
    """Turn torchvision dataset objects with `.data`, `.targets`, `.classes` (MNIST/CIFAR style) into ImageData."""

    def tensors(ds) -> tuple[Tensor, Tensor]:
        images = torch.as_tensor(np.asarray(ds.data))
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # NHW or NHWC
        return images.contiguous().to(torch.uint8), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    mean, std = channel_stats(train_x)
    return ImageData(name, train_x, train_y, test_x, test_y, tuple(str(c) for c in train.classes), mean, std, source)
