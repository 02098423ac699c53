"""Memory at scale suite: a HEALPix SHT built and called at nside 256-2048, against the data it
must hold and against ducc0 / healpy doing the same transform.

Every side runs in a fresh Python process (its peaks are its own; one torch / ducc0 thread,
``OMP_NUM_THREADS`` as given to the run, normally 1), memory by
:func:`deepsphere_gen.bench.memory.cpu_peak_mb` (resident-set high-water mark reset before
each call, so a figure is what that call adds) and the resident set after it (``kept``).

Cases
-----
- ``sht`` at nside 256, 512, 1024, 2048 (quick: 64), L = 3 nside, float32, one NESTED map.
  Ours: ``SHT(HealpixSampling(nside), L, iterations=0)`` built (``build_peak_mb``, ``build_kept_mb``),
  its first analysis (engines and tables made: ``first_peak_mb``, ``first_kept_mb``), a
  second analysis and a synthesis (``analysis_peak_mb``, ``synthesis_peak_mb``).  Peers on the
  RING map (the reorder not counted): ducc0's ``adjoint_synthesis`` (pixel-area
  ``ringfactor``) / ``synthesis`` and healpy's ``map2alm(iter=0)`` / ``alm2map``, plus
  ``healpy.reorder`` of the NESTED map (what a healpy user pays for NESTED input).  The data:
  ``map_mb`` (the float32 map), ``alm_mb`` (L^2 float32 real coefficients).  The params keep
  ``what: "sht"``, as in the recorded results (where it told these cases from ``model``).

The suite's former ``model`` case, ``DeepSphereClassifier(nside, 1)`` (k = 20) built from cached
graphs at nside 256 and 1024 (peak and kept memory, CPU time, in a fresh process), was the build
the ``graph_cached_build`` suite measures with the same figures (``peak_mb``, ``kept_mb``,
``build_s``: fastest of 2 calls, split by step); that such a build makes no (npix,) pixel
coordinates, which it recorded too, is tested (``tests/models/test_deepsphere.py``).

``ours_s``: our steady (second) analysis (its build and first call are ``build_s``, ``first_s``),
CPU time; ``peer_s``: ducc0's analysis, so that ``speedup`` compares like with like.  Every figure
is ONE call per side (``timed_calls``: 1; not the harness's ``repeats``, which this suite does not
use): single timings on a possibly loaded machine.
"""
from __future__ import annotations

import os

from ..memory import fresh_process_result

NAME = "memory_scale"

#: a side's process is stopped after this many seconds
TIMEOUT_S = 900


def cases(quick: bool) -> list[dict]:
    """See the module docstring."""
    return [{"what": "sht", "nside": n} for n in ((64,) if quick else (256, 512, 1024, 2048))]


def sht_child(nside: int, side: str) -> dict:
    """One side of the ``sht`` case, in this process (see the module docstring)."""
    import ducc0.sht.experimental as ducc
    import healpy as hp
    import numpy as np
    import torch

    from deepsphere_gen.bench.memory import cpu_peak_mb, process_timed, resident_mb
    from deepsphere_gen.harmonic import SHT
    from deepsphere_gen.sampling import HealpixSampling

    torch.set_num_threads(1)
    L, npix = 3 * nside, 12 * nside**2
    m = np.random.default_rng(0).standard_normal(npix).astype(np.float32)  # NESTED
    r0 = resident_mb()  # after the imports: kept figures are the work's
    out, t = {"map_mb": m.nbytes / 2**20, "alm_mb": L * L * 4 / 2**20}, {}
    if side == "ours":
        x = torch.from_numpy(m)[None, :, None]
        box = {}
        out["build_peak_mb"] = cpu_peak_mb(process_timed(t, "build_s", lambda: box.setdefault(
            "sht", SHT(HealpixSampling(nside), L, check_input=False, iterations=0))))
        out["build_kept_mb"] = resident_mb() - r0
        sht = box["sht"]
        with torch.no_grad():
            out["first_peak_mb"] = cpu_peak_mb(process_timed(t, "first_s", lambda: sht(x)))
            out["first_kept_mb"] = resident_mb() - r0
            out["analysis_peak_mb"] = cpu_peak_mb(process_timed(t, "analysis_s", lambda: sht(x)))
            a = sht(x)
            out["synthesis_peak_mb"] = cpu_peak_mb(process_timed(t, "synthesis_s", lambda: sht.inverse(a)))
    elif side == "ducc0":
        start, nphi, costheta, _, shifted = hp.ringinfo(nside, np.arange(1, 4 * nside))
        geo = dict(theta=np.arccos(costheta), nphi=nphi.astype(np.uintp), phi0=np.where(shifted, np.pi / nphi, 0.0),
                   ringstart=start.astype(np.uintp), lmax=L - 1, spin=0, nthreads=1)
        w = np.full(nphi.size, hp.nside2pixarea(nside))
        ring = hp.reorder(m, n2r=True)[None]
        out["analysis_peak_mb"] = cpu_peak_mb(process_timed(t, "analysis_s", lambda: ducc.adjoint_synthesis(
            map=ring, ringfactor=w, **geo)))
        alm = ducc.adjoint_synthesis(map=ring, ringfactor=w, **geo)
        out["synthesis_peak_mb"] = cpu_peak_mb(process_timed(t, "synthesis_s", lambda: ducc.synthesis(alm=alm, **geo)))
    else:  # healpy
        ring = hp.reorder(m, n2r=True)
        out["analysis_peak_mb"] = cpu_peak_mb(process_timed(t, "analysis_s", lambda: hp.map2alm(
            ring, lmax=L - 1, iter=0, use_weights=False, use_pixel_weights=False)))
        alm = hp.map2alm(ring, lmax=L - 1, iter=0, use_weights=False, use_pixel_weights=False)
        out["synthesis_peak_mb"] = cpu_peak_mb(process_timed(t, "synthesis_s", lambda: hp.alm2map(alm, nside, lmax=L - 1)))
        out["reorder_peak_mb"] = cpu_peak_mb(process_timed(t, "reorder_s", lambda: hp.reorder(m, n2r=True)))
    out.update(t)
    return out


def _child(call: str) -> dict:
    code = f"import json; from deepsphere_gen.bench.suites.memory_scale import sht_child; print('RESULT ' + json.dumps({call}))"
    return fresh_process_result(code, TIMEOUT_S, call)


def run(case: dict, device, harness) -> list[dict]:
    """One case in fresh processes (see the module docstring)."""
    if str(device) != "cpu":
        raise ValueError("the memory_scale suite measures CPU memory")
    nside = int(case["nside"])
    sides = {s: _child(f"sht_child({nside}, {s!r})") for s in ("ours", "ducc0", "healpy")}
    ours = sides["ours"]
    extras = dict(torch_threads=1, ducc0_threads=1, omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
                  clock="process_time", timed_calls=1, L=3 * nside, dtype="float32", **ours,
                  **{f"{p}_{k}": v for p in ("ducc0", "healpy") for k, v in sides[p].items()
                     if k not in ("map_mb", "alm_mb")})
    return [harness.record("memory sht healpix", case, ours["analysis_s"], peer="ducc0",
                           peer_s=sides["ducc0"]["analysis_s"], peak_mem_mb=ours["first_peak_mb"], **extras)]
