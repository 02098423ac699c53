"""CPU engine of the SHT: ducc0's transforms inside ``torch.autograd.Function`` s.

Why call ducc0 instead of writing our own CPU kernels: ducc0 (the SHT library behind
healpy's successor engine, released on PyPI) computes the Legendre values on the fly with
vectorised, cache-blocked recursions, takes arbitrary iso-latitude ring geometries
(colatitude, samples, first longitude and start of every ring) and is the fastest CPU SHT
in the field; a torch re-implementation streams stored tables (or recomputes them) and was
2-4x slower (issue 13).  ducc0's operators are linear, and ``adjoint_synthesis`` is the
exact adjoint of ``synthesis`` (``adjoint_analysis_2d`` of ``analysis_2d``), so each
transform's backward is the other operator of its pair: autograd needs no tape of the
transform and gradients are exact to rounding.

Conventions: our real orthonormal coefficients (flat index l*l + l + m) map to ducc0's
complex a_lm (m >= 0, healpy's m-major layout, Condon-Shortley phase) by an isometry T
(``_healpy_convert``: a_lm = (-1)^m (r_lm - i r_l,-m) / sqrt2, m > 0).  With ducc0's
inner product on a_lm (m > 0 counted twice), T is orthogonal, so the real adjoint of
``synthesis o T`` is ``T^-1 o adjoint_synthesis``: one conversion table serves both
directions (gathers with precomputed indices and factors).

Analysis: quadrature rule: ``adjoint_synthesis`` with the rings' weights as ``ringfactor``
(healpy's ``map2alm`` with ``iter=0``; exact on GL / DH up to their bandlimit); adjoint:
``synthesis`` with the same ``ringfactor``.  McEwen-Wiaux rule: ducc0's exact
``analysis_2d(geometry="MW")`` per map (the pole sample repeated along its ring), adjoint
``adjoint_analysis_2d`` (the pole ring summed back onto its sample).

Threads: ducc0 uses ``torch.get_num_threads()`` threads.  Memory: the maps, the complex
coefficients and O(L) per thread of ducc0 workspace (no Legendre table); conversion
tables 3 * L^2 int64 / float entries.
"""
from __future__ import annotations

import numpy as np
import torch
import ducc0.misc as _ducc_misc
import ducc0.sht.experimental as _ducc

from ._healpy_convert import healpy_tables
from ._sht_geometry import RingGeometry

__all__ = ["DuccEngine", "LinearOperator", "ducc_grid"]


class LinearOperator(torch.autograd.Function):
    """``y = forward(x)`` for a linear map whose adjoint is ``adjoint``: backward is ``adjoint(grad)``.

    The backward applies the adjoint through this same Function (with the roles swapped),
    so higher-order gradients work too.
    """

    @staticmethod
    def forward(ctx, x, forward, adjoint):
        ctx.ops = (forward, adjoint)
        return forward(x)

    @staticmethod
    def backward(ctx, grad):
        forward, adjoint = ctx.ops
        return LinearOperator.apply(grad, adjoint, forward), None, None


def _conversion(L: int):
    """Index and factor tables between real flat coefficients and ducc0's (re, im) pairs.

    ``alm_ri[2 i + c] = r[to_alm[2 i + c]] * to_alm_f[2 i + c]`` (c = 0 real, 1 imaginary;
    the imaginary part of m = 0 has factor 0) and ``r[j] = alm_ri[to_real[j]] * to_real_f[j]``.
    """
    m, pos, neg, sign, scale = healpy_tables(L)  # ducc0's alm order is healpy's
    to_alm = np.stack([pos, neg], axis=1).ravel()
    to_alm_f = np.stack([sign / scale, np.where(m == 0, 0.0, -sign / scale)], axis=1).ravel()
    to_real = np.zeros(L * L, dtype=np.int64)
    to_real_f = np.zeros(L * L)
    i = np.arange(m.size)
    to_real[pos] = 2 * i
    to_real_f[pos] = sign * scale
    nz = m > 0
    to_real[neg[nz]] = 2 * i[nz] + 1
    to_real_f[neg[nz]] = -(sign * scale)[nz]
    return to_alm, to_alm_f, to_real, to_real_f


