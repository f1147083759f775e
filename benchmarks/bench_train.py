"""Goals: our training engine ≥ 3× the images/s of the seeds' recipe with equal or better test accuracy after
the same epochs; probes on (every 20 steps) cost ≤ 10% of the throughput.

The seeds' recipe, as in the classic PyTorch CIFAR tutorial: a Dataset of PIL images with torchvision
transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a DataLoader
(batch 128, shuffle, num_workers=2), an NCHW fp32 model, SGD lr 0.1 momentum 0.9 wd 5e-4 with cosine
annealing. Ours: `resnet_core.training.engine.fit` with its defaults. Same model (ResNet-20, same seed), same
data (the synthetic set), same machine, measured in this one run; images/s counts training only.
The machine may be shared, so the load average is printed with the results.

Two more measurements put the 3× goal in context:
- the roofline: the machine's peak measured in this run by large matrix multiplies (2048² and 4096², best of 5)
  in fp32 and in bf16, against the training GFLOP/s achieved, computed from the model's own mult-adds
  (`summarize`) and the images/s: one training image costs 3 × the forward mult-adds × 2 FLOPs. The factor 3:
  the forward pass is 1×; the backward pass computes, for every conv and linear layer, the gradient of its input
  and the gradient of its weights, each a product of the same size as the forward one (2×); BatchNorm, ReLU and
  the optimizer are left out (memory-bound, a few FLOPs an element). No fp32 engine trains faster than the fp32
  peak over those FLOPs, whatever its input pipeline;
- time to the seeds' accuracy: our recipe on a smaller step budget (a quarter, half, one epoch...), the
  first budget whose test accuracy reaches the seeds' 2-epoch accuracy, against the seeds' wall clock.

Two more for a real, busy machine:
- one busy core: our images/s quiet and with another process spinning on one core, for each OpenMP wait
  policy (PASSIVE, which resnet_core sets at import, and ACTIVE, the spinning default), each in a fresh
  process since the runtime reads the policy once, on torch's thread count (`fit`; the CLI's default, which takes
  fewer threads beside a busy core, is timed by bench_busy_core). Goal: busy >= 50% of quiet;
- precision: images/s in fp32 and bf16 autocast on this CPU, and what precision "auto" measures and picks here
  (a fresh measurement, in a temporary cache folder).

Run from the repo root: .venv/bin/python -m benchmarks.bench_train [--epochs 2] [--workers 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from resnet_core.data.image_data import ImageData
from resnet_core.data.sets import load_dataset
from resnet_core.data.transforms import augment, normalize
from resnet_core.introspect.summary import summarize
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import build_seeded_model, fit, model_spec, steps_per_epoch
from resnet_core.training.hardware import describe_cpu
from resnet_core.training.settings import resolve_settings
from resnet_core.training.verdicts import CACHE_ENV


class PILImages(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in images]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def seeds_loaders(data: ImageData, config: TrainConfig, workers: int) -> tuple[DataLoader, DataLoader]:
    normalize = T.Normalize(data.mean, data.std)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    test_tf = T.Compose([T.ToTensor(), normalize])
    train = DataLoader(PILImages(data.train_images, data.train_labels, train_tf), batch_size=config.batch_size,
                       shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    test = DataLoader(PILImages(data.test_images, data.test_labels, test_tf), batch_size=256, num_workers=workers)
    return train, test


def data_only(data: ImageData, config: TrainConfig, workers: int) -> tuple[float, float]:
    """Images/s of each input pipeline alone (one epoch of batches, no model): seeds', ours."""
    train, _ = seeds_loaders(data, config, workers)
    tick = time.perf_counter()
    images = sum(len(y) for _, y in train)
    seeds = images / (time.perf_counter() - tick)
    g = torch.Generator().manual_seed(config.seed)
    tick = time.perf_counter()
    order = torch.randperm(len(data.train_labels), generator=g)
    for i in range(len(train)):
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        x = normalize(augment(data.train_images[idx], g, config.pad), data.mean, data.std, channels_last=True)
        _ = data.train_labels[idx], x
    return seeds, images / (time.perf_counter() - tick)


