"""What a stored run's model knows, and how far one input lies from it.

A classifier names one of its classes for any input: a hand-drawn digit sent to a net trained on ten shapes comes
back as "ring" with some probability, which says nothing about whether the input resembles a ring. This module
measures how unlike the run's own training images an input is, on the features the classifier takes (the
penultimate layer: the pooled output of the last stage):

- `profile_run` (cached per run and weights file; `profile_cost` says beforehand how many images and mult-adds
  it takes) fits the statistics on a seeded share of the run's training
  images, scores other training images it did not fit on to set the thresholds (the 95th and 99th percentile of
  their scores), and measures the false-alarm rate of each threshold on the run's own test images (the share
  above it). It uses its own copy of the model, so no other pass's hooks can see it;
- `FamiliarityProfile.judge` scores one input's features and logits (from the inspection's forward pass).

Four scores are computed, each higher for an input less like the training images: `mahalanobis` (the squared
distance to the nearest class mean under the classes' shared covariance, Ledoit-Wolf shrunk; Lee et al. 2018),
`channel_z` (the mean squared z-score of the features, per channel, against the training images, class-blind),
`max_softmax` (one minus the top softmax probability; Hendrycks and Gimpel 2017) and `energy` (minus the
log-sum-exp of the logits; Liu et al. 2020). `SCORE` is the one the app flags with: chosen by measuring all four on
real runs against real far inputs (benchmarks/bench_familiarity.py; the figures are in the README).
`class_examples` gives a few of the run's own training images per class, to show what it was trained on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data.image_data import ImageData
from ..data.transforms import normalize
from ..introspect.summary import summarize
from ..models.resnet import ResNet
from ..runs.loading import load_model, load_run_data
from ..runs.store import RunInfo, read_run, weights_file

SCORES = ("mahalanobis", "channel_z", "max_softmax", "energy")
SCORE = "mahalanobis"  # see the module docstring and the README's measurement
PERCENTILES = (95.0, 99.0)  # thresholds: these percentiles of held-out training images' scores
FIT_IMAGES = 1500  # training images the statistics are fitted on (at most)
CALIBRATION_IMAGES = 500  # other training images the thresholds come from (at most; a fifth of a small set)
TEST_IMAGES = 1000  # the run's own test images the false-alarm rate is measured on (at most)
SPLIT_SEED = 0
LEE2018 = ("Lee, Lee, Lee, Shin. A Simple Unified Framework for Detecting Out-of-Distribution Samples and "
           "Adversarial Attacks. NeurIPS 2018 (arXiv:1807.03888)")
SCORE_NAMES = {"mahalanobis": "Mahalanobis distance² to the nearest class", "channel_z": "mean squared channel z",
               "max_softmax": "1 − top softmax probability", "energy": "energy (−log-sum-exp of the logits)"}


def penultimate(model: ResNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """(features (N, D): what the classifier takes, logits (N, K)) of normalised images x: the model's own forward
    pass, split before `fc` (stem, stages, the final norm of a pre-activation net, pooling)."""
    x = model.forward_stem(x)
    for stage in model.stages():
        x = stage(x)
    if model.final_norm is not None:
        x = model.final_norm(x)
    features = torch.flatten(model.avgpool(x), 1)
    return features, model.fc(features)


@torch.inference_mode()
def embed(model: ResNet, images: Tensor, mean: Sequence[float], std: Sequence[float],
          batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """`penultimate` of uint8 images (N, C, H, W) at the model's input size, normalised with the run's statistics;
    float64 (features, logits)."""
    model.eval()
    features, logits = [], []
    for chunk in images.split(batch_size):
        f, z = penultimate(model, normalize(chunk, mean, std))
        features.append(f.double())
        logits.append(z.double())
    return torch.cat(features), torch.cat(logits)


@dataclass(frozen=True)
class FeatureStats:
    """The training images' penultimate features: per class means and the shared (within-class) covariance's
    inverse for Mahalanobis; per channel mean and std for the class-blind z-score."""

    class_means: Tensor  # float64 (K, D)
    precision: Tensor  # float64 (D, D): the inverse of the shrunk shared covariance
    shrinkage: float  # Ledoit-Wolf's weight of the scaled identity, in [0, 1]
    channel_mean: Tensor  # float64 (D,)
    channel_std: Tensor  # float64 (D,)

    @classmethod
    def fit(cls, features: Tensor, labels: Tensor, num_classes: int) -> FeatureStats:
        features = features.double()
        means = torch.stack([features[labels == k].mean(0) if (labels == k).any() else features.mean(0)
                             for k in range(num_classes)])
        centred = features - means[labels]
        covariance, shrinkage = ledoit_wolf(centred)
        return cls(means, torch.linalg.inv(covariance), shrinkage, features.mean(0),
                   features.std(0).clamp_min(1e-6))

    def scores(self, features: Tensor, logits: Tensor) -> dict[str, Tensor]:
        """Every score of `SCORES` for each row: higher is less like the training images."""
        features, logits = features.double(), logits.double()
        diff = features[:, None, :] - self.class_means[None]  # (N, K, D)
        distances = torch.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        z = (features - self.channel_mean) / self.channel_std
        return dict(mahalanobis=distances.min(1).values, channel_z=(z * z).mean(1),
                    max_softmax=1 - torch.softmax(logits, 1).max(1).values, energy=-torch.logsumexp(logits, 1))


def ledoit_wolf(centred: Tensor) -> tuple[Tensor, float]:
    """(covariance, shrinkage) of centred rows (n, p): Ledoit and Wolf's (2004) shrinkage of the sample covariance
    S toward μI (μ = tr S / p), with the weight that minimises the expected squared error; it keeps the inverse
    finite when there are fewer rows than features."""
    n, p = centred.shape
    sample = centred.T @ centred / n
    mu = float(torch.trace(sample)) / p
    delta = float(((sample - mu * torch.eye(p, dtype=sample.dtype)) ** 2).sum()) / p
    row_norms = (centred * centred).sum(1)
    beta = (float((row_norms ** 2).sum()) / n - float((sample ** 2).sum())) / (n * p)
    shrinkage = 1.0 if delta <= 0 else min(max(beta, 0.0), delta) / delta
    identity = torch.eye(p, dtype=sample.dtype)
    return shrinkage * mu * identity + (1 - shrinkage) * sample, shrinkage


@dataclass(frozen=True)
class Threshold:
    percentile: float  # of the held-out training images' scores
    value: float
    false_alarm: float  # the share of the run's test images above it


@dataclass(frozen=True)
class Familiarity:
    """One input judged against a run's training images."""

    score: str  # which score
    value: float
    threshold: Threshold  # the one it is flagged at (the 95th percentile)
    flagged: bool  # above it: far from the training images
    beyond: float  # the share of the held-out training images whose score is below this input's

    @property
    def ratio(self) -> float:
        """The input's score over the threshold."""
        return self.value / self.threshold.value if self.threshold.value else float("inf")


