"""Exact conversion between our real coefficients and healpy's complex ``alm``.

Real basis (docs/conventions.md): Y_lm = sqrt2 (-1)^m Re Y_l^m (m > 0), Y_l^0, sqrt2 (-1)^m Im Y_l^|m|
(m < 0), with Y_l^m healpy's complex (Condon-Shortley) harmonics.  For a real map
f = sum a_l^m Y_l^m = sum r_lm Y_lm:

    r_l0 = Re a_l0,  r_lm = sqrt2 (-1)^m Re a_lm,  r_l,-m = -sqrt2 (-1)^m Im a_lm   (m > 0)
    a_lm = (-1)^m (r_lm - i r_l,-m) / sqrt2                                        (m > 0)

healpy order: m-major, index m (2 lmax + 1 - m) / 2 + l for m >= 0, lmax = L - 1.
Both functions accept numpy arrays or torch tensors (same kind out) with the coefficient
axis given by ``axis`` (default last; use ``axis=1`` for (batch, L*L, channels)).
"""
from __future__ import annotations

import numpy as np
import torch

from .._validation import check_positive_int

__all__ = ["real_to_healpy_alm", "healpy_alm_to_real", "healpy_alm_size"]


def healpy_alm_size(L: int) -> int:
    """Number of healpy alm for lmax = mmax = L - 1: L (L + 1) / 2."""
    return L * (L + 1) // 2


def healpy_tables(L: int):
    """Per healpy index (m-major, also ducc0's order): m, real index of (l, +m), of (l, -m),
    (-1)^m and the scale (1 for m = 0, sqrt 2 else); each (L(L+1)/2,)."""
    L = check_positive_int(L, "bandlimit L")
    m = np.concatenate([np.full(L - mm, mm) for mm in range(L)])
    ell = np.concatenate([np.arange(mm, L) for mm in range(L)])
    pos = ell * ell + ell + m  # real index of (l, +m) for each healpy index
    neg = ell * ell + ell - m  # real index of (l, -m)
    sign = np.where(m % 2 == 0, 1.0, -1.0)
    scale = np.where(m == 0, 1.0, np.sqrt(2.0))
    return m, pos, neg, sign, scale


def _check_len(n: int, expected: int, what: str) -> None:
    if n != expected:
        raise ValueError(f"{what} axis has length {n}, expected {expected}")


def real_to_healpy_alm(coeffs, L: int, axis: int = -1):
    """Real coefficients (L*L along ``axis``) -> healpy complex alm (L(L+1)/2 along ``axis``)."""
    m, pos, neg, sign, scale = healpy_tables(L)
    if torch.is_tensor(coeffs):
        x = coeffs.movedim(axis, -1)
        _check_len(x.shape[-1], L * L, "coefficient")
        dev = x.device
        re = x[..., torch.as_tensor(pos, device=dev)] * torch.as_tensor(sign / scale, dtype=x.dtype, device=dev)
        im = x[..., torch.as_tensor(neg, device=dev)] * torch.as_tensor(
            np.where(m == 0, 0.0, -sign / scale), dtype=x.dtype, device=dev
        )
        return torch.complex(re, im).movedim(-1, axis)
    x = np.moveaxis(np.asarray(coeffs, dtype=np.float64), axis, -1)
    _check_len(x.shape[-1], L * L, "coefficient")
    alm = x[..., pos] * (sign / scale) - 1j * np.where(m == 0, 0.0, sign / scale) * x[..., neg]
    return np.moveaxis(alm, -1, axis)


def healpy_alm_to_real(alm, L: int, axis: int = -1):
    """healpy complex alm (L(L+1)/2 along ``axis``) -> real coefficients (L*L along ``axis``).

    The imaginary part of the m = 0 terms (zero for a real map) is dropped.
    """
    m, pos, neg, sign, scale = healpy_tables(L)
    nonzero = m > 0
    if torch.is_tensor(alm):
        a = alm.movedim(axis, -1)
        _check_len(a.shape[-1], healpy_alm_size(L), "alm")
        if not a.is_complex():
            a = torch.complex(a, torch.zeros_like(a))
        dev = a.device
        f = torch.as_tensor(sign * scale, dtype=a.real.dtype, device=dev)
        out = a.real.new_zeros(*a.shape[:-1], L * L)
        out[..., torch.as_tensor(pos, device=dev)] = a.real * f
        nz = torch.as_tensor(np.flatnonzero(nonzero), device=dev)
        out[..., torch.as_tensor(neg[nonzero], device=dev)] = -a.imag[..., nz] * f[nz]
        return out.movedim(-1, axis)
    a = np.moveaxis(np.asarray(alm, dtype=np.complex128), axis, -1)
    _check_len(a.shape[-1], healpy_alm_size(L), "alm")
    out = np.zeros(a.shape[:-1] + (L * L,))
    out[..., pos] = a.real * (sign * scale)
    out[..., neg[nonzero]] = -a.imag[..., nonzero] * (sign * scale)[nonzero]
    return np.moveaxis(out, -1, axis)
