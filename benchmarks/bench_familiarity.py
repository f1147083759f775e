"""Which score flags inputs far from a run's training images: the measurement behind familiarity.SCORE.

For each stored run given, all four scores of resnet_core/analysis/familiarity.py are fitted on the run's own
training images (FIT_IMAGES of them), the threshold is the 95th percentile of other training images' scores
(CALIBRATION_IMAGES, not fitted on), and then, per score:
- the false-alarm rate: the share of the run's own test images above the threshold (about 5% is the design);
- the detection rate on far inputs, at that threshold: scikit-learn's 1,797 real handwritten digits (8×8, as
  shipped: light ink on black; and inverted: dark ink on white, like a digit drawn on paper), uniform noise,
  constant colours, and the run's test images with their pixels shuffled (same colours, no shapes);
- the AUROC of test images against each far set (0.5: no better than chance; 1: every far input scores higher).
The far sets are resized to the run's input like an upload is (data/images.model_input). Seeded: the same numbers
on every run of this script.

    .venv/bin/python -m benchmarks.bench_familiarity RUN_DIR [RUN_DIR ...]

Needs scikit-learn (requirements-dev.txt). The run's data must be readable here.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from sklearn.datasets import load_digits

from resnet_core.analysis.familiarity import SCORES, embed, measure_scores, thresholds
from resnet_core.data.transforms import convert_channels, resize
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.runs.store import read_run

FAR_IMAGES = 500  # noise, constant and shuffled images per set


def far_sets(test_images: torch.Tensor, channels: int, side: int) -> dict[str, torch.Tensor]:
    """Far inputs as uint8 (N, channels, side, side)."""
    g = torch.Generator().manual_seed(0)
    digits = torch.from_numpy(load_digits().images).mul(255 / 16).round().to(torch.uint8)[:, None]
    sets = {"digits (light on dark)": digits, "digits (dark on light)": 255 - digits,
            "uniform noise": torch.randint(0, 256, (FAR_IMAGES, 3, 32, 32), generator=g, dtype=torch.uint8),
            "constant colours": torch.randint(0, 256, (FAR_IMAGES, 3, 1, 1), generator=g,
                                              dtype=torch.uint8).expand(-1, -1, 32, 32)}
    picked = test_images[:FAR_IMAGES]
    n, c, h, w = picked.shape
    order = torch.argsort(torch.rand(n, h * w, generator=g), dim=1)
    flat = picked.reshape(n, c, h * w)
    sets["shuffled test pixels"] = torch.gather(flat, 2, order[:, None, :].expand(-1, c, -1)).reshape(n, c, h, w)
    return {name: resize(convert_channels(images.contiguous(), channels), side) for name, images in sets.items()}


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """P(an outside score > an inside score), ties counted half."""
    greater = (outside[:, None] > inside[None]).double().mean()
    ties = (outside[:, None] == inside[None]).double().mean()
    return float(greater + ties / 2)


def measure(run_dir: str) -> None:
    info = read_run(run_dir)
    model, data = load_model(run_dir), load_run_data(run_dir)
    tick = time.perf_counter()
    measured = measure_scores(model, data, info.config.train.test_subset)
    far = {name: measured["stats"].scores(*embed(model, images, data.mean, data.std))
           for name, images in far_sets(data.test_images, data.channels, data.image_size).items()}
    acc = info.final.test_acc if info.final and info.final.test_acc is not None else float("nan")
    print(f"\n{info.run_id}: {info.config.train.model} on {data.name} {data.image_size}×{data.image_size}, test acc "
          f"{acc:.2%}; fitted on {measured['fit_images']}, threshold from {measured['held']} other training "
          f"images, false alarms on {measured['limit']} test images ({time.perf_counter() - tick:.1f} s)")
    print(f"{'score':<12} {'false alarm':>11}  " + "  ".join(f"{name[:22]:>22}" for name in far))
    for score in SCORES:
        (threshold,) = thresholds(measured["calibration"][score], measured["test"][score], (95.0,))
        cells = [f"{float((s[score] > threshold.value).double().mean()):>6.1%} "
                 f"AUROC {auroc(measured['test'][score], s[score]):.3f}" for s in far.values()]
        print(f"{score:<12} {threshold.false_alarm:>11.1%}  " + "  ".join(f"{c:>22}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="run folders with weights")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; cells: detected at the 95th-percentile threshold, and AUROC "
          "against the test images")
    for run_dir in args.runs:
        measure(run_dir)


if __name__ == "__main__":
    main()
