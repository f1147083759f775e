"""The side a run trains its images at, and how far its random crops shift them, decided once for the engine, the
memory guard and the precision cache.

Enlarging an image adds pixels, not information, and costs compute by the square: scikit-learn's 8×8 digits were
trained at resnet20's natural 32×32, so every step did 16× the work that 8×8 needs, and ended no better (98.89,
98.89 and 99.44% on seeds 0–2 against 99.44% on each at 8×8, the auto budget: `python -m benchmarks.bench_digits
--sweep 121`, against `--extra "--image-size 32 --pad 4"`).
So an image folder trains at its images' own side, enlarged only as far as a quarter of the model's
natural side, where its last stage still has 2×2 cells (8 for a CIFAR stem, 56 for ImageNet's), and never
beyond the natural side. Built-in sets train at their own side; the user's image_size always wins.

The crops are padded by an eighth of the side (CIFAR's 4 pixels of 32, He et al.) unless the user set `pad`: a
fixed 4 pixels is half of an 8×8 digit, and there it cost 7 points (92.2% against 99.4%, seed 0; `--extra
"--pad 4"`).
"""

from __future__ import annotations

from ..data.sets import NATIVE_SIZE, scan_folder
from ..models.presets import resolve_spec
from ..models.spec import natural_input_size
from .config import TrainConfig

FOLDER_MIN_SHARE = 4  # an image folder is enlarged to at least 1/4 of the natural side
PAD_SHARE = 8  # auto crop padding: 1/8 of the side


def train_side(config: TrainConfig) -> int:
    """The side (pixels) of the square images the run trains and tests on; an image folder's headers are read
    (`scan_folder`, kept per folder), and its ValueErrors are raised as they are."""
    if config.image_size:
        return config.image_size
    if config.dataset in NATIVE_SIZE:
        return NATIVE_SIZE[config.dataset]
    natural = natural_input_size(resolve_spec(config.model, **config.overrides))[1]
    if not config.data_dir:
        return natural  # no folder to read: the run itself says data_dir is required
    return folder_side(scan_folder(config.data_dir).side, natural)


def folder_side(native: int, natural: int) -> int:
    """An image folder's training side: its own (`native`), at least natural // FOLDER_MIN_SHARE, at most
    `natural`."""
    return min(natural, max(native, natural // FOLDER_MIN_SHARE))


def crop_pad(config: TrainConfig, side: int) -> int:
    """The crops' zero padding in pixels: the user's `pad`, else an eighth of `side` (at least 1)."""
    return config.pad if config.pad is not None else max(1, round(side / PAD_SHARE))


def side_reason(config: TrainConfig, side: int) -> str:
    """Why the run trains at `side`, in words for the settings caption and the CLI's final line."""
    if config.image_size:
        return f"{side}×{side} images (set by the user)"
    if config.dataset in NATIVE_SIZE:
        return f"{side}×{side} images ({config.dataset}'s own side)"
    return (f"{side}×{side} images (auto: the folder's own side, enlarged to at least a quarter of the model's "
            f"natural side and never past it)")
