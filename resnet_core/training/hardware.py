"""What this machine is, read at run time: the names and facts that key a measured verdict, never a speed claim;
and `torch_threads`, the one way the package changes torch's thread count.

CPU flags say which instructions exist, not what runs faster: bf16 autocast trained ResNet-20 at 0.78× fp32's
images/s on an AVX512-BF16 Xeon without AMX, and 1.18× faster on this AVX512-BF16 AMD EPYC
(benchmarks/bench_train.py). So nothing here decides a precision; `precision.py` measures it on the run's own model
and keys the verdict by what this module reports (`device_name`, `cpu_features`, the core count).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "bf16")  # /proc/cpuinfo flags naming bf16 instructions


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """torch's vector capability and a short digest of every CPU flag: two CPUs a hypervisor names alike ("AMD
    EPYC") but that differ in their instructions get different verdict keys."""
    digest = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return f"{torch.backends.cpu.get_cpu_capability()} flags:{digest}"


def device_name(device: torch.device) -> str:
    """The processor `device` names: the CPU's model string, or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def describe_cpu() -> str:
    """One line for reports: the CPU, its vector extensions, the bf16 instructions it lists (a fact, not a speed:
    see the module docstring) and the core count."""
    vector = torch.backends.cpu.get_cpu_capability()
    bf16 = [flag for flag in BF16_FLAGS if flag in cpu_flags()]
    listed = f"bf16 instructions: {', '.join(bf16)}" if bf16 else "no bf16 instructions listed"
    return f"{cpu_name()} ({vector}, {listed}, {os.cpu_count()} cores)"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's thread count set to `threads` inside, and back after; left alone when it is already that (setting it,
    even to the same count, makes the next steps set up their kernels again: seconds of a small run)."""
    before = torch.get_num_threads()
    change = bool(threads) and threads != before
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)
