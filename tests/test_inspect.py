"""Inside a trained net: Grad-CAM and residual ratios against hand computations, hooks removed whatever happens,
untrusted images refused or converted with a note, and `inspect`'s JSON from the command line."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import threading
import time
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_core.analysis.gradcam import grad_cam
from resnet_core.analysis.inspect import inspect_model, inspect_run, plain_twin
from resnet_core.cli import main
from resnet_core.data.fence import DATA_ROOTS_ENV
from resnet_core.data.images import MAX_IMAGE_BYTES, decode_image, model_input
from resnet_core.data.location import DATA_DIR_ENV
from resnet_core.models.resnet import build_model
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.loading import load_run_data
from resnet_core.training.config import TrainConfig
from tests.conftest import run_cli

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent

CLASSES = [f"c{i}" for i in range(10)]
TINY = dict(overrides=dict(width=8, layers=(1, 1, 1)), train_subset=64, batch_size=32, test_subset=50,
            augment="none", probe_every=0, threads=1, max_steps=2)


def net(**overrides):
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, **overrides).eval()
    for m in model.modules():  # non-trivial BN statistics, so that eval mode is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_grad_cam_equals_the_hand_computation():
    # Through global average pooling and a linear head, d logit_k / d A = W_k / (H W): Grad-CAM's channel weights.
    model, x = net(), torch.randn(1, 3, 32, 32)
    logits, maps = grad_cam(model, x, [3])
    with torch.no_grad():
        features = model.stages()[-1](model.stages()[1](model.stages()[0](model.forward_stem(x))))
        assert torch.allclose(logits, model.fc(features.mean((2, 3))), atol=1e-5)
        for k in {3, int(logits.argmax())}:
            weights = model.fc.weight[k] / features[0, 0].numel()
            cam = F.relu((weights[:, None, None] * features[0]).sum(0))[None, None]
            cam = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
            assert torch.allclose(maps[k], cam / cam.max(), atol=1e-5)
            assert maps[k].min() >= 0 and maps[k].max() == 1
    assert set(maps) == {3, int(logits.argmax())} and hook_count(model) == 0


def test_residual_ratio_equals_the_hand_computation_and_hooks_go_even_on_error():
    model, x = net(), torch.randn(1, 3, 32, 32)
    measured, _ = inspect_model(model, x, CLASSES)
    with torch.no_grad():
        into = model.layer1[0](model.forward_stem(x))  # the input of layer1.1
        block = model.layer1[1]
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(into)))))
        probabilities = torch.softmax(model(x)[0], 0)
    ratios = {b.name: b for b in measured["blocks"]}
    assert ratios["layer1.1"].residual_ratio == pytest.approx(float(branch.norm() / into.norm()), rel=1e-5)
    assert [b.changes_shape for b in measured["blocks"]] == [False] * 3 + [True, False, False] * 2
    assert measured["probabilities"] == pytest.approx(probabilities.tolist(), abs=1e-6)
    stages = {s.name: s for s in measured["stages"]}
    assert [s.shape for s in stages.values()] == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    with torch.no_grad():
        last = model.layer3(model.layer2(model.layer1(model.forward_stem(x))))
    assert stages["layer3"].mean_abs == pytest.approx(float(last.abs().mean()), rel=1e-5)
    strongest = stages["layer3"].channels
    assert len(strongest) == 8 and stages["layer3"].maps.shape == (8, 8, 8)
    with pytest.raises(RuntimeError):
        inspect_model(model, torch.randn(1, 5, 32, 32), CLASSES)  # 5 channels: the stem's conv fails mid-pass
    assert hook_count(model) == 0


def test_a_zero_initialised_residual_branch_has_ratio_zero_and_its_plain_twin_does_not():
    x = torch.randn(1, 3, 32, 32)
    residual, _ = inspect_model(net(zero_init_residual=True), x, CLASSES)
    plain, _ = inspect_model(net(skip=False), x, CLASSES)
    assert all(b.residual_ratio == 0 for b in residual["blocks"])
    assert all(b.residual_ratio > 0.05 for b in plain["blocks"])


def test_untrusted_images_are_refused_in_one_line():
    with pytest.raises(ValueError, match="is not a PNG or JPEG image that can be read"):
        decode_image(b"%PDF-1.4 not an image", "notes.pdf")
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(ValueError, match="is not a PNG or JPEG"):
        decode_image(gif.getvalue(), "anim.gif")
    # A 20000×20000 PNG: a valid header and a few bytes of data, refused from the header before any decoding.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + png_chunk(b"IEND", b""))
    tick = time.perf_counter()
    with pytest.raises(ValueError, match=r"image bomb.png has more than 178,956,970 pixels; images may have at most "
                                         r"16,777,216 \(16.8 megapixels\)"):
        decode_image(bomb, "bomb.png")
    ihdr = struct.pack(">IIBBBBB", 5000, 5000, 8, 2, 0, 0, 0)  # under Pillow's limit, over ours
    with pytest.raises(ValueError, match=r"image big.png is 5000×5000 = 25,000,000 pixels; images may have at most"):
        decode_image(bomb.replace(bomb[8:33], png_chunk(b"IHDR", ihdr)), "big.png")
    assert time.perf_counter() - tick < 0.5
    with pytest.raises(ValueError, match=r"is 20,971,521 bytes; images may be at most 20,971,520 bytes \(20.0 MiB\)"):
        decode_image(b"\0" * (MAX_IMAGE_BYTES + 1), "big.png")
    truncated = png_bytes(Image.new("RGB", (64, 64), (10, 200, 30)))[:-30]
    with pytest.raises(ValueError, match="damaged or truncated PNG"):
        decode_image(truncated, "cut.png")


def test_alpha_and_palette_images_are_converted_with_a_note():
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent: shown on white
    loaded = decode_image(png_bytes(rgba), "alpha.png")
    assert loaded.pixels.shape == (3, 2, 4) and loaded.pixels[:, 0, 0].tolist() == [255, 255, 255]
    assert loaded.pixels[:, 1, 1].tolist() == [255, 0, 0]
    assert loaded.notes == ("alpha channel dropped: 12% of the pixels are (partly) transparent and are shown on white",)
    palette = Image.new("RGB", (3, 3), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    loaded = decode_image(png_bytes(palette), "palette.png")
    assert loaded.mode == "P" and loaded.pixels[:, 1, 1].tolist() == [0, 128, 255]
    assert loaded.notes == ("palette image: its colours were read from the palette",)
    grey = decode_image(png_bytes(Image.new("L", (5, 7), 77)), "grey.png")
    assert grey.pixels.shape == (1, 7, 5) and grey.notes == ()
    seen, x = model_input(grey.pixels, 3, 32, [0.5] * 3, [0.25] * 3)
    assert seen.shape == (3, 32, 32) and seen.unique().tolist() == [77]
    assert torch.allclose(x, torch.full((1, 3, 32, 32), (77 / 255 - 0.5) / 0.25))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inspect")
    for name, overrides in (("residual", {}), ("plain", dict(skip=False))):
        config = TrainConfig(**{**TINY, "overrides": {**TINY["overrides"], **overrides}})
        execute(config, run_dir=root / name)
    return dict(residual=root / "residual", plain=root / "plain")


def test_cli_json_has_the_issues_keys(runs, tmp_path, capsys):
    image = tmp_path / "ring.png"
    Image.new("RGB", (50, 40), (20, 20, 20)).save(image)
    code = main(["inspect", str(runs["residual"]), "--image", str(image), "--class", "ring", "--threads", "1",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert list(out) == ["run", "prediction", "stages", "blocks", "gradcam_class", "gradcam", "notes", "seconds"]
    prediction = out["prediction"]
    assert {"class", "index", "probability", "top5"} <= set(prediction)
    probabilities = [t["probability"] for t in prediction["top5"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert prediction["top5"][0]["class"] == prediction["class"]
    assert [s["name"] for s in out["stages"]] == ["stem", "layer1", "layer2", "layer3"]
    assert out["stages"][3]["shape"] == [32, 8, 8] and out["stages"][3]["mean_abs_activation"] > 0
    assert [b["name"] for b in out["blocks"]] == ["layer1.0", "layer2.0", "layer3.0"]
    assert all(b["residual_ratio"] > 0 for b in out["blocks"])
    cam = np.array(out["gradcam"])
    assert out["gradcam_class"] == {"class": "ring", "index": 1}
    assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1
    code = main(["inspect", str(runs["residual"]), "--test-image", "7"])
    assert code == 0 and "residual ratio" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(runs, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    no_weights = tmp_path / "no-weights"
    shutil.copytree(runs["residual"], no_weights, ignore=shutil.ignore_patterns(runstore.WEIGHTS))
    for argv, message in (
        ([str(runs["residual"]), "--image", str(text)], "is not a PNG or JPEG image that can be read"),
        ([str(runs["residual"]), "--image", str(tmp_path / "missing.png")], "image cannot be read"),
        ([str(runs["residual"]), "--test-image", "0", "--class", "11"], "class must be an index from 0 to 9 or one"),
        ([str(runs["residual"]), "--test-image", "5000"], "test image must be an index from 0 to 1999"),
        ([str(no_weights), "--test-image", "0"], "run no-weights has no weights yet"),
        ([str(runs["residual"]), "--test-image", "0", "--threads", "0"], "threads must be an integer from 1 to"),
    ):
        assert main(["inspect", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_the_plain_twin_is_found_and_measured_on_the_same_image(runs):
    residual, plain = runstore.read_run(runs["residual"]), runstore.read_run(runs["plain"])
    assert plain_twin(residual, [residual, plain]).run_id == "plain"
    assert plain_twin(plain, [residual, plain]).run_id == "residual"
    pixels = load_run_data(runs["residual"]).test_images[0]
    ours, theirs = inspect_run(residual, pixels), inspect_run(plain, pixels)
    assert ours.skip and not theirs.skip
    assert [b.name for b in ours.blocks] == [b.name for b in theirs.blocks]


def test_the_page_shows_prediction_gradcam_and_both_nets_ratios(runs, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(runs["residual"].parent))
    at = AppTest.from_file(str(ROOT / "pages" / "8_Inside_a_trained_net.py"), default_timeout=120)
    at.session_state["inside_run"] = "residual"
    at.run()
    assert not at.exception and not at.error
    residual = runstore.read_run(runs["residual"])
    expected = inspect_run(residual, load_run_data(runs["residual"]).test_images[0])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prediction"] == expected.classes[expected.predicted]
    assert metrics["Probability"] == f"{expected.probabilities[expected.predicted]:.1%}"
    charts = {own_title(c): c for c in plotly_specs(at)}
    ratio = charts["Residual ratio per block (hatched: the block changes the shape)"]
    assert [t["name"] for t in ratio["data"]] == ["residual (residual)", "plain (plain twin)"]
    assert ratio["data"][0]["y"] == pytest.approx([b.residual_ratio for b in expected.blocks], rel=1e-4)
    assert any(t.startswith(expected.classes[expected.predicted] + " (predicted") for t in charts)
    at.selectbox(key="inside_class").set_value("checker").run()
    at.radio(key="inside_source").set_value("Sample image").run()
    at.selectbox(key="inside_sample").set_value("plus-transparent.png").run()
    assert not at.exception and not at.error
    assert any(own_title(c).startswith("checker (") for c in plotly_specs(at))
    assert any(i.value.startswith("Alpha channel dropped: ") for i in at.info)
    at.radio(key="inside_source").set_value("Upload").run()
    at.file_uploader(key="inside_upload").upload("notes.png", b"plain text, not an image", "image/png").run()
    assert not at.exception and [e.value for e in at.error] == ["image notes.png is not a PNG or JPEG image that "
                                                                "can be read"]
    palette = Image.new("RGB", (40, 30), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    at.file_uploader(key="inside_upload").set_value(("blue.png", png_bytes(palette), "image/png")).run()
    assert not at.exception and not at.error and "Prediction" in {m.label for m in at.metric}
    assert any(i.value.startswith("Palette image") for i in at.info)


def test_the_servers_upload_limit_is_the_image_readers():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_IMAGE_BYTES


def own_title(spec: dict) -> str:
    """The figure builder's title: the page's chart title (run and settings) moves it to the subtitle."""
    title = spec["layout"].get("title", {})
    return title.get("subtitle", {}).get("text") or title.get("text", "")


def plotly_specs(at) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.main if e.type == "plotly_chart"]


def test_sessions_inspecting_one_shared_model_at_once_each_get_their_own_numbers():
    # A server caches one model per run for every session: hooks from two passes at once would cross.
    model = net()
    images = [torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in range(4)]
    alone = [inspect_model(model, x, CLASSES, [s])[0]["blocks"][0].residual_ratio for s, x in enumerate(images)]
    seen, errors = {}, []

    def session(s: int) -> None:
        try:
            for _ in range(4):
                measured, _ = inspect_model(model, images[s], CLASSES, [s])
                seen.setdefault(s, set()).add(measured["blocks"][0].residual_ratio)
        except Exception as exc:  # reported below; a thread's exception would otherwise only be printed
            errors.append(repr(exc))

    threads = [threading.Thread(target=session, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == {s: {alone[s]} for s in range(4)} and hook_count(model) == 0


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_cli_refuses_a_device_or_a_fifo_as_the_image_without_blocking(runs, tmp_path, kind):
    """/dev/zero has st_size 0 and never ends; a FIFO blocks its reader until someone writes: both are refused
    before a byte is read (in a process of its own, killed after a minute if a regression reads them)."""
    image = Path("/dev/zero") if kind == "device" else tmp_path / "pipe.png"
    if kind == "fifo":
        os.mkfifo(image)
    done = run_cli("inspect", str(runs["residual"]), "--image", str(image))
    what = "a character device" if kind == "device" else "a named pipe (FIFO)"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: image must be a regular file; {image} is "
                                                                  f"{what}\n")


def _run_reading(runs: dict[str, Path], tmp_path: Path, data_dir: str) -> Path:
    """A copy of the residual run whose config.json says it trained on the image folder `data_dir`."""
    run = tmp_path / "elsewhere"
    shutil.copytree(runs["residual"], run)
    config = json.loads((run / runstore.CONFIG).read_text())
    config["train"].update(dataset="imagefolder", data_dir=data_dir)
    (run / runstore.CONFIG).write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("command", [["inspect", "--test-image", "0"], ["landscape", "--points", "3"], ["lesion"]])
def test_a_run_folders_data_dir_outside_the_data_folders_needs_allow_data_dir(runs, tmp_path, capsys, monkeypatch,
                                                                               command):
    """The command line is not fenced, but a run folder may come from someone else: its config.json may name /etc."""
    data = tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)
    run = _run_reading(runs, tmp_path, "/etc")
    assert main([command[0], str(run), *command[1:]]) == 2
    assert capsys.readouterr().err == (f"error: run elsewhere: its data_dir /etc is outside the data folders ({data});"
                                       " pass --allow-data-dir to read it, or add its folder to "
                                       f"{DATA_ROOTS_ENV}\n")
    outside = tmp_path / "outside"
    for name in ("a", "b"):
        (outside / name).mkdir(parents=True)
    (run / runstore.CONFIG).write_text((run / runstore.CONFIG).read_text().replace('"/etc"', f'"{outside}"'))
    assert main([command[0], str(run), *command[1:], "--allow-data-dir"]) == 2  # read: it holds no images
    assert capsys.readouterr().err.endswith(f"{outside} has 2 class folders and 0 images\n")
    monkeypatch.setenv(DATA_ROOTS_ENV, str(tmp_path))  # or the operator allows its folder
    assert main([command[0], str(run), *command[1:]]) == 2
    assert capsys.readouterr().err.endswith(f"{outside} has 2 class folders and 0 images\n")


def test_cli_refuses_a_100_megapixel_image_in_one_line_without_pillows_warning(runs, tmp_path):
    """Pillow warns (DecompressionBombWarning, two lines on stderr) from 89 megapixels, and refuses from 179."""
    image = tmp_path / "big.png"
    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                      + png_chunk(b"IEND", b""))
    done = run_cli("inspect", str(runs["residual"]), "--image", str(image))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"error: image {image} is 10000×10000 = 100,000,000 pixels; images may have at most "
                           "16,777,216 (16.8 megapixels)\n")
