"""Data sets as uint8 tensors: the synthetic set, real torchvision/imagefolder files written here, augmentation."""

from __future__ import annotations

import hashlib
import pickle
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from resnet_core import data as D
from resnet_core.config import TrainConfig
from resnet_core.train import load_data


def test_synthetic_set_is_deterministic_balanced_and_uint8():
    x1, y1 = D.synthetic_images(200, seed=3)
    x2, y2 = D.synthetic_images(200, seed=3)
    x3, _ = D.synthetic_images(200, seed=4)
    assert x1.dtype == torch.uint8 and x1.shape == (200, 3, 32, 32)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert torch.bincount(y1, minlength=10).tolist() == [20] * 10
    # Not trivial: the class is not readable from the mean colour (colours are random per image).
    means = x1.float().mean((2, 3))
    per_class = torch.stack([means[y1 == k].mean(0) for k in range(10)])
    assert float(per_class.std(0).max()) < 15  # class mean colours within a few grey levels of each other


def test_loaded_synthetic_has_its_own_stats():
    data = D.load_dataset("synthetic")
    assert data.num_classes == 10 and data.channels == 3 and data.image_size == 32
    assert len(data.train_labels) == D.SYNTHETIC_TRAIN and len(data.test_labels) == D.SYNTHETIC_TEST
    x = D.normalize(data.train_images[:2000], data.mean, data.std)
    assert x.mean((0, 2, 3)).abs().max() < 0.05
    assert (x.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_synthetic_set_is_kept_on_disk_and_equals_the_generated_one(tmp_path, monkeypatch):
    monkeypatch.setenv(D.DATA_DIR_ENV, str(tmp_path))
    D._synthetic.cache_clear()
    try:
        generated = D.load_dataset("synthetic")
        path = D.synthetic_cache_path()
        assert path.parent == tmp_path and path.is_file()
        D._synthetic.cache_clear()
        loaded = D.load_dataset("synthetic")
        assert loaded is not generated
        for name in ("train_images", "train_labels", "test_images", "test_labels"):
            assert torch.equal(getattr(loaded, name), getattr(generated, name))
        x, y = D.synthetic_images(D.SYNTHETIC_TEST, seed=1)
        assert torch.equal(loaded.test_images, x) and torch.equal(loaded.test_labels, y)
        path.write_bytes(path.read_bytes()[:1000])  # torn: generated again, and replaced
        D._synthetic.cache_clear()
        assert torch.equal(D.load_dataset("synthetic").test_images, x)
        assert path.stat().st_size > 30_000_000
    finally:
        D._synthetic.cache_clear()


def test_augment_crops_within_padding_and_flips():
    g = torch.Generator().manual_seed(0)
    ones = torch.full((256, 1, 8, 8), 255, dtype=torch.uint8)
    cropped = D.augment(ones, g, pad=2, flip=False)
    # A shift of (dy, dx) leaves (8-|dy|)·(8-|dx|) lit pixels, |dy|, |dx| <= 2.
    lit = (cropped > 0).sum((1, 2, 3))
    possible = {(8 - abs(a)) * (8 - abs(b)) for a in range(-2, 3) for b in range(-2, 3)}
    assert set(lit.tolist()) <= possible and len(set(lit.tolist())) > 3

    ramp = torch.arange(8, dtype=torch.uint8).repeat(64, 1, 8, 1)  # columns 0..7
    flipped = D.augment(ramp, g, pad=0, flip=True)
    same = (flipped == ramp).flatten(1).all(1)
    mirrored = (flipped == ramp.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54


def test_adapt_and_subset():
    data = D.load_dataset("synthetic")
    grey = D.adapt(data, channels=1, image_size=16)
    assert grey.train_images.shape[1:] == (1, 16, 16) and grey.test_images.shape[1:] == (1, 16, 16)
    assert len(grey.mean) == 1
    small = D.subset(data, 100, seed=1)
    assert len(small.train_labels) == 100 and len(small.test_labels) == len(data.test_labels)
    assert torch.equal(small.train_images, D.subset(data, 100, seed=1).train_images)
    with pytest.raises(ValueError, match="in_channels must be 1 or 3"):
        D.adapt(data, channels=2)


# ---------------------------------------------------------------- image folders


def _write_pngs(folder: Path, colours: dict, per_class: int, grey=(), size=(20, 14)) -> None:
    for name, rgb in colours.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if name in grey:
                Image.new("L", (size[0] + i, size[1]), rgb[0]).save(folder / name / f"{i}.png")
            else:
                Image.new("RGB", (size[0] + i, size[1] + i), rgb).save(folder / name / f"{i}.png")


def test_imagefolder_with_train_and_val(tmp_path):
    colours = {"blue": (0, 0, 255), "grey": (128, 128, 128), "red": (255, 0, 0)}
    _write_pngs(tmp_path / "train", colours, 4, grey=("grey",))
    _write_pngs(tmp_path / "val", colours, 2, grey=("grey",))
    data = D.load_dataset("imagefolder", tmp_path)
    assert data.classes == ("blue", "grey", "red")
    assert data.channels == 3  # colour present, grey images converted
    assert data.train_images.shape == (12, 3, 14, 14) and len(data.test_labels) == 6
    red = data.train_images[data.train_labels == 2]
    assert red[:, 0].min() == 255 and red[:, 2].max() == 0
    grey = data.test_images[data.test_labels == 1]
    assert int(grey.min()) == int(grey.max()) == 128
    to_model = D.adapt(data, channels=1, image_size=32)
    assert to_model.train_images.shape == (12, 1, 32, 32)


def test_imagefolder_single_folder_split_is_fixed(tmp_path):
    _write_pngs(tmp_path, {"a": (10, 10, 10), "b": (200, 200, 200)}, 10, grey=("a", "b"))  # all grey
    data = D.load_dataset("imagefolder", tmp_path)
    assert data.channels == 1
    assert len(data.train_labels) == 16 and len(data.test_labels) == 4
    again = D._imagefolder(tmp_path)  # uncached: the split comes from a fixed seed
    assert torch.equal(again.test_images, data.test_images) and torch.equal(again.test_labels, data.test_labels)


def test_imagefolder_of_odd_sized_grey_images_comes_out_at_the_models_input(tmp_path):
    levels = {"dark": 30, "light": 220}
    for name, level in levels.items():
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("L", (20, 24), level).save(tmp_path / name / f"{i}.png")  # 20 wide, 24 high
    data = load_data(TrainConfig(model="resnet20", dataset="imagefolder", data_dir=str(tmp_path)))
    assert data.train_images.shape == (8, 3, 32, 32) and data.test_images.shape == (2, 3, 32, 32)
    assert data.train_images.dtype == data.test_images.dtype == torch.uint8 and len(data.mean) == 3
    for images, labels in ((data.train_images, data.train_labels), (data.test_images, data.test_labels)):
        for k, name in enumerate(data.classes):
            assert images[labels == k].unique().tolist() == [levels[name]]  # grey copied to R, G and B


def test_imagefolder_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="data_dir is required"):
        D.load_dataset("imagefolder")
    with pytest.raises(ValueError, match="at least 2 class folders"):
        D.load_dataset("imagefolder", tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        D.load_dataset("imagenet")


# ---------------------------------------------------------------- torchvision's classes on real files


def _write_idx(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    root.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (root / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    (root / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_formats_read_through_torchvision(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    train_y, test_y = (np.arange(30) % 10).astype(np.uint8), (np.arange(10) % 10).astype(np.uint8)
    _write_idx(tmp_path / folder / "raw", "train", train, train_y)
    _write_idx(tmp_path / folder / "raw", "t10k", test, test_y)
    data = D.load_dataset(name, tmp_path)
    assert data.train_images.shape == (30, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert np.array_equal(data.train_images[:, 0].numpy(), train)
    assert np.array_equal(data.test_images[:, 0].numpy(), test)
    assert data.test_labels.tolist() == test_y.tolist() and data.num_classes == 10


def test_cifar10_format_reads_through_torchvision(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (4, 3072), dtype=np.uint8)  # R plane, G plane, B plane per row
        batches[name] = rows
        with open(base / name, "wb") as f:
            pickle.dump({"data": rows, "labels": list(range(4))}, f)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)

    def md5(path: Path) -> str:
        return hashlib.md5(path.read_bytes()).hexdigest()

    class WrittenCIFAR10(torchvision.datasets.CIFAR10):  # the real class, checking this test's files' md5s
        train_list = [[f"data_batch_{i}", md5(base / f"data_batch_{i}")] for i in range(1, 6)]
        test_list = [["test_batch", md5(base / "test_batch")]]
        meta = {"filename": "batches.meta", "key": "label_names", "md5": md5(base / "batches.meta")}

    data = D.from_torchvision("cifar10", WrittenCIFAR10(str(tmp_path), train=True),
                              WrittenCIFAR10(str(tmp_path), train=False))
    assert data.train_images.shape == (20, 3, 32, 32) and data.classes == tuple(classes)
    first = batches["data_batch_1"][0].reshape(3, 32, 32)
    assert np.array_equal(data.train_images[0].numpy(), first)
    assert np.array_equal(data.test_images[3].numpy(), batches["test_batch"][3].reshape(3, 32, 32))


@pytest.fixture
def offline(monkeypatch):
    """Downloads go to a proxy on a closed local port, so they fail at once, online or not."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    urllib.request.install_opener(None)  # urlopen's cached opener read the proxies when it was built
    yield
    monkeypatch.undo()
    urllib.request.install_opener(None)


def test_offline_message_says_where_to_put_the_files(tmp_path, offline):
    with pytest.raises(RuntimeError) as info:
        D.load_dataset("cifar10", tmp_path / "nothing")
    message = str(info.value)
    assert "cifar10 is not in" in message and "could not be downloaded" in message
    assert str(tmp_path / "nothing" / "cifar-10-python.tar.gz") in message
    with pytest.raises(RuntimeError, match=r"MNIST/raw/\{train-images-idx3"):
        D.load_dataset("mnist", tmp_path / "nothing")
    with pytest.raises(RuntimeError) as info:
        D.load_dataset("fashion_mnist", tmp_path / "nothing")
    message = str(info.value)
    assert "fashion_mnist is not in" in message and "could not be downloaded" in message
    assert "fashion-mnist.s3-website" in message
    assert f"{tmp_path / 'nothing'}/FashionMNIST/raw/{{train-images-idx3" in message