def seeds_recipe(data: ImageData, config: TrainConfig, workers: int) -> tuple[float, float, float]:
    """(training images/s, final test accuracy, wall-clock seconds including the test pass) of the tutorial recipe."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train, test = seeds_loaders(data, config, workers)
    model = build_seeded_model(model_spec(config, data), config.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(train))
    images, seconds = 0, 0.0
    for _ in range(config.epochs):
        model.train()
        tick = time.perf_counter()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            images += len(y)
        seconds += time.perf_counter() - tick
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((model(x).argmax(1) == y).sum())
    return images / seconds, correct / len(data.test_labels), time.perf_counter() - started


def matmul_peaks(repeats: int = 5) -> dict[str, float]:
    """precision -> the best FLOP/s of a large square matrix multiply on this machine (2048² and 4096²)."""
    best = {"fp32": 0.0, "bf16": 0.0}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for side in (2048, 4096):
            a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
            a @ b  # the first call pays for allocation and thread start-up
            for _ in range(repeats):
                tick = time.perf_counter()
                a @ b
                best[precision] = max(best[precision], 2 * side ** 3 / (time.perf_counter() - tick))
    return best


def training_flops(config: TrainConfig, data: ImageData) -> tuple[int, float]:
    """(forward mult-adds of one image, FLOPs of one training image = 3 × mult-adds × 2; see the docstring)."""
    forward = summarize(model_spec(config, data), (data.channels, data.image_size, data.image_size), 1).mult_adds
    return forward, 3 * 2 * forward


def time_to_accuracy(config: TrainConfig, data: ImageData, target: float) -> tuple[float, float, float]:
    """(epochs, wall-clock seconds, test accuracy) of the smallest budget whose accuracy reaches `target`."""
    per_epoch = steps_per_epoch(config, len(data.train_labels))
    for epochs in (0.25, 0.5, 1.0, 2.0, 4.0):
        result = fit(config.replace(max_steps=max(1, round(epochs * per_epoch)), probe_every=0), data=data)
        print(f"  ours on a {epochs:g}-epoch budget: test accuracy {result.final.test_acc:.2%} in "
              f"{result.final.seconds:.1f} s")
        if result.final.test_acc >= target:
            break
    return epochs, result.final.seconds, result.final.test_acc


def probes_cost(config: TrainConfig, steps: int, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` images/s with probes off and on, runs interleaved so both see the same load."""
    best = {0: 0.0, 20: 0.0}
    for _ in range(repeats):
        for every in best:
            result = fit(config.replace(max_steps=steps, probe_every=every, test_subset=256))
            best[every] = max(best[every], result.final.images_per_sec)
    return best[0], best[20]


