"""DISCO suite: our ChebConv against torch-harmonics' DISCO convolution (Ocampo et al. 2023).

Cases
-----
HEALPix nside 32 (quick) and 64 for ChebConv (kNN graph k = 20, K = 5); for the peer, a
Gauss-Legendre grid L x (2L - 1) with about the same pixel count (L = 78: 12,090 pixels vs
12,288; L = 157: 49,141 vs 49,152).  Batch 8, 16 -> 32 channels, float32, forward then the
gradients of <y, g> (fixed random g) w.r.t. input, weights and bias.  Cost: the nside-32
case ~1.5 min (1 thread); the nside-64 case did not finish in 13 min on the shared 2-core
development CPU (the peer's CPU path loops over longitudes in Python).

Peer: ``torch_harmonics.DiscreteContinuousConvS2`` (same grid in and out, grid
``"legendre-gauss"``, isotropic piecewise-linear basis with ``kernel_shape=9``: 5 weights
per channel pair, as ChebConv's K = 5), two cutoffs:

- ``disco_default``: its default ``theta_cutoff = pi / (nlat - 1)``;
- ``disco_matched``: ``theta_cutoff`` = the radius of ChebConv's support, i.e. the median
  over 16 pixels of the largest angle to a pixel within K - 1 = 4 graph hops (``cutoff_rad``).

Figures per record: ``ours_s`` / ``peer_s`` = median CPU time (``time.process_time``) of a
forward+backward call, 1 warm-up call, timed calls until 10 s (at least 2); ``speedup`` =
peer / ours.  ``threads`` = ``torch.get_num_threads()`` for both (run with ``--threads 1``
and ``OMP_NUM_THREADS=1`` for the per-core comparison).  Equivariance (float32: the peer's
CPU path keeps its filter tensor in float32 whatever ``.to(dtype)``; 1 -> 1
channel layers of the same kind and size, random weights, 2 random input maps band-limited
below ``band`` = nside, 3 random rotations): :func:`deepsphere_gen.equivariance.map_equivariance_error`
on each layer's own sampling (HEALPix for ours, our :class:`~deepsphere_gen.sampling.GaussLegendreSampling`,
which has torch-harmonics' legendre-gauss nodes, for the peer); the output is rotated with
:class:`~deepsphere_gen.harmonic.MapRotator` at the same ``band`` (exact quadrature on the
GL grid, 10 Jacobi steps on HEALPix), so power a layer leaks to l >= band counts as error.
Without torch-harmonics the records hold our figures and ``peer_unavailable``.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..peers import optional_peer
from deepsphere_gen.equivariance import map_equivariance_error
from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import ChebConv
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling

NAME = "disco"

PEER = "torch_harmonics.DiscreteContinuousConvS2"

#: timed calls stop after this many seconds of CPU time (at least MIN_CALLS calls)
BUDGET_S = 10.0
MIN_CALLS = 2
#: isotropic piecewise-linear DISCO basis with this kernel_shape has 5 functions (= K)
KERNEL_SHAPE = 9


def cases(quick: bool) -> list[dict]:
    """nside 32 (quick) and 64, each with a GL grid of about the same pixel count."""
    def case(nside, L):
        return {"nside": nside, "L": L, "k": 20, "K": 5, "batch": 8, "c_in": 16, "c_out": 32, "band": nside}

    return [case(32, 78)] if quick else [case(32, 78), case(64, 157)]


def support_radius(graph, K: int, n_pixels: int = 16, seed: int = 0) -> float:
    """Median over ``n_pixels`` random pixels of the largest angle (rad) to a pixel at most
    K - 1 hops away in ``graph``: the reach of an order-K Chebyshev filter."""
    W = (graph.weights != 0).tocsr()
    xyz = np.asarray(graph.sampling.xyz, dtype=np.float64)
    rng = np.random.default_rng(seed)
    radii = []
    for i in rng.choice(graph.npix, size=min(n_pixels, graph.npix), replace=False):
        reach = np.zeros(graph.npix, dtype=bool)
        reach[i] = True
        for _ in range(K - 1):
            reach |= (W @ reach.astype(np.float64)) > 0
        cos = np.clip(xyz[reach] @ xyz[i], -1.0, 1.0)
        radii.append(float(np.arccos(cos.min())))
    return float(np.median(radii))


def _cpu_time(fn) -> tuple[float, int]:
    """(median CPU seconds of one call, timed calls) after one warm-up call."""
    fn()
    times: list[float] = []
    while len(times) < MIN_CALLS or sum(times) < BUDGET_S:
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times)), len(times)


def _fwd_bwd(layer, x, g):
    def call():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (layer(x) * g).sum().backward()
    return call


def _disco(th, c_in, c_out, L, cutoff, dtype):
    kw = dict(kernel_shape=KERNEL_SHAPE, grid_in="legendre-gauss", grid_out="legendre-gauss")
    if cutoff is not None:
        kw["theta_cutoff"] = cutoff
    return th.DiscreteContinuousConvS2(c_in, c_out, (L, 2 * L - 1), (L, 2 * L - 1), **kw).to(dtype)


def _on_maps(disco, L):
    """The DISCO layer on our (batch, pixels, channels) ring-major GL maps."""
    def layer(x):
        B, _, C = x.shape
        y = disco(x.reshape(B, L, 2 * L - 1, C).permute(0, 3, 1, 2))
        return y.permute(0, 2, 3, 1).reshape(B, L * (2 * L - 1), -1)
    return layer


def run(case: dict, device, harness) -> list[dict]:
    if torch.device(device).type != "cpu":
        raise ValueError("the disco suite compares CPU time (torch-harmonics' CPU path); run it with --device cpu")
    nside, L, k, K, B, cin, cout, band = (case[x] for x in ("nside", "L", "k", "K", "batch", "c_in", "c_out", "band"))
    hp_s, gl_s = HealpixSampling(nside), GaussLegendreSampling(L)
    graph = build_graph(hp_s, k=k)
    torch.manual_seed(0)
    conv = ChebConv(cin, cout, K, graph)
    x = torch.randn(B, hp_s.npix, cin, requires_grad=True)
    g = torch.randn(B, hp_s.npix, cout)
    ours_s, ours_calls = _cpu_time(_fwd_bwd(conv, x, g))
    eq_kw = dict(L=band, rotations=3, batch=2, channels=1, seed=1, dtype=torch.float32)
    ours_eq = map_equivariance_error(ChebConv(1, 1, K, graph), hp_s, **eq_kw)
    cutoff = support_radius(graph, K)
    common = dict(threads=torch.get_num_threads(), clock="process_time", ours_timed_calls=ours_calls,
                  npix=hp_s.npix, peer_npix=gl_s.npix, nnz=int(graph.nnz), support_radius_rad=cutoff,
                  ours_equivariance=ours_eq.mean, ours_equivariance_max=ours_eq.max)
    th, reason = optional_peer("torch_harmonics")
    if th is None:
        return [harness.record("chebconv_vs_disco", case, ours_s, peer_unavailable=reason, **common)]
    records = []
    for name, cut in (("disco_default", None), ("disco_matched", cutoff)):
        disco = _disco(th, cin, cout, L, cut, torch.float32)
        xd = torch.randn(B, cin, L, 2 * L - 1, requires_grad=True)
        gd = torch.randn(B, cout, L, 2 * L - 1)
        peer_s, peer_calls = _cpu_time(_fwd_bwd(disco, xd, gd))
        eq = map_equivariance_error(_on_maps(_disco(th, 1, 1, L, cut, torch.float32), L), gl_s, **eq_kw)
        used = cut if cut is not None else float(np.pi / (L - 1))
        records.append(harness.record(
            name, case, ours_s, peer=PEER, peer_s=peer_s, **common, peer_timed_calls=peer_calls,
            cutoff_rad=used, peer_psi_nnz=int(disco.psi_vals.numel()),
            peer_equivariance=eq.mean, peer_equivariance_max=eq.max,
            peer_config=f"torch_harmonics {th.__version__}, legendre-gauss {L}x{2 * L - 1} in and out, "
                        f"kernel_shape={KERNEL_SHAPE} (piecewise linear, isotropic, "
                        f"{disco.kernel_size} basis functions), theta_cutoff={used:.4g} rad"))
    return records
