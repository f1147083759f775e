"""One process × 2 threads against 2 processes × 1 thread (torchrun, gloo) on this machine, the same command.

    .venv/bin/python -m benchmarks.bench_distributed [--steps 60]

The runs are `train resnet20 --dataset synthetic --steps N --json` (global batch 128, seeded), each timed as a
whole process; printed side by side: training images/s, test accuracy, wall clock, and their ratios, for 1 process,
2 processes, and 2 processes with --sync-bn. Then the
communication share of a data-parallel step: under torchrun, this script times training steps of the same
model with DistributedDataParallel's gradient all_reduce (a normal step) and without it (`no_sync()`, each rank
only computing), interleaved in rounds, the fastest of each kind; share = 1 - without / with. On a busy machine
that difference drowns in noise, so the all_reduce of one step's gradients is also timed alone, as a share of a
step. The 1-minute load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMM_STEPS, COMM_ROUNDS, COMM_WARMUP = 8, 5, 3


def train(launcher: list[str], threads: int, steps: int, runs: str, *flags: str) -> tuple[dict, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), RESNET_EXPLORER_RUNS=runs)
    tick = time.perf_counter()
    out = subprocess.run([*launcher, "-m", "resnet_core", "train", "resnet20", "--dataset", "synthetic", "--steps",
                          str(steps), "--threads", str(threads), "--json", *flags], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - tick


def communication_share() -> None:
    """Run under torchrun: seconds per step with and without the gradient all_reduce (rank 0 prints JSON)."""
    import torch
    import torch.nn.functional as F

    from resnet_core.models.presets import resolve_spec
    from resnet_core.training.distributed import Replicas
    from resnet_core.training.engine import build_seeded_model

    torch.set_num_threads(1)
    replicas = Replicas.from_env("cpu")
    model = build_seeded_model(resolve_spec("resnet20"), 0).to(memory_format=torch.channels_last)
    net = replicas.prepare(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(128 // replicas.world_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (len(x),))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    def seconds(sync: bool) -> float:
        torch.distributed.barrier()
        tick = time.perf_counter()
        for _ in range(COMM_STEPS):
            if sync:
                step()
            else:
                with net.no_sync():
                    step()
        torch.distributed.barrier()
        return (time.perf_counter() - tick) / COMM_STEPS

    for _ in range(COMM_WARMUP):
        step()
    rounds = [(seconds(True), seconds(False)) for _ in range(COMM_ROUNDS)]  # interleaved, against a busy machine
    with_comm, without = (min(times) for times in zip(*rounds))
    gradients = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # what DDP all_reduces a step
    allreduce = []
    for _ in range(COMM_STEPS * COMM_ROUNDS):
        torch.distributed.barrier()
        tick = time.perf_counter()
        torch.distributed.all_reduce(gradients)
        allreduce.append(time.perf_counter() - tick)
    if replicas.writes:
        print(json.dumps(dict(step_with_allreduce=with_comm, step_without=without, allreduce=min(allreduce),
                              gradient_bytes=gradients.numel() * gradients.element_size())))
    replicas.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--comm", action="store_true", help="(internal) the step timing, under torchrun")
    args = parser.parse_args()
    if args.comm:
        communication_share()
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs = str(ROOT / "runs" / "bench_distributed")
    one, one_wall = train([sys.executable], 2, args.steps, runs)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two, two_wall = train(torchrun, 1, args.steps, runs)
    sync, sync_wall = train(torchrun, 1, args.steps, runs, "--sync-bn")
    print(f"{'':22}{'1 process x 2 threads':>22}{'2 processes x 1 thread':>24}{'ratio':>7}{'same, --sync-bn':>17}"
          f"{'ratio':>7}")
    for label, key in (("training images/s", "images_per_sec"), ("test accuracy", "test_acc"),
                       ("training seconds", "seconds")):
        print(f"{label:22}{one[key]:>22.4g}{two[key]:>24.4g}{two[key] / one[key]:>7.3f}{sync[key]:>17.4g}"
              f"{sync[key] / one[key]:>7.3f}")
    print(f"{'whole command, s':22}{one_wall:>22.1f}{two_wall:>24.1f}{two_wall / one_wall:>7.3f}{sync_wall:>17.1f}"
          f"{sync_wall / one_wall:>7.3f}")
    print(f"accuracy gap to 1 process: {abs(two['test_acc'] - one['test_acc']) * 100:.2f} points, --sync-bn "
          f"{abs(sync['test_acc'] - one['test_acc']) * 100:.2f} (world_size {two['world_size']})")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([*torchrun, "-m", "benchmarks.bench_distributed", "--comm"], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    comm = json.loads(out.strip().splitlines()[-1])
    share = 1 - comm["step_without"] / comm["step_with_allreduce"]
    print(f"DDP step, resnet20, 64 images a rank: {comm['step_with_allreduce'] * 1000:.1f} ms with the gradient "
          f"all_reduce, {comm['step_without'] * 1000:.1f} ms without: communication share {share:.1%}")
    print(f"all_reduce of the {comm['gradient_bytes'] / 2**20:.2f} MiB of gradients alone (fastest of "
          f"{COMM_STEPS * COMM_ROUNDS}): {comm['allreduce'] * 1000:.2f} ms = "
          f"{comm['allreduce'] / comm['step_with_allreduce']:.1%} of a step")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
