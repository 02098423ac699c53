"""Torch ring / FFT plan of the SHT: pixels <-> per-ring Fourier coefficients, mirror pairs.

Any iso-latitude geometry (GL, DH, MW, HEALPix or a sampling defined elsewhere):

- rings are put in "plan order": north/south mirror pairs (colatitudes theta and
  pi - theta, same nphi) interleaved, by the north ring's colatitude, then unpaired rings;
  the pixels are gathered (one ``index_select``) so that each run of consecutive rings
  with equal nphi (an FFT block) is stored sample-major;
- analysis: one ``ihfft`` per block gives conj(X_j) for bins j <= n/2; order m reads bin
  (m mod n folded into [0, n/2]) and, where it folds from the upper half, is conjugated
  back (one gather, one sign), giving conj(X_m); times q c_m e^{i m phi0} (q the ring's
  quadrature weight, c_m = 1 for m = 0, sqrt 2 else) its (re, im) are the ring's cos /
  sin coefficients.  The McEwen-Wiaux rule mixes the rings with its exact theta quadrature
  (``_mw``) instead of weighting them.  Mirror pairs give north + south to even l + m and
  north - south to odd l + m; unpaired rings give themselves to both;
- synthesis runs the transpose (every order summed onto its aliased bin, one ``hfft``
  per block).

Tensors: ring spectra (L, rings, maps, 2) real (cos, sin); parity sums (L, stored rings,
maps * 2).  Buffers O(L * nrings + npix) (MW: 2 L^2 mixing values).
"""
from __future__ import annotations

import numpy as np
import torch

from ._mw import mw_theta_mixing
from ._sht_geometry import RingGeometry

__all__ = ["RingPlan"]


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