@dataclass(frozen=True)
class FamiliarityProfile:
    """A run's training images as the model sees them, and the thresholds measured on its own data."""

    run_id: str
    score: str
    stats: FeatureStats
    thresholds: tuple[Threshold, ...]  # one per PERCENTILES entry, in that order
    calibration: Tensor  # float64: the held-out training images' scores of `score`, sorted
    fit_images: int
    calibration_images: int
    test_images: int
    seconds: float

    def judge(self, features: Tensor, logits: Tensor) -> Familiarity:
        """The input's score against the first threshold (the 95th percentile); features (D,) and logits (K,)."""
        value = float(self.stats.scores(features.reshape(1, -1), logits.reshape(1, -1))[self.score][0])
        threshold = self.thresholds[0]
        beyond = float(torch.searchsorted(self.calibration, torch.tensor([value], dtype=torch.float64))[0])
        return Familiarity(self.score, value, threshold, value > threshold.value,
                           beyond / max(len(self.calibration), 1))


def split(train_size: int, fit: int = FIT_IMAGES, calibration: int = CALIBRATION_IMAGES,
          seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Disjoint (fit, calibration) indices into the training set, from one seeded permutation: calibration takes
    at most a fifth of a small set, the fit what is left up to `fit`."""
    if train_size < 10:
        raise ValueError(f"a familiarity profile needs at least 10 training images; the run has {train_size}")
    order = torch.randperm(train_size, generator=torch.Generator().manual_seed(seed))
    held = min(calibration, train_size // 5)
    return order[held:held + min(fit, train_size - held)], order[:held]


def measure_scores(model: ResNet, data: ImageData, test_limit: int | None = None) -> dict[str, object]:
    """Everything a profile needs, for every score: the fitted statistics, the held-out training images' scores
    and the test images' scores (first `test_limit` test images, at most TEST_IMAGES)."""
    fit, held = split(len(data.train_labels))
    fit_features, _ = embed(model, data.train_images[fit], data.mean, data.std)
    stats = FeatureStats.fit(fit_features, data.train_labels[fit], data.num_classes)
    limit = min(TEST_IMAGES, len(data.test_labels), test_limit or TEST_IMAGES)
    calibration = stats.scores(*embed(model, data.train_images[held], data.mean, data.std))
    test = stats.scores(*embed(model, data.test_images[:limit], data.mean, data.std))
    return dict(stats=stats, calibration=calibration, test=test, fit_images=len(fit), held=len(held), limit=limit)


def thresholds(calibration: Tensor, test: Tensor, percentiles: Sequence[float] = PERCENTILES) -> tuple[Threshold, ...]:
    """Each percentile of the calibration scores (linear interpolation), and the share of test scores above it."""
    out = []
    for q in percentiles:
        value = float(torch.quantile(calibration, q / 100))
        out.append(Threshold(q, value, float((test > value).double().mean())))
    return tuple(out)


def profile_model(model: ResNet, data: ImageData, run_id: str = "model", score: str = SCORE,
                  test_limit: int | None = None) -> FamiliarityProfile:
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
    tick = time.perf_counter()
    measured = measure_scores(model, data, test_limit)
    calibration, test = measured["calibration"][score], measured["test"][score]
    return FamiliarityProfile(run_id, score, measured["stats"], thresholds(calibration, test),
                              calibration.sort().values, measured["fit_images"], measured["held"], measured["limit"],
                              time.perf_counter() - tick)


def profile_run(run: str | Path | RunInfo) -> FamiliarityProfile:
    """The familiarity profile of a stored run's final weights on its own images, cached per run folder and
    weights file (a new weights file makes a new profile; the MAX_PROFILES latest are kept)."""
    info = run if isinstance(run, RunInfo) else read_run(run)
    key = _profile_key(info)
    if key in _PROFILES:
        return _PROFILES[key]
    model = load_model(info.path)  # a copy of its own: a page's shared model may carry another pass's hooks
    profile = profile_model(model, load_run_data(info.path), info.run_id, test_limit=info.config.train.test_subset)
    with _PROFILES_LOCK:
        _PROFILES[key] = profile
        while len(_PROFILES) > MAX_PROFILES:
            del _PROFILES[next(iter(_PROFILES))]
    return profile


def cached_profile(run: RunInfo) -> FamiliarityProfile | None:
    """The run's profile if it was measured in this process for its current weights file, else None."""
    return _PROFILES.get(_profile_key(run))


def profile_cost(run: RunInfo) -> tuple[int, int]:
    """(images, mult-adds) a profile of the run puts through its model: the fit, calibration and test images, at
    the model's summary's mult-adds per image (its input size, batch 1)."""
    facts = run.config.data
    fit, held = split(facts.train_size)
    limit = min(TEST_IMAGES, facts.test_size, run.config.train.test_subset or TEST_IMAGES)
    images = len(fit) + len(held) + limit
    per_image = summarize(run.config.spec, (facts.channels, facts.image_size, facts.image_size), 1).mult_adds
    return images, images * per_image


def _profile_key(run: RunInfo) -> tuple[str, int, int]:
    weights = weights_file(run.path)
    if weights is None:
        raise ValueError(f"run {run.run_id} has no weights yet")
    stat = weights.stat()
    return str(run.path), stat.st_mtime_ns, stat.st_size


MAX_PROFILES = 8
_PROFILES: dict[tuple[str, int, int], FamiliarityProfile] = {}  # oldest first
_PROFILES_LOCK = threading.Lock()


def class_examples(data: ImageData, per_class: int = 3) -> dict[str, Tensor]:
    """The first `per_class` training images of each class, in the set's order: class name -> uint8 (n, C, H, W)."""
    out = {}
    for k, name in enumerate(data.classes):
        index = (data.train_labels == k).nonzero().flatten()[:per_class]
        out[name] = data.train_images[index]
    return out

