"""cheb_step suite: one Chebyshev recursion step by number of dense columns, compiled kernel vs torch.

A development suite (it times the package's private kernel modules): run with
``deepsphere-gen bench --suite-dir benchmarks/suites --only cheb_step``.

Cases
-----
- One step ``out = 2 L x - x_prev`` of a ChebConv on HEALPix nside 256 (quick: 64), k = 20,
  float32, for 1, 2, 4, 8, 12, 16, 20, 24, 32, 64 and 128 columns (batch x channels: a batch-8
  first layer on one map has 8, two maps of 4 channels 8, batch 8 x 16 channels 128).
  Ours: the layer's step on CPU (``_cheb_sparse._recur``: the compiled kernel,
  :func:`deepsphere_gen.nn._cheb_native.step`, where it takes the case, else torch's product;
  ``kernel`` in the record says which).  Peer: the layer's torch path for the same step
  (``DEEPSPHERE_GEN_NATIVE=0``: torch's CSR product ``out.addmm_(L, x, beta=0, alpha=2)`` then
  ``out.sub_(x_prev)``), same Laplacian.  Without the compiled kernel, no record (nothing to compare).

Timing: CPU time (``time.process_time``) with one torch thread, else wall time; ours and the
peer in interleaved rounds (:data:`ROUNDS`, each call preceded by one untimed call), the best
round reported, medians in ``ours_median_s`` / ``peer_median_s``.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import _cheb_native
from deepsphere_gen.nn._cheb_sparse import _recur
from deepsphere_gen.nn.chebconv import ChebConv
from deepsphere_gen.sampling import HealpixSampling

NAME = "cheb_step"

PEER = "torch CSR product (the layer's DEEPSPHERE_GEN_NATIVE=0 path)"

#: interleaved rounds of (ours, peer)
ROUNDS = 7

COLUMNS = (1, 2, 4, 8, 12, 16, 20, 24, 32, 64, 128)


def cases(quick: bool) -> list[dict]:
    return [{"nside": 64 if quick else 256, "k": 20, "columns": n, "dtype": "float32"} for n in COLUMNS]


def run(case: dict, device, harness) -> list[dict]:
    if torch.device(device).type != "cpu" or not _cheb_native.available():
        return []
    dtype = getattr(torch, case["dtype"])
    graph = build_graph(HealpixSampling(case["nside"]), k=case["k"])
    lap = ChebConv(1, 1, K=2, laplacian=graph, dtype=dtype).laplacian
    g = torch.Generator().manual_seed(case["columns"])
    x, x_prev = (torch.randn(graph.npix, case["columns"], generator=g, dtype=dtype) for _ in range(2))
    out_ours, out_peer = torch.empty_like(x), torch.empty_like(x)

    kernel = "native" if _cheb_native.step(out_ours, lap, x, 2.0, None, 1.0, x_prev, 1.0) else "torch"

    def ours():
        _recur(out_ours, lap, x, 2.0, None, x_prev)

    def peer():
        out_peer.addmm_(lap, x, beta=0, alpha=2.0)
        out_peer.sub_(x_prev)

    one_thread = torch.get_num_threads() == 1
    clock = time.process_time if one_thread else time.perf_counter
    times = {"ours": [], "peer": []}
    for _ in range(ROUNDS):
        for name, fn in (("ours", ours), ("peer", peer)):
            fn()
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    diff = float((out_ours - out_peer).abs().max() / out_peer.abs().max())
    best = {k: float(np.min(v)) for k, v in times.items()}
    return [harness.record(
        "cheb_step", case, best["ours"], peer=PEER, peer_s=best["peer"], max_rel_diff=diff,
        ours_median_s=float(np.median(times["ours"])), peer_median_s=float(np.median(times["peer"])),
        kernel=kernel, npix=graph.npix, nnz=int(lap.values().numel()), threads=torch.get_num_threads(),
        clock="process_time" if one_thread else "wall", timing=f"best of {ROUNDS} interleaved rounds (medians in *_median_s)",
    )]