def ducc_grid(geom: RingGeometry) -> tuple[str, int, int] | None:
    """(ducc0's name, ntheta, nphi) of the 2D grid that ``geom`` is, or None.

    A grid: ring-major pixels, nphi samples on every ring from longitude 0, and either the
    McEwen-Wiaux rule on MW's rings (L rings of 2L-1 samples, the last one the south pole
    stored as one sample) or the quadrature rule with ducc0's own Gauss-Legendre or
    Driscoll-Healy colatitudes and weights (``ducc0.misc.GL_thetas``,
    ``get_gridweights``), with enough rings and samples for bandlimit L (so that ducc0's
    2D functions accept it).
    """
    n, nphi = geom.nrings, int(geom.nphi[0])
    if geom.order is not None or np.any(geom.phi0 != 0) or not np.array_equal(geom.start, np.arange(n) * nphi):
        return None
    if geom.rule == "mcewen-wiaux":
        t = np.arange(n)
        ok = (np.allclose(geom.theta, np.pi * (2 * t + 1) / (2 * n - 1), rtol=0, atol=1e-13)
              and np.all(geom.nphi[:-1] == 2 * n - 1) and geom.nphi[-1] == 1 and n >= geom.L)
        return ("MW", n, 2 * n - 1) if ok else None
    if np.any(geom.nphi != nphi) or nphi < 2 * geom.L - 1:
        return None
    for name, theta, rings_needed in (("GL", _ducc_misc.GL_thetas(n), geom.L),
                                      ("DH", np.pi * np.arange(n) / n, 2 * geom.L)):
        w = _ducc.get_gridweights(name, n) / nphi
        if (n >= rings_needed and np.allclose(geom.theta, theta, rtol=0, atol=1e-13)
                and np.allclose(geom.weights, w, rtol=0, atol=1e-13 * np.abs(w).max())):
            return name, n, nphi
    return None


#: analysis operator and its adjoint (method names of DuccEngine) per theta rule
_RULES = {
    "quadrature": ("_analysis_quadrature", "_adjoint_analysis_quadrature"),
    "mcewen-wiaux": ("_analysis_mw", "_adjoint_analysis_mw"),
}


