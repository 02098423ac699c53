"""The device's memory bandwidth and GEMM rate (:func:`measure_machine`) and the roofline floor of a
sequence of kernels (:func:`roofline_floor`): the "x floor" column of the tables."""
from __future__ import annotations

import time
from typing import Sequence

import torch

from .memory import MB


def roofline_floor(phases: Sequence[tuple[float, float]], machine: dict) -> float:
    """Lower bound (seconds) of a sequence of kernels given as (bytes moved, flops) pairs.

    Each kernel takes at least max(bytes / bandwidth, flops / GEMM rate) and kernels do
    not overlap: floor = sum over kernels.
    """
    bw = machine["bandwidth_gbs"] * 1e9
    rate = machine["gemm_gflops"] * 1e9
    return float(sum(max(b / bw, f / rate) for b, f in phases))


def measure_machine(device="cpu", quick: bool = False, timer=time.perf_counter) -> dict:
    """Measure memory bandwidth (copy and triad, GB/s) and float32 GEMM rate (GFLOP/s).

    Copy ``b <- a`` counts 2 x size bytes, triad ``a <- b + s c`` 3 x size; the bandwidth
    used for rooflines is the better of the two (best of several runs); GEMM: square
    float32 matmul, 2 n^3 flops, best of several runs.  Arrays: 64 MiB each on CPU
    (16 MiB with ``quick``), 512 MiB on CUDA.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def best(fn, reps):
        fn()
        sync()
        ts = []
        for _ in range(reps):
            t0 = timer()
            fn()
            sync()
            ts.append(timer() - t0)
        return min(ts)

    n = (512 if cuda else (16 if quick else 64)) * 1024 * 1024 // 4
    a = torch.rand(n, device=device)
    b = torch.rand(n, device=device)
    c = torch.rand(n, device=device)
    reps = 5 if quick else 10
    t_copy = best(lambda: b.copy_(a), reps)
    t_triad = best(lambda: torch.add(b, c, alpha=3.0, out=a), reps)
    copy_gbs = 2 * 4 * n / t_copy / 1e9
    triad_gbs = 3 * 4 * n / t_triad / 1e9
    a = b = c = None  # free the 3 arrays before the GEMM (the lambdas above hold names, not arrays)
    m = 4096 if cuda else (768 if quick else 1536)
    x = torch.rand(m, m, device=device)
    y = torch.rand(m, m, device=device)
    t_mm = best(lambda: torch.mm(x, y), 3 if quick else 5)
    return {
        "bandwidth_gbs": max(copy_gbs, triad_gbs),
        "copy_gbs": copy_gbs,
        "triad_gbs": triad_gbs,
        "gemm_gflops": 2.0 * m**3 / t_mm / 1e9,
        "gemm_n": m,
        "array_mb": 4 * n / MB,
        "threads": torch.get_num_threads(),
    }
