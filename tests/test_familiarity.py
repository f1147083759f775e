"""Know what the model knows: the scores of analysis/familiarity.py against hand computations and scikit-learn,
the thresholds and their false-alarm rates, a real run (trained here) judging its own test image and pure noise,
and the Inside page naming the run's classes, flagging a far input and timing the whole wait."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchinfo
from PIL import Image
from sklearn.covariance import LedoitWolf
from streamlit.testing.v1 import AppTest

from resnet_core.analysis.familiarity import (
    FeatureStats,
    class_examples,
    ledoit_wolf,
    penultimate,
    profile_cost,
    profile_run,
    split,
    thresholds,
)
from resnet_core.analysis.inspect import Waited, inspect_run
from resnet_core.data.synthetic import SYNTHETIC_CLASSES
from resnet_core.models.resnet import build_model
from resnet_core.runs import store as runstore
from resnet_core.runs.execute import execute
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.training.config import TrainConfig

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
# 300 steps on 1,000 images at 16×16: about 60% test accuracy, enough for its features to tell noise from shapes
FAMILIAR = TrainConfig(overrides=dict(width=8, layers=(1, 1, 1)), image_size=16, train_subset=1000, test_subset=200,
                       max_steps=300, batch_size=32, augment="none", probe_every=0, threads=1)


def test_the_penultimate_features_are_what_the_classifier_takes():
    torch.manual_seed(0)
    for model in (build_model("resnet20", num_classes=10), build_model("plain20", num_classes=10),
                  build_model("preact_resnet18", num_classes=7)):  # preact: the final norm before pooling
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            features, logits = penultimate(model.eval(), x)
            expected = model(x)
        assert features.shape == (2, model.fc.in_features)
        torch.testing.assert_close(logits, expected)  # the model's own forward pass, split before fc
        torch.testing.assert_close(model.fc(features), expected)


def test_ledoit_wolf_matches_scikit_learn():
    rows = torch.randn(40, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows[:, 0] *= 5
    rows -= rows.mean(0)
    covariance, shrinkage = ledoit_wolf(rows)
    reference = LedoitWolf(assume_centered=True).fit(rows.numpy())
    assert shrinkage == pytest.approx(reference.shrinkage_, rel=1e-9)
    np.testing.assert_allclose(covariance.numpy(), reference.covariance_, rtol=1e-9, atol=1e-12)


def test_every_score_by_hand():
    """Two classes of four points around (0, 0) and (4, 0): the within-class covariance is 0.5·I, so the shrinkage
    is 1 and Mahalanobis is the squared distance over 0.5."""
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    features = torch.tensor([(x + cx, y) for cx in (0, 4) for x, y in offsets], dtype=torch.float64)
    stats = FeatureStats.fit(features, torch.tensor([0] * 4 + [1] * 4), 2)
    assert stats.shrinkage == 1.0
    np.testing.assert_allclose(stats.precision.numpy(), [[2, 0], [0, 2]])
    probes = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    scores = stats.scores(probes, torch.tensor([[0.0, math.log(3)], [0.0, 0.0]]))
    assert scores["mahalanobis"].tolist() == pytest.approx([8.0, 18.0])  # 2² / 0.5 to either mean; 3² / 0.5
    # channel z against the 8 points: x mean 2, sample variance 36/7; y mean 0, variance 4/7
    assert scores["channel_z"].tolist() == pytest.approx([0.0, (4 / (36 / 7) + 9 / (4 / 7)) / 2])
    assert scores["max_softmax"].tolist() == pytest.approx([0.25, 0.5])  # softmax (1/4, 3/4) and (1/2, 1/2)
    assert scores["energy"].tolist() == pytest.approx([-math.log(4), -math.log(2)])


def test_thresholds_are_percentiles_of_held_out_training_scores_with_their_false_alarm_rate():
    calibration = torch.arange(1, 201, dtype=torch.float64)  # 1 … 200
    test = torch.tensor([10.0, 190.5, 199.0, 300.0], dtype=torch.float64)
    t95, t99 = thresholds(calibration, test)
    assert (t95.percentile, t95.value, t95.false_alarm) == (95.0, pytest.approx(190.05), 0.75)  # 189.05th of 0…199
    assert (t99.percentile, t99.value, t99.false_alarm) == (99.0, pytest.approx(198.01), 0.5)
    fit, held = split(100)
    assert (len(fit), len(held)) == (80, 20) and not set(fit.tolist()) & set(held.tolist())
    fit, held = split(10_000)
    assert (len(fit), len(held)) == (1500, 500)
    with pytest.raises(ValueError, match="at least 10 training images; the run has 9"):
        split(9)


@pytest.fixture(scope="module")
def familiar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("familiar")
    execute(FAMILIAR, run_dir=root / "shapes16")
    return root / "shapes16"


def noise(seed: int, side: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (3, side, side), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_a_real_run_knows_its_test_image_and_flags_noise(familiar):
    profile = profile_run(familiar)
    assert (profile.score, profile.fit_images, profile.calibration_images, profile.test_images) == (
        "mahalanobis", 800, 200, 200)  # 1,000 training images: a fifth held out; the run's 200 test images
    assert [t.percentile for t in profile.thresholds] == [95.0, 99.0]
    assert profile.thresholds[0].value < profile.thresholds[1].value
    assert profile_run(familiar) is profile  # cached per run and weights file
    info, data = runstore.read_run(familiar), load_run_data(familiar)

    def judged(pixels):
        result = inspect_run(info, pixels)
        return profile.judge(result.features, result.logits)

    assert not judged(data.test_images[0]).flagged
    for seed in range(5):  # pure noise at the run's input size
        verdict = judged(noise(seed))
        assert verdict.flagged and verdict.beyond == 1.0 and verdict.ratio > 1, seed
    assert judged(torch.full((3, 40, 30), 255, dtype=torch.uint8)).flagged  # a blank white page


def test_the_cost_of_a_profile_is_known_before_it_is_measured(familiar):
    info = runstore.read_run(familiar)
    images, mult_adds = profile_cost(info)
    assert images == 800 + 200 + 200
    model = load_model(familiar)
    per_image = torchinfo.summary(model, (1, 3, 16, 16), verbose=0).total_mult_adds  # an independent count
    assert mult_adds == 1200 * per_image


def test_class_examples_are_the_first_training_images_of_each_class(familiar):
    data = load_run_data(familiar)
    examples = class_examples(data, 3)
    assert list(examples) == list(SYNTHETIC_CLASSES)
    for k, images in enumerate(examples.values()):
        first = (data.train_labels == k).nonzero().flatten()[:3]
        assert torch.equal(images, data.train_images[first])


def test_waited_adds_up_its_phases_in_order():
    waited = Waited()
    waited.extend([("decode", 0.684), ("forward pass, hooks and Grad-CAM", 1.5)])
    assert waited.total == pytest.approx(2.184)
    assert waited.text() == "decode 684 ms, forward pass, hooks and Grad-CAM 1.50 s"
    with waited.phase("score"):
        pass
    assert [what for what, _ in waited.phases] == ["decode", "forward pass, hooks and Grad-CAM", "score"]


def png(pixels: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_inside_page_names_the_classes_and_flags_a_far_upload(familiar, monkeypatch):
    monkeypatch.setenv(runstore.RUNS_ENV, str(familiar.parent))
    at = AppTest.from_file(str(ROOT / "pages" / "8_Inside_a_trained_net.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    assert ("it knows only these **10 classes** — disk, ring, square, frame, triangle, plus, cross, h-stripes, "
            "v-stripes, checker.") in "\n".join(m.value for m in at.markdown)
    examples = next(json.loads(e.proto.spec) for e in at.get("plotly_chart") if "inside_examples" in str(e.proto.id))
    assert [a["text"] for a in examples["layout"]["annotations"]] == list(SYNTHETIC_CLASSES)
    assert len(examples["data"]) == 10
    assert [s.value.split("**")[1] for s in at.success] == ["Like the training images."]  # test image 0
    captions = "\n".join(c.value for c in at.caption)
    assert "the 95th percentile of 200 other training images" in captions
    assert "on the run's first 200 test images" in captions
    assert "Waited" in {m.label for m in at.metric}
    assert "from the test image in memory to this result, every phase measured: take the test image" in captions

    at.radio(key="inside_source").set_value("Upload").run()
    at.file_uploader(key="inside_upload").set_value(("noise.png", png(noise(0)), "image/png")).run()
    assert not at.exception and not at.error
    assert [w.value.split("**")[1] for w in at.warning] == ["Far from the training images."]
    assert "The model still answers with one of its 10 classes" in at.warning[0].value
    waited = next(c.value for c in at.caption if c.value.startswith("Waited "))
    assert "from the upload's bytes on the server to this result, every phase measured: read the upload" in waited
    assert ", decode " in waited and "resize to 16×16 and normalise" in waited