class DuccEngine:
    """The four linear operators of one ring geometry on CPU tensors, each with its adjoint.

    ``synthesis`` (coeffs (B, L*L, C) -> maps (B, npix, C)), ``analysis`` (maps -> coeffs):
    recorded for autograd (:class:`LinearOperator`) only when the input needs a gradient; float32 and float64 (ducc0 computes in the
    input's precision).  Cost: ducc0's O(L^2 nrings) per map; conversions O(L^2 + npix).
    """

    name = "ducc0"

    def __init__(self, geom: RingGeometry):
        self.geom, self.L = geom, geom.L
        self._kw = dict(
            theta=geom.theta, nphi=geom.nphi.astype(np.uintp), phi0=geom.phi0,
            ringstart=geom.start.astype(np.uintp), lmax=geom.L - 1, spin=0,
        )
        self._ringfactor = geom.weights
        self._nalm = geom.L * (geom.L + 1) // 2
        self._grid = ducc_grid(geom)
        if self._grid is not None:
            name, nt, nphi = self._grid
            self._kw2d_adj = dict(lmax=geom.L - 1, spin=0, geometry=name)  # map shape gives ntheta, nphi
            self._kw2d = dict(self._kw2d_adj, ntheta=nt, nphi=nphi)
        self._order = geom.order
        self._unorder = None if geom.order is None else np.argsort(geom.order)
        if geom.order is not None:  # one map's gathers, shaped as their outputs
            self._order_one, self._unorder_one = geom.order[None], self._unorder[None, :, None]
        to_alm, to_alm_f, to_real, to_real_f = _conversion(geom.L)
        # keyed by the array's dtype: real -> (gather into ducc0's (re, im) pairs, factors, complex
        # dtype), complex -> (gather back into the real layout, factors, real dtype); each index and
        # factor array also shaped as one map's output: (1, 2 nalm) and (1, L*L, 1)
        self._tables = {}
        for t, c in ((np.dtype(np.float32), np.dtype(np.complex64)), (np.dtype(np.float64), np.dtype(np.complex128))):
            fa, fr = to_alm_f.astype(t), to_real_f.astype(t)
            self._tables[t] = (to_alm, fa, to_alm[None], fa[None], c)
            self._tables[c] = (to_real, fr, to_real[None, :, None], fr[None, :, None], t)
        if geom.rule == "mcewen-wiaux" and (self._grid is None or self._grid[0] != "MW"):
            raise ValueError(f"{geom.label}: the McEwen-Wiaux rule needs ducc0's MW grid (L rings of 2L-1 samples, "
                             "the last one the south pole as one sample, ring-major pixels)")
        analysis, adjoint = _RULES[geom.rule]
        self._analysis, self._adjoint_analysis = getattr(self, analysis), getattr(self, adjoint)

    # ------------------------------------------------------------------ public operators
    # An input that needs no gradient skips the autograd Function (same values; the Function
    # costs ~10 us a call, a third of a transform at L = 32).
    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """coeffs (B, L*L, C) -> maps (B, npix, C); backward: ``adjoint_synthesis``."""
        if coeffs.requires_grad and torch.is_grad_enabled():
            return LinearOperator.apply(coeffs, self._synthesis, self._adjoint_synthesis)
        return self._synthesis(coeffs)

    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        """maps (B, npix, C) -> coeffs (B, L*L, C) by the geometry's theta rule; backward: its adjoint."""
        if maps.requires_grad and torch.is_grad_enabled():
            return LinearOperator.apply(maps, self._analysis, self._adjoint_analysis)
        return self._analysis(maps)

    # ------------------------------------------------------------------ layouts
    # One map (B * C == 1, the latency-bound case) takes flat gathers whose index arrays have
    # the output's shape (no reshape after them); several maps one strided gather along the
    # pixel / coefficient axis (no transpose copy first).
    def _alm(self, coeffs: torch.Tensor) -> np.ndarray:
        """(B, L*L, C) tensor -> (B*C, nalm) complex ducc0 coefficients."""
        r = (coeffs.detach() if coeffs.requires_grad else coeffs).numpy()
        B, _, C = r.shape
        to_alm, f, one, f_one, cdt = self._tables[r.dtype]
        if B * C == 1:
            ri = r.take(one)  # (1, 2 nalm)
            ri *= f_one
            return ri.view(cdt)
        ri = np.take(r.transpose(0, 2, 1), to_alm, axis=2)  # (B, C, 2 nalm), contiguous
        ri *= f
        return ri.view(cdt).reshape(B * C, -1)

    def _real(self, alm: np.ndarray, B: int, C: int) -> torch.Tensor:
        """(B*C, [1,] nalm) complex -> (B, L*L, C) real tensor."""
        to_real, f, one, f_one, rdt = self._tables[alm.dtype]
        ri = alm.view(rdt)
        if B * C == 1:
            r = ri.take(one)  # (1, L*L, 1)
            r *= f_one
            return torch.from_numpy(r)
        r = np.take(ri.reshape(B * C, -1), to_real, axis=1)
        r *= f
        return torch.from_numpy(r.reshape(B, C, -1).transpose(0, 2, 1))

    def _ring_major(self, maps: torch.Tensor) -> np.ndarray:
        """(B, npix, C) tensor -> (B*C, npix) ring-major array."""
        x = (maps.detach() if maps.requires_grad else maps).numpy()
        B, n, C = x.shape
        if B * C == 1:
            return x.reshape(1, n) if self._order is None else x.take(self._order_one)
        x = x.transpose(0, 2, 1)
        x = np.ascontiguousarray(x) if self._order is None else np.take(x, self._order, axis=2)
        return x.reshape(B * C, n)

    def _pixels(self, ring: np.ndarray, B: int, C: int) -> torch.Tensor:
        """(B*C, [1,] npix) ring-major -> (B, npix, C) tensor in the maps' pixel order."""
        if B * C == 1:
            return torch.from_numpy(ring.reshape(1, -1, 1) if self._unorder is None else ring.take(self._unorder_one))
        x = ring.reshape(B, C, -1)
        if self._unorder is not None:
            x = np.take(x, self._unorder, axis=2)
        return torch.from_numpy(x.transpose(0, 2, 1))

    def _on_grid(self, x: np.ndarray, pole: str = "repeat") -> np.ndarray:
        """(K, npix) ring-major maps -> (K, ntheta, nphi) on ducc0's 2D grid.  MW's pole sample
        is repeated along its ring (analysis: the function's value there) or put in its first
        sample with zeros after it (``pole="first"``: adjoint of taking the first sample)."""
        _, nt, nphi = self._grid
        if x.shape[-1] == nt * nphi:
            return x.reshape(-1, nt, nphi)
        g = np.empty((x.shape[0], nt, nphi), dtype=x.dtype)
        g[:, :-1] = x[:, :-1].reshape(-1, nt - 1, nphi)
        if pole == "first":
            g[:, -1] = 0
            g[:, -1, 0] = x[:, -1]
        else:
            g[:, -1] = x[:, -1:]
        return g

    def _off_grid(self, g: np.ndarray) -> np.ndarray:
        """(K, ntheta, nphi) ducc0 2D grid -> (K, npix) ring-major maps (MW: the pole ring's first sample)."""
        return g.reshape(g.shape[0], -1)[:, : self.geom.npix]

    # ------------------------------------------------------------------ operators (no autograd)
    # One map on one of ducc0's own 2D grids (``self._grid``) goes through ducc0's 2D functions:
    # same nodes and weights (checked at construction), so the same operators to rounding, minus
    # the per-ring geometry arguments (~1.5 us of a ~22 us transform at L = 32).  Several maps
    # go through the ring functions, which transform a batch in one call.
    def _synthesis(self, coeffs):
        B, _, C = coeffs.shape
        alm = self._alm(coeffs)
        if self._grid is not None and B * C == 1:
            out = _ducc.synthesis_2d(alm=alm, nthreads=torch.get_num_threads(), **self._kw2d)
            return self._pixels(self._off_grid(out) if self._grid[0] == "MW" else out, 1, 1)
        out = _ducc.synthesis(alm=alm[:, None], nthreads=torch.get_num_threads(), **self._kw)
        return self._pixels(out, B, C)

    def _adjoint_synthesis(self, maps):
        B, _, C = maps.shape
        x = self._ring_major(maps)
        if self._grid is not None and B * C == 1:
            alm = _ducc.adjoint_synthesis_2d(map=self._on_grid(x, pole="first"), nthreads=torch.get_num_threads(),
                                             **self._kw2d_adj)
        else:
            alm = _ducc.adjoint_synthesis(map=x[:, None], nthreads=torch.get_num_threads(), **self._kw)
        return self._real(alm, B, C)

    def _analysis_quadrature(self, maps):
        B, _, C = maps.shape
        x = self._ring_major(maps)
        if self._grid is not None and B * C == 1:
            alm = _ducc.analysis_2d(map=self._on_grid(x), nthreads=torch.get_num_threads(), **self._kw2d_adj)
        else:
            alm = _ducc.adjoint_synthesis(map=x[:, None], ringfactor=self._ringfactor,
                                          nthreads=torch.get_num_threads(), **self._kw)
        return self._real(alm, B, C)

    def _adjoint_analysis_quadrature(self, coeffs):
        B, _, C = coeffs.shape
        alm = self._alm(coeffs)
        if self._grid is not None and B * C == 1:
            out = _ducc.adjoint_analysis_2d(alm=alm, nthreads=torch.get_num_threads(), **self._kw2d)
        else:
            out = _ducc.synthesis(alm=alm[:, None], ringfactor=self._ringfactor, nthreads=torch.get_num_threads(),
                                  **self._kw)
        return self._pixels(out, B, C)

    def _analysis_mw(self, maps):
        """McEwen-Wiaux's exact rule: ducc0's ``analysis_2d`` per map (it takes one map per call),
        written into one output array."""
        B, _, C = maps.shape
        grid = self._on_grid(self._ring_major(maps))
        alm = np.empty((grid.shape[0], self._nalm), dtype=np.result_type(grid.dtype, np.complex64))
        for k in range(grid.shape[0]):
            _ducc.analysis_2d(map=grid[k : k + 1], alm=alm[k : k + 1], nthreads=torch.get_num_threads(),
                              **self._kw2d_adj)
        return self._real(alm, B, C)

    def _adjoint_analysis_mw(self, coeffs):
        """Adjoint of :meth:`_analysis_mw`: ``adjoint_analysis_2d`` per map, the pole ring summed
        back onto its sample."""
        B, _, C = coeffs.shape
        _, nt, nphi = self._grid
        alm = self._alm(coeffs)
        grid = np.empty((alm.shape[0], nt, nphi), dtype=alm.real.dtype)
        for k in range(alm.shape[0]):
            _ducc.adjoint_analysis_2d(alm=alm[k : k + 1], map=grid[k : k + 1], nthreads=torch.get_num_threads(),
                                      **self._kw2d)
        x = self._off_grid(grid).copy()
        x[:, -1] = grid[:, -1].sum(axis=1)
        return self._pixels(x, B, C)
