"""Graph against harmonic filtering of one HEALPix map (DeepSphere's speed argument), 1 thread each.

Case: nside; one record per graph (k = 8 and k = 20), all contenders timed in the same
rounds.  Ours: ``ChebConv(1, 1, K=5)`` forward (``torch.no_grad``) on one full-sky NESTED
map with the k-nearest-neighbour graph (float32, the default dtype; float64 in the extras).  Peers, on the same map in RING order (the reordering is not timed): an
isotropic harmonic filter ``map -> alm -> alm * f_l -> map`` with lmax = 3 nside - 1 (healpy's
default) by

- ducc0 (``ducc0.sht.experimental.adjoint_synthesis`` times 4 pi / npix, then
  ``synthesis`` on the geometry of ``ducc0.healpix.Healpix_Base(nside, "RING").sht_info()``),
  float64 (the record's peer) and float32 (extras);
- healpy (``map2alm(iter=0)``, ``almxfl``, ``alm2map``), float64 (extras).  ``iter=0``: one
  analysis, as ducc0's; healpy's default ``iter=3`` costs three more transform pairs.

Times are CPU seconds (``time.process_time``, median over rounds in which every contender
runs once, interleaved), with torch, ducc0 and healpy on one thread (healpy follows
OMP_NUM_THREADS, recorded; run the suite with OMP_NUM_THREADS=1).  Graph construction is
not timed (disk-cached ``build_graph``; see the ``graph_build`` suite).
``speedup`` = ducc0 float64 / ours; ``vs_healpy``, ``vs_ducc0_f32`` likewise.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import HealpixSampling

NAME = "filtering"

PEER = "ducc0.sht.experimental (float64)"

#: rounds stop after this many CPU seconds (at least MIN_ROUNDS rounds)
BUDGET_S = 60.0
MIN_ROUNDS = 3


#: the graphs compared (neighbours k)
KS = (8, 20)


def cases(quick: bool) -> list[dict]:
    """nside 64 (quick); nside 256, 512, 1024."""
    if quick:
        return [{"nside": 64}]
    return [{"nside": n} for n in (256, 512, 1024)]


def _cpu_times(fns: dict, budget_s: float, min_rounds: int) -> dict:
    """Median CPU seconds of each callable, over interleaved rounds (one warm-up call each)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    spent, rounds = 0.0, 0
    while rounds < min_rounds or spent < budget_s:
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            dt = time.process_time() - t0
            times[name].append(dt)
            spent += dt
        rounds += 1
    return {name: statistics.median(v) for name, v in times.items()} | {"rounds": rounds}


def run(case: dict, device, harness) -> list[dict]:
    if str(device) != "cpu":
        raise ValueError("the harmonic peers run on the CPU; run this suite with --device cpu")
    nside = int(case["nside"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(nside, harness)
    finally:
        torch.set_num_threads(threads)


def _run(nside: int, harness) -> list[dict]:
    import healpy as hp

    sampling = HealpixSampling(nside)
    K, lmax = 5, 3 * nside - 1
    torch.manual_seed(0)
    convs = {}
    for k in KS:
        graph = build_graph(sampling, k=k)
        convs[k] = ChebConv(1, 1, K, graph, bias=False)
        if k == max(KS):
            convs["f64"] = ChebConv(1, 1, K, graph, bias=False, dtype=torch.float64)
        del graph
    rng = np.random.default_rng(0)
    m_nest = rng.standard_normal(sampling.npix)
    m_ring = hp.reorder(m_nest, n2r=True)
    x32 = torch.from_numpy(m_nest).to(torch.float32).view(1, -1, 1)
    x64 = torch.from_numpy(m_nest).view(1, -1, 1)
    fl = np.exp(-((np.arange(lmax + 1) / (0.5 * lmax)) ** 2))  # any isotropic filter costs the same

    def forward(conv, x):
        def f():
            with torch.no_grad():
                return conv(x)
        return f

    def healpy_filter():
        alm = hp.map2alm(m_ring, lmax=lmax, iter=0)
        return hp.alm2map(hp.almxfl(alm, fl), nside, lmax=lmax)

    fns = {f"k{k}": forward(convs[k], x32) for k in KS}
    fns["f64"] = forward(convs["f64"], x64)
    fns["healpy"] = healpy_filter
    peer_note = None
    try:
        import ducc0

        geom = ducc0.healpix.Healpix_Base(nside, "RING").sht_info()
        scale = 4 * np.pi / sampling.npix
        flc = fl.astype(np.complex128)
        m_idx = hp.Alm.getlm(lmax)[0]  # degree l of each alm (healpy / ducc0 order)

        def ducc_filter(dtype):
            mp = m_ring.astype(dtype).reshape(1, -1)
            w = flc[m_idx] * scale

            def f():
                alm = ducc0.sht.experimental.adjoint_synthesis(map=mp, lmax=lmax, spin=0, nthreads=1, **geom)
                alm *= w.astype(alm.dtype)
                return ducc0.sht.experimental.synthesis(alm=alm, lmax=lmax, spin=0, nthreads=1, **geom)
            return f

        fns["ducc0"] = ducc_filter(np.float64)
        fns["ducc0_f32"] = ducc_filter(np.float32)
        # the two harmonic filters agree (checks the peers' set-up)
        ref = healpy_filter()
        harm_diff = float(np.abs(fns["ducc0"]()[0] - ref).max() / np.abs(ref).max())
    except ImportError:
        peer_note = "peer unavailable: ducc0 is not installed (pip install ducc0)"
        harm_diff = None
    t = _cpu_times(fns, BUDGET_S, MIN_ROUNDS)
    ducc = t.get("ducc0")
    records = []
    for k in KS:
        ours = t[f"k{k}"]
        extras = {}
        if k == max(KS):
            extras = {"ours_f64_s": t["f64"], "f64_vs_ducc0": (ducc / t["f64"]) if ducc else None}
        records.append(harness.record(
            "graph vs harmonic filtering (1 map)", {"nside": nside, "k": k, "K": K, "lmax": lmax},
            ours, peer=PEER if ducc else None, peer_s=ducc,
            cpu_s=ours, healpy_s=t["healpy"], ducc0_s=ducc, ducc0_f32_s=t.get("ducc0_f32"),
            vs_healpy=t["healpy"] / ours, vs_ducc0_f32=(t["ducc0_f32"] / ours) if ducc else None,
            rounds=t["rounds"], nnz=int(convs[k].laplacian.values().numel()), npix=sampling.npix,
            ducc0_vs_healpy_max_rel_diff=harm_diff, peer_note=peer_note,
            timing="cpu (process_time), 1 thread each", omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
            **extras,
        ))
    return records
