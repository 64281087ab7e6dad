"""What a result was produced on: library versions and the machine, recorded with `orglab demo --json`."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "orglab")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str] | None:
    """The name of every visible GPU; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): there bf16 autocast trains
    gemma3-270m faster than fp32 (docs/training.md); elsewhere bf16 is emulated and slower."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def machine_info() -> dict:
    """Python and library versions, the platform, the CPU (model, cores, torch's threads) and the GPUs with
    their CUDA version (None without one)."""
    import torch

    return {
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_computes_bf16(),
        "gpu": _gpus(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
