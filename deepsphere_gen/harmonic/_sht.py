"""Ring-based real spherical harmonic transforms for every iso-latitude sampling (torch).

One algorithm serves Gauss-Legendre, Driscoll-Healy, McEwen-Wiaux and HEALPix grids:

- synthesis: per ring, a Legendre sum over l gives the Fourier coefficients G_m(theta)
  (a batched matmul over m), the phase exp(i m phi0) moves them to the ring's first
  sample, orders m >= nphi/2 are folded onto the ring's aliased bins, and an inverse real
  FFT along the ring gives the samples.  Rings are grouped by nphi (one FFT per group).
- analysis: real FFT per ring, the aliased bin of each m (the exact transpose of the
  synthesis fold), the phase exp(-i m phi0), quadrature weights, then the Legendre
  projection (the transposed matmul).  McEwen-Wiaux mixes the rings with its exact theta
  quadrature (see ``_mw``) before the projection.  HEALPix adds optional Jacobi iterations
  ``a <- a + analysis(f - synthesis(a))`` exactly as ``healpy.map2alm(iter=n)`` does.

Coefficients: real orthonormal basis, flat index l*l + l + m (see DESIGN.md), tensors
(batch, L*L, channels); maps (batch, npix, channels) in the sampling's pixel order
(HEALPix: NESTED, or RING with ``order="RING"``).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from .._validation import check_finite
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

    Memory: the Legendre table keeps one ring of each north/south mirror pair (about half
    the rings of GL, DH and HEALPix grids, all of MW's), only l >= m (split by parity of
    l + m, in 16 chunks of m) and, per chunk, only the range of rings (sorted by
    colatitude) where some value exceeds 1e-30: at most L * Rn * (L + 1) * itemsize bytes
    for Rn stored rings (``table_bytes``: exact) (GL L=256 float32: 15 MiB; DH / MW L=256
    float64: 62 MiB; HEALPix nside=128, L=384 float64: 137 MiB), plus 8 nrings * L phase
    values and, for MW, 2 L^2 mixing values.
    Cost per call: O(L^2 Rn) per map for the Legendre matmuls (maps x rings times rings x
    degrees per order m: the table is streamed once per call whatever the batch) + one
    real FFT per distinct ring length (1 on GL/DH, 2 on MW, nside on HEALPix).
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
    ):
        super().__init__()
        self.L = L = _check_bandlimit(L)
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

        # rings grouped by nphi ("group order"); samples ring-major: ring after ring
        ring_pixels = rings.order if order == "NESTED" else np.arange(self.npix)
        groups = [(int(n), np.flatnonzero(rings.nphi == n)) for n in np.unique(rings.nphi)]
        seq = np.concatenate([idx for _, idx in groups])
        perm = np.concatenate(
            [ring_pixels[rings.start[idx][:, None] + np.arange(n)[None, :]].ravel() for n, idx in groups]
        )
        self._permuted = not np.array_equal(perm, np.arange(self.npix))
        if self._permuted:
            self._long("perm", perm, device)
            self._long("inv_perm", np.argsort(perm), device)
        theta, phi0 = rings.theta[seq], rings.phi0[seq]
        R = seq.size
        if self.is_mw:
            q = 2 * np.pi / rings.nphi[seq]
            mix = mw_theta_mixing(sampling.L)[:, seq][:, :, seq]
            self._buffer("mix_t", mix.transpose(0, 2, 1), **kw)  # z @ mix_t == (mix @ z^T)^T
        else:
            q = np.asarray(sampling.weights)[ring_pixels[rings.start[seq]]]  # pixel weight per ring
            self.mix_t = None
        self._has_phase = bool(np.any(phi0 != 0))

        # Phase tables: analysis (rings, L) on the rfft bins, synthesis (L, rings) with the
        # irfft scale n * multiplicity and the conjugation sign of aliased orders folded in.
        m = np.arange(L)
        c_ana = np.where(m == 0, 1.0, np.sqrt(2.0))
        c_syn = np.where(m == 0, 1.0, np.sqrt(0.5))
        ana, syn = np.zeros((4, R, L)), np.zeros((4, L, R))
        self._groups = []  # (n, nrings, ring offset, pixel offset, P: orders per bin, 0 = no aliasing)
        r0 = p0 = 0
        for gi, (n, idx) in enumerate(groups):
            nr, rs = idx.size, slice(r0, r0 + idx.size)
            bin_, sign, mult = _fold(m, n)
            mask = (m <= (n - 1) // 2).astype(np.float64) if self.is_mw else np.ones(L)
            psi = np.outer(phi0[rs], m)  # (nr, L)
            cq = q[rs, None] * (c_ana * mask)[None, :]
            ana[:, rs] = [cq * np.cos(psi), cq * sign * np.sin(psi), cq * np.sin(psi), -cq * sign * np.cos(psi)]
            cs = (c_syn * n * mult)[None, :]
            syn[:, :, rs] = np.stack([cs * np.cos(psi), cs * np.sin(psi),
                                      cs * sign * np.sin(psi), -cs * sign * np.cos(psi)]).transpose(0, 2, 1)
            if n >= 2 * L - 1:  # every order is its own bin: slice / zero-pad
                P = 0
            else:  # analysis gathers the bin of each m; synthesis sums the P orders of each bin
                nb = n // 2 + 1
                P = int(np.bincount(bin_, minlength=nb).max())
                fidx = np.full((nb, P), L)  # index L: a zero row
                fill = np.zeros(nb, dtype=np.int64)
                for mm in range(L):
                    fidx[bin_[mm], fill[bin_[mm]]] = mm
                    fill[bin_[mm]] += 1
                self._long(f"bin_{gi}", bin_, device)
                self._long(f"fold_{gi}", fidx.ravel(), device)
            self._groups.append((n, nr, r0, p0, P))
            r0 += nr
            p0 += nr * n
        for k in (range(4) if self._has_phase else (0, 3)):
            self._buffer(f"ana{k}", ana[k], **kw)
            self._buffer(f"syn{k}", syn[k][:, None, :], **kw)

        # north/south mirror pairs share Legendre values: lambda(pi - t) = (-1)^(l+m) lambda(t)
        srt = np.argsort(theta)
        south = np.full(R, -1)
        taken = np.zeros(R, dtype=bool)
        for i in np.flatnonzero(theta < np.pi / 2 - 1e-12):
            k = int(np.searchsorted(theta[srt], np.pi - theta[i]))
            for cand in (k - 1, k):
                if 0 <= cand < R and not taken[srt[cand]] and abs(theta[srt[cand]] - (np.pi - theta[i])) < 1e-10:
                    south[i] = srt[cand]
                    taken[srt[cand]] = True
                    break
        # stored rings ("slots"): paired north rings first, then unpaired, each by colatitude
        slots = np.flatnonzero(~taken)
        slots = slots[np.lexsort((theta[slots], south[slots] < 0))]
        self._npair = npair = int((south[slots] >= 0).sum())
        self.theta = theta[slots]
        self._long("slot_ring", slots, device)
        self._long("south_ring", south[slots[:npair]], device)
        self._long("ring_from_cat", np.argsort(np.concatenate([slots, south[slots[:npair]]])), device)

        # Legendre tables in chunks of m: chunk c holds m in [m0, m1), l = m + parity + 2h
        # for h < ceil((L - m0) / 2) (no l < m0 waste), laid out (2 (m1 - m0), h, ring), and
        # only the range of stored rings where some value exceeds _SKIP (values below it
        # cannot change a float64 result: ring skipping).
        itemsize = torch.empty((), dtype=dtype).element_size()
        Rn = self.theta.size
        nm = max(1, -(-L // _CHUNKS))
        nm = max(1, min(nm, int(max_table_bytes // (2 * Rn * ((L + 1) // 2) * itemsize))))
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

    # ------------------------------------------------------------------ helpers
    def _buffer(self, name, value, dtype=None, device=None):
        t = torch.as_tensor(np.ascontiguousarray(value), device=device)
        self.register_buffer(name, t if dtype is None else t.to(dtype), persistent=False)

    def _long(self, name, value, device):
        self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.int64), device=device), persistent=False)

    def _table(self, m0: int, m1: int, width: int, r0: int, r1: int) -> np.ndarray:
        """(2 (m1-m0), width, r1-r0) float64: lambda_{m + parity + 2h}^m at stored rings r0..r1-1."""
        lam = normalized_legendre(self.L, self.theta[r0:r1], m0, m1)  # (nm, L, rings)
        mi = np.arange(m1 - m0)[:, None, None]
        ll = (mi + m0) + np.arange(2)[None, :, None] + 2 * np.arange(width)[None, None, :]
        tab = lam[mi, np.minimum(ll, self.L - 1)] * (ll < self.L)[..., None]  # (nm, 2, width, rings)
        return np.ascontiguousarray(tab.reshape(2 * (m1 - m0), width, r1 - r0))

    @property
    def dtype(self) -> torch.dtype:
        return self.ana0.dtype

    @property
    def device(self) -> torch.device:
        return self.ana0.device

    def extra_repr(self) -> str:
        return f"{self.sampling!r}, L={self.L}, iterations={self.iterations}, streaming={self.streaming}"

    def _check(self, x: torch.Tensor, n: int, what: str, name: str) -> None:
        if not torch.is_tensor(x):
            raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[1] != n:
            raise ValueError(f"{name} must be shaped (batch, {n}, channels) ({what}), got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but the SHT tables are {self.dtype}; use .to()")
        if x.device != self.device:
            raise ValueError(f"{name} is on {x.device} but the SHT tables are on {self.device}; use .to()")
        # one fused reduction; NaN fails the comparison, inf and UNSEEN exceed the bound
        if x.numel() and not bool(torch.linalg.vector_norm(x.detach(), float("inf")) <= 1e29):
            check_finite(x, name)

    def _chunk_table(self, ci: int, like: torch.Tensor) -> torch.Tensor:
        """(2 nm, width, ring range) Legendre values of chunk ci."""
        if not self.streaming:
            return getattr(self, f"leg_{ci}")
        m0, m1, w, _, _, a, b = self._chunks[ci]
        return torch.as_tensor(self._table(m0, m1, w, a, b)).to(device=like.device, dtype=like.dtype)

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """Legendre projection: (2L, K, Rn) ring values -> (grid, K/2) cos / sin coefficients."""
        out, K0 = [], z.shape[1] // 2
        for ci, (m0, m1, w, _, _, a, b) in enumerate(self._chunks):
            y = torch.bmm(z[2 * m0 : 2 * m1, :, a:b], self._chunk_table(ci, z).transpose(1, 2))
            out.append(y.view(-1, K0, w).transpose(1, 2).reshape(-1, K0))  # (m, parity, cs, h) x maps
        return out[0] if len(out) == 1 else torch.cat(out, dim=0)

    def _evaluate(self, at: torch.Tensor) -> torch.Tensor:
        """Legendre sums: (grid, K/2) cos / sin coefficients -> (2L, K, Rn) ring values."""
        out, K0, Rn = [], at.shape[-1], self.theta.size
        for ci, (m0, m1, w, off, _, a, b) in enumerate(self._chunks):
            ac = at[off : off + 4 * (m1 - m0) * w].view(-1, w, K0).transpose(1, 2).reshape(2 * (m1 - m0), 2 * K0, w)
            y = torch.bmm(ac, self._chunk_table(ci, at))
            out.append(torch.nn.functional.pad(y, (a, Rn - b)) if (a, b) != (0, Rn) else y)
        return out[0] if len(out) == 1 else torch.cat(out, dim=0)

    def _mix(self, z: torch.Tensor) -> torch.Tensor:
        """MW theta quadrature on (L, ..., rings) ring values, per parity of m."""
        even = torch.matmul(z[0::2], self.mix_t[0])
        odd = torch.matmul(z[1::2], self.mix_t[1])
        both = torch.stack([even[: odd.shape[0]], odd], dim=1).reshape(-1, *z.shape[1:])
        return torch.cat([both, even[odd.shape[0] :]], dim=0)

    # --------------------------------------------------------------- transforms
    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        """One quadrature pass (no iterations): (batch, npix, ch) -> (batch, L*L, ch)."""
        B, _, C = maps.shape
        L, K0, p = self.L, B * C, self._npair
        x = maps.permute(0, 2, 1).reshape(K0, -1)
        if self._permuted:
            x = x.index_select(1, self.perm)
        parts = []
        for gi, (n, nr, _, p0, P) in enumerate(self._groups):
            spec = torch.fft.rfft(x[:, p0 : p0 + n * nr].view(K0, nr, n), dim=-1)  # (K0, nr, bins)
            parts.append(spec[..., :L] if P == 0 else spec.index_select(-1, getattr(self, f"bin_{gi}")))
        spec = torch.view_as_real(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        re, im = spec[..., 0], spec[..., 1]  # (K0, rings, L)
        if self._has_phase:
            cos, sin = self.ana0 * re + self.ana1 * im, self.ana2 * re + self.ana3 * im
        else:
            cos, sin = self.ana0 * re, self.ana3 * im
        z = torch.stack([cos, sin], dim=0).permute(3, 0, 1, 2)  # (L, cos / sin, K0, rings)
        if self.mix_t is not None:
            z = self._mix(z)
        zn = z.index_select(-1, self.slot_ring)
        if p:  # mirror pairs: even l + m see north + south, odd l + m north - south
            zs = z.index_select(-1, self.south_ring)
            z = torch.stack([torch.cat([zn[..., :p] + zs, zn[..., p:]], -1),
                             torch.cat([zn[..., :p] - zs, zn[..., p:]], -1)], dim=1)
        else:
            z = torch.stack([zn, zn], dim=1)
        out = self._project(z.reshape(2 * L, 2 * K0, -1)).index_select(0, self.flat_from_grid)
        return out.view(-1, B, C).permute(1, 0, 2)

    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(batch, L*L, ch) -> (batch, npix, ch); exact for band-limited signals."""
        B, _, C = coeffs.shape
        L, K0, p = self.L, B * C, self._npair
        at = coeffs.permute(1, 0, 2).reshape(-1, K0)
        at = torch.cat([at, at.new_zeros(1, K0)], dim=0).index_select(0, self.grid_from_flat)
        eo = self._evaluate(at).view(L, 2, 2, K0, -1)  # (L, parity, cos / sin, K0, Rn)
        even, odd = eo[:, 0], eo[:, 1]
        y = even + odd
        if p:
            y = torch.cat([y, (even[..., :p] - odd[..., :p])], dim=-1)
        y = y.index_select(-1, self.ring_from_cat)  # (L, cos / sin, K0, rings)
        c, s = y[:, 0], y[:, 1]
        if self._has_phase:
            h = torch.stack([self.syn0 * c + self.syn1 * s, self.syn2 * c + self.syn3 * s], dim=-1)
        else:
            h = torch.stack([self.syn0 * c, self.syn3 * s], dim=-1)
        h = h.permute(1, 2, 0, 3)  # (K0, rings, L, re / im)
        if any(g[4] for g in self._groups):
            h = torch.cat([h, h.new_zeros(K0, h.shape[1], 1, 2)], dim=2)  # zero row for the fold
        else:
            h = h.contiguous()
        pieces = []
        for gi, (n, nr, r0, _, P) in enumerate(self._groups):
            g = h[:, r0 : r0 + nr]
            if P == 0:
                g = g[:, :, :L]
            else:  # each rfft bin sums the P orders that alias onto it
                g = g.index_select(2, getattr(self, f"fold_{gi}"))
                g = g.view(K0, nr, -1, P, 2).sum(3) if P > 1 else g
            ring = torch.fft.irfft(torch.view_as_complex(g.contiguous()), n=n, dim=-1)  # (K0, nr, n)
            pieces.append(ring.reshape(K0, n * nr))
        out = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)
        if self._permuted:
            out = out.index_select(1, self.inv_perm)
        return out.view(B, C, -1).permute(0, 2, 1)

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

    def inverse(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Synthesis: coefficients (batch, L*L, ch) -> maps (batch, npix, ch)."""
        self._check(coeffs, self.L * self.L, f"L*L coefficients for L={self.L}", "coeffs")
        return self.synthesis(coeffs)


def _check_bandlimit(L) -> int:
    try:
        n = int(L)
    except (TypeError, ValueError):
        raise ValueError(f"bandlimit L must be a positive integer, got {L!r}") from None
    if n != L or n < 1:
        raise ValueError(f"bandlimit L must be a positive integer, got {L!r}")
    return n


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


def synthesis(coeffs: torch.Tensor, sampling, L: int, order: str = "NESTED") -> torch.Tensor:
    """Functional inverse SHT (tables cached like :func:`analysis`)."""
    _tensor_check(coeffs, "coeffs")
    return _cached(sampling, L, coeffs.dtype, coeffs.device, order).inverse(coeffs)
