"""Image folders: DIR/train + DIR/test (or DIR/val) of class folders, or DIR of class folders split 80/20 with a
fixed seed. Grey or RGB, any size up to IMAGEFOLDER_MAX_PIXELS per image and IMAGEFOLDER_MAX_FILES files.

Folders are untrusted: only regular files are opened (a FIFO named x.png would block, a link to /dev/zero never end);
`scan_folder` reads only the files' headers (size, mode, what the decoder will hold), so the memory guard
(`sets.held_bytes`) and the pixel limit apply before anything is decoded; `load_imagefolder` then decodes one image
at a time into a preallocated uint8 tensor.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..files import open_regular
from .image_data import ImageData, channel_stats

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


SPLIT_SEED = 0  # the fixed seed of imagefolder's 80/20 split


SPLIT_TRAIN_FRACTION = 0.8


IMAGEFOLDER_MAX_SIDE = 224  # folder images are stored at their median side, at most this


# Image folders are untrusted: a small PNG can decode to gigabytes. Each image is decoded at full size before it is
# resized, so one image may have at most this many pixels (Pillow holds RGB at 4 bytes a pixel: 200 MB decoded, a
# 48-megapixel phone photo fits); checked from the file's header before anything is decoded.
IMAGEFOLDER_MAX_PIXELS = 50_000_000


IMAGEFOLDER_MAX_FILES = 200_000  # files looked at in one folder (ImageNet's train set has 1.28 million; CIFAR 60,000)


GREY_MODES = ("L", "I;16", "I", "1")  # Pillow modes read as one grey channel; every other mode is read as RGB


# Decoding one image also needs the decoder's read and line buffers, the resize's coefficient tables and the small
# result's copies: about 1 MB measured for a 6000×6000 PNG; this much is counted per image on top of the pixels.
DECODE_SLACK_BYTES = 4 * 2**20


# Decoders that hold more than a line at a time (measured with Pillow 13 on 6000×6000 files, peak RSS): WebP and
# compressed TIFF read the whole file into memory, and WebP decodes through RGBA canvases (12 bytes a pixel beyond
# the image, measured for lossy, lossless, grey and alpha files); a progressive JPEG keeps every DCT coefficient
# (2 bytes a pixel per component, fewer with chroma subsampling). PNG, BMP, GIF and baseline JPEG add nothing.
WEBP_BYTES_PER_PIXEL = 13


WHOLE_FILE_FORMATS = ("WEBP", "TIFF")


@dataclass(frozen=True)
class FolderScan:
    """An image folder as its file headers describe it: what `load_imagefolder` will hold, known before decoding."""

    train_images: int
    test_images: int
    channels: int  # as loaded: 3 if any training image has colour, else 1
    side: int  # as loaded: the median shorter side of the training images, at most IMAGEFOLDER_MAX_SIDE
    decode_bytes: int  # the most one image needs while it is decoded, converted and resized (one at a time)

    def held_bytes(self, channels: int, image_size: int) -> int:
        """The peak: the loaded set and, at a time, either one image being decoded or the set's adapted copy."""
        count = self.train_images + self.test_images
        loaded = count * self.channels * self.side ** 2
        adapted = 0 if (channels, image_size) == (self.channels, self.side) else count * channels * image_size ** 2
        return loaded + max(self.decode_bytes, adapted)


_SCANS: dict[str, tuple[tuple[tuple[str, int], ...], FolderScan]] = {}  # folder -> (its directories' mtimes, scan)


_SCANS_LOCK = threading.Lock()


_SCANS_KEPT = 16


# A directory changed this close to (or after) the scan's start may change again within its mtime's granularity (a
# kernel tick) without its mtime moving, so such a scan is not kept: the next call reads the headers again.
_SCAN_RACY_NS = 2 * 10**9


def scan_folder(data_dir: str | Path) -> FolderScan:
    """Read the headers (size and mode, nothing decoded) of an image folder's files, as `load_imagefolder` will split
    them. Raises the loader's ValueErrors (layout, unreadable file, more than IMAGEFOLDER_MAX_FILES files, an
    image over IMAGEFOLDER_MAX_PIXELS) without decoding anything. Kept per folder until one of its directories
    changes (its mtime), so a page that reruns does not read the headers again; a file rewritten in place, which
    leaves its directory's mtime alone, is still refused at decode time if it grew past the pixel limit.
    An OS error (a folder that cannot be listed, a name too long) is one ValueError naming data_dir."""
    try:
        return _scan_folder(Path(data_dir).expanduser())
    except OSError as exc:
        raise ValueError(f"data_dir cannot be read: {exc.filename or data_dir}: {exc.strerror or exc}") from None


