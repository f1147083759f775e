"""Data sets as uint8 tensors: the synthetic set, real torchvision/imagefolder files written here, augmentation."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from resnet_core.data import folders, location, synthetic, transforms
from resnet_core.data import sets as D
from resnet_core.data import torchvision_sets as tv_sets
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import load_data


def test_synthetic_set_is_deterministic_balanced_and_uint8():
    x1, y1 = synthetic.synthetic_images(200, seed=3)
    x2, y2 = synthetic.synthetic_images(200, seed=3)
    x3, _ = synthetic.synthetic_images(200, seed=4)
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
    x = transforms.normalize(data.train_images[:2000], data.mean, data.std)
    assert x.mean((0, 2, 3)).abs().max() < 0.05
    assert (x.std((0, 2, 3)) - 1).abs().max() < 0.05


def test_synthetic_set_is_kept_on_disk_and_equals_the_generated_one(tmp_path, monkeypatch):
    monkeypatch.setenv(location.DATA_DIR_ENV, str(tmp_path))
    synthetic.load_synthetic.cache_clear()
    try:
        generated = D.load_dataset("synthetic")
        path = synthetic.synthetic_cache_path()
        assert path.parent == tmp_path and path.is_file()
        synthetic.load_synthetic.cache_clear()
        loaded = D.load_dataset("synthetic")
        assert loaded is not generated
        for name in ("train_images", "train_labels", "test_images", "test_labels"):
            assert torch.equal(getattr(loaded, name), getattr(generated, name))
        x, y = synthetic.synthetic_images(D.SYNTHETIC_TEST, seed=1)
        assert torch.equal(loaded.test_images, x) and torch.equal(loaded.test_labels, y)
        path.write_bytes(path.read_bytes()[:1000])  # torn: generated again, and replaced
        synthetic.load_synthetic.cache_clear()
        assert torch.equal(D.load_dataset("synthetic").test_images, x)
        assert path.stat().st_size > 30_000_000
    finally:
        synthetic.load_synthetic.cache_clear()


def test_augment_crops_within_padding_and_flips():
    g = torch.Generator().manual_seed(0)
    ones = torch.full((256, 1, 8, 8), 255, dtype=torch.uint8)
    cropped = transforms.augment(ones, g, pad=2, flip=False)
    # A shift of (dy, dx) leaves (8-|dy|)·(8-|dx|) lit pixels, |dy|, |dx| <= 2.
    lit = (cropped > 0).sum((1, 2, 3))
    possible = {(8 - abs(a)) * (8 - abs(b)) for a in range(-2, 3) for b in range(-2, 3)}
    assert set(lit.tolist()) <= possible and len(set(lit.tolist())) > 3

    ramp = torch.arange(8, dtype=torch.uint8).repeat(64, 1, 8, 1)  # columns 0..7
    flipped = transforms.augment(ramp, g, pad=0, flip=True)
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
    again = folders.load_imagefolder(tmp_path)  # uncached: the split comes from a fixed seed
    assert torch.equal(again.test_images, data.test_images) and torch.equal(again.test_labels, data.test_labels)


def test_imagefolder_of_odd_sized_grey_images_comes_out_square_at_their_shorter_side(tmp_path):
    levels = {"dark": 30, "light": 220}
    for name, level in levels.items():
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("L", (20, 24), level).save(tmp_path / name / f"{i}.png")  # 20 wide, 24 high
    data = load_data(TrainConfig(model="resnet20", dataset="imagefolder", data_dir=str(tmp_path)))
    assert data.train_images.shape == (8, 3, 20, 20) and data.test_images.shape == (2, 3, 20, 20)  # 3 colours
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


# ---------------------------------------------------------------- hostile image folders: decode size, bombs, bounds

SIDE = 6000  # eight 6000×6000 solid PNGs: 120 KB each on disk, 144 MB each decoded (Pillow keeps RGB as RGBX)


@pytest.fixture(scope="module")
def eight_big_pngs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big")
    first = root / "a" / "0.png"
    first.parent.mkdir()
    Image.new("RGB", (SIDE, SIDE), (200, 30, 40)).save(first)
    (root / "b").mkdir()
    for cls, i in [("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1), ("b", 2), ("b", 3)]:
        shutil.copyfile(first, root / cls / f"{i}.png")
    return root


def test_the_guard_counts_the_largest_decoded_image_from_headers(eight_big_pngs):
    start = time.perf_counter()
    scan = D.scan_folder(eight_big_pngs)
    assert time.perf_counter() - start < 1  # headers only: decoding one of these takes longer
    assert (scan.train_images, scan.test_images, scan.channels, scan.side) == (6, 2, 3, 224)
    held = D.held_bytes("imagefolder", eight_big_pngs, 3, 32)
    assert held >= SIDE * SIDE * 4 > SIDE * SIDE * 3  # one image decoded at a time (was 24 KiB: files × 32²)
    assert held < 2 * SIDE * SIDE * 4  # and not all eight at once
    assert held == 8 * 3 * 224**2 + scan.decode_bytes  # loaded at 224² + one decoding (above the 32² copy)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures with Linux's /proc")
def test_the_estimate_covers_the_measured_peak_of_loading(eight_big_pngs, tmp_path):
    """Peak resident memory of loading the folder in a fresh process (Linux: the high-water mark is reset just
    before), against the guard's estimate for the set as loaded."""
    code = ("import sys, pathlib; from resnet_core.data import folders; "
            "status = lambda key: int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith(key))); "
            "folders.load_imagefolder(pathlib.Path(sys.argv[2])); "  # warm: Pillow's plugins and torch's kernels
            "open('/proc/self/clear_refs', 'w').write('5'); base = status('VmRSS:'); "
            "data = folders.load_imagefolder(pathlib.Path(sys.argv[1])); "
            "print((status('VmHWM:') - base) * 1024, tuple(data.train_images.shape))")
    small = tmp_path / "small"
    _write_pngs(small, {"a": (1, 2, 3), "b": (4, 5, 6)}, 2)
    out = subprocess.run([sys.executable, "-c", code, str(eight_big_pngs), str(small)],
                         capture_output=True, text=True, timeout=300, check=True).stdout.split(maxsplit=1)
    assert out[1].strip() == "(6, 3, 224, 224)"
    peak = int(out[0])
    estimate = D.held_bytes("imagefolder", eight_big_pngs, 3, 224)
    assert SIDE * SIDE * 4 < peak <= estimate < 1.2 * peak  # was 24 KiB against 1.1 GB (all eight held at once)


