"""One image from untrusted bytes (an upload, a file named on the command line), and the input a run's model takes.

Only PNG and JPEG are read, and a file only if it is a regular file (a FIFO or /dev/zero is refused before it is
read). The byte count is capped before anything is parsed and the pixel count from the header before anything is
decoded (a 100 KB PNG can claim 20000×20000 pixels); only then is the image decoded, in memory, never written
anywhere. Alpha is dropped (transparent pixels shown on white) and palette images are expanded to their colours;
each such change comes back as a note, so the page and the CLI can say what was done.

`model_input` turns the decoded pixels into what a stored run's model takes: its channel count and side (resized
like the run's data were, see data.adapt) and normalised with its training images' per-channel statistics;
`thumbnail` shrinks them for display only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..files import read_regular
from ..formatting import format_bytes
from .folders import GREY_MODES, UNREADABLE
from .transforms import convert_channels, normalize, resize

FORMATS = ("PNG", "JPEG")
MAX_IMAGE_BYTES = 20 * 2**20  # an upload or a file: a 12-megapixel phone JPEG is 3-6 MB
MAX_IMAGE_PIXELS = 4096 * 4096  # 16.8 megapixels, 67 MB decoded as RGBA; checked from the header
ALPHA_BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as image viewers do


@dataclass(frozen=True)
class LoadedImage:
    pixels: Tensor  # uint8 (C, H, W) at the file's size; C = 1 (grey) or 3 (RGB)
    name: str
    format: str  # PNG | JPEG
    mode: str  # Pillow's mode of the file, before conversion
    notes: tuple[str, ...] = ()  # what was changed on the way in (alpha dropped, palette expanded)


def read_image_file(path: str | Path) -> LoadedImage:
    """A PNG or JPEG file, capped like an upload: a regular file (never a FIFO or a device, which could block or never
    end) whose size is checked before it is read, and of which at most the cap is read."""
    path = Path(path)
    try:
        data = read_regular(path, "image", MAX_IMAGE_BYTES, too_big=lambda size: _too_big(str(path), size))
    except OSError as exc:
        raise ValueError(f"image cannot be read: {path}: {exc.strerror or exc}") from None
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str = "image") -> LoadedImage:
    """Decode PNG or JPEG bytes into uint8 pixels (grey or RGB); anything else, too large or unreadable is one
    ValueError naming the image and the limit."""
    from PIL import Image

    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(_too_big(name, len(data)))
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:  # Pillow's own refusal, at twice its MAX_IMAGE_PIXELS: ours is lower
        raise ValueError(f"image {name} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; images may have at "
                         f"most {MAX_IMAGE_PIXELS:,} ({MAX_IMAGE_PIXELS / 1e6:.1f} megapixels)") from None
    except UNREADABLE:
        raise ValueError(f"image {name} is not a PNG or JPEG image that can be read") from None
    with im:
        width, height = im.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"image {name} is {width}×{height} = {width * height:,} pixels; images may have at most "
                             f"{MAX_IMAGE_PIXELS:,} ({MAX_IMAGE_PIXELS / 1e6:.1f} megapixels)")
        try:
            im.load()
            array, notes = _to_array(im)
        except UNREADABLE:
            raise ValueError(f"image {name} is a damaged or truncated {im.format} file") from None
        fmt, mode = im.format or "?", im.mode
    pixels = torch.from_numpy(np.array(array.transpose(2, 0, 1) if array.ndim == 3 else array[None], order="C"))
    return LoadedImage(pixels, name, fmt, mode, notes)


def _to_array(im) -> tuple[np.ndarray, tuple[str, ...]]:
    from PIL import Image

    notes = []
    if im.mode == "P":
        notes.append("palette image: its colours were read from the palette")
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif "transparency" in im.info and im.mode in ("L", "RGB"):
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if (alpha < 255).any():
            notes.append(f"alpha channel dropped: {(alpha < 255).mean():.0%} of the pixels are (partly) transparent "
                         "and are shown on white")
        else:
            notes.append("alpha channel dropped (every pixel is opaque)")
        grey = im.mode in ("LA", "La")
        background = Image.new(im.mode, im.size, ALPHA_BACKGROUND[:1] * 2 if grey else (*ALPHA_BACKGROUND, 255))
        im = Image.alpha_composite(background.convert("RGBA"), im.convert("RGBA")).convert("L" if grey else "RGB")
    elif im.mode in GREY_MODES:
        im = im.convert("L")
    elif im.mode != "RGB":
        notes.append(f"{im.mode} image converted to RGB")
        im = im.convert("RGB")
    return np.asarray(im), tuple(notes)


def _too_big(name: str, size: int) -> str:
    return (f"image {name} is {size:,} bytes; images may be at most {MAX_IMAGE_BYTES:,} bytes "
            f"({format_bytes(MAX_IMAGE_BYTES)})")


def model_input(pixels: Tensor, channels: int, side: int, mean: list[float] | tuple[float, ...],
                std: list[float] | tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """(uint8 (C, side, side) as the model sees it before normalisation, float (1, C, side, side) normalised)."""
    seen = resize(convert_channels(pixels[None], channels), side)
    return seen[0], normalize(seen, mean, std)


def thumbnail(pixels: Tensor, max_side: int) -> Tensor:
    """uint8 (C, H, W) shrunk (antialiased) so that its longer side is at most `max_side`, for display: a
    3000×3000 photo drawn at its pixels is 27 million values sent to the browser."""
    c, h, w = pixels.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return pixels
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = F.interpolate(pixels[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


def from_test_set(images: Tensor, index: int) -> Tensor:
    """One image of a run's test set (uint8 N×C×H×W), by index; a ValueError naming the range."""
    if not isinstance(index, int) or not 0 <= index < len(images):
        raise ValueError(f"test image must be an index from 0 to {len(images) - 1}; got {index!r}")
    return images[index]


def image_array(pixels: Tensor) -> np.ndarray:
    """uint8 (H, W, 3) for display; grey is repeated into three channels."""
    rgb = pixels.expand(3, -1, -1) if pixels.shape[0] == 1 else pixels
    return rgb.permute(1, 2, 0).contiguous().numpy()
