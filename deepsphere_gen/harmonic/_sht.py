"""Ring-based real spherical harmonic transforms for every iso-latitude sampling (torch).

One algorithm serves Gauss-Legendre, Driscoll-Healy, McEwen-Wiaux and HEALPix grids:

- analysis: a real FFT along each ring (one call per block of consecutive rings with the
  same nphi), then for every order m < L the ring's coefficient conj(X_m) (read from the
  bin m aliases onto, conjugated back where it folds from the upper half), the phase
  exp(i m phi0) and the quadrature weight (one gather and one complex product over all
  (m, ring) pairs), north/south mirror rings combined into their sum and difference, then
  the Legendre projection: per order m a matmul (maps x rings) @ (rings x degrees).
  McEwen-Wiaux mixes the rings with its exact theta quadrature (see ``_mw``) before the
  projection.  HEALPix adds optional Jacobi iterations ``a <- a + analysis(f -
  synthesis(a))`` exactly as ``healpy.map2alm(iter=n)`` does.
- synthesis: the exact transpose: Legendre sums (maps x degrees) @ (degrees x rings),
  mirror rings split again, phase and Hermitian scale, every order summed onto its aliased
  bin (one ``index_add``), an inverse real FFT per block.
- ring-major grids (one nphi >= 2L - 1, rings stored one after the other, ring i mirrored
  by ring R-1-i: Gauss-Legendre) skip the gathers: the FFT runs along the maps' own ring
  layout and no order aliases.
- float64 tables store the even degrees l = m + 2h only; odd degrees come from the
  three-term recursion (see ``SHT.__init__``), halving the bytes each call streams.

Coefficients: real orthonormal basis, flat index l*l + l + m (docs/conventions.md), tensors
(batch, L*L, channels); maps (batch, npix, channels) in the sampling's pixel order
(HEALPix: NESTED, or RING with ``order="RING"``).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from .._validation import check_finite, check_positive_int
from ..sampling import EquiangularSampling, HealpixSampling, McEwenWiauxSampling
from ._legendre import normalized_legendre
from ._mw import mw_theta_mixing

__all__ = ["SHT", "analysis", "synthesis", "max_bandlimit", "clear_sht_cache"]

#: Above this many bytes the Legendre table is not stored but streamed over chunks of m.
DEFAULT_MAX_TABLE_BYTES = 2**30
#: Legendre tables are split into this many chunks of m (triangle trimming, ring skipping).
_CHUNKS = 16
#: Rings where every Legendre value of a chunk is below this are skipped for that chunk.
_SKIP = 1e-30
#: Table dtypes that store even degrees only (odd degrees by recursion, see SHT.__init__).
_RECURSION_DTYPES = (torch.float64,)


def max_bandlimit(sampling) -> int | None:
    """Largest bandlimit L the sampling supports (None: no known limit).

    GL / DH / MW grids built for L: L.  HEALPix: 3 * nside (healpy's usual lmax + 1).
    """
    if isinstance(sampling, HealpixSampling):
        return 3 * sampling.nside
    if isinstance(sampling, (EquiangularSampling, McEwenWiauxSampling)):
        return sampling.L
    return None


def _fold(m: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For orders m on a ring of n samples: rfft bin, conjugation sign, Hermitian multiplicity."""
    j = m % n
    upper = j > n // 2
    bin_ = np.where(upper, n - j, j)
    sign = np.where(upper, -1.0, 1.0)
    edge = (bin_ == 0) | ((n % 2 == 0) & (bin_ == n // 2))
    mult = np.where((m > 0) & edge, 2.0, 1.0)
    return bin_, sign, mult


def _mirror_pairs(theta: np.ndarray, nphi: np.ndarray) -> np.ndarray:
    """Per ring: index of its mirror ring (colatitude pi - theta, same nphi) for rings north of the equator, else -1."""
    south = np.full(theta.size, -1)
    taken = np.zeros(theta.size, dtype=bool)
    srt = np.argsort(theta)
    for i in np.flatnonzero(theta < np.pi / 2 - 1e-12):
        k = int(np.searchsorted(theta[srt], np.pi - theta[i]))
        for cand in (srt[j] for j in (k - 1, k) if 0 <= j < theta.size):
            if not taken[cand] and nphi[cand] == nphi[i] and abs(theta[cand] - (np.pi - theta[i])) < 1e-10:
                south[i] = cand
                taken[cand] = True
                break
    return south


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the maximal runs of equal consecutive values."""
    cut = np.flatnonzero(np.diff(values)) + 1
    edges = np.concatenate([[0], cut, [values.size]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


class SHT(torch.nn.Module):
    """Forward (analysis) and inverse (synthesis) real SHT on one sampling at bandlimit L.

    An ``nn.Module`` whose tables are non-persistent buffers: it moves with ``.to()`` and
    can be a sub-module of a network (nothing is added to the state dict).  ``.to(dtype)``
    casts the tables; build with ``dtype=torch.float64`` for float64-exact transforms.

    Parameters
    ----------
    sampling : full-sky iso-latitude sampling (GL, DH, MW, HEALPix, or any sampling with
        ``rings()`` and quadrature ``weights``).
    L : bandlimit (exclusive); at most ``max_bandlimit(sampling)``.
    dtype, device : of the tables, hence of the accepted inputs.
    iterations : default number of Jacobi iterations of the analysis (HEALPix).
    order : pixel order of HEALPix maps, "NESTED" (default) or "RING".
    max_table_bytes : cap on the stored Legendre table; above it the table is recomputed
        per chunk of m at every call (host float64, then copied to the device).
    check_input : reject NaN / inf / UNSEEN maps or coefficients (ValueError).  This value
        check costs one host synchronisation per call; layers that feed the transform values
        they computed (or checked) themselves build it with False.  Shape, dtype and device
        are always checked.

    Memory: the Legendre table keeps one ring of each north/south mirror pair (about half
    the rings of GL, DH and HEALPix grids, all of MW's), only l >= m (in 16 chunks of m),
    only even l + m for float64 tables (odd degrees by recursion) and, per chunk, only the
    range of rings (sorted by colatitude) where some value exceeds 1e-30: at most
    L * Rn * (L + 1) * itemsize / (2 for float64) bytes for Rn stored rings
    (``table_bytes``: exact) (GL L=256 float32: 15.5 MiB; DH / MW L=256 float64: 31 MiB;
    HEALPix nside=128, L=384: 68 MiB in float64 and in float32), plus about 8 nrings * L
    phase / sign values and, for MW, 2 L^2 mixing values.
    Cost per call: O(L^2 Rn) per map for the Legendre matmuls (the table is streamed once
    per call whatever the batch) + one real FFT per block of equal-nphi rings (1 on GL/DH,
    2 on MW, nside on HEALPix) + O(L * nrings) per map for phases and gathers.
    The table layout is fixed at construction: a float64-built module cast to float32 keeps
    the recursion (float32 round trips then lose a few times more digits than when built in
    float32).
    """

    def __init__(
        self,
        sampling,
        L: int,
        dtype: torch.dtype = torch.float32,
        device=None,
        iterations: int = 0,
        order: str = "NESTED",
        max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES,
        check_input: bool = True,
    ):
        super().__init__()
        self.check_input = bool(check_input)
        self.L = L = check_positive_int(L, "bandlimit L")
        if not dtype.is_floating_point or dtype.is_complex:
            raise ValueError(f"dtype must be a real floating dtype, got {dtype}")
        if int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        self.iterations = int(iterations)
        limit = max_bandlimit(sampling)
        if limit is not None and L > limit:
            raise ValueError(f"bandlimit L={L} is too large for {sampling!r}: at most {limit}")
        if not sampling.is_full_sky:
            raise ValueError("the SHT needs a full-sky sampling; mask partial-sky maps onto the full sphere")
        order = str(order).upper()
        if order not in ("NESTED", "RING"):
            raise ValueError(f"order must be 'NESTED' or 'RING', got {order!r}")
        if order == "RING" and not isinstance(sampling, HealpixSampling):
            raise ValueError("order='RING' only applies to HEALPix samplings")
        self.sampling, self.order, self.npix = sampling, order, sampling.npix
        self.is_mw = isinstance(sampling, McEwenWiauxSampling)
        rings = sampling.rings()
        if not self.is_mw and sampling.weights is None:
            raise ValueError(f"{sampling!r} has no quadrature weights: no analysis possible")
        kw = dict(dtype=dtype, device=device)

        # Ring order: north/south mirror pairs interleaved (north, south), by colatitude of
        # the north ring, then unpaired rings by colatitude; FFT blocks are the runs of equal
        # nphi in that order.  Ring-major grids with one nphi >= 2L - 1 and ring i mirrored
        # by ring R-1-i (GL) keep their own order and pixel layout ("ring-major path").
        ring_pixels = rings.order if order == "NESTED" else np.arange(self.npix)
        south = _mirror_pairs(rings.theta, rings.nphi)
        north = np.flatnonzero(south >= 0)
        unpaired = np.flatnonzero((south < 0) & ~np.isin(np.arange(rings.nrings), south))
        self._npair = p = north.size
        R, n0 = rings.nrings, int(rings.nphi[0])
        self._fast = bool(
            not self.is_mw and np.all(rings.nphi == n0) and n0 >= 2 * L - 1
            and np.array_equal(ring_pixels, np.arange(self.npix)) and np.array_equal(rings.start, np.arange(R) * n0)
            and np.array_equal(north, np.arange(p)) and np.array_equal(south[north], R - 1 - north)
        )
        if self._fast:
            seq = np.arange(R)
            self._permuted = False
        else:
            seq = np.concatenate([np.stack([north, south[north]], axis=1).ravel(), unpaired]).astype(np.int64)
            # pixel order: per FFT block, sample-major (k * nrings + ring), see _runs below
            perm = np.concatenate([
                ring_pixels[rings.start[seq[a:b]][None, :] + np.arange(rings.nphi[seq[a]])[:, None]].ravel()
                for a, b in _runs(rings.nphi[seq])
            ])
            self._permuted = not np.array_equal(perm, np.arange(self.npix))
            if self._permuted:
                self._long("perm", perm, device)
                self._long("inv_perm", np.argsort(perm), device)
        theta, phi0, nphi = rings.theta[seq], rings.phi0[seq], rings.nphi[seq]
        # rings with stored Legendre values: the north ring of each pair, then unpaired rings
        self.theta = theta[: R - p] if self._fast else np.concatenate([theta[0 : 2 * p : 2], theta[2 * p :]])
        if self.is_mw:
            q = 2 * np.pi / nphi
            mix = mw_theta_mixing(sampling.L)[:, seq][:, :, seq]
            self._buffer("mix_t", mix.transpose(0, 2, 1), **kw)  # z @ mix_t == (mix @ z^T)^T
        else:
            q = np.asarray(sampling.weights)[ring_pixels[rings.start[seq]]]  # pixel weight per ring
            self.mix_t = None
        self._has_phase = bool(np.any(phi0 != 0))

        # General path: spectra are m-major, (L, rings, maps) complex.  Analysis: per FFT block,
        # ihfft = conj(X_j) for bins j <= n/2; order m reads bin (m mod n folded into
        # [0, n/2]) and, where it folds from the upper half (sigma = -1), conjugates it back,
        # giving conj(X_m); times q c e^{i m phi0} its (re, im) are the ring's cos / sin
        # coefficients.  Synthesis runs the transpose: (c + i sigma s) e^{-i sigma m phi0} k
        # summed onto the bins (index_add) and one hfft per block, with k the Hermitian scale
        # (1 for m = 0, sqrt 2 on the edge bins 0 and n/2, sqrt 1/2 elsewhere).
        m = np.arange(L)
        c_ana = np.where(m == 0, 1.0, np.sqrt(2.0))
        c_syn = np.where(m == 0, 1.0, np.sqrt(0.5))
        mask = (m[None, :] <= (nphi[:, None] - 1) // 2) if self.is_mw else np.ones((1, L), dtype=bool)
        psi = np.outer(m, phi0)  # (L, R)
        w_ana = c_ana[:, None] * q[None, :] * mask.T
        sig, k_syn, row = np.ones((L, R)), np.zeros((L, R)), np.zeros((L, R), dtype=np.int64)
        self._blocks = []  # (n, nrings, ring offset, pixel offset, spectrum row offset)
        self._aliased = False
        p0 = s0 = 0
        for start, stop in _runs(nphi):
            n, nr = int(nphi[start]), stop - start
            bin_, sign, mult = _fold(m, n)
            sig[:, start:stop] = sign[:, None]
            k_syn[:, start:stop] = (c_syn * mult)[:, None]
            row[:, start:stop] = s0 + bin_[:, None] * nr + np.arange(nr)[None, :]
            self._aliased |= n < 2 * L - 1
            self._blocks.append((n, nr, start, p0, s0))
            p0 += n * nr
            s0 += (n // 2 + 1) * nr
        self._spec_rows = s0
        if self._aliased:
            self._long("spec_row", row.ravel(), device)
        self._conj = bool((sig < 0).any())
        if self._conj:
            self._buffer("sigma", np.stack([np.ones((L, R)), sig], axis=-1)[:, :, None, :], **kw)
        # complex tables stored as (re, im) pairs so that .to(dtype) keeps them intact
        if self._fast:  # (rings, L) tables for rfft / irfft along the ring; the sine coefficients
            # then come out negated, which a sign on the m < 0 coefficients undoes
            ana, syn = [w_ana.T, -w_ana.T], [k_syn.T, k_syn.T]
            ell = np.floor(np.sqrt(np.arange(L * L)))
            self._buffer("flat_sign", np.where(np.arange(L * L) < ell * ell + ell, -1.0, 1.0)[:, None], **kw)
        else:
            ana, syn = [w_ana[:, :, None], w_ana[:, :, None]], [k_syn[:, :, None], -sig[:, :, None] * k_syn[:, :, None]]
            psi = psi[:, :, None]
        if self._has_phase:
            psi = psi.T if self._fast else psi
            self._buffer("ana_w", np.stack([ana[0] * np.cos(psi), ana[1] * np.sin(psi)], -1), **kw)
            self._buffer("syn_w", np.stack([syn[0] * np.cos(psi), syn[1] * np.sin(psi)], -1), **kw)
        else:
            self._buffer("ana_w", ana[0], **kw)
            self._buffer("syn_w", syn[0], **kw)

        # Legendre tables in chunks of m: chunk c holds m in [m0, m1), degrees l = m + parity
        # + 2h, h < ceil((L - m0) / 2) (no l < m0 waste), laid out (m, parity, h, ring), on
        # the range of stored rings where some value exceeds _SKIP (values below it cannot
        # change a float64 result: ring skipping).  float64 tables keep the even degrees only
        # ("recursion mode"): odd degrees follow from lambda_{l+1} = a (x lambda_l - b
        # lambda_{l-1}), x = cos(theta), so their projections are projections of x * (ring
        # values) on the even degrees chained by a first-order recurrence in h (closed form
        # c_h sum_{j<=h} a_j P_j / c_j, c_h = prod_{i<=h} (-a_i b_i): a cumulative sum);
        # synthesis runs the transpose (a reversed cumulative sum).  Half the table bytes per
        # call; the recurrence amplifies rounding a few times, so float32 keeps both parities.
        self._recursion = dtype in _RECURSION_DTYPES
        self._parities = 1 if self._recursion else 2
        itemsize = torch.empty((), dtype=dtype).element_size()
        Rn = self.theta.size
        nm = max(1, -(-L // _CHUNKS))
        nm = max(1, min(nm, int(max_table_bytes // (self._parities * Rn * ((L + 1) // 2) * itemsize))))
        self._chunks = []  # (m0, m1, width, grid offset, skips rings, ring start, ring stop)
        grid, flat_from_grid, off = [], np.zeros(L * L, dtype=np.int64), 0
        ell = np.floor(np.sqrt(np.arange(L * L))).astype(np.int64)
        em = np.arange(L * L) - ell * ell - ell
        ma = np.abs(em)
        tabs, self.table_bytes = [], 0
        for m0 in range(0, L, nm):
            m1, w = min(L, m0 + nm), (L - m0 + 1) // 2
            # grid layout (m, parity, cos / sin, h): flat index of each entry (L*L: none)
            mm, pp, ss, hh = np.meshgrid(np.arange(m0, m1), [0, 1], [0, 1], np.arange(w), indexing="ij")
            ll = mm + pp + 2 * hh
            ok = (ll < L) & ((ss == 0) | (mm > 0))
            grid.append(np.where(ok, ll * ll + ll + np.where(ss == 0, mm, -mm), L * L).ravel())
            sel = (ma >= m0) & (ma < m1)
            pos = (((ma - m0) * 2 + (ell - ma) % 2) * 2 + (em < 0)) * w + (ell - ma) // 2
            flat_from_grid[sel] = off + pos[sel]
            tab = self._table(m0, m1, w, 0, Rn)
            if self._recursion:
                self._recurrence(len(self._chunks), m0, m1, w, kw)
            keep = np.flatnonzero(np.abs(tab).max(axis=(0, 1)) > _SKIP)
            a, b = (int(keep[0]), int(keep[-1]) + 1) if keep.size else (0, 1)
            tab = tab[:, :, a:b]
            self.table_bytes += tab.size * itemsize
            tabs = None if tabs is None or self.table_bytes > max_table_bytes else tabs + [tab]
            self._chunks.append((m0, m1, w, off, (a, b) != (0, Rn), a, b))
            off += grid[-1].size
        self._long("grid_from_flat", np.concatenate(grid), device)
        self._long("flat_from_grid", flat_from_grid, device)
        self.streaming = self.table_bytes > max_table_bytes
        for ci, tab in enumerate([] if self.streaming else tabs):
            self._buffer(f"leg_{ci}", tab, **kw)
        if self._recursion:
            self._buffer("ring_x", np.cos(self.theta), **kw)

    # ------------------------------------------------------------------ helpers
    def _buffer(self, name, value, dtype=None, device=None):
        t = torch.as_tensor(np.ascontiguousarray(value), device=device)
        self.register_buffer(name, t if dtype is None else t.to(dtype), persistent=False)

    def _long(self, name, value, device):
        self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.int64), device=device), persistent=False)

    def _table(self, m0: int, m1: int, width: int, r0: int, r1: int) -> np.ndarray:
        """((m1-m0) parities, width, r1-r0) float64: lambda_{m + parity + 2h}^m at stored rings
        r0..r1-1 (0 for l >= L); parity 0 only in recursion mode."""
        lam = normalized_legendre(self.L, self.theta[r0:r1], m0, m1)  # (nm, L, rings)
        mi = np.arange(m1 - m0)[:, None, None]
        ll = (mi + m0) + np.arange(self._parities)[None, :, None] + 2 * np.arange(width)[None, None, :]
        tab = lam[mi, np.minimum(ll, self.L - 1)] * (ll < self.L)[..., None]
        return np.ascontiguousarray(tab.reshape(-1, width, r1 - r0))

    def _recurrence(self, ci: int, m0: int, m1: int, width: int, kw: dict) -> None:
        """Buffers rec_a_ci = a_h / c_h and rec_c_ci = c_h, (m1-m0, 1, width), for odd l = m+1+2h (0 where l >= L)."""
        m = np.arange(m0, m1)[:, None].astype(np.float64)
        ll = m + 1 + 2 * np.arange(width)[None, :]
        ok = ll < self.L
        ll = np.where(ok, ll, m + 1)
        a = np.sqrt((4 * ll * ll - 1) / (ll * ll - m * m))
        b = np.sqrt(((ll - 1) ** 2 - m * m) / (4 * (ll - 1) ** 2 - 1))
        c = np.cumprod(np.where((np.arange(width) == 0) | ~ok, 1.0, -a * b), axis=1)
        self._buffer(f"rec_a_{ci}", np.where(ok, a / c, 0.0)[:, None, :], **kw)
        self._buffer(f"rec_c_{ci}", np.where(ok, c, 0.0)[:, None, :], **kw)

    @property
    def dtype(self) -> torch.dtype:
        return self.syn_w.dtype

    @property
    def device(self) -> torch.device:
        return self.syn_w.device

    def extra_repr(self) -> str:
        return (f"{self.sampling!r}, L={self.L}, iterations={self.iterations}, streaming={self.streaming}"
                + ("" if self.check_input else ", check_input=False"))

    def _check(self, x: torch.Tensor, n: int, what: str, name: str, values: bool | None = None) -> None:
        if not torch.is_tensor(x):
            raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[1] != n:
            raise ValueError(f"{name} must be shaped (batch, {n}, channels) ({what}), got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but the SHT tables are {self.dtype}; use .to()")
        if x.device != self.device:
            raise ValueError(f"{name} is on {x.device} but the SHT tables are on {self.device}; use .to()")
        if self.check_input if values is None else values:
            check_finite(x, name)

    def _chunk_table(self, ci: int, like: torch.Tensor) -> torch.Tensor:
        """(nm parities, width, ring range) Legendre values of chunk ci."""
        if not self.streaming:
            return getattr(self, f"leg_{ci}")
        m0, m1, w, _, _, a, b = self._chunks[ci]
        return torch.as_tensor(self._table(m0, m1, w, a, b)).to(device=like.device, dtype=like.dtype)

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """Legendre projection: (L, parity, cos / sin, maps, Rn) ring values (a fresh tensor:
        modified in place) -> (grid, maps) coefficients in the (m, parity, cos / sin, h) layout."""
        out, K0, P = [], z.shape[3], self._parities
        if self._recursion:
            z[:, 1].mul_(self.ring_x)
        z = z.view(self.L * P, 4 * K0 // P, -1)
        for ci, (m0, m1, w, _, _, a, b) in enumerate(self._chunks):
            y = torch.bmm(z[m0 * P : m1 * P, :, a:b], self._chunk_table(ci, z).transpose(1, 2))
            if self._recursion:
                y = y.view(m1 - m0, 2, 2 * K0, w)
                odd = torch.cumsum(y[:, 1] * getattr(self, f"rec_a_{ci}"), dim=-1) * getattr(self, f"rec_c_{ci}")
                y = torch.stack([y[:, 0], odd], dim=1)
            out.append(y.view(-1, K0, w).transpose(1, 2).reshape(-1, K0))
        return out[0] if len(out) == 1 else torch.cat(out, dim=0)

    def _evaluate(self, at: torch.Tensor) -> torch.Tensor:
        """Legendre sums: (grid, maps) coefficients -> (L, parity, cos / sin, maps, Rn) ring values."""
        out, K0, Rn, P = [], at.shape[-1], self.theta.size, self._parities
        for ci, (m0, m1, w, off, _, a, b) in enumerate(self._chunks):
            ac = at[off : off + 4 * (m1 - m0) * w].view(-1, w, K0).transpose(1, 2).reshape(m1 - m0, 2, 2 * K0, w)
            if self._recursion:
                d = torch.cumsum((ac[:, 1] * getattr(self, f"rec_c_{ci}")).flip(-1), dim=-1).flip(-1)
                ac = torch.stack([ac[:, 0], d * getattr(self, f"rec_a_{ci}")], dim=1)
            y = torch.bmm(ac.view((m1 - m0) * P, 4 * K0 // P, w), self._chunk_table(ci, at))
            out.append(torch.nn.functional.pad(y, (a, Rn - b)) if (a, b) != (0, Rn) else y)
        eo = (out[0] if len(out) == 1 else torch.cat(out, dim=0)).view(self.L, 2, 2, K0, Rn)
        return torch.stack([eo[:, 0], eo[:, 1] * self.ring_x], dim=1) if self._recursion else eo

    def _mix(self, z: torch.Tensor) -> torch.Tensor:
        """MW theta quadrature on (L, ..., rings) ring values, per parity of m."""
        even = torch.matmul(z[0::2], self.mix_t[0])
        odd = torch.matmul(z[1::2], self.mix_t[1])
        both = torch.stack([even[: odd.shape[0]], odd], dim=1).reshape(-1, *z.shape[1:])
        return torch.cat([both, even[odd.shape[0] :]], dim=0)

    def _legendre_sums(self, coeffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Even and odd (l + m) Legendre sums, each (L, cos / sin, maps, stored rings)."""
        at = coeffs.permute(1, 0, 2).reshape(-1, coeffs.shape[0] * coeffs.shape[2])
        if self._fast:
            at = at * self.flat_sign
        at = torch.cat([at, at.new_zeros(1, at.shape[1])], dim=0).index_select(0, self.grid_from_flat)
        eo = self._evaluate(at)
        return eo[:, 0], eo[:, 1]

    def _analysis_ring_major(self, maps: torch.Tensor) -> torch.Tensor:
        """Analysis on a ring-major grid: rfft along each ring, mirror pairs in natural ring order."""
        B, _, C = maps.shape
        L, K0, p = self.L, B * C, self._npair
        R = self.ana_w.shape[0]
        x = maps.permute(0, 2, 1).reshape(K0, R, -1)
        y = torch.fft.rfft(x, dim=-1)[..., :L]  # X_m = conj(cos + i sin) / weights
        y = y * (torch.view_as_complex(self.ana_w) if self._has_phase else self.ana_w)
        z = torch.view_as_real(y).permute(2, 3, 0, 1)  # (L, cos / -sin, maps, rings)
        zn, zs = z[..., :p], z[..., R - p :].flip(-1)
        pieces = [torch.stack([zn + zs, zn - zs], dim=1)] if p else []
        if R > 2 * p:
            pieces.append(z[..., p : R - p].unsqueeze(1).expand(-1, 2, -1, -1, -1))
        z = torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0].contiguous()
        out = self._project(z).index_select(0, self.flat_from_grid) * self.flat_sign
        return out.view(-1, B, C).permute(1, 0, 2)

    def _synthesis_ring_major(self, even: torch.Tensor, odd: torch.Tensor, B: int, C: int) -> torch.Tensor:
        """Synthesis on a ring-major grid from the Legendre sums: irfft along each ring."""
        p, R = self._npair, self.syn_w.shape[0]
        pieces = []
        if p:
            e, o = even[..., :p], odd[..., :p]
            pieces += [e + o, (e - o).flip(-1)]
        if R > 2 * p:
            pieces.insert(1, even[..., p:] + odd[..., p:])
        y = torch.cat([t.permute(2, 3, 0, 1) for t in pieces], dim=1)  # (maps, rings, L, cos / -sin)
        y = torch.view_as_complex(y) * (torch.view_as_complex(self.syn_w) if self._has_phase else self.syn_w)
        x = torch.fft.irfft(y, n=self.sampling.npix // R, dim=-1, norm="forward")  # (maps, rings, nphi)
        return x.view(B, C, -1).permute(0, 2, 1)

    # --------------------------------------------------------------- transforms
    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        """One quadrature pass (no iterations): (batch, npix, ch) -> (batch, L*L, ch)."""
        B, _, C = maps.shape
        L, K0, p = self.L, B * C, self._npair
        if self._fast:
            return self._analysis_ring_major(maps)
        x = maps.permute(1, 0, 2).reshape(-1, K0)  # (pixels, maps)
        if self._permuted:
            x = x.index_select(0, self.perm)
        parts = []  # per block: conj of the rfft bins, (bins, rings, maps)
        for n, nr, _, p0, _ in self._blocks:
            y = torch.fft.ihfft(x[p0 : p0 + n * nr].view(n, nr, K0), dim=0, norm="forward")
            parts.append(y.reshape(-1, K0) if self._aliased else y[:L])
        if self._aliased:  # gather the bin of every (m, ring); conjugate the upper-half folds
            y = torch.cat(parts, dim=0).index_select(0, self.spec_row).view(L, -1, K0)
            if self._conj:
                torch.view_as_real(y).mul_(self.sigma)
            y.mul_(torch.view_as_complex(self.ana_w) if self._has_phase else self.ana_w)
        else:  # ihfft gives lazily conjugated views: multiply out of place
            y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            y = y * (torch.view_as_complex(self.ana_w) if self._has_phase else self.ana_w)
        z = torch.view_as_real(y)  # (L, rings, maps, cos / sin)
        if self.mix_t is not None:
            z = self._mix(z.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        # to (L, parity, cos / sin, maps, stored rings): mirror pairs give north + south to
        # even l + m and north - south to odd l + m; unpaired rings give themselves to both
        zn, zs, u = z[:, 0 : 2 * p : 2], z[:, 1 : 2 * p : 2], z[:, 2 * p :]
        pieces = [torch.stack([zn + zs, zn - zs], dim=1).permute(0, 1, 4, 3, 2)] if p else []
        if u.shape[1]:
            pieces.append(u.permute(0, 3, 2, 1).unsqueeze(1).expand(-1, 2, -1, -1, -1))
        z = torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0].contiguous()
        out = self._project(z).index_select(0, self.flat_from_grid)
        return out.view(-1, B, C).permute(1, 0, 2)

    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(batch, L*L, ch) -> (batch, npix, ch); exact for band-limited signals."""
        B, _, C = coeffs.shape
        L, K0, p = self.L, B * C, self._npair
        even, odd = self._legendre_sums(coeffs)
        if self._fast:
            return self._synthesis_ring_major(even, odd, B, C)
        # to (L, rings, maps, cos / sin): north = even + odd, south = even - odd, interleaved
        u = even.shape[-1] - p  # unpaired rings
        if p and u <= 1:  # every stored ring as a (north, south) pair; drop the last south if unpaired
            y = torch.stack([even + odd, even - odd], dim=-1).permute(0, 3, 4, 2, 1).reshape(L, -1, K0, 2)
            y = y[:, : 2 * p + u].contiguous()
        else:
            pieces = [(even[..., p:] + odd[..., p:]).permute(0, 3, 2, 1)]
            if p:
                e, o = even[..., :p], odd[..., :p]
                pieces.insert(0, torch.stack([e + o, e - o], dim=-1).permute(0, 3, 4, 2, 1).reshape(L, 2 * p, K0, 2))
            y = torch.cat(pieces, dim=1) if p else pieces[0].contiguous()
        if self._conj:
            y.mul_(self.sigma)
        y = torch.view_as_complex(y).mul_(torch.view_as_complex(self.syn_w) if self._has_phase else self.syn_w)
        if self._aliased:  # sum every (m, ring) onto its bin
            y = y.new_zeros(self._spec_rows, K0).index_add_(0, self.spec_row, y.view(-1, K0))
        rings = []
        for n, nr, r0, _, s0 in self._blocks:
            if self._aliased:
                g = y[s0 : s0 + (n // 2 + 1) * nr].view(-1, nr, K0)
            else:
                g = y[:, r0 : r0 + nr]
            rings.append(torch.fft.hfft(g, n=n, dim=0).reshape(n * nr, K0))  # (pixels, maps)
        out = rings[0] if len(rings) == 1 else torch.cat(rings, dim=0)
        if self._permuted:
            out = out.index_select(0, self.inv_perm)
        return out.view(-1, B, C).permute(1, 0, 2)

    def forward(self, maps: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        """Analysis: maps (batch, npix, ch) -> coefficients (batch, L*L, ch).

        ``iterations`` (default ``self.iterations``) Jacobi refinements
        ``a <- a + analysis(maps - synthesis(a))`` (healpy's ``iter``).
        """
        self._check(maps, self.npix, f"pixels of {self.sampling!r}", "maps")
        n = self.iterations if iterations is None else int(iterations)
        a = self.analysis(maps)
        for _ in range(n):
            a = a + self.analysis(maps - self.synthesis(a))
        return a

    def inverse(self, coeffs: torch.Tensor, check_input: bool | None = None) -> torch.Tensor:
        """Synthesis: coefficients (batch, L*L, ch) -> maps (batch, npix, ch).

        ``check_input``: this call's value check (None: the module's ``check_input``).
        """
        self._check(coeffs, self.L * self.L, f"L*L coefficients for L={self.L}", "coeffs", check_input)
        return self.synthesis(coeffs)


_CACHE: "OrderedDict[tuple, SHT]" = OrderedDict()
_CACHE_SIZE = 8


def _cached(sampling, L: int, dtype: torch.dtype, device: torch.device, order: str) -> SHT:
    key = (sampling.cache_key(), int(L), dtype, str(device), order)
    sht = _CACHE.get(key)
    if sht is None:
        sht = SHT(sampling, L, dtype=dtype, device=device, order=order)
        _CACHE[key] = sht
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return sht


def clear_sht_cache() -> None:
    """Drop the tables cached by :func:`analysis` / :func:`synthesis`."""
    _CACHE.clear()


def _tensor_check(x, name):
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating torch tensor")


def analysis(maps: torch.Tensor, sampling, L: int, iterations: int = 0, order: str = "NESTED") -> torch.Tensor:
    """Functional forward SHT (tables cached per sampling, L, dtype, device; at most 8 kept)."""
    _tensor_check(maps, "maps")
    return _cached(sampling, L, maps.dtype, maps.device, order)(maps, iterations=iterations)


def synthesis(coeffs: torch.Tensor, sampling, L: int, order: str = "NESTED", check_input: bool = True) -> torch.Tensor:
    """Functional inverse SHT (tables cached like :func:`analysis`); ``check_input=False``
    skips the value check (for coefficients the caller computed itself)."""
    _tensor_check(coeffs, "coeffs")
    return _cached(sampling, L, coeffs.dtype, coeffs.device, order).inverse(coeffs, check_input)
