"""What this machine's processor can do, read at run time: never assumed from the build or another machine.

`native_bf16(device)` says whether bfloat16 training runs faster than fp32 on `device`, which decides what
precision "auto" picks: CUDA with bf16 support, or a CPU with AMX (its bf16 tile units). AVX512-BF16 alone
is not enough: on an AVX512-BF16 Xeon without AMX, ResNet-20 trained at 484 images/s in bf16 autocast
against 690 in fp32 (`benchmarks/bench_train.py` prints both), so there "auto" keeps fp32.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16",)  # /proc/cpuinfo flags of bf16 units that beat fp32 (see the module docstring)


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


def native_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 units that make bf16 autocast faster than fp32 (else bf16 is slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def describe_cpu() -> str:
    """One line for reports: the CPU, its vector extensions, native bf16 or not, and the core count."""
    vector = torch.backends.cpu.get_cpu_capability()
    bf16 = "bf16 units (AMX)" if native_bf16(torch.device("cpu")) else "no bf16 units (AMX)"
    return f"{cpu_name()} ({vector}, {bf16}, {os.cpu_count()} cores)"
