"""`ImageData`: a data set held as uint8 NCHW images + int64 labels for train and test, with its classes and
per-channel statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class ImageData:
    name: str
    train_images: Tensor  # uint8 (N, C, H, W)
    train_labels: Tensor  # int64 (N,)
    test_images: Tensor  # uint8 (M, C, H, W)
    test_labels: Tensor  # int64 (M,)
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the training images on the 0..1 scale
    std: tuple[float, ...]
    source: str = ""  # where the files were read from ("generated" for synthetic)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, object]:
        """JSON-ready facts about the set (stored with each run)."""
        return dict(name=self.name, source=self.source, classes=list(self.classes), channels=self.channels,
                    image_size=self.image_size, train_size=len(self.train_labels), test_size=len(self.test_labels),
                    mean=list(self.mean), std=list(self.std))


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale."""
    x = images.to(torch.float64).div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())
