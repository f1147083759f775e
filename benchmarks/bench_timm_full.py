"""The timm names too big for CI, at full depth: randomised timm weights through `load_state_dict` give timm's outputs.

tests/test_timm_oracle.py runs the names over 150M parameters at one block per stage; this runs them (or any names
given, or `--all` 132) at their full depth: timm's model and ours are built (the big ones on the meta device, then
materialised: their initialisation would be overwritten anyway), timm's weights and batch-norm statistics are
randomised as in the oracle, loaded into ours with the timm name as `architecture`, and both run on one 64×64
image. Prints the relative error (goal: < 1e-6), the parameter counts and the time per name, with the load average
(the machine is shared).
Run from the repo root: .venv/bin/python -m benchmarks.bench_timm_full [NAME ...] [--all]
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import timm
import torch

from resnet_core import PRESETS, build_model, load_state_dict
from tests.test_timm_oracle import BIG, randomize

GOAL = 1e-6


def check(name: str, side: int) -> tuple[float, int, int]:
    """(relative error, timm's parameters, ours) at full depth."""
    if name in BIG:  # hundreds of MB: not initialised (randomize and the load overwrite it; none has a blur pool,
        with torch.device("meta"):  # whose fixed filter is a buffer outside the state_dict)
            theirs, ours = timm.create_model(name), build_model(name)
        theirs, ours = theirs.to_empty(device="cpu"), ours.to_empty(device="cpu")
    else:
        theirs, ours = timm.create_model(name), build_model(name)
    theirs, ours = theirs.eval(), ours.eval()
    randomize(theirs)
    load_state_dict(ours, theirs.state_dict(), source="timm", architecture=name)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    counts = sum(p.numel() for p in theirs.parameters()), sum(p.numel() for p in ours.parameters())
    return ((got - expected).norm() / expected.norm()).item(), *counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="timm names (default: the ones over 150M parameters)")
    parser.add_argument("--all", action="store_true", help="every timm name built here")
    parser.add_argument("--side", type=int, default=64, help="input height and width")
    args = parser.parse_args()
    names = ([p.timm for p in PRESETS.values() if p.timm and p.timm == p.name] if args.all else
             args.names or sorted(BIG, key=BIG.get))
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    worst = 0.0
    for name in names:
        start = time.perf_counter()
        error, theirs, ours = check(name, args.side)
        gc.collect()
        worst = max(worst, error if error == error else float("inf"))  # nan: not a match
        verdict = "ok" if error < GOAL and theirs == ours else "FAILED"
        print(f"{name}: relative error {error:.2e} [goal < {GOAL:g}], {theirs:,} parameters in timm, {ours:,} here, "
              f"{time.perf_counter() - start:.1f} s, load {os.getloadavg()[0]:.1f}: {verdict}", flush=True)
    print(f"{len(names)} names, worst relative error {worst:.2e}")


if __name__ == "__main__":
    main()
