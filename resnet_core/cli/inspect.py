"""`inspect`: what a stored run's model does with one image.

    python -m resnet_core inspect RUN_DIR --image PATH [--class K] [--threads N] [--json]

--image takes a PNG or JPEG (a regular file, capped in bytes and pixels, see data/images.py); `--test-image N` takes
image N of the run's test set instead (its data_dir, from the run's config.json, must be inside the data folders
unless --allow-data-dir is given: see run_data.py). --class (an index or a class name) adds Grad-CAM for that class;
without it Grad-CAM is for the predicted class. --json prints one object: prediction (class, index, probability,
top5), stages (name, shape, mean_abs_activation), blocks (name, residual_ratio, changes_shape), gradcam_class and
gradcam (a 2-D list in [0, 1] at the model's input size), notes (what was changed on the way in) and seconds.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..analysis.inspect import class_index, inspect_run
from ..data.images import from_test_set, read_image_file
from ..runs.loading import load_model, load_run_data
from ..runs.store import read_run
from ..training.config import cores
from ..validation import check_int
from .run_data import add_allow_data_dir, fenced_run
from .spec_args import whole_number


def register(sub) -> None:
    p = sub.add_parser("inspect", help="a stored run's prediction, feature maps, residual ratios and Grad-CAM")
    p.add_argument("run_dir", help="a run folder with weights")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="a PNG or JPEG file")
    source.add_argument("--test-image", type=whole_number("test-image"), help="image N of the run's test set")
    p.add_argument("--class", dest="target", help="Grad-CAM for this class (index or name; default: the predicted)")
    p.add_argument("--threads", type=whole_number("threads"), default=1,
                   help="torch threads (default 1: one image gains little from more, and on a busy machine a second "
                        "thread made it several times slower, see bench_inspect)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    add_allow_data_dir(p)
    p.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    check_int("threads", args.threads, 1, cores())
    torch.set_num_threads(args.threads)
    # --test-image reads the run's data again: its data_dir is fenced (run_data.py); --image reads only the image
    info = read_run(args.run_dir) if args.image is not None else fenced_run(args.run_dir, args.allow_data_dir)
    classes = info.config.data.classes
    target = class_index(args.target, classes) if args.target is not None else None
    model = load_model(info.path)  # before the image: a run without weights says so first
    notes: tuple[str, ...] = ()
    if args.image is not None:
        image = read_image_file(args.image)
        pixels, notes = image.pixels, image.notes
    else:
        pixels = from_test_set(load_run_data(info.path).test_images, args.test_image)
    result = inspect_run(info, pixels, [target] if target is not None else [], model=model)
    if args.json:
        print(json.dumps(dict(run=info.run_id, **result.to_json(target), notes=list(notes),
                              seconds=round(result.seconds, 4))))
        return 0
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{info.run_id}: predicted {classes[result.predicted]} "
          f"({result.probabilities[result.predicted]:.1%}); top 5: "
          + ", ".join(f"{classes[i]} {p:.1%}" for i, p in result.top()))
    for stage in result.stages:
        print(f"  {stage.name:<8} {'x'.join(map(str, stage.shape)):>12}  mean |activation| {stage.mean_abs:.4g}")
    kind = "residual" if result.skip else "plain"
    print(f"residual ratio ||F(x)|| / ||x|| per block ({kind} net; * changes the shape):")
    for block in result.blocks:
        print(f"  {block.name:<10} {block.residual_ratio:.4f}{' *' if block.changes_shape else ''}")
    shown = target if target is not None else result.predicted
    cam = result.gradcam[shown]
    y, x = divmod(int(cam.argmax()), cam.shape[1])
    print(f"Grad-CAM for {classes[shown]}: {cam.shape[0]}x{cam.shape[1]}, peak at row {y}, column {x}, "
          f"{(cam > 0.5).mean():.0%} of the image above half the peak ({result.seconds:.2f} s)")
    return 0