def _bomb(path: Path, side: int) -> Path:
    """A 1-bit PNG: side² pixels in a few KB (Pillow allocates a byte a pixel to write it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (side, side)).save(path)
    return path


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bomb")
    for cls in ("a", "b"):
        (root / cls).mkdir()
        Image.new("RGB", (8, 8)).save(root / cls / "ok.png")
    _bomb(root / "b" / "bomb.png", 14_000)
    return root


def test_a_decompression_bomb_is_one_value_error_from_its_header(bomb_folder):
    path = bomb_folder / "b" / "bomb.png"
    assert path.stat().st_size < 50_000
    line = (f"data_dir holds an image of more than 178,956,970 pixels: {path}; images may have at most 50,000,000 "
            "(50 megapixels)")  # Pillow refuses it at open, at twice its MAX_IMAGE_PIXELS
    for attempt in (lambda: D.scan_folder(bomb_folder), lambda: D.held_bytes("imagefolder", bomb_folder, 3, 32),
                    lambda: folders.load_imagefolder(bomb_folder), lambda: folders._read_image(path, "RGB", 32)):
        start = time.perf_counter()
        with pytest.raises(ValueError) as caught:
            attempt()
        assert str(caught.value) == line and time.perf_counter() - start < 1  # not decoded


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / cls / "ok.png")
    path = _bomb(tmp_path / "a" / "large.png", 8000)  # 64 megapixels: below Pillow's limit, above ours
    line = (f"data_dir holds an image of 8000×8000 = 64,000,000 pixels: {path}; images may have at most 50,000,000 "
            "(50 megapixels)")
    for attempt in (lambda: D.scan_folder(tmp_path), lambda: folders.load_imagefolder(tmp_path)):
        start = time.perf_counter()
        with pytest.raises(ValueError) as caught:
            attempt()
        assert str(caught.value) == line and time.perf_counter() - start < 1


def test_a_folder_of_too_many_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "IMAGEFOLDER_MAX_FILES", 5)
    _write_pngs(tmp_path, {"a": (1, 2, 3), "b": (4, 5, 6)}, 3)
    (tmp_path / "a" / "notes.txt").write_text("every file counts")
    with pytest.raises(ValueError) as caught:
        D.scan_folder(tmp_path)
    assert str(caught.value) == f"data_dir holds more than 5 files: {tmp_path}; at most 5 are read"
    monkeypatch.setattr(folders, "IMAGEFOLDER_MAX_FILES", 7)
    assert D.scan_folder(tmp_path).train_images == 5  # 6 images + 1 text file: within the bound


def test_the_header_scan_is_kept_until_the_folder_changes(tmp_path, monkeypatch):
    _write_pngs(tmp_path, {"a": (1, 2, 3), "b": (4, 5, 6)}, 3)
    read = []
    real_header = folders._header
    monkeypatch.setattr(folders, "_header", lambda path: read.append(path) or real_header(path))
    D.scan_folder(tmp_path)
    D.scan_folder(tmp_path)
    assert len(read) == 12  # just written: within the mtime granularity, so not kept yet
    old = time.time() - 60
    for folder in (tmp_path, tmp_path / "a", tmp_path / "b"):
        os.utime(folder, (old, old))
    read.clear()
    first = D.scan_folder(tmp_path)
    assert D.scan_folder(tmp_path) is first and D.scan_folder(str(tmp_path)) is first and len(read) == 6
    Image.new("RGB", (30, 30), (7, 8, 9)).save(tmp_path / "b" / "new.png")  # b's mtime moves
    again = D.scan_folder(tmp_path)
    assert len(read) == 13 and again.train_images + again.test_images == 7


def test_folder_images_keep_their_modes_decoded_one_at_a_time(tmp_path):
    (tmp_path / "pal").mkdir()
    (tmp_path / "deep").mkdir()
    Image.new("RGB", (10, 10), (255, 0, 0)).convert("P").save(tmp_path / "pal" / "0.png")
    Image.new("I;16", (10, 10), 40_000).save(tmp_path / "deep" / "0.png")  # 16-bit grey
    x, y = folders._read_images(sorted(folders._folder_layout(tmp_path)[0] + folders._folder_layout(tmp_path)[1]))
    assert x.shape == (2, 3, 10, 10) and x.dtype == torch.uint8 and y.tolist() == [0, 1]
    assert x[1, :, 0, 0].tolist() == [255, 0, 0] and len(set(x[0, :, 0, 0].tolist())) == 1  # grey copied to RGB


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

    data = tv_sets.from_torchvision("cifar10", WrittenCIFAR10(str(tmp_path), train=True),
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
    # one message for the command line and the pages: it names both places where the folder is chosen
    assert "--data-dir on the command line" in message and "“Data folder” field on the Train page" in message
    assert "pass another --data-dir" not in message
    with pytest.raises(RuntimeError, match=r"MNIST/raw/\{train-images-idx3"):
        D.load_dataset("mnist", tmp_path / "nothing")
    with pytest.raises(RuntimeError) as info:
        D.load_dataset("fashion_mnist", tmp_path / "nothing")
    message = str(info.value)
    assert "fashion_mnist is not in" in message and "could not be downloaded" in message
    assert "fashion-mnist.s3-website" in message
    assert f"{tmp_path / 'nothing'}/FashionMNIST/raw/{{train-images-idx3" in message