def _scan_folder(root: Path) -> FolderScan:
    key = str(root.resolve())
    with _SCANS_LOCK:
        cached = _SCANS.get(key)
    if cached is not None and _mtimes([d for d, _ in cached[0]]) == cached[0]:
        return cached[1]
    started = time.time_ns()
    train_files, test_files, _, directories = _folder_layout(root)
    stamp = _mtimes(directories)
    train = [_header(path) for path, _ in train_files]
    test = [_header(path) for path, _ in test_files]
    channels = 3 if any(h.mode not in GREY_MODES for h in train) else 1
    side = _loaded_side(train)
    target = "RGB" if channels == 3 else "L"
    decode = max(_decode_bytes(h, target, side) for h in train + test)
    scan = FolderScan(len(train), len(test), channels, side, decode)
    if all(mtime < started - _SCAN_RACY_NS for _, mtime in stamp):
        with _SCANS_LOCK:
            _SCANS.pop(key, None)
            _SCANS[key] = (stamp, scan)
            while len(_SCANS) > _SCANS_KEPT:
                _SCANS.pop(next(iter(_SCANS)))
    return scan


def _mtimes(directories: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """(directory, mtime in ns) for each; a directory that is gone gets -1, so the stamp no longer matches."""
    stamp = []
    for d in directories:
        try:
            stamp.append((d, os.stat(d).st_mtime_ns))
        except OSError:
            stamp.append((d, -1))
    return tuple(stamp)


def _pil_bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow keeps per pixel in memory: RGB is stored as RGBX (4), as are the 2-band modes."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _decode_bytes(header: Header, target: str, side: int) -> int:
    """Peak bytes `_read_image` needs for one image: the decoded file (with what its decoder holds besides), its
    grey/RGB conversion and the target conversion (each only where the mode changes, all alive at once), then the
    resize's intermediate."""
    width, height, mode, decoder = header
    first = "L" if mode in GREY_MODES else "RGB"
    per_pixel = _pil_bytes_per_pixel(mode)
    if first != mode:
        per_pixel += _pil_bytes_per_pixel(first)
    if target != first:
        per_pixel += _pil_bytes_per_pixel(target)
    resize = side * max(width, height) * _pil_bytes_per_pixel(target)  # one pass done, the other to do
    return width * height * per_pixel + decoder + resize + DECODE_SLACK_BYTES


def _loaded_side(headers: Sequence[Header]) -> int:
    return min(IMAGEFOLDER_MAX_SIDE, int(np.median([min(h.width, h.height) for h in headers])))


class Header(NamedTuple):
    width: int
    height: int
    mode: str  # Pillow's mode of the decoded file
    decoder_bytes: int  # what the decoder holds besides the decoded image (see WHOLE_FILE_FORMATS)


def _header(path: Path) -> Header:
    """The file's size, mode and decoder needs from its header; nothing is decoded."""
    with _open_image(path) as im:
        width, height = im.size
        _check_pixels(path, width, height)
        decoder = 0
        if im.format in WHOLE_FILE_FORMATS:
            decoder += path.stat().st_size
        if im.format == "WEBP":
            decoder += WEBP_BYTES_PER_PIXEL * width * height
        if im.format == "JPEG" and im.info.get("progressive"):
            decoder += 2 * len(im.getbands()) * width * height
        return Header(width, height, im.mode, decoder)


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > IMAGEFOLDER_MAX_PIXELS:
        raise ValueError(_too_many_pixels(path, f"{width}×{height} = {width * height:,}"))


def _too_many_pixels(path: Path, pixels: str) -> str:
    return (f"data_dir holds an image of {pixels} pixels: {path}; images may have at most "
            f"{IMAGEFOLDER_MAX_PIXELS:,} ({IMAGEFOLDER_MAX_PIXELS / 1e6:g} megapixels)")


def load_imagefolder(root: Path) -> ImageData:
    train_files, test_files, classes, _ = _folder_layout(root)
    train_x, train_y = _read_images(train_files)
    test_x, test_y = _read_images(test_files, size=train_x.shape[-1], channels=train_x.shape[1])
    mean, std = channel_stats(train_x)
    return ImageData("imagefolder", train_x, train_y, test_x, test_y, tuple(classes), mean, std, str(root))


Files = list[tuple[Path, int]]  # (image file, class index)


def _folder_layout(root: Path) -> tuple[Files, Files, list[str], list[str]]:
    """(train files, test files, classes, every directory looked in): DIR/train + DIR/test (or DIR/val) of class
    folders, or DIR of class folders split 80/20 with a fixed seed. At most IMAGEFOLDER_MAX_FILES files are
    looked at."""
    if not root.is_dir():
        raise ValueError(f"data_dir must be an existing folder of class folders; {root} is not a folder")
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    seen = [str(root)]
    budget = [IMAGEFOLDER_MAX_FILES]
    if (root / "train").is_dir() and test_dir is not None:
        train_files, classes = _class_files(root / "train", root, seen, budget)
        test_files, test_classes = _class_files(test_dir, root, seen, budget)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise ValueError(f"{test_dir} has class folders that {root / 'train'} lacks: {', '.join(unknown)}")
        index = {c: i for i, c in enumerate(classes)}
        test_files = [(path, index[test_classes[k]]) for path, k in test_files]
    else:
        files, classes = _class_files(root, root, seen, budget)
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
        cut = max(1, min(len(files) - 1, round(SPLIT_TRAIN_FRACTION * len(files))))
        train_files = [files[i] for i in order[:cut]]
        test_files = [files[i] for i in order[cut:]]
    return train_files, test_files, classes, seen


def _class_files(folder: Path, root: Path, seen: list[str], budget: list[int]) -> tuple[Files, list[str]]:
    """The image files under each class folder (recursively, not into symlinked folders), sorted; `seen` gets every
    directory walked and `budget` counts down the files looked at."""
    seen.append(str(folder))
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = []
    for i, c in enumerate(classes):
        found = []
        for top, _, names in os.walk(folder / c):
            seen.append(top)
            budget[0] -= len(names)
            if budget[0] < 0:
                raise ValueError(f"data_dir holds more than {IMAGEFOLDER_MAX_FILES:,} files: {root}; at most "
                                 f"{IMAGEFOLDER_MAX_FILES:,} are read")
            found.extend(Path(top) / n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS)
        files.extend((p, i) for p in sorted(found))
    if len(classes) < 2 or len(files) < 2:
        raise ValueError(f"data_dir must hold at least 2 class folders with images ({', '.join(IMAGE_EXTENSIONS)}); "
                         f"{folder} has {len(classes)} class folders and {len(files)} images")
    return files, classes


def _read_images(files: Files, size: int | None = None, channels: int | None = None) -> tuple[Tensor, Tensor]:
    """Decode with PIL into uint8 tensors: RGB if any image has colour, else grey; one common size.

    The headers come first (channels and size need every image's), then each image is decoded, converted and
    resized on its own into a preallocated tensor: at most one full-size image is held at a time.
    """
    headers = [_header(path) for path, _ in files]
    channels = channels or (3 if any(h.mode not in GREY_MODES for h in headers) else 1)
    size = size or _loaded_side(headers)
    mode = "RGB" if channels == 3 else "L"
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        array = _read_image(path, mode, size)
        images[i] = array.transpose(2, 0, 1) if array.ndim == 3 else array
    return torch.from_numpy(images), torch.tensor([label for _, label in files], dtype=torch.int64)


def _read_image(path: Path, mode: str, size: int) -> np.ndarray:
    """One file as a size×size array in `mode` ("RGB" or "L"), read as grey or RGB first (as `_decode_bytes`
    counts); a file too large or unreadable is one ValueError naming it."""
    from PIL import Image

    with _open_image(path) as im:
        _check_pixels(path, *im.size)  # again: the file may have changed since its header was read
        try:
            first = "L" if im.mode in GREY_MODES else "RGB"
            picture = im if im.mode == first else im.convert(first)
            if picture.mode != mode:
                picture = picture.convert(mode)
            return np.asarray(picture.resize((size, size), Image.BILINEAR))
        except UNREADABLE as exc:
            raise ValueError(f"data_dir holds an image that cannot be read: {path}") from exc


# What Pillow raises for a file that is not an image it can decode (truncated, corrupt, an unknown format).
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


@contextlib.contextmanager
def _open_image(path: Path) -> Iterator[Any]:
    """PIL.Image.open (header only) of a regular file (a FIFO would block, a device never end); Pillow's
    decompression-bomb refusal and unreadable files as one ValueError. The file is closed with the image."""
    from PIL import Image

    try:
        file = open_regular(path, "each image in data_dir")
    except OSError as exc:
        raise ValueError(f"data_dir holds an image that cannot be read: {path}: {exc.strerror or exc}") from None
    with file:
        try:
            image = Image.open(file)
        except Image.DecompressionBombError:  # Pillow's own refusal, at twice its MAX_IMAGE_PIXELS: ours is lower
            raise ValueError(_too_many_pixels(path, f"more than {2 * Image.MAX_IMAGE_PIXELS:,}")) from None
        except UNREADABLE as exc:
            raise ValueError(f"data_dir holds an image that cannot be read: {path}") from exc
        with image:
            yield image
