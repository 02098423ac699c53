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
import ducc0.sht.experimental as _ducc

from ._healpy_convert import healpy_tables
from ._sht_geometry import RingGeometry

__all__ = ["DuccEngine", "LinearOperator"]


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


def apply_linear(x: torch.Tensor, forward, adjoint) -> torch.Tensor:
    """``forward(x)`` recorded for autograd (backward ``adjoint``) only when a gradient is needed."""
    if torch.is_grad_enabled() and x.requires_grad:
        return LinearOperator.apply(x, forward, adjoint)
    return forward(x)


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


#: analysis operator and its adjoint (method names of DuccEngine) per theta rule
_RULES = {
    "quadrature": ("_analysis_quadrature", "_adjoint_analysis_quadrature"),
    "mcewen-wiaux": ("_analysis_mw", "_adjoint_analysis_mw"),
}


class DuccEngine:
    """The four linear operators of one ring geometry on CPU tensors, each with its adjoint.

    ``synthesis`` (coeffs (B, L*L, C) -> maps (B, npix, C)), ``analysis`` (maps -> coeffs):
    autograd-aware (see :func:`apply_linear`); float32 and float64 (ducc0 computes in the
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
        self._order = geom.order
        self._unorder = None if geom.order is None else np.argsort(geom.order)
        to_alm, to_alm_f, to_real, to_real_f = _conversion(geom.L)
        self._to_alm, self._to_real = to_alm, to_real
        self._factors = {np.dtype(t): (to_alm_f.astype(t), to_real_f.astype(t)) for t in (np.float32, np.float64)}
        if geom.rule == "mcewen-wiaux":
            self._check_mw(geom)
        analysis, adjoint = _RULES[geom.rule]
        self._analysis, self._adjoint_analysis = getattr(self, analysis), getattr(self, adjoint)

    @staticmethod
    def _check_mw(geom: RingGeometry) -> None:
        n = geom.nrings
        t = np.arange(n)
        ok = (np.allclose(geom.theta, np.pi * (2 * t + 1) / (2 * n - 1)) and np.all(geom.nphi[:-1] == 2 * n - 1)
              and geom.nphi[-1] == 1 and np.all(geom.phi0 == 0) and geom.order is None)
        if not ok:
            raise ValueError(f"{geom.label}: the McEwen-Wiaux rule needs ducc0's MW grid (L rings of 2L-1 samples, "
                             "the last one the south pole as one sample, ring-major pixels)")

    # ------------------------------------------------------------------ public operators
    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """coeffs (B, L*L, C) -> maps (B, npix, C); backward: ``adjoint_synthesis``."""
        return apply_linear(coeffs, self._synthesis, self._adjoint_synthesis)

    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        """maps (B, npix, C) -> coeffs (B, L*L, C) by the geometry's theta rule; backward: its adjoint."""
        return apply_linear(maps, self._analysis, self._adjoint_analysis)

    # ------------------------------------------------------------------ layouts
    def _alm(self, coeffs: torch.Tensor) -> np.ndarray:
        """(B, L*L, C) tensor -> (B*C, 1, nalm) complex ducc0 coefficients."""
        r = (coeffs.detach() if coeffs.requires_grad else coeffs).numpy()
        B, n, C = r.shape
        r = r.reshape(B, n) if C == 1 else r.transpose(0, 2, 1).reshape(B * C, n)
        f = self._factors[r.dtype][0]
        ri = np.take(r, self._to_alm, axis=1)
        ri *= f
        return ri.view(np.complex64 if r.dtype == np.float32 else np.complex128)[:, None, :]

    def _real(self, alm: np.ndarray, B: int, C: int) -> torch.Tensor:
        """(B*C, 1, nalm) complex -> (B, L*L, C) real tensor."""
        ri = alm.reshape(B * C, -1).view(np.float32 if alm.dtype == np.complex64 else np.float64)
        r = np.take(ri, self._to_real, axis=1)
        r *= self._factors[r.dtype][1]
        return torch.from_numpy(r.reshape(B, C, -1).transpose(0, 2, 1))

    def _ring_major(self, maps: torch.Tensor) -> np.ndarray:
        """(B, npix, C) tensor -> (B*C, 1, npix) ring-major array."""
        x = (maps.detach() if maps.requires_grad else maps).numpy()
        B, n, C = x.shape
        x = x.transpose(0, 2, 1)
        if self._order is not None:
            x = np.take(x, self._order, axis=2)
        return np.ascontiguousarray(x).reshape(B * C, 1, n)

    def _pixels(self, ring: np.ndarray, B: int, C: int) -> torch.Tensor:
        """(B*C, 1, npix) ring-major -> (B, npix, C) tensor in the maps' pixel order."""
        x = ring.reshape(B, C, -1)
        if self._unorder is not None:
            x = np.take(x, self._unorder, axis=2)
        return torch.from_numpy(x.transpose(0, 2, 1))

    # ------------------------------------------------------------------ operators (no autograd)
    def _synthesis(self, coeffs, ringfactor=None):
        B, _, C = coeffs.shape
        out = _ducc.synthesis(alm=self._alm(coeffs), ringfactor=ringfactor, nthreads=torch.get_num_threads(),
                              **self._kw)
        return self._pixels(out, B, C)

    def _adjoint_synthesis(self, maps, ringfactor=None):
        B, _, C = maps.shape
        alm = _ducc.adjoint_synthesis(map=self._ring_major(maps), ringfactor=ringfactor,
                                      nthreads=torch.get_num_threads(), **self._kw)
        return self._real(alm, B, C)

    def _analysis_quadrature(self, maps):
        return self._adjoint_synthesis(maps, self._ringfactor)

    def _adjoint_analysis_quadrature(self, coeffs):
        return self._synthesis(coeffs, self._ringfactor)

    def _analysis_mw(self, maps):
        B, _, C = maps.shape
        n = self.geom.nrings
        x = self._ring_major(maps)[:, 0]
        grid = np.empty((x.shape[0], n, 2 * n - 1), dtype=x.dtype)
        grid[:, :-1] = x[:, :-1].reshape(x.shape[0], n - 1, 2 * n - 1)
        grid[:, -1] = x[:, -1:]
        alm = np.stack([_ducc.analysis_2d(map=g[None], lmax=self.L - 1, spin=0, geometry="MW",
                                          nthreads=torch.get_num_threads()) for g in grid])
        return self._real(alm, B, C)

    def _adjoint_analysis_mw(self, coeffs):
        B, _, C = coeffs.shape
        n = self.geom.nrings
        alm = self._alm(coeffs)
        grid = np.stack([_ducc.adjoint_analysis_2d(alm=a, lmax=self.L - 1, spin=0, geometry="MW", ntheta=n,
                                                   nphi=2 * n - 1, nthreads=torch.get_num_threads())[0]
                         for a in alm])
        x = np.concatenate([grid[:, :-1].reshape(grid.shape[0], -1), grid[:, -1].sum(axis=1, keepdims=True)], 1)
        return self._pixels(x, B, C)
