"""SHT suite: our ring-based transforms against torch-harmonics (GL grid) and healpy (HEALPix).

Cases
-----
- ``gl fwd+inv``: forward then inverse real SHT of a band-limited batch on the
  Gauss-Legendre grid (L x (2L-1)), L = 128 (quick) and 256, float32, batch 4 x 4 channels,
  no autograd.  Peer: ``torch_harmonics.RealSHT`` + ``InverseRealSHT`` on the same grid
  (``grid="legendre-gauss"``, ``lmax = mmax = L``, ``norm="ortho"``), input reshaped to its
  (batch * channels, nlat, nlon) layout.  ``max_rel_diff`` compares the two reconstructed
  maps (both equal the band-limited input up to float32 rounding).
- ``healpix analysis``: ``map2alm`` of random (not band-limited) NESTED maps at nside 128
  (quick: 64), L = 3 nside, float64, iterations 0 and 3, 1 map and 8 maps (and one
  float32 single-map case).  Peer:
  ``healpy.map2alm(lmax=L-1, iter=n, use_pixel_weights=False, use_weights=False)`` on the
  RING-ordered maps (one call per map: healpy has no batch of spin-0 maps); healpy time
  excludes the reordering.  ``max_rel_diff`` compares coefficients after
  ``healpy_alm_to_real``.

Roofline (``x_floor``): each transform direction reads the Legendre table once and does
2 * table entries * (columns per map) * maps flops (2 columns, cos / sin; 4 for float64
tables, which store even degrees only and project x * (odd part) too); FFTs and the map
traffic are added as bytes.

Threads: torch uses ``--threads``; healpy's OpenMP follows ``OMP_NUM_THREADS`` (recorded
in ``peer_config``).  Run both single-threaded for a per-core comparison
(``OMP_NUM_THREADS=1 deepsphere-gen bench --only sht --threads 1 ...``).  On an
oversubscribed machine, multi-threaded runs need ``OMP_WAIT_POLICY=PASSIVE`` in the
environment: with OpenMP's default spin-waiting every parallel call pays tens of
milliseconds of contention, which penalises whoever makes more calls (the SHT makes a few
dozen per transform, torch-harmonics a handful).
"""
from __future__ import annotations

import os

import healpy as hp
import numpy as np
import torch

from ..harness import max_rel_diff, roofline_floor
from deepsphere_gen.harmonic import SHT, healpy_alm_to_real
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling

NAME = "sht"


def cases(quick: bool) -> list[dict]:
    """GL L=128 (quick) and 256; HEALPix nside 128 (quick: 64) with 0 / 3 iterations, 1 / 8 maps."""
    gl = [{"kind": "gl", "L": L, "batch": 4, "channels": 4, "dtype": "float32"} for L in ((128,) if quick else (128, 256))]
    nside = 64 if quick else 128
    hp_cases = [
        {"kind": "healpix", "nside": nside, "iterations": it, "maps": nm, "dtype": "float64"}
        for it, nm in (((0, 1),) if quick else ((0, 1), (3, 1), (0, 8)))
    ]
    if not quick:  # float32 tables: half the memory traffic, float32 accuracy
        hp_cases.append({"kind": "healpix", "nside": nside, "iterations": 0, "maps": 1, "dtype": "float32"})
    return gl + hp_cases


def _floor(sht: SHT, maps: int, passes: int, harness) -> dict:
    """Roofline floor of ``passes`` transform directions over ``maps`` maps."""
    item = torch.empty((), dtype=sht.dtype).element_size()
    entries = sht.table_bytes / item
    columns = 4 if getattr(sht, "_recursion", False) else 2
    io = 2 * (sht.npix + sht.L * sht.L) * maps * item
    floor = roofline_floor([(sht.table_bytes + io, 2.0 * entries * columns * maps)] * passes, harness.machine())
    return {"floor_s": floor}


