"""CPU engine of the SHT: ducc0's transforms inside ``torch.autograd.Function`` s.

Why call ducc0 instead of writing our own CPU kernels: ducc0 (the SHT library behind
healpy's successor engine, released on PyPI) computes the Legendre values on the fly with
vectorised, cache-blocked recursions, takes arbitrary iso-latitude ring geometries
(colatitude, samples, first longitude and start of every ring) and is the fastest CPU SHT
in the field; a torch re-implementation streams stored tables (or recomputes them) and was
2-4x slower when this engine was chosen.  ducc0's operators are linear, and ``adjoint_synthesis`` is the
exact adjoint of ``synthesis`` (``adjoint_analysis_2d`` of ``analysis_2d``), so each
transform's backward is the other operator of its pair: autograd needs no tape of the
transform and gradients are exact to rounding.

Conventions: our real orthonormal coefficients (flat index l*l + l + m) map to ducc0's
complex a_lm (m >= 0, healpy's m-major layout, Condon-Shortley phase) by an isometry T
(``_healpy_convert``: a_lm = (-1)^m (r_lm - i r_l,-m) / sqrt2, m > 0).  With ducc0's
inner product on a_lm (m > 0 counted twice), T is orthogonal, so the real adjoint of
``synthesis o T`` is ``T^-1 o adjoint_synthesis``: one conversion serves both directions
(``_ducc_layout``: per-coefficient tables up to L = 1024, per order / degree blocks above).

Analysis: quadrature rule: ``adjoint_synthesis`` with the rings' weights as ``ringfactor``
(healpy's ``map2alm`` with ``iter=0``; exact on GL / DH up to their bandlimit); adjoint:
``synthesis`` with the same ``ringfactor``.  On ducc0's own 2D grids (GL, DH with ducc0's
nodes and weights, and MW: :func:`ducc_grid`) every transform goes through ducc0's 2D
functions instead (``synthesis_2d``, ``analysis_2d`` and their adjoints), one call per
map: the same operators, and the McEwen-Wiaux rule (ducc0's exact ``analysis_2d(geometry="MW")``,
the pole sample repeated along its ring; adjoint: the pole ring summed back onto its
sample).  Below the grid's bandlimit (ducc0's ``analysis_2d`` at a smaller lmax aliases) MW
takes the torch engine's construction (``_mw``'s mixing at the grid's bandlimit) on ducc0's
ring kernels ``map2leg`` / ``leg2alm``; its reference is this engine's analysis at the grid's
bandlimit, truncated (the tests compare them).

Per-call cost matters at small L (a ducc0 transform takes ~22 us at L = 32): a map that
needs no gradient skips the autograd Function, and one map takes flat gathers.

Threads: ducc0 uses ``torch.get_num_threads()`` threads.  Memory: the maps, the complex
coefficients and O(L) per thread of ducc0 workspace (no Legendre table); conversion
tables of 2 x 8 + 2 x itemsize bytes per coefficient, per precision used, up to
L = :data:`._ducc_layout.TABLE_MAX_L` (<= 24 MiB for float32), none above (O(L) blocks);
NESTED HEALPix maps: two int32 permutations (8 bytes per pixel, ``_permutation``); MW below
its grid's bandlimit Lg: the mixing, 2 Lg^2 values per precision, and per call the maps'
(Lg, L) complex ring values.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import ducc0.misc as _ducc_misc
import ducc0.sht.experimental as _ducc

from . import _ducc_layout
from ._ducc_layout import DuccLayout
from ._mw import mw_theta_mixing
from ._permutation import gather, inverse_permutation
from ._per_thread import PerThread
from ._sht_geometry import RingGeometry

__all__ = ["DuccEngine", "LinearOperator", "ducc_grid"]

#: work arrays (converted coefficients, RING-ordered maps) of this many bytes are kept per engine
#: and thread between calls: a fresh array above glibc's mmap threshold comes back from the
#: kernel page by page (~2.4 us per 4 KiB page on the development VM: 1500 page faults, 3.7 ms,
#: +50 % for 8 HEALPix maps at nside 64); smaller ones are fresh (no faults), larger ones too
#: (faults are then a few % of the transform, and they would stay allocated).
WORK_BYTES = (2**17, 2**25)

#: coefficient rows of several channels gathered per block (:meth:`DuccEngine._channel_major`): 2048 x C values
BLOCK_ROWS = 2048

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


#: complex dtype of ducc0's coefficients for each real dtype, and back
_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}
_REAL = {c: r for r, c in _COMPLEX.items()}
_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


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
    if np.any(geom.nphi != nphi) or nphi < 2 * geom.L - 1 or geom.weights is None:
        return None
    for name, theta, rings_needed in (("GL", _ducc_misc.GL_thetas(n), geom.L),
                                      ("DH", np.pi * np.arange(n) / n, 2 * geom.L)):
        w = _ducc.get_gridweights(name, n) / nphi
        if (n >= rings_needed and np.allclose(geom.theta, theta, rtol=0, atol=1e-13)
                and np.allclose(geom.weights, w, rtol=0, atol=1e-13 * np.abs(w).max())):
            return name, n, nphi
    return None


class DuccEngine:
    """The four linear operators of one ring geometry on CPU tensors, each with its adjoint.

    ``synthesis`` (coeffs (B, L*L, C) -> maps (B, npix, C)), ``analysis`` (maps -> coeffs):
    recorded for autograd (:class:`LinearOperator`) only when the input needs a gradient;
    float32 and float64 (ducc0 computes in the input's precision).  Cost: ducc0's O(L^2 nrings)
    per map; conversions O(L^2 + npix).

    MW's analysis below the grid's bandlimit Lg: ring FFTs, MW's mixing, ``leg2alm`` at L
    (O(Lg^2 (L + log Lg) + L^2 Lg) per map; the reference, this engine's analysis at Lg truncated,
    costs O(Lg^3): the same linear map to rounding).
    """

    name = "ducc0"
    #: device types it runs on (the SHT refuses others)
    device_types = ("cpu",)

    @staticmethod
    def cache_key(dtype: torch.dtype, device) -> tuple:
        """One engine per SHT module: it serves both precisions."""
        return ("ducc0",)

    @classmethod
    def build(cls, geom: RingGeometry, dtype: torch.dtype, device, block_bytes: int) -> "DuccEngine":
        """The SHT's constructor call (dtype, device and block_bytes unused)."""
        return cls(geom)

    def __init__(self, geom: RingGeometry):
        self.geom, self.L = geom, geom.L
        self._kw = dict(
            theta=geom.theta, nphi=geom.nphi.astype(np.uintp), phi0=geom.phi0,
            ringstart=geom.start.astype(np.uintp), lmax=geom.L - 1, spin=0,
        )
        self._ringfactor = geom.weights
        self._scratch = PerThread()
        # one float64 map's coefficients / pixels below the work-array size: fresh arrays, no lookup
        self._small = (geom.L * (geom.L + 1) * 8 < WORK_BYTES[0], geom.npix * 8 < WORK_BYTES[0])
        self._nalm = geom.L * (geom.L + 1) // 2
        self._grid = ducc_grid(geom)
        if self._grid is not None:
            name, nt, nphi = self._grid
            self._kw2d_adj = dict(lmax=geom.L - 1, spin=0, geometry=name)  # map shape gives ntheta, nphi
            self._kw2d = dict(self._kw2d_adj, ntheta=nt, nphi=nphi)
        # NESTED -> RING gather and its inverse, int32 (_permutation): 8 bytes per pixel in all
        self._order = geom.order
        self._unorder = None if geom.order is None else inverse_permutation(geom.order)
        # the coefficient conversion of each precision, made at its first call (:meth:`_precision`)
        self._layout, self._tables, self._indices = DuccLayout(geom.L), {}, None
        if geom.rule == "mcewen-wiaux" and (self._grid is None or self._grid[0] != "MW"):
            raise ValueError(f"{geom.label}: the McEwen-Wiaux rule needs ducc0's MW grid (L rings of 2L-1 samples, "
                             "the last one the south pole as one sample, ring-major pixels)")
        # MW below the grid's bandlimit (see :meth:`_analysis`): the ring path, with the torch
        # engine's mixing matrices at the grid's Lg (2 x Lg^2 per precision, made on first use)
        below = geom.rule == "mcewen-wiaux" and geom.L < self._grid[1]
        self._mw_mix = {} if below else None

    def kept_bytes(self) -> int:
        """Bytes of the arrays this engine keeps between calls: the NESTED <-> RING permutations and
        the conversion tables or block factors of the precisions called so far (not the per-thread
        work arrays, not ducc0's own), with MW's mixing (below the grid's bandlimit)."""
        kept, todo = {}, [self._order, self._unorder, self._indices, *self._tables.values(), *(self._mw_mix or {}).values()]
        while todo:
            a = todo.pop()
            if isinstance(a, tuple):
                todo.extend(a)
            elif isinstance(a, np.ndarray) and a.base is None:  # views (the tables reshaped) share their bytes
                kept[id(a)] = a.nbytes
        return sum(kept.values())

    def _precision(self, dtype) -> tuple:
        """The conversion of arrays of ``dtype`` (made at the first call of its precision).

        Keyed by the array's dtype: real -> (gather into ducc0's (re, im) pairs, factors, index
        and factors shaped as one map's output (1, 2 nalm), complex dtype), complex -> (gather
        back into the real layout, factors, the same as (1, L*L, 1), real dtype).  Up to
        :data:`._ducc_layout.TABLE_MAX_L` the indices are per-coefficient int64 tables shared by
        both precisions and the factors per-precision tables (float32 at L = 1024: 24 MiB);
        above it the index entries are None and the factors the layout's O(L) per-block ones
        (:meth:`._ducc_layout.DuccLayout.to_ducc`; nothing of O(L^2) kept)."""
        t = _REAL.get(np.dtype(dtype), np.dtype(dtype))
        c = _COMPLEX[t]
        if self.L > _ducc_layout.TABLE_MAX_L:
            f = self._layout.factors(t)
            self._tables[t], self._tables[c] = (None, f, None, None, c), (None, f, None, None, t)
            return self._tables[np.dtype(dtype)]
        if self._indices is None:  # made once, shared by both precisions
            self._indices = self._layout.tables()
        to_alm, to_real = self._indices
        fa, fr = self._layout.table_factors(t)
        self._tables[t] = (to_alm, fa, to_alm[None], fa[None], c)
        self._tables[c] = (to_real, fr, to_real[None, :, None], fr[None, :, None], t)
        return self._tables[np.dtype(dtype)]

    # ------------------------------------------------------------------ public operators
    # An input that needs no gradient skips the autograd Function (same values, without its
    # per-call bookkeeping: this path is what a ~22 us transform at L = 32 is measured on).
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

    def _work(self, name: str, shape: tuple, dtype) -> np.ndarray | None:
        """This thread's kept work array ``name`` of ``shape`` / ``dtype`` (see :data:`WORK_BYTES`),
        or None where the size calls for a fresh one.  Never returned to the caller."""
        if not WORK_BYTES[0] <= math.prod(shape) * dtype.itemsize <= WORK_BYTES[1]:  # (dtype: a numpy dtype)
            return None
        a = getattr(self._scratch, name, None)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = np.empty(shape, dtype)
            setattr(self._scratch, name, a)
        return a

    # ------------------------------------------------------------------ coefficient layouts
    # Tables (L <= TABLE_MAX_L): one map (B * C == 1, the latency-bound case) takes flat gathers
    # whose index arrays have the output's shape (no reshape after them); several maps one
    # gather along the coefficient axis.  Above: the layout's per-order / per-degree blocks.
    def _alm(self, coeffs: torch.Tensor) -> np.ndarray:
        """(B, L*L, C) tensor -> (B*C, nalm) complex ducc0 coefficients (map b * C + c)."""
        r = (coeffs.detach() if coeffs.requires_grad else coeffs).numpy()
        B, _, C = r.shape
        to_alm, f, one, f_one, cdt = self._tables.get(r.dtype) or self._precision(r.dtype)
        if to_alm is None:  # blocks: (B*C, L*L) contiguous (a copy only for C > 1)
            real = np.ascontiguousarray(r.transpose(0, 2, 1)).reshape(B * C, -1)
            w = self._work("alm", (B * C, 2 * self._nalm), r.dtype)
            w = np.empty((B * C, 2 * self._nalm), r.dtype) if w is None else w
            return self._layout.to_ducc(real, w, f).view(cdt)
        if B * C == 1:
            w = None if self._small[0] else self._work("alm", one.shape, r.dtype)
            ri = r.take(one) if w is None else r.take(one, out=w)  # (1, 2 nalm)
            ri *= f_one
            return ri.view(cdt)
        if C > 1 and r.strides[2] == r.itemsize:  # channels-last memory (channel-major: the gather below)
            return self._channel_major(r, to_alm, f).view(cdt).reshape(B * C, -1)
        w = self._work("alm", (B, C, to_alm.size), r.dtype)
        ri = np.take(r.transpose(0, 2, 1), to_alm, axis=2, out=w)
        ri *= f  # (B, C, 2 nalm), contiguous
        return ri.view(cdt).reshape(B * C, -1)

    def _real(self, alm: np.ndarray, B: int, C: int) -> torch.Tensor:
        """(B*C, [1,] nalm) complex -> (B, L*L, C) real tensor."""
        to_real, f, one, f_one, rdt = self._tables.get(alm.dtype) or self._precision(alm.dtype)
        ri = alm.view(rdt)
        if to_real is None:  # blocks
            r = self._layout.to_real(ri.reshape(B * C, -1), np.empty((B * C, self.L * self.L), rdt), f)
        elif B * C == 1:
            r = ri.take(one)
            r *= f_one  # (1, L*L, 1)
            return torch.from_numpy(r)
        else:
            r = np.take(ri.reshape(B * C, -1), to_real, axis=1)
            r *= f
        return torch.from_numpy(r.reshape(B, C, -1).transpose(0, 2, 1))

    # ------------------------------------------------------------------ calls into ducc0
    # ducc0 reads strided arrays, so the maps of our (B, npix, C) layout are handed over as views
    # (the C maps of one batch entry: a (C, 1, npix) view with pixel stride C), without a
    # transpose copy; HEALPix NESTED maps take one row gather to / from RING order.  Arrays go
    # in with their (ntrans, ncomp, n) shape even for one map: ducc0's synthesis of a 2D
    # (ncomp, nalm) input was 18 % slower at HEALPix nside 1024.
    def _coeffs_from(self, fn, maps: torch.Tensor, **kw) -> np.ndarray:
        """ducc0 ring function ``fn`` (maps -> coefficients), C maps per call: (B, npix, C) -> (B*C, [1,] nalm)."""
        x = (maps.detach() if maps.requires_grad else maps).numpy()
        B, n, C = x.shape
        nthreads = torch.get_num_threads()
        cdt = _COMPLEX[x.dtype]
        if B * C == 1:  # flat gathers (numpy's fastest)
            if self._small[1]:
                x = x if self._order is None else gather(x.reshape(n), self._order, 0)
                return fn(map=x.reshape(1, 1, n), nthreads=nthreads, **kw, **self._kw)
            if self._order is not None:
                w = self._work("maps", (n,), x.dtype)
                x = gather(x.reshape(n), self._order, 0, out=w)
            return fn(map=x.reshape(1, 1, n), alm=self._work("alm_out", (1, 1, self._nalm), cdt), nthreads=nthreads,
                      **kw, **self._kw)
        if self._order is not None:
            x = gather(x, self._order, 1, out=self._work("maps", x.shape, x.dtype))
        alm = self._work("alm_out", (B * C, 1, self._nalm), cdt)
        alm = np.empty((B * C, 1, self._nalm), dtype=cdt) if alm is None else alm
        for b in range(B):
            fn(map=x[b].T[:, None], alm=alm[b * C : (b + 1) * C], nthreads=nthreads, **kw, **self._kw)
        return alm

    def _channel_major(self, x: np.ndarray, index: np.ndarray, factors: np.ndarray) -> np.ndarray:
        """Rows ``index`` of (B, n, C) ``x`` (times ``factors``, one per row) as a channel-major (B, C, index.size)
        array: this thread's work array "alm" or a torch.empty one (not np.empty: its huge pages, see
        :meth:`_maps_from`).

        :data:`BLOCK_ROWS` rows at a time are gathered into a small buffer, then written transposed
        (a gather along the coefficient axis of a (B, C, L*L) view reads pixel stride C).  Coefficients
        at L = 1024, 8 channels, float64, one thread: ~110 -> ~65 ms; NESTED synthesis at nside 512
        1.19-1.20 -> 0.95-0.98 s (ducc0 0.88-0.92 s)."""
        B, _, C = x.shape
        n = index.size
        y = self._work("alm", (B, C, n), x.dtype)
        y = torch.empty((B, C, n), dtype=_TORCH[x.dtype]).numpy() if y is None else y
        buf = np.empty((min(n, BLOCK_ROWS), C), x.dtype)
        for lo in range(0, n, BLOCK_ROWS):
            hi = min(lo + BLOCK_ROWS, n)
            idx = index[lo:hi].astype(np.intp, copy=False)
            for b in range(B):
                rows = np.take(x[b], idx, axis=0, out=buf[: hi - lo], mode="clip")
                rows *= factors[lo:hi, None]
                y[b, :, lo:hi] = rows.T
        return y

    def _maps_from(self, fn, alm: np.ndarray, B: int, C: int, **kw) -> torch.Tensor:
        """ducc0 ring function ``fn`` (coefficients -> maps), C maps per call: (B*C, nalm) -> (B, npix, C)."""
        nthreads = torch.get_num_threads()
        # RING-ordered maps that are gathered into NESTED order afterwards: a kept work array
        rdt = _REAL[alm.dtype]
        ring = (None if self._unorder is None or (B * C == 1 and self._small[1])
                else self._work("ring", (B * C, 1, self.geom.npix), rdt))
        # the NESTED output comes from torch.empty, not np.empty: numpy asks for transparent huge pages
        # above 4 MiB, and on the development VM (KVM) their first touch after the RING array's
        # free cost +250-300 ms of system time per 100 MB (nside 1024, float64: synthesis 970 ->
        # 750 ms median of 12 rounds, RING order 645; the gather itself ~50 ms)
        out = fn(alm=alm[:, None], map=ring, nthreads=nthreads, **kw, **self._kw).reshape(B * C, -1)
        if self._unorder is not None:
            nested = torch.empty((B, C, out.shape[1]), dtype=_TORCH[rdt])
            if B * C == 1:  # flat gathers (numpy's fastest)
                gather(out.reshape(-1), self._unorder, 0, out=nested.numpy().reshape(-1))
            else:
                gather(out, self._unorder, 1, out=nested.numpy().reshape(B * C, -1))
            return nested.transpose(1, 2)
        # all maps in one call, written contiguously; returned as a transposed view
        return torch.from_numpy(out.reshape(B, C, -1).transpose(0, 2, 1))

    # ducc0's 2D functions take one map per call (the rings of map (b, c) as a strided view;
    # MW through one scratch grid, its pole ring filled from / folded into the pole sample).
    # MW's pixels are its grid's first npix samples, so one map needs no per-ring loop: one
    # copy into a fresh grid, or the output grid returned as a view (2 us of a 28 us
    # synthesis at L = 32).
    def _to_grids(self, fn, maps: torch.Tensor, pole: str) -> np.ndarray:
        """ducc0 2D function ``fn`` (grid -> coefficients) on every map: (B, npix, C) -> (B*C, nalm).

        MW's pole sample is repeated along its ring (``pole="repeat"``: the function's value
        there) or put in its first sample, zeros after it (``"first"``: the adjoint of taking
        the first sample).  Several maps come here only for MW's exact analysis (``"repeat"``):
        every other operator takes ducc0's ring functions for them."""
        x = (maps.detach() if maps.requires_grad else maps).numpy()
        B, _, C = x.shape
        name, nt, nphi = self._grid
        nthreads = torch.get_num_threads()
        mw = name == "MW"
        if B * C == 1:  # the map is the grid (GL, DH), or its pixels then the rest of the pole ring (MW)
            if not mw:
                return fn(map=x.reshape(1, nt, nphi), nthreads=nthreads, **self._kw2d_adj)
            g = np.empty((1, nt, nphi), dtype=x.dtype)
            g.reshape(-1)[: x.size] = x.reshape(-1)
            g[0, -1, 1:] = g[0, -1, 0] if pole == "repeat" else 0
            return fn(map=g, nthreads=nthreads, **self._kw2d_adj)
        assert mw and pole == "repeat", "several maps: only MW's exact analysis"
        alm = np.empty((B * C, self._nalm), dtype=_COMPLEX[x.dtype])
        rings = x[:, :-1].reshape(B, nt - 1, nphi, C)
        g = np.empty((1, nt, nphi), dtype=x.dtype)
        for k in range(B * C):
            b, c = divmod(k, C)
            g[0, :-1] = rings[b, :, :, c]
            g[0, -1] = x[b, -1, c]
            fn(map=g, alm=alm[k : k + 1], nthreads=nthreads, **self._kw2d_adj)
        return alm

    def _from_grids(self, fn, alm: np.ndarray, B: int, C: int, pole: str) -> torch.Tensor:
        """ducc0 2D function ``fn`` (coefficients -> grid) on every map: (B*C, nalm) -> (B, npix, C).

        MW's pole ring gives its first sample (``pole="first"``: a band-limited map is constant
        there) or its sum (``"sum"``: the adjoint of repeating the sample).  Several maps come
        here only for the adjoint of MW's exact analysis (``"sum"``)."""
        name, nt, nphi = self._grid
        nthreads = torch.get_num_threads()
        if B * C == 1:  # a fresh grid, returned as a view (MW's pixels: its first npix samples)
            g = fn(alm=alm, nthreads=nthreads, **self._kw2d)
            if name != "MW":
                return torch.from_numpy(g.reshape(1, -1, 1))
            if pole == "sum":
                g[0, -1, 0] = g[0, -1].sum()
            return torch.from_numpy(g.reshape(-1)[: self.geom.npix].reshape(1, -1, 1))
        assert name == "MW" and pole == "sum", "several maps: only the adjoint of MW's exact analysis"
        rdt = _REAL[alm.dtype]
        out = np.empty((B, self.geom.npix, C), dtype=rdt)
        g = np.empty((1, nt, nphi), dtype=rdt)
        for k in range(B * C):
            b, c = divmod(k, C)
            fn(alm=alm[k : k + 1], map=g, nthreads=nthreads, **self._kw2d)
            out[b, :-1, c] = g[0, :-1].reshape(-1)
            out[b, -1, c] = g[0, -1].sum()
        return torch.from_numpy(out)

    # ------------------------------------------------------------------ MW below the grid's bandlimit
    # The torch engine's construction (``_sht_rings``, ``_mw``) on ducc0's ring kernels: every ring's
    # Fourier coefficients G_m (``map2leg``, m < L; the pole sample repeated: 2Lg-1 times it at
    # m = 0, zero above), mixed along theta per parity of m by MW's exact quadrature at the grid's
    # Lg (times the ring weight 2 pi / (2Lg-1)), then projected onto lambda_l^m at lmax L - 1
    # (``leg2alm``).  The adjoint runs the transposes backwards (``alm2leg``, the mixing
    # transposed, ``leg2map``, the pole sample given the pole ring's m = 0 sum).
    def _mixing(self, rdt) -> np.ndarray:
        """(2, Lg, Lg) MW mixing times the ring weight 2 pi / (2Lg - 1), in precision ``rdt``."""
        mix = self._mw_mix.get(rdt)
        if mix is None:
            Lg = self._grid[1]
            mix = self._mw_mix[rdt] = (mw_theta_mixing(Lg) * (2 * np.pi / (2 * Lg - 1))).astype(rdt)
        return mix

    def _mix(self, leg: np.ndarray, adjoint: bool) -> np.ndarray:
        """Ring values (K, Lg, L) complex mixed along the rings, per parity of m (its transpose: ``adjoint``)."""
        K, Lg, L = leg.shape
        rdt = _REAL[leg.dtype]
        mix = self._mixing(rdt)
        r = leg.view(rdt).reshape(K, Lg, L, 2)
        out = np.empty_like(r)
        for p in (0, 1):
            z = r[:, :, p::2]
            m = mix[p].T if adjoint else mix[p]
            out[:, :, p::2] = np.matmul(m, z.reshape(K, Lg, -1)).reshape(z.shape)
        return out.reshape(K, Lg, 2 * L).view(leg.dtype)

    def _mw_rings_analysis(self, maps: torch.Tensor) -> torch.Tensor:
        x = (maps.detach() if maps.requires_grad else maps).numpy()
        B, _, C = x.shape
        Lg, L, kw = self._grid[1], self.L, self._kw
        nthreads = torch.get_num_threads()
        cdt = _COMPLEX[x.dtype]
        leg = np.empty((B * C, Lg, L), cdt)
        for b in range(B):
            _ducc.map2leg(map=x[b].T, leg=leg[b * C : (b + 1) * C], mmax=L - 1, nphi=kw["nphi"], phi0=kw["phi0"],
                          ringstart=kw["ringstart"], nthreads=nthreads)
        leg[:, -1, 0] *= 2 * Lg - 1  # the pole sample repeated along its ring
        leg[:, -1, 1:] = 0
        leg = self._mix(leg, adjoint=False)
        alm = np.empty((B * C, self._nalm), cdt)
        for k in range(B * C):
            _ducc.leg2alm(leg=leg[k : k + 1], alm=alm[k : k + 1], lmax=L - 1, theta=kw["theta"], nthreads=nthreads)
        return self._real(alm, B, C)

    def _mw_rings_adjoint_analysis(self, coeffs: torch.Tensor) -> torch.Tensor:
        B, _, C = coeffs.shape
        Lg, L, kw = self._grid[1], self.L, self._kw
        nthreads = torch.get_num_threads()
        alm = self._alm(coeffs)
        leg = np.empty((B * C, Lg, L), alm.dtype)
        for k in range(B * C):
            _ducc.alm2leg(alm=alm[k : k + 1], leg=leg[k : k + 1], lmax=L - 1, theta=kw["theta"], nthreads=nthreads)
        leg = self._mix(leg, adjoint=True)
        leg[:, -1, 0] = (2 * Lg - 1) * leg[:, -1, 0].real  # the pole ring's sum onto its sample
        leg[:, -1, 1:] = 0
        out = np.empty((B, self.geom.npix, C), _REAL[alm.dtype])
        for b in range(B):
            _ducc.leg2map(leg=leg[b * C : (b + 1) * C], map=out[b].T, nphi=kw["nphi"], phi0=kw["phi0"],
                          ringstart=kw["ringstart"], nthreads=nthreads)
        return torch.from_numpy(out)

    # ------------------------------------------------------------------ operators (no autograd)
    # One map on one of ducc0's own 2D grids (``self._grid``: same nodes and weights, checked at
    # construction) goes through ducc0's 2D functions: the same operators to rounding, without
    # the per-ring geometry arguments (~1.5 us of a ~22 us transform at L = 32).  Several maps
    # go through the ring functions, C maps per call (faster than one 2D call per map: 15 %
    # at L = 32, equal at L = 512), except MW's exact analysis, which only ducc0's 2D
    # ``analysis_2d`` implements (one call per map).
    def _synthesis(self, coeffs):
        B, _, C = coeffs.shape
        alm = self._alm(coeffs)
        if self._grid is not None and B * C == 1:
            return self._from_grids(_ducc.synthesis_2d, alm, 1, 1, pole="first")
        return self._maps_from(_ducc.synthesis, alm, B, C)

    def _adjoint_synthesis(self, maps):
        B, _, C = maps.shape
        if self._grid is not None and B * C == 1:
            return self._real(self._to_grids(_ducc.adjoint_synthesis_2d, maps, pole="first"), 1, 1)
        return self._real(self._coeffs_from(_ducc.adjoint_synthesis, maps), B, C)

    def _analysis(self, maps):
        """The geometry's theta rule: quadrature with the rings' weights (GL, DH: ducc0's own),
        or McEwen-Wiaux's exact rule on MW.

        MW at a bandlimit L below the grid's Lg gives the first L*L coefficients of the analysis
        at Lg (exact for maps band-limited at Lg, the sampling theorem's premise): ducc0's
        ``analysis_2d`` at lmax < Lg - 1 aliases their degrees >= L onto l < L (4e-2 at L = 8 on
        MW(16)).  The ring path (:meth:`_mw_rings_analysis`) costs what the aliased call did;
        the reference (this engine at Lg, truncated) the analysis at Lg whatever L.  MW(128), float64, one
        thread, L = 64 / 32: one map 0.61 / 0.38 ms (reference 1.42 / 1.41 ms); 8 maps 5.1 /
        2.6 ms (reference 11.4 / 10.7 ms; torch engine 10.5 / 7.1 ms); forward + backward of 8
        maps 10.4 / 5.2 ms (reference 22.9 / 23.0 ms).  ``HarmonicClassifier(10,
        sampling=MW(128))``, batch 8, float32, forward: 13.8 ms (reference 51.7 ms)."""
        if self._mw_mix is not None:
            return self._mw_rings_analysis(maps)
        B, _, C = maps.shape
        if self._grid is not None and (B * C == 1 or self._grid[0] == "MW"):
            return self._real(self._to_grids(_ducc.analysis_2d, maps, pole="repeat"), B, C)
        return self._real(self._coeffs_from(_ducc.adjoint_synthesis, maps, ringfactor=self._ringfactor), B, C)

    def _adjoint_analysis(self, coeffs):
        if self._mw_mix is not None:
            return self._mw_rings_adjoint_analysis(coeffs)
        B, _, C = coeffs.shape
        alm = self._alm(coeffs)
        if self._grid is not None and (B * C == 1 or self._grid[0] == "MW"):
            return self._from_grids(_ducc.adjoint_analysis_2d, alm, B, C, pole="sum")
        return self._maps_from(_ducc.synthesis, alm, B, C, ringfactor=self._ringfactor)
