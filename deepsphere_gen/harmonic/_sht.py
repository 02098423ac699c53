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
from ..sampling import (
    DriscollHealySampling,
    EquiangularSampling,
    GaussLegendreSampling,
    HealpixSampling,
    McEwenWiauxSampling,
)
from ._legendre import normalized_legendre
from ._mw import mw_theta_mixing

__all__ = ["SHT", "analysis", "synthesis", "max_bandlimit", "clear_sht_cache"]

#: Above this many bytes the Legendre table is not stored but streamed over chunks of m.
DEFAULT_MAX_TABLE_BYTES = 2**30


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
    can be a sub-module of a network (nothing is added to the state dict).

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

    Memory: Legendre table L * L * nrings * itemsize bytes (GL L=256 float32: 64 MiB;
    HEALPix nside=128, L=384 float64: 575 MiB), plus 2 * nrings * L phases, per-group
    fold tables O(L) and, for MW, 2 * L * L mixing values.
    Cost per call: O(L^2 nrings) for the Legendre matmuls + O(npix log nphi) FFTs.
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
        self.sampling = sampling
        self.order = order
        self.npix = sampling.npix
        self.is_mw = isinstance(sampling, McEwenWiauxSampling)
        rings = sampling.rings()
        if not self.is_mw and sampling.weights is None:
            raise ValueError(f"{sampling!r} has no quadrature weights: no analysis possible")

        ring_pixels = rings.order if order == "NESTED" else np.arange(self.npix)
        groups = [(int(n), np.flatnonzero(rings.nphi == n)) for n in np.unique(rings.nphi)]
        ring_seq = np.concatenate([idx for _, idx in groups])  # rings in group order
        perm = np.concatenate([ring_pixels[rings.start[r] : rings.start[r] + rings.nphi[r]] for r in ring_seq])
        self._identity = bool(np.array_equal(perm, np.arange(self.npix)))
        self.register_buffer("perm", torch.as_tensor(perm, device=device), persistent=False)
        self.register_buffer("inv_perm", torch.as_tensor(np.argsort(perm), device=device), persistent=False)
        self._groups = []  # (n, nrings, ring offset, pixel offset)
        m = np.arange(L)
        r0 = p0 = 0
        for gi, (n, idx) in enumerate(groups):
            bin_, sign, mult = _fold(m, n)
            mask = (m <= (n - 1) // 2).astype(np.float64) if self.is_mw else np.ones(L)
            self._buffer(f"bin_{gi}", torch.as_tensor(bin_, device=device))
            self._buffer(f"ana_re_{gi}", mask, dtype, device)
            self._buffer(f"ana_im_{gi}", mask * sign, dtype, device)
            self._buffer(f"syn_re_{gi}", n * mult, dtype, device)
            self._buffer(f"syn_im_{gi}", n * mult * sign, dtype, device)
            self._groups.append((n, idx.size, r0, p0))
            r0 += idx.size
            p0 += idx.size * n

        self.theta = rings.theta[ring_seq]
        nphi = rings.nphi[ring_seq]
        phi0 = rings.phi0[ring_seq]
        if self.is_mw:
            q = 2 * np.pi / nphi
            mix = mw_theta_mixing(sampling.L)[:, ring_seq][:, :, ring_seq]
            self._buffer("mix", mix, dtype, device)
        else:
            w = np.asarray(sampling.weights)
            q = w[ring_pixels[rings.start[ring_seq]]]  # pixel weight on each ring
            self.mix = None
        self._has_phase = bool(np.any(phi0 != 0))
        psi = np.outer(phi0, m)
        self._buffer("q", q, dtype, device)
        self._buffer("phase_cos", np.cos(psi), dtype, device)
        self._buffer("phase_sin", np.sin(psi), dtype, device)
        c = np.where(m == 0, 1.0, np.sqrt(2.0))
        self._buffer("ana_scale", np.stack([c, -c], axis=1), dtype, device)
        self._buffer("syn_scale", np.stack([1 / c, -1 / c], axis=1), dtype, device)

        # flat index l*l+l+m <-> grid (part, m, l) with part 0 = cos (m >= 0), 1 = sin (m < 0)
        ll, mm = np.meshgrid(np.arange(L), m, indexing="ij")
        flat = ll * ll + ll + mm
        valid = mm <= ll
        grid_cos = np.where(valid, flat, L * L).T  # (m, l); L*L points to a zero pad
        grid_sin = np.where(valid & (mm > 0), ll * ll + ll - mm, L * L).T
        grid = np.stack([grid_cos, grid_sin], axis=-1)  # (m, l, part)
        self.register_buffer("grid_from_flat", torch.as_tensor(grid.ravel(), device=device), persistent=False)
        ell = np.floor(np.sqrt(np.arange(L * L))).astype(np.int64)
        em = np.arange(L * L) - ell * ell - ell
        flat_from_grid = np.where(em >= 0, (em * L + ell) * 2, (-em * L + ell) * 2 + 1)
        self.register_buffer("flat_from_grid", torch.as_tensor(flat_from_grid, device=device), persistent=False)

        itemsize = torch.empty((), dtype=dtype).element_size()
        self.table_bytes = L * L * self.theta.size * itemsize
        self.streaming = self.table_bytes > max_table_bytes
        self._chunk = max(1, int(max_table_bytes // max(1, L * self.theta.size * itemsize)))
        if self.streaming:
            self.legendre = None
        else:
            tab = normalized_legendre(L, self.theta).transpose(0, 2, 1)  # (m, ring, l)
            self._buffer("legendre", tab, dtype, device)

    # ------------------------------------------------------------------ helpers
    def _buffer(self, name, value, dtype=None, device=None):
        t = torch.as_tensor(np.ascontiguousarray(value), device=device)
        if dtype is not None:
            t = t.to(dtype)
        self.register_buffer(name, t, persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.q.dtype

    @property
    def device(self) -> torch.device:
        return self.q.device

    def extra_repr(self) -> str:
        return f"{self.sampling!r}, L={self.L}, iterations={self.iterations}, streaming={self.streaming}"

    def _check(self, x: torch.Tensor, n: int, what: str, name: str) -> None:
        if not torch.is_tensor(x):
            raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[1] != n:
            raise ValueError(
                f"{name} must be shaped (batch, {n}, channels) ({what}), got shape {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise ValueError(f"{name} has dtype {x.dtype} but the SHT tables are {self.dtype}; use .to()")
        if x.device != self.device:
            raise ValueError(f"{name} is on {x.device} but the SHT tables are on {self.device}; use .to()")
        check_finite(x, name)

    def _legendre(self, z: torch.Tensor, transpose: bool) -> torch.Tensor:
        """(L, rings, K) -> (L, L, K) if transpose (projection) else (L, L, K) -> (L, rings, K)."""
        if self.legendre is not None:
            tab = self.legendre
            return torch.bmm(tab.transpose(1, 2) if transpose else tab, z)
        out = []
        for m0 in range(0, self.L, self._chunk):
            m1 = min(self.L, m0 + self._chunk)
            tab = normalized_legendre(self.L, self.theta, m0, m1).transpose(0, 2, 1)
            tab = torch.as_tensor(np.ascontiguousarray(tab)).to(device=z.device, dtype=z.dtype)
            out.append(torch.bmm(tab.transpose(1, 2) if transpose else tab, z[m0:m1]))
        return torch.cat(out, dim=0)

    def _mix(self, z: torch.Tensor) -> torch.Tensor:
        """MW theta quadrature: (L, rings, K) ring values -> mixed values, per parity of m."""
        even = torch.matmul(self.mix[0], z[0::2])
        odd = torch.matmul(self.mix[1], z[1::2])
        both = torch.stack([even[: odd.shape[0]], odd], dim=1).reshape(-1, *z.shape[1:])
        return torch.cat([both, even[odd.shape[0] :]], dim=0)

    # --------------------------------------------------------------- transforms
    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        """One quadrature pass (no iterations): (batch, npix, ch) -> (batch, L*L, ch)."""
        B, _, C = maps.shape
        L = self.L
        xt = maps.permute(1, 0, 2)
        xt = xt.contiguous() if self._identity else xt.index_select(0, self.perm)
        res, ims = [], []
        for gi, (n, nr, _, p0) in enumerate(self._groups):
            seg = xt[p0 : p0 + nr * n].reshape(nr, n, B, C)
            spec = torch.fft.rfft(seg, dim=1).index_select(1, getattr(self, f"bin_{gi}"))
            res.append(spec.real * getattr(self, f"ana_re_{gi}")[:, None, None])
            ims.append(spec.imag * getattr(self, f"ana_im_{gi}")[:, None, None])
        re = torch.cat(res, dim=0)  # (rings, L, B, C)
        im = torch.cat(ims, dim=0)
        q = self.q[:, None, None, None]
        if self._has_phase:
            c = self.phase_cos[:, :, None, None] * q
            s = self.phase_sin[:, :, None, None] * q
            re, im = c * re + s * im, c * im - s * re
        else:
            re, im = q * re, q * im
        R = re.shape[0]
        z = torch.stack([re, im], dim=2).permute(1, 0, 2, 3, 4).reshape(L, R, 2, B * C)
        if self.mix is not None:
            z = self._mix(z.reshape(L, R, 2 * B * C)).reshape(L, R, 2, B * C)
        z = (z * self.ana_scale[:, None, :, None]).reshape(L, R, 2 * B * C)
        out = self._legendre(z, transpose=True)  # (m, l, 2BC)
        out = out.reshape(L, L, 2, B, C).reshape(L * L * 2, B, C).index_select(0, self.flat_from_grid)
        return out.permute(1, 0, 2)

    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(batch, L*L, ch) -> (batch, npix, ch); exact for band-limited signals."""
        B, _, C = coeffs.shape
        L = self.L
        at = coeffs.permute(1, 0, 2)
        at = torch.cat([at, at.new_zeros(1, B, C)], dim=0).index_select(0, self.grid_from_flat)
        z = (at.reshape(L, L, 2, B * C) * self.syn_scale[:, None, :, None]).reshape(L, L, 2 * B * C)
        y = self._legendre(z, transpose=False).reshape(L, -1, 2, B, C)  # (m, rings, part, B, C)
        gre, gim = y[:, :, 0], y[:, :, 1]
        if self._has_phase:
            c = self.phase_cos.T[:, :, None, None]
            s = self.phase_sin.T[:, :, None, None]
            gre, gim = c * gre - s * gim, s * gre + c * gim
        pieces = []
        for gi, (n, nr, r0, _) in enumerate(self._groups):
            idx = getattr(self, f"bin_{gi}")
            nb = n // 2 + 1
            src_re = gre[:, r0 : r0 + nr] * getattr(self, f"syn_re_{gi}")[:, None, None, None]
            src_im = gim[:, r0 : r0 + nr] * getattr(self, f"syn_im_{gi}")[:, None, None, None]
            xre = src_re.new_zeros(nb, nr, B, C).index_add(0, idx, src_re)
            xim = src_im.new_zeros(nb, nr, B, C).index_add(0, idx, src_im)
            ring = torch.fft.irfft(torch.complex(xre, xim), n=n, dim=0)  # (n, nr, B, C)
            pieces.append(ring.permute(1, 0, 2, 3).reshape(nr * n, B, C))
        out = torch.cat(pieces, dim=0)
        if not self._identity:
            out = out.index_select(0, self.inv_perm)
        return out.permute(1, 0, 2)

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
