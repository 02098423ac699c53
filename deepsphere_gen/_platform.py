"""The processor figures were made on: recorded beside timings and trained results.

Floating-point results of training depend on it: torch and MKL pick their kernels (and so
their summation order) by the CPU's instruction sets, so the same command and seed give
bit-identical networks on one processor type and slightly different ones on another.
"""
from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_description"]

#: instruction-set flags (Linux ``/proc/cpuinfo`` names) that change which kernels run
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def _cpuinfo(cpuinfo: Path) -> tuple[str, list[str]]:
    """(model name, the :data:`KERNEL_FLAGS` present) of the first processor in ``cpuinfo``;
    ("", []) where the file cannot be read (not Linux)."""
    model, flags = "", []
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            present = set(value.split())
            flags = [f for f in KERNEL_FLAGS if f in present]
    return model, flags


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """``{"cpu_model", "cpu_flags", "torch_cpu_capability"}``: the processor's name
    (``platform.processor()`` where ``cpuinfo`` is missing), which of :data:`KERNEL_FLAGS` it has,
    and the instruction set torch dispatches its CPU kernels to (e.g. "AVX2", "AVX512")."""
    import torch  # slow to import: the commands import this module for their --help, which must not load torch

    model, flags = _cpuinfo(cpuinfo)
    return {"cpu_model": model or platform.processor() or "unknown", "cpu_flags": flags,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
