"""SHT suite: our transforms against ducc0 (every sampling) and healpy (HEALPix), and memory vs L.

Cases
-----
One case per (sampling, L, dtype, maps); each gives two records, ``sht KIND synthesis``
(band-limited random coefficients -> maps) and ``sht KIND analysis`` (random maps, not
band-limited, -> coefficients, no iterations), no autograd:

- GL, DH, MW grids at L = 32, 128, 512, 2048 (quick: 32, 128), float64 and float32,
  1 map (and 8 maps in float64 up to L = 512).  Peer: ducc0's own 2D transforms
  ``ducc0.sht.experimental.synthesis_2d`` / ``analysis_2d`` with ``geometry="GL" / "DH" /
  "MW"`` (one call per map: they take one map), on the (ntheta, nphi) grid (MW: the pole
  sample repeated along its ring).
- HEALPix nside 16, 64, 256 with L = 3 nside, and nside 1024 with L = 2048 (quick: 16,
  64), NESTED maps for us.  Peers: ducc0's ``synthesis`` / ``adjoint_synthesis`` (with the
  pixel-area ``ringfactor``) on healpy's RING geometry, all maps in one call, and
  ``healpy.alm2map`` / ``map2alm(iter=0, use_weights=False, use_pixel_weights=False)``
  per map (RING order; the reorder is not timed for the peers, it is for us).
- GL up to L = 512 also times torch-harmonics' ``RealSHT`` / ``InverseRealSHT`` (same
  grid, ``norm="ortho"``; ``extras.torch_harmonics_s``; its stored Legendre table grows as
  L^3, so it is not run above L = 512).

``speedup`` = ducc0 time / ours (>= 0.667: within 1.5x of ducc0); ``extras.healpy_s``,
``extras.healpy_speedup``; ``max_rel_diff`` against ducc0's output (converted to our real
basis); ``peak_mem_mb`` of our call and ``extras.peer_peak_mem_mb`` of ducc0's.

Memory growth: ``extras.torch_engine_mb`` = bytes the pure-torch engine (CUDA's engine)
keeps for this geometry (its buffers + one block of Legendre values: O(L^2), no L^3
table), ``extras.ducc0_engine_mb`` = our conversion tables (one precision) and HEALPix
permutations around ducc0 (ducc0 itself keeps no table), ``extras.old_table_mb`` = the stored Legendre table of the previous
design (one ring per mirror pair x L x (L + 1) / 2 entries, even degrees only in float64),
for comparison.

Clock: CPU time of the process (``time.process_time``) on CPU runs (robust on a loaded
machine; equal to wall time single-threaded), wall time on CUDA.  Threads: ours and
ducc0 use ``torch.get_num_threads()`` (``--threads``), healpy ``OMP_NUM_THREADS``; run
``OMP_NUM_THREADS=1 deepsphere-gen bench --only sht --threads 1 ...`` for a per-core
comparison.  Ours and the peers are timed in interleaved rounds (every side sees the same
load), after a first untimed call each; calls under 1 ms in loops of ~1 ms; at most
``--repeats`` rounds (30 where every side's call is under 1 ms), stopped after 3 once 4 s
are spent; the best round is reported
(``ours_s``, ``peer_s``), the medians in ``extras``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..peers import first_call, max_rel_diff, optional_peer, paired
from deepsphere_gen.harmonic import SHT, healpy_alm_to_real, real_to_healpy_alm
from deepsphere_gen.sampling import DriscollHealySampling, GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling

NAME = "sht"

_GRIDS = {
    "gl": (GaussLegendreSampling, "GL", lambda L: (L, 2 * L - 1)),
    "dh": (DriscollHealySampling, "DH", lambda L: (2 * L, 2 * L)),
    "mw": (McEwenWiauxSampling, "MW", lambda L: (L, 2 * L - 1)),
}


#: (dtype, maps) of a full run: one map in each precision, 8 maps in float64 (a quick run: the first)
DTYPE_MAPS = (("float64", 1), ("float32", 1), ("float64", 8))


def healpix_cases(sizes, max_nside_maps: int, dtype_maps=DTYPE_MAPS) -> list[dict]:
    """HEALPix cases: each ``(nside, L)`` of ``sizes`` with each ``(dtype, maps)`` of ``dtype_maps``, those of
    more than one map only up to nside ``max_nside_maps`` (this suite's and ``sht_survey``'s)."""
    return [{"kind": "healpix", "nside": nside, "L": L, "dtype": dtype, "maps": maps}
            for nside, L in sizes for dtype, maps in dtype_maps if maps == 1 or nside <= max_nside_maps]


def cases(quick: bool) -> list[dict]:
    """See the module docstring."""
    dtype_maps = DTYPE_MAPS[:1] if quick else DTYPE_MAPS
    out = [{"kind": kind, "L": L, "dtype": dtype, "maps": maps}
           for kind in _GRIDS for L in ((32, 128) if quick else (32, 128, 512, 2048))
           for dtype, maps in dtype_maps if maps == 1 or L <= 512]
    sizes = ((16, 48), (64, 192)) if quick else ((16, 48), (64, 192), (256, 768), (1024, 2048))
    return out + healpix_cases(sizes, 256, dtype_maps)


def _engine_bytes(sht: SHT, dtype, maps: torch.Tensor, coeffs: torch.Tensor) -> tuple[float, float]:
    """(torch engine buffers + one Legendre block, what the ducc0 engine keeps after both directions)
    in MiB for this geometry; ``maps`` / ``coeffs``: host inputs (a transform on another device
    has not made the ducc0 engine: a host twin is called once)."""
    ref = SHT(sht.sampling, sht.L, dtype=dtype, engine="torch", block_bytes=sht.block_bytes, iterations=sht.iterations)
    eng = ref.engine_for(torch.zeros(0, dtype=dtype))  # the pure-torch engine, built on the host to count it
    leg = eng.legendre
    block = leg.nk * leg.L * leg.R * torch.empty((), dtype=dtype).element_size()
    torch_b = sum(b.numel() * b.element_size() for b in eng.buffers()) + block
    host = sht if sht.device.type == "cpu" else SHT(sht.sampling, sht.L, dtype=dtype, check_input=False,
                                                    iterations=sht.iterations)
    if host is not sht:
        with torch.no_grad():
            host(maps), host.inverse(coeffs)
    ducc_b = host.engine_for(maps).kept_bytes()
    return torch_b / 2**20, ducc_b / 2**20


def _old_table_mb(rings_stored: int, L: int, dtype) -> float:
    item = torch.empty((), dtype=dtype).element_size()
    return rings_stored * L * (L + 1) / 2 * item / (2 if dtype == torch.float64 else 1) / 2**20


def _grid_peer(case, L, dtype, coeffs, maps):
    """ducc0 2D transforms, one call per map: (synthesis fn, analysis fn, to-our-layout fns)."""
    import ducc0.sht.experimental as ducc

    _, geometry, shape = _GRIDS[case["kind"]]
    ntheta, nphi = shape(L)
    cdt = np.complex128 if dtype == torch.float64 else np.complex64
    alms = [real_to_healpy_alm(c, L).astype(cdt)[None] for c in coeffs[0].T.numpy()]

    def grid(x):
        if case["kind"] == "mw":
            return np.concatenate([x[:-1], np.full(nphi, x[-1])]).reshape(1, ntheta, nphi)
        return np.ascontiguousarray(x).reshape(1, ntheta, nphi)

    grids = [grid(x) for x in maps[0].T.numpy()]

    def syn():
        return [ducc.synthesis_2d(alm=a, lmax=L - 1, spin=0, geometry=geometry, ntheta=ntheta, nphi=nphi) for a in alms]

    def ana():
        return [ducc.analysis_2d(map=g, lmax=L - 1, spin=0, geometry=geometry) for g in grids]

    def syn_ours_layout(out):
        vals = [np.concatenate([o[0, :-1].ravel(), o[0, -1, :1]]) if case["kind"] == "mw" else o.ravel() for o in out]
        return torch.as_tensor(np.stack(vals, axis=-1))[None]

    def ana_ours_layout(out):
        return torch.as_tensor(np.stack([healpy_alm_to_real(a[0], L) for a in out], axis=-1))[None]

    return syn, ana, syn_ours_layout, ana_ours_layout


def _healpix_peers(nside, L, dtype, coeffs, maps_nest):
    import ducc0.sht.experimental as ducc
    import healpy as hp

    start, nphi, costheta, _, shifted = hp.ringinfo(nside, np.arange(1, 4 * nside))
    geo = dict(theta=np.arccos(costheta), nphi=nphi.astype(np.uintp), phi0=np.where(shifted, np.pi / nphi, 0.0),
               ringstart=start.astype(np.uintp), lmax=L - 1, spin=0, nthreads=torch.get_num_threads())
    weights = np.full(nphi.size, hp.nside2pixarea(nside))
    cdt = np.complex128 if dtype == torch.float64 else np.complex64
    alm = np.stack([real_to_healpy_alm(c, L).astype(cdt) for c in coeffs[0].T.numpy()])[:, None, :]
    n2r = hp.nest2ring(nside, np.arange(12 * nside * nside))
    ring = np.ascontiguousarray(maps_nest[0].T.numpy()[:, np.argsort(n2r)])  # (maps, npix) RING
    ring64 = ring.astype(np.float64)
    alm64 = [a[0].astype(np.complex128) for a in alm]

    def d_syn():
        return ducc.synthesis(alm=alm, **geo)

    def d_ana():
        return ducc.adjoint_synthesis(map=ring[:, None, :], ringfactor=weights, **geo)

    def h_syn():
        return [hp.alm2map(a, nside, lmax=L - 1) for a in alm64]

    def h_ana():
        return [hp.map2alm(m, lmax=L - 1, iter=0, use_weights=False, use_pixel_weights=False) for m in ring64]

    def syn_ours_layout(out):  # (maps, 1, npix) RING -> (1, npix, maps) NESTED
        return torch.as_tensor(out[:, 0, n2r].T)[None]

    def ana_ours_layout(out):
        return torch.as_tensor(np.stack([healpy_alm_to_real(a[0], L) for a in out], axis=-1))[None]

    return d_syn, d_ana, h_syn, h_ana, syn_ours_layout, ana_ours_layout


def _torch_harmonics(L: int, dtype, band_limited: torch.Tensor, common: dict) -> dict:
    """torch-harmonics' RealSHT / InverseRealSHT on the same GL grid (L <= 512: it stores an
    L^3 Legendre table), as extra peers; notes its round-trip error or why it is missing."""
    th, reason = optional_peer("torch_harmonics")
    if th is None or L > 512:
        common["torch_harmonics_unavailable"] = reason or "not run above L = 512 (stores an L^3 Legendre table)"
        return {}
    kw = dict(lmax=L, mmax=L, grid="legendre-gauss", norm="ortho")
    fwd = th.RealSHT(L, 2 * L - 1, **kw).to(dtype=dtype)
    inv = th.InverseRealSHT(L, 2 * L - 1, **kw).to(dtype=dtype)
    x = band_limited.cpu().permute(0, 2, 1).reshape(-1, L, 2 * L - 1).contiguous()  # (maps, nlat, nlon)
    with torch.no_grad():
        a = fwd(x)
        back = inv(a)
    common.update(torch_harmonics_round_trip_rel=float((back - x).norm() / x.norm()),
                  torch_harmonics_config=f"torch_harmonics {getattr(th, '__version__', '?')} RealSHT / InverseRealSHT, "
                  "legendre-gauss, lmax=mmax=L, norm=ortho, (maps, nlat, nlon)")

    def t_ana():
        with torch.no_grad():
            return fwd(x)

    def t_syn():
        with torch.no_grad():
            return inv(a)

    return {"th_analysis": t_ana, "th_synthesis": t_syn}


def run(case: dict, device, harness) -> list[dict]:
    """One case: synthesis and analysis records (see the module docstring)."""
    kind, L, nm = case["kind"], case["L"], case["maps"]
    dtype = getattr(torch, case["dtype"])
    S = HealpixSampling(case["nside"]) if kind == "healpix" else _GRIDS[kind][0](L)
    sht = SHT(S, L, dtype=dtype, device=device, check_input=False, iterations=0)  # healpy's map2alm(iter=0)
    g = torch.Generator().manual_seed(L)
    coeffs = torch.randn(1, L * L, nm, generator=g, dtype=dtype)
    maps = torch.randn(1, S.npix, nm, generator=g, dtype=dtype)
    cd, md = coeffs.to(device), maps.to(device)
    with torch.no_grad():
        ours_syn, once_syn = first_call(harness, lambda: sht.inverse(cd))
        ours_ana, once_ana = first_call(harness, lambda: sht(md))
        mem_syn = harness.peak_memory_mb(lambda: sht.inverse(cd))
        mem_ana = harness.peak_memory_mb(lambda: sht(md))
    ours = {"synthesis": (lambda: sht.inverse(cd), once_syn), "analysis": (lambda: sht(md), once_ana)}
    torch_mb, ducc_mb = _engine_bytes(sht, dtype, maps, coeffs)
    stored = sum(1 for t in sht.geometry.theta if t <= np.pi / 2 + 1e-12)
    common = dict(torch_threads=torch.get_num_threads(), torch_engine_mb=torch_mb, ducc0_engine_mb=ducc_mb,
                  old_table_mb=_old_table_mb(stored, L, dtype), npix=S.npix,
                  clock="process_time" if harness.device.type == "cpu" else "wall",
                  engine=sht.engine_for(cd).name, omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"))
    ducc0, reason = optional_peer("ducc0")
    if ducc0 is None:
        with torch.no_grad():
            return [harness.record(f"sht {kind} {d}", case, paired(harness, {"ours": ours[d]})["ours"][0], peak_mem_mb=m,
                                   peer_unavailable=reason, **common)
                    for d, m in (("synthesis", mem_syn), ("analysis", mem_ana))]
    common["peer_config"] = f"ducc0 {ducc0.__version__}, nthreads={torch.get_num_threads()}"
    records = []
    if kind == "healpix":
        d_syn, d_ana, h_syn, h_ana, syn_layout, ana_layout = _healpix_peers(case["nside"], L, dtype, coeffs, maps)
        extra_peers = {"synthesis": h_syn, "analysis": h_ana}
    else:
        d_syn, d_ana, syn_layout, ana_layout = _grid_peer(case, L, dtype, coeffs, maps)
        extra_peers = {}
    if kind == "gl":
        extra_peers.update(_torch_harmonics(L, dtype, ours_syn, common))
    for direction, mem, result, peer, layout in (("synthesis", mem_syn, ours_syn, d_syn, syn_layout),
                                                 ("analysis", mem_ana, ours_ana, d_ana, ana_layout)):
        out, once, peer_mem = harness.measure(peer)
        fns = {"ours": ours[direction], "ducc0": (peer, once)}
        if direction in extra_peers:
            fns["healpy"] = (extra_peers[direction], first_call(harness, extra_peers[direction])[1])
        if "th_" + direction in extra_peers:
            fns["torch_harmonics"] = (extra_peers["th_" + direction], first_call(harness, extra_peers["th_" + direction])[1])
        with torch.no_grad():
            t = paired(harness, fns)
        med = {name: v[1] for name, v in t.items()}
        t = {name: v[0] for name, v in t.items()}
        extras = dict(common, peer_peak_mem_mb=peer_mem, ours_median_s=med["ours"], peer_median_s=med["ducc0"],
                      timing="best of interleaved rounds (medians in *_median_s)")
        if "healpy" in t:
            import healpy as hp

            extras.update(healpy_s=t["healpy"], healpy_speedup=t["healpy"] / t["ours"],
                          healpy_config=f"healpy {hp.__version__}, per map")
        if "torch_harmonics" in t:
            extras.update(torch_harmonics_s=t["torch_harmonics"], torch_harmonics_speedup=t["torch_harmonics"] / t["ours"])
        records.append(harness.record(f"sht {kind} {direction}", case, t["ours"], peer="ducc0", peer_s=t["ducc0"],
                                      max_rel_diff=max_rel_diff(result.cpu(), layout(out)), peak_mem_mb=mem, **extras))
    return records
