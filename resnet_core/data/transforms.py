"""Tensor transforms on whole uint8 batches: `adapt` (resize and convert the channel count to what a model
takes), `subset` (a seeded train subset), `augment` (random crop with zero padding + horizontal flip) and
`normalize` (per-channel statistics measured on the training images).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .image_data import ImageData, channel_stats


def adapt(data: ImageData, channels: int | None = None, image_size: int | None = None) -> ImageData:
    """Resize to image_size×image_size and convert to `channels` (grey↔RGB); cached per set and shape."""
    channels = channels or data.channels
    image_size = image_size or data.image_size
    if channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3 to train on images; got {channels}")
    if not 8 <= image_size <= 512:
        raise ValueError(f"image_size must be an integer from 8 to 512; got {image_size}")
    if channels == data.channels and image_size == data.image_size:
        return data
    return _adapt_cached(data, channels, image_size)


@functools.lru_cache(maxsize=8)
def _adapt_cached(data: ImageData, channels: int, image_size: int) -> ImageData:
    def convert(images: Tensor) -> Tensor:
        return resize(convert_channels(images, channels), image_size)

    train, test = convert(data.train_images), convert(data.test_images)
    mean, std = channel_stats(train)
    return replace(data, train_images=train, test_images=test, mean=mean, std=std)


def subset(data: ImageData, size: int | None, seed: int = 0) -> ImageData:
    """A random (seeded) subset of `size` training images; the test set is kept whole."""
    n = len(data.train_labels)
    if size is None or size >= n:
        return data
    if size < 1:
        raise ValueError(f"train_subset must be an integer from 1 to {n}; got {size}")
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return replace(data, train_images=data.train_images[keep], train_labels=data.train_labels[keep])


def convert_channels(images: Tensor, channels: int) -> Tensor:
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    if have == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * luma).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels")


def resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for chunk in images.split(256):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def augment(images: Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> Tensor:
    """Random crop with `pad` pixels of zero padding, then random horizontal flip, for a whole uint8 batch.

    Same distribution as torchvision's RandomCrop(size, padding=pad) + RandomHorizontalFlip(),
    drawn from `generator` (a CPU generator) so a seed fixes every batch.
    """
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
        images = padded[torch.arange(n, device=device)[:, None, None, None],
                        torch.arange(c, device=device)[None, :, None, None], rows, cols]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(device)
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> Tensor:
    """uint8 → float32 standardised with per-channel statistics (given on the 0..1 scale)."""
    c = images.shape[1]
    m = torch.tensor(mean, device=images.device).view(1, c, 1, 1) * 255
    s = torch.tensor(std, device=images.device).view(1, c, 1, 1) * 255
    x = images.float().sub_(m).div_(s)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