class RingPlan(torch.nn.Module):
    """Pixels (B, npix, C) <-> even / odd parity ring sums (L, stored rings, 2 B C).

    ``theta_stored``: colatitudes of the stored rings (north ring of each pair, then the
    unpaired rings), where the Legendre engine evaluates.
    """

    def __init__(self, geom: RingGeometry, dtype: torch.dtype, device=None):
        super().__init__()
        L, R = geom.L, geom.nrings
        self.L, self.npix = L, geom.npix
        kw = dict(dtype=dtype, device=device)
        pixel_of = geom.order if geom.order is not None else np.arange(geom.npix)
        south = _mirror_pairs(geom.theta, geom.nphi)
        north = np.flatnonzero(south >= 0)
        unpaired = np.flatnonzero((south < 0) & ~np.isin(np.arange(R), south))
        self.npair = p = north.size
        seq = np.concatenate([np.stack([north, south[north]], axis=1).ravel(), unpaired]).astype(np.int64)
        perm = np.concatenate([  # per FFT block, sample-major (k * nrings + ring)
            pixel_of[geom.start[seq[a:b]][None, :] + np.arange(geom.nphi[seq[a]])[:, None]].ravel()
            for a, b in _runs(geom.nphi[seq])
        ])
        self._long("perm", perm, device)  # gathered by analysis, scattered back (index_copy_) by synthesis
        theta, phi0, nphi = geom.theta[seq], geom.phi0[seq], geom.nphi[seq]
        self.theta_stored = np.concatenate([theta[0 : 2 * p : 2], theta[2 * p :]])
        mw = geom.rule == "mcewen-wiaux"
        if mw:
            q = 2 * np.pi / nphi
            mix = mw_theta_mixing(R)[:, seq][:, :, seq]
            self._buffer("mix_t", mix.transpose(0, 2, 1), **kw)  # z @ mix_t == (mix @ z^T)^T
        else:  # no weights: synthesis only (the modules refuse the analysis), no analysis weights
            q = None if geom.weights is None else geom.weights[seq]
            self.mix_t = None
        m = np.arange(L)
        c_ana = np.where(m == 0, 1.0, np.sqrt(2.0))
        c_syn = np.where(m == 0, 1.0, np.sqrt(0.5))
        mask = (m[None, :] <= (nphi[:, None] - 1) // 2) if mw else np.ones((1, L), dtype=bool)
        psi = np.outer(m, phi0)  # (L, R)
        sig, k_syn, row = np.ones((L, R)), np.zeros((L, R)), np.zeros((L, R), dtype=np.int64)
        self._blocks = []  # (n, nrings, pixel offset, spectrum row offset)
        p0 = s0 = 0
        for start, stop in _runs(nphi):
            n, nr = int(nphi[start]), stop - start
            bin_, sign, mult = _fold(m, n)
            sig[:, start:stop] = sign[:, None]
            k_syn[:, start:stop] = (c_syn * mult)[:, None]
            row[:, start:stop] = s0 + bin_[:, None] * nr + np.arange(nr)[None, :]
            self._blocks.append((n, nr, p0, s0))
            p0 += n * nr
            s0 += (n // 2 + 1) * nr
        self._spec_rows = s0
        self._long("spec_row", row.ravel(), device)
        self._buffer("sigma", sig[:, :, None], **kw)  # conjugation sign of the sine part, (L, R, 1)
        # complex weights stored as (re, im) pairs so that .to(dtype) keeps them intact
        if q is None:
            self.register_buffer("ana_w", None, persistent=False)
        else:
            w_ana = c_ana[:, None] * q[None, :] * mask.T
            self._buffer("ana_w", np.stack([w_ana * np.cos(psi), w_ana * np.sin(psi)], -1)[:, :, None], **kw)
        self._buffer("syn_w", np.stack([k_syn * np.cos(psi), -sig * k_syn * np.sin(psi)], -1)[:, :, None], **kw)

    def _buffer(self, name, value, dtype=None, device=None):
        t = torch.as_tensor(np.ascontiguousarray(value), device=device)
        self.register_buffer(name, t if dtype is None else t.to(dtype), persistent=False)

    def _long(self, name, value, device):
        self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.int64), device=device), persistent=False)

    def _mix(self, z: torch.Tensor) -> torch.Tensor:
        """MW theta quadrature on (L, ..., rings) ring values, per parity of m."""
        even = torch.matmul(z[0::2], self.mix_t[0])
        odd = torch.matmul(z[1::2], self.mix_t[1])
        both = torch.stack([even[: odd.shape[0]], odd], dim=1).reshape(-1, *z.shape[1:])
        return torch.cat([both, even[odd.shape[0] :]], dim=0)

    def analysis(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """maps (B, npix, C) -> weighted parity ring sums (even, odd), each (L, stored rings, 2 B C)."""
        B, _, C = maps.shape
        L, K, p = self.L, B * C, self.npair
        x = maps.permute(1, 0, 2).reshape(-1, K).index_select(0, self.perm)  # (pixels, maps)
        parts = [torch.fft.ihfft(x[p0 : p0 + n * nr].view(n, nr, K), dim=0, norm="forward").reshape(-1, K)
                 for n, nr, p0, _ in self._blocks]
        y = torch.cat(parts, dim=0).index_select(0, self.spec_row).view(L, -1, K)
        z = torch.view_as_real(y)  # (L, rings, maps, 2); with the sine sign: conj(X_m)
        c, s, w = z[..., 0], z[..., 1] * self.sigma, self.ana_w
        z = torch.stack([c * w[..., 0] - s * w[..., 1], c * w[..., 1] + s * w[..., 0]], -1)
        if self.mix_t is not None:
            z = self._mix(z.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        zn, zs, u = z[:, 0 : 2 * p : 2], z[:, 1 : 2 * p : 2], z[:, 2 * p :]
        even = torch.cat([zn + zs, u], dim=1).reshape(L, -1, 2 * K)
        odd = torch.cat([zn - zs, u], dim=1).reshape(L, -1, 2 * K)
        return even, odd

    def synthesis(self, even: torch.Tensor, odd: torch.Tensor, B: int, C: int) -> torch.Tensor:
        """Parity Legendre sums (even, odd), each (L, stored rings, 2 B C) -> maps (B, npix, C)."""
        L, K, p = self.L, B * C, self.npair
        e, o = even.view(L, -1, K, 2), odd.view(L, -1, K, 2)
        pairs = torch.stack([e[:, :p] + o[:, :p], e[:, :p] - o[:, :p]], dim=2).reshape(L, 2 * p, K, 2)
        y = torch.cat([pairs, e[:, p:] + o[:, p:]], dim=1)  # (L, rings, maps, 2)
        c, s, w = y[..., 0], y[..., 1] * self.sigma, self.syn_w
        y = torch.complex(c * w[..., 0] - s * w[..., 1], c * w[..., 1] + s * w[..., 0])
        spec = y.new_zeros(self._spec_rows, K).index_add_(0, self.spec_row, y.reshape(-1, K))
        rings = [torch.fft.hfft(spec[s0 : s0 + (n // 2 + 1) * nr].view(-1, nr, K), n=n, dim=0).reshape(n * nr, K)
                 for n, nr, _, s0 in self._blocks]
        rings = torch.cat(rings, dim=0)
        out = torch.empty_like(rings).index_copy_(0, self.perm, rings)
        return out.view(-1, B, C).permute(1, 0, 2)
