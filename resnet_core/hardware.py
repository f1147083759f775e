"""What this machine's processor can do, read at run time: never assumed from the build or another machine.

`native_bf16(device)` says whether bfloat16 math runs natively (CUDA with bf16 support; a CPU with
AVX512-BF16 or AMX-BF16), which decides what precision "auto" picks.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flag names of native bf16 arithmetic


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
    """Whether bfloat16 matrix math is native on `device` (else it is emulated, usually slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def describe_cpu() -> str:
    """One line for reports: the CPU, its vector extensions, native bf16 or not, and the core count."""
    vector = torch.backends.cpu.get_cpu_capability()
    bf16 = "native bf16" if native_bf16(torch.device("cpu")) else "no native bf16"
    return f"{cpu_name()} ({vector}, {bf16}, {os.cpu_count()} cores)"
