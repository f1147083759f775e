"""The side a run trains at and its crops' padding: literal sides of real folders, CIFAR's 4 pixels of 32."""

from __future__ import annotations

import pytest
from PIL import Image

from resnet_core.runs.memory import memory_check
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import load_data
from resnet_core.training.image_side import crop_pad, folder_side, train_side
from resnet_core.training.settings import resolve_settings


@pytest.mark.parametrize(("native", "natural", "side"), [
    (8, 32, 8),  # load_digits on a CIFAR stem: its own side, whose last stage has 2×2 cells
    (4, 32, 8),  # smaller: enlarged to a quarter of the natural side
    (20, 32, 20),
    (64, 32, 32),  # larger than natural: the natural side, as before
    (8, 224, 56),  # digits on an ImageNet stem: 56 (the last stage 2×2), not 8
    (100, 224, 100),
    (224, 224, 224),
])
def test_an_image_folder_trains_at_its_own_side_within_a_quarter_and_all_of_the_natural_side(native, natural, side):
    assert folder_side(native, natural) == side


@pytest.mark.parametrize(("side", "pad"), [(8, 1), (16, 2), (28, 4), (32, 4), (64, 8), (224, 28), (4, 1)])
def test_auto_crop_padding_is_an_eighth_of_the_side(side, pad):
    assert crop_pad(TrainConfig(), side) == pad


def test_padding_and_side_set_by_the_user_win(tmp_path):
    assert crop_pad(TrainConfig(pad=0), 8) == 0 and crop_pad(TrainConfig(pad=4), 8) == 4
    assert train_side(TrainConfig(dataset="imagefolder", data_dir=str(tmp_path), image_size=32)) == 32
    assert train_side(TrainConfig(dataset="mnist")) == 28 and train_side(TrainConfig()) == 32


def _eight_by_eight(folder):
    for label, level in (("dark", 30), ("light", 220)):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), level).save(folder / label / f"{i}.png")


def test_an_eight_pixel_folder_is_loaded_guarded_and_explained_at_its_side(tmp_path):
    _eight_by_eight(tmp_path)
    config = TrainConfig(model="resnet20", dataset="imagefolder", data_dir=str(tmp_path))
    assert train_side(config) == 8 and train_side(config.replace(model="resnet18")) == 56
    data = load_data(config)
    assert data.train_images.shape[1:] == (3, 8, 8) and data.image_size == 8
    assert memory_check(config, data=data).data_bytes == 12 * 3 * 8 * 8  # the images as trained, not at 32×32
    settings = resolve_settings(config, data)
    assert settings.images_reason == ("8×8 images (auto: the folder's own side, enlarged to at least a quarter of the "
                                      "model's natural side and never past it); crops padded 1 pixel (auto: an eighth "
                                      "of the side, as CIFAR's 4 of 32)")
    assert resolve_settings(config.replace(pad=3, image_size=16)).images_reason == (
        "16×16 images (set by the user); crops padded 3 pixels (set by the user)")
    assert resolve_settings(config.replace(augment="none")).images_reason.endswith("never past it)")
