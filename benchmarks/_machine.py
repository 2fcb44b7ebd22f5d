"""The machine line of the benchmarks: CPU model and flags, load average, BLAS threads."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in have]
    return []


def blas_threads() -> str:
    """numpy's BLAS library and its thread count (threadpoolctl), e.g. ``openblas 2``."""
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in libs) or "none found"


def machine_line() -> str:
    """One line: CPU model, cores, load average (1, 5, 15 min) and numpy's BLAS threads."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {cpu_model()} ({os.cpu_count()} cores); load average {load}; "
        f"BLAS threads: {blas_threads()}"
    )