def throughput(steps: int, precision: str = "fp32") -> float:
    """Median logged images/s of a `steps`-step default run (probes off), after its first two windows."""
    result = fit(TrainConfig(max_steps=steps, precision=precision, probe_every=0, test_subset=256))
    rates = [r.images_per_sec for r in result.records if type(r).__name__ == "TrainRecord"][2:]
    return sorted(rates)[len(rates) // 2]


def fresh_throughput(steps: int, precision: str, env: dict[str, str] | None = None) -> float:
    """`throughput` in a fresh process: switching precisions inside one process makes oneDNN set its kernels up
    again, which took bf16 seconds a switch here (a bf16 run after an fp32 one trained at 64-118 images/s, after a
    bf16 one at 977)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_train", "--throughput", str(steps), "--precision", precision]
    done = subprocess.run(cmd, env=env, cwd=Path(__file__).resolve().parent.parent, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout)["images_per_sec"]


def precision_rates(steps: int, repeats: int) -> dict[str, float]:
    """precision -> the best images/s of `repeats` fresh-process runs, fp32 and bf16 in turns."""
    rates = {"fp32": 0.0, "bf16": 0.0}
    for _ in range(repeats):
        for precision in rates:
            rates[precision] = max(rates[precision], fresh_throughput(steps, precision))
    print(f"precision: fp32 {rates['fp32']:.0f}, bf16 autocast {rates['bf16']:.0f} images/s "
          f"({rates['bf16'] / rates['fp32']:.2f}x; best of {repeats} interleaved {steps}-step runs, each in a fresh "
          f"process and the median of its logged windows); load average {os.getloadavg()[0]:.2f}")
    return rates


def busy_core(steps: int) -> dict[str, tuple[float, float]]:
    """policy -> (quiet, one core busy) images/s, each in a fresh process with that OpenMP wait policy."""
    out = {}
    for policy in ("PASSIVE", "ACTIVE"):
        env = dict(os.environ, OMP_WAIT_POLICY=policy)
        rates = []
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                rates.append(fresh_throughput(steps, "fp32", env))
            finally:
                if spinner is not None:
                    spinner.kill()
        out[policy] = (rates[0], rates[1])
    return out


def report_roof_and_time(config: TrainConfig, data, args: argparse.Namespace, seeds_ips: float, seeds_acc: float,
                         seeds_seconds: float) -> dict[str, float]:
    """The fp32 compute roof against the seeds' recipe, and the time each engine takes to the recipe's accuracy;
    returns the matmul peaks for the roofline."""
    forward, flops = training_flops(config, data)
    peaks = matmul_peaks()
    print(f"peak by matmul, {args.threads} threads: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
          f"{peaks['bf16'] / 1e9:.0f} GFLOP/s ({peaks['bf16'] / peaks['fp32']:.2f}x); one training image = 3 x "
          f"{forward / 1e6:.1f}M mult-adds x 2 = {flops / 1e6:.0f} MFLOP (forward 1x, backward 2x: input and weight "
          f"gradients); load average {os.getloadavg()[0]:.2f}")
    roof = peaks["fp32"] / flops
    print(f"fp32 compute roof: {roof:.0f} images/s; no fp32 engine can beat the seeds' recipe by more than "
          f"{roof / seeds_ips:.2f}x on this machine")
    epochs, seconds, acc = time_to_accuracy(config, data, seeds_acc)
    print(f"time to the seeds' {seeds_acc:.2%}: ours {seconds:.1f} s ({epochs:g} epochs, {acc:.2%}) against "
          f"{seeds_seconds:.1f} s = {seeds_seconds / seconds:.2f}x sooner")
    return peaks


def report_roofline(config: TrainConfig, data: ImageData, peaks: dict[str, float], rates: dict[str, float]) -> None:
    """Achieved training GFLOP/s in each precision as a fraction of each measured peak."""
    _, flops = training_flops(config, data)
    for precision, ips in rates.items():
        achieved = ips * flops
        print(f"roofline, {precision} training: {ips:.0f} images/s x {flops / 1e6:.0f} MFLOP = "
              f"{achieved / 1e9:.1f} GFLOP/s = {achieved / peaks['fp32']:.1%} of the fp32 peak, "
              f"{achieved / peaks['bf16']:.1%} of the bf16 peak")


def auto_verdict(config: TrainConfig, data: ImageData) -> str:
    """What precision "auto" measures and picks for `config` here, measured afresh (a temporary cache folder)."""
    with tempfile.TemporaryDirectory() as cache:
        before = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = cache
        try:
            model = build_seeded_model(model_spec(config, data), config.seed)
            settings = resolve_settings(config, data, model)
        finally:
            os.environ.pop(CACHE_ENV) if before is None else os.environ.__setitem__(CACHE_ENV, before)
    return f"auto picks {settings.precision} here: {settings.precision_reason}"


def report_machine_settings(config: TrainConfig, args: argparse.Namespace) -> dict[str, float]:
    """What the machine's sharing, the precision and the probes cost; returns the images/s of each precision."""
    for policy, (quiet, busy) in busy_core(args.probe_steps).items():
        print(f"one core busy, OMP_WAIT_POLICY={policy}: {busy:.0f} vs {quiet:.0f} images/s quiet = {busy / quiet:.0%} "
              f"(goal >= 50%)")
    rates = precision_rates(args.probe_steps, args.repeats)
    print(auto_verdict(config.replace(epochs=None), load_dataset("synthetic")))
    off, on = probes_cost(config.replace(precision="fp32"), args.probe_steps, args.repeats)
    print(f"probes every 20 steps: {on:.0f} vs {off:.0f} images/s off, cost {100 * (1 - on / off):.1f}% (goal <= 10%; "
          f"best of {args.repeats} interleaved {args.probe_steps}-step runs)")
    return rates


def precision_only(args: argparse.Namespace) -> None:
    config, data = TrainConfig(threads=args.threads), load_dataset("synthetic")
    print(f"CPU: {describe_cpu()}; load average before: {os.getloadavg()[0]:.2f}")
    peaks = matmul_peaks()
    print(f"peak by matmul, {args.threads} threads: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
          f"{peaks['bf16'] / 1e9:.0f} GFLOP/s; load average {os.getloadavg()[0]:.2f}")
    rates = precision_rates(args.probe_steps, args.repeats)
    print(auto_verdict(config, data))
    report_roofline(config, data, peaks, rates)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="the recipe's DataLoader workers (default 2)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput", type=int, metavar="STEPS", help="only print one run's images/s as JSON")
    parser.add_argument("--precision", default="fp32", help="with --throughput: the run's precision")
    parser.add_argument("--precision-only", action="store_true",
                        help="only the matmul peaks, fp32 against bf16, what auto picks, and the roofline")
    args = parser.parse_args()
    if args.throughput:
        print(json.dumps(dict(images_per_sec=throughput(args.throughput, args.precision))))
        return
    if args.precision_only:
        precision_only(args)
        return
    torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs, threads=args.threads)
    data = load_dataset("synthetic")
    print(f"CPU: {describe_cpu()}")
    print(f"ResNet-20 on synthetic ({len(data.train_labels)} train / {len(data.test_labels)} test, 32×32), "
          f"{args.epochs} epochs, batch {config.batch_size}, {args.threads} torch threads, "
          f"load average before: {os.getloadavg()[0]:.2f}")

    seeds_data, ours_data = data_only(data, config, args.workers)
    print(f"input pipeline alone: seeds' {seeds_data:.0f} images/s, ours {ours_data:.0f} images/s "
          f"({ours_data / seeds_data:.1f}x)")
    seeds_ips, seeds_acc, seeds_seconds = seeds_recipe(data, config, args.workers)
    print(f"seeds' recipe (PIL + torchvision transforms + DataLoader, {args.workers} workers, NCHW fp32): "
          f"{seeds_ips:7.0f} images/s, test accuracy {seeds_acc:.2%}, {seeds_seconds:.1f} s")
    ours = fit(config.replace(probe_every=0), data=data)
    ours_ips, ours_acc = ours.final.images_per_sec, ours.final.test_acc
    print(f"ours (uint8 tensors, batched augmentation, channels_last, one-cycle, precision "
          f"{ours.settings.precision}): {ours_ips:7.0f} images/s, test accuracy {ours_acc:.2%}, "
          f"{ours.final.seconds:.1f} s ({ours.settings.precision_reason})")
    print(f"speed-up: {ours_ips / seeds_ips:.2f}x (goal >= 3x); accuracy {100 * (ours_acc - seeds_acc):+.2f} points "
          f"(goal >= 0)")

    peaks = report_roof_and_time(config, data, args, seeds_ips, seeds_acc, seeds_seconds)
    rates = report_machine_settings(config, args)
    report_roofline(config, data, peaks, rates | {f"default ({ours.settings.precision})": ours_ips})
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