def _gl(case: dict, device, harness) -> list[dict]:
    L, B, C = case["L"], case["batch"], case["channels"]
    dtype = getattr(torch, case["dtype"])
    S = GaussLegendreSampling(L)
    sht = SHT(S, L, dtype=dtype, device=device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(B, L * L, C, generator=g, dtype=dtype).to(device)
    with torch.no_grad():
        x = sht.inverse(a)

        def ours():
            return sht.inverse(sht(x))

        y = ours()
        t = harness.time(ours)
        mem = harness.peak_memory_mb(ours)
    extras = {
        "table_mb": sht.table_bytes / 2**20,
        "ours_round_trip_rel": float((y - x).norm() / x.norm()),
        "torch_threads": torch.get_num_threads(),
    }
    floor = _floor(sht, B * C, 2, harness)["floor_s"]
    extras.update(floor_s=floor, x_floor=t.median / floor)
    try:
        import torch_harmonics as th
    except ImportError as exc:  # peer is optional
        return [harness.record("sht gl fwd+inv", case, t.median, peak_mem_mb=mem,
                               peer_unavailable=f"torch_harmonics: {exc}", **extras)]
    fwd = th.RealSHT(L, 2 * L - 1, lmax=L, mmax=L, grid="legendre-gauss", norm="ortho").to(device)
    inv = th.InverseRealSHT(L, 2 * L - 1, lmax=L, mmax=L, grid="legendre-gauss", norm="ortho").to(device)
    xt = x.reshape(B, L, 2 * L - 1, C).permute(0, 3, 1, 2).reshape(B * C, L, 2 * L - 1).contiguous()
    with torch.no_grad():

        def peer():
            return inv(fwd(xt))

        out, _, peer_mem = harness.measure(peer)
        tp = harness.time(peer)
    peer_map = out.reshape(B, C, L, 2 * L - 1).permute(0, 2, 3, 1).reshape(B, -1, C)
    extras.update(
        peer_round_trip_rel=float((peer_map - x).norm() / x.norm()),
        peer_peak_mem_mb=peer_mem,
        peer_config=f"torch_harmonics {getattr(th, '__version__', '?')} RealSHT+InverseRealSHT, "
        "legendre-gauss, lmax=mmax=L, norm=ortho, (batch*channels, nlat, nlon)",
    )
    return [harness.record("sht gl fwd+inv", case, t.median, peer="torch_harmonics.RealSHT+InverseRealSHT",
                           peer_s=tp.median, max_rel_diff=max_rel_diff(y, peer_map), peak_mem_mb=mem, **extras)]


def _healpix(case: dict, device, harness) -> list[dict]:
    nside, it, nm = case["nside"], case["iterations"], case["maps"]
    L = 3 * nside
    dtype = getattr(torch, case["dtype"])
    S = HealpixSampling(nside)
    sht = SHT(S, L, dtype=dtype, device=device, iterations=it)
    rng = np.random.default_rng(1)
    ring_maps = rng.standard_normal((nm, S.npix))
    nest = np.stack([hp.reorder(m, r2n=True) for m in ring_maps], axis=-1)  # (npix, maps)
    x = torch.as_tensor(nest, dtype=dtype, device=device)[None]
    with torch.no_grad():

        def ours():
            return sht(x)

        y = ours()
        t = harness.time(ours)
        mem = harness.peak_memory_mb(ours)

    def peer():
        return [hp.map2alm(m, lmax=L - 1, iter=it, use_pixel_weights=False, use_weights=False) for m in ring_maps]

    out, _, peer_mem = harness.measure(peer)
    tp = harness.time(peer)
    ref = torch.as_tensor(np.stack([healpy_alm_to_real(a, L) for a in out], axis=-1))[None]
    floor = _floor(sht, nm, 1 + 2 * it, harness)["floor_s"]
    return [harness.record(
        "sht healpix analysis", case, t.median, peer="healpy.map2alm", peer_s=tp.median,
        max_rel_diff=max_rel_diff(y, ref), peak_mem_mb=mem, table_mb=sht.table_bytes / 2**20,
        peer_peak_mem_mb=peer_mem, torch_threads=torch.get_num_threads(), floor_s=floor,
        x_floor=t.median / floor,
        peer_config=f"healpy {hp.__version__} map2alm per map (RING input), use_pixel_weights=False, "
        f"use_weights=False, same lmax and iter; healpy runs on the CPU with OpenMP threads from "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
    )]


def run(case: dict, device, harness) -> list[dict]:
    """One case: records with ours_s, the peer's time, max_rel_diff, peak memory, roofline."""
    return _gl(case, device, harness) if case["kind"] == "gl" else _healpix(case, device, harness)
