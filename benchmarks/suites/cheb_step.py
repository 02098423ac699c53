"""cheb_step suite: one Chebyshev recursion step by number of dense columns, compiled kernel vs torch.

A development suite (it times the package's private kernel modules): run with
``deepsphere-gen bench --suite-dir benchmarks/suites --only cheb_step``.

Cases
-----
- One step ``out = 2 L x - x_prev`` of a ChebConv on HEALPix nside 256 (quick: 64), k = 20,
  float32 and float64, for 1, 2, 4, 5, 6, 8, 12, 16, 20, 24, 32, 64 and 128 columns (batch x
  channels: a batch-8 first layer on one map has 8, two maps of 4 channels 8, batch 8 x 16
  channels 128).
  Ours: the layer's step on CPU (``_cheb_sparse._recur``: the compiled kernel,
  :func:`deepsphere_gen.nn._cheb_native.step`, where it takes the case, else torch's product;
  ``kernel`` in the record says which).  ``dispatch="off"``: the column counts the layer leaves to
  torch (``_cheb_native.TORCH_MAX_ROW_BYTES``: float32 2-8, float64 2-4) through the kernel
  (the rule set to 0), the figures behind that rule.  Peer: the layer's torch path for the same step
  (``DEEPSPHERE_GEN_NATIVE=0``: torch's CSR product ``out.addmm_(L, x, beta=0, alpha=2)`` then
  ``out.sub_(x_prev)``), same Laplacian (built once per nside, k and dtype).  Without the
  compiled kernel, no record (nothing to compare).

Timing: :func:`deepsphere_gen.bench.peers.paired` (ours and the peer in interleaved rounds, at
most ``--repeats``), the best round reported, medians in ``ours_median_s`` / ``peer_median_s``.
The clock is ``time.process_time`` (CPU only): the CPU time of all threads, so per-core figures need
``--threads 1`` (``threads`` in the record).
"""
from __future__ import annotations

from functools import lru_cache

import torch

from deepsphere_gen.bench.peers import first_call, max_rel_diff, paired
from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import _cheb_native
from deepsphere_gen.nn._cheb_sparse import _recur
from deepsphere_gen.nn import Laplacian
from deepsphere_gen.sampling import HealpixSampling

NAME = "cheb_step"

PEER = "torch CSR product (the layer's DEEPSPHERE_GEN_NATIVE=0 path)"

COLUMNS = (1, 2, 4, 5, 6, 8, 12, 16, 20, 24, 32, 64, 128)


def cases(quick: bool) -> list[dict]:
    nside = 64 if quick else 256
    return [{"nside": nside, "k": 20, "columns": n, "dtype": dtype, "dispatch": dispatch}
            for dtype, size in (("float32", 4), ("float64", 8)) for dispatch in ("on", "off") for n in COLUMNS
            if dispatch == "on" or 1 < n and n * size <= _cheb_native.TORCH_MAX_ROW_BYTES]


@lru_cache(maxsize=1)  # cases come grouped by (nside, k, dtype)
def _laplacian(nside: int, k: int, dtype: str) -> torch.Tensor:
    graph = build_graph(HealpixSampling(nside), k=k)
    return Laplacian.from_graph(graph, dtype=getattr(torch, dtype)).matrix


def run(case: dict, device, harness) -> list[dict]:
    if torch.device(device).type != "cpu" or not _cheb_native.available():
        return []
    dtype = getattr(torch, case["dtype"])
    lap = _laplacian(case["nside"], case["k"], case["dtype"])
    npix = lap.shape[0]
    g = torch.Generator().manual_seed(case["columns"])
    x, x_prev = (torch.randn(npix, case["columns"], generator=g, dtype=dtype) for _ in range(2))
    out_ours, out_peer = torch.empty_like(x), torch.empty_like(x)

    def ours():
        _recur(out_ours, lap, x, 2.0, None, x_prev)

    def peer():
        out_peer.addmm_(lap, x, beta=0, alpha=2.0)
        out_peer.sub_(x_prev)

    rule = _cheb_native.TORCH_MAX_ROW_BYTES
    try:
        if case["dispatch"] == "off":
            _cheb_native.TORCH_MAX_ROW_BYTES = 0
        kernel = "native" if _cheb_native.step(out_ours, lap, x, 2.0, None, 1.0, x_prev, 1.0) else "torch"
        t = paired(harness, {"ours": (ours, first_call(harness, ours)[1]), "peer": (peer, first_call(harness, peer)[1])})
    finally:
        _cheb_native.TORCH_MAX_ROW_BYTES = rule
    return [harness.record(
        "cheb_step", case, t["ours"][0], peer=PEER, peer_s=t["peer"][0], max_rel_diff=max_rel_diff(out_ours, out_peer),
        ours_median_s=t["ours"][1], peer_median_s=t["peer"][1], kernel=kernel, npix=npix,
        nnz=int(lap.values().numel()), threads=torch.get_num_threads(),
        clock="process_time",
        timing="best of interleaved rounds (medians in *_median_s)",
    )]
