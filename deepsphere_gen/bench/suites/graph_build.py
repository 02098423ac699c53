"""Graph and layer construction suite: ``build_graph`` + a ChebConv on HEALPix at nside 256-2048.

Case: ``build_graph(HealpixSampling(nside), k=k, cache=False)`` (neighbour search,
symmetrisation, Lanczos ``lmax``), then ``ChebConv(1, 16, K=5, laplacian=graph)`` (float32
rescaled Laplacian written from the graph), each case in a fresh Python process so that its
peak resident memory is the whole process's: ``peak_rss_mb`` (VmHWM) includes the
interpreter, torch and the sampling (``import_rss_mb`` is the part before any work).
Times: ``ours_s`` is wall-clock; ``cpu_s`` the process CPU time (user + system, all
threads), the figure to compare on a shared machine.  No peer is run here: the previous
builder's figures (88 s and 9.4 GB for the nside-1024 graph, the layer OOM-killed at 24 GB)
are quoted in the README.
"""
from __future__ import annotations

from ..memory import fresh_process_result, status_mb

NAME = "graph_build"

#: a case's process is stopped after this many seconds
TIMEOUT_S = 900


def cases(quick: bool) -> list[dict]:
    """nside 64 (quick); nside 256, 512, 1024 with k = 20, and nside 1024 / 2048 with k = 8."""
    if quick:
        return [{"nside": 64, "k": 20}]
    return [{"nside": 256, "k": 20}, {"nside": 512, "k": 20}, {"nside": 1024, "k": 20},
            {"nside": 1024, "k": 8}, {"nside": 2048, "k": 8}]


def _rss_mb(key: str) -> float:
    """``key`` (VmRSS, VmHWM) of /proc/self/status in MiB (NaN where unknown)."""
    mb = status_mb(key)
    return float("nan") if mb is None else mb


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(nside: int, k: int) -> dict:
    """The measured work, in this process (run by :func:`run` in a fresh interpreter)."""
    import time

    import torch

    from deepsphere_gen.graph import build_graph
    from deepsphere_gen.nn import ChebConv
    from deepsphere_gen.sampling import HealpixSampling

    import_mb = _rss_mb("VmRSS")
    w0, c0 = time.perf_counter(), _cpu_s()
    sampling = HealpixSampling(nside)
    graph = build_graph(sampling, k=k, cache=False)
    w1, c1 = time.perf_counter(), _cpu_s()
    conv = ChebConv(1, 16, 5, laplacian=graph)
    w2, c2 = time.perf_counter(), _cpu_s()
    lap = conv.laplacian
    return {
        "graph_s": w1 - w0, "graph_cpu_s": c1 - c0, "conv_s": w2 - w1, "conv_cpu_s": c2 - c1,
        "peak_rss_mb": _rss_mb("VmHWM"), "import_rss_mb": import_mb, "npix": graph.npix, "nnz": graph.nnz,
        "lmax": graph.lmax, "graph_mb": (graph.pattern.indices.nbytes + graph.pattern.indptr.nbytes) / 2**20,
        "layer_laplacian_mb": sum(t.numel() * t.element_size() for t in
                                  (lap.crow_indices(), lap.col_indices(), lap.values())) / 2**20,
        "shares_index_arrays": lap.col_indices().data_ptr() == graph.pattern.indices.ctypes.data,
        "torch_threads": torch.get_num_threads(),
    }


def run(case: dict, device, harness) -> list[dict]:
    if str(device) != "cpu":
        raise ValueError("graph construction runs on the CPU")
    code = ("import json, sys; from deepsphere_gen.bench.suites.graph_build import child; "
            f"print('RESULT ' + json.dumps(child({int(case['nside'])}, {int(case['k'])})))")
    r = fresh_process_result(code, TIMEOUT_S, "construction process")
    return [harness.record(
        "build_graph + ChebConv", case, r["graph_s"] + r["conv_s"], peak_mem_mb=r["peak_rss_mb"],
        cpu_s=r["graph_cpu_s"] + r["conv_cpu_s"], **r,
    )]
