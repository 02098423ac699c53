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

import healpy as hp
import numpy as np
import torch

from .._validation import check_positive_int

__all__ = ["real_to_healpy_alm", "healpy_alm_to_real", "healpy_alm_size"]


def healpy_alm_size(L: int) -> int:
    """Number of healpy alm for lmax = mmax = L - 1: L (L + 1) / 2."""
    return L * (L + 1) // 2


def healpy_orders(L: int):
    """Per order m < L: ``off`` (healpy's index of (l, m) is off[m] + l: m (2 L - 1 - m) / 2),
    (-1)^m and the scale (1 for m = 0, sqrt 2 else); each (L,).  The one statement of the
    layout and factors: :func:`healpy_tables` expands it per coefficient, the SHT's ducc0
    engine (``_ducc_layout``) per order / degree."""
    m = np.arange(L)
    return m * (2 * L - 1 - m) // 2, np.where(m % 2 == 0, 1.0, -1.0), np.where(m == 0, 1.0, np.sqrt(2.0))


def healpy_tables(L: int):
    """Per healpy index (m-major, also ducc0's order): m, real index of (l, +m), of (l, -m),
    (-1)^m and the scale (1 for m = 0, sqrt 2 else); each (L(L+1)/2,)."""
    L = check_positive_int(L, "bandlimit L")
    off, sign, scale = healpy_orders(L)
    m = np.repeat(np.arange(L), np.arange(L, 0, -1))
    ell = np.arange(m.size) - off[m]
    pos = ell * ell + ell + m  # real index of (l, +m) for each healpy index
    neg = ell * ell + ell - m  # real index of (l, -m)
    return m, pos, neg, sign[m], scale[m]


def _lmax_of_size(n: int) -> int | None:
    """healpy's lmax (= mmax) of an alm array of ``n`` entries, None when no lmax has that size."""
    lmax = hp.Alm.getlmax(n)
    return None if lmax < 0 else int(lmax)


def _mmax_of_size(n: int, lmax: int) -> int | None:
    """The mmax < lmax of an alm of ``lmax`` with ``n`` entries, None when there is none."""
    return next((mmax for mmax in range(lmax) if hp.Alm.getsize(lmax, mmax) == n), None)


def _check_coefficients(n: int, L: int) -> None:
    if n != L * L:
        r = int(round(np.sqrt(n)))
        hint = f" (L*L for L={r})" if r * r == n else " (not L*L for any L)"
        raise ValueError(f"coefficient axis has length {n}{hint}, expected L*L = {L * L} for L={L}")


def _check_alm(n: int, L: int) -> None:
    """ValueError for an alm axis of ``n`` entries that is no full alm of lmax = L - 1.  A size fits
    several layouts (45: lmax = 9 with mmax = 5, and lmax = mmax = 8), so the message names those
    it fits (an mmax < lmax of the requested lmax first) and suggests no L: a full alm of
    another lmax and a truncated one of this lmax would both convert, one of them misread."""
    if n == healpy_alm_size(L):
        return
    lmax, mmax = _lmax_of_size(n), _mmax_of_size(n, L - 1)
    fits = []
    if mmax is not None:
        fits.append(f"an alm of lmax = {L - 1} with mmax = {mmax} (pad it to mmax = lmax: "
                    f"healpy.resize_alm(alm, {L - 1}, {mmax}, {L - 1}, {L - 1}))")
    if lmax is not None:
        fits.append(f"a full alm of lmax = mmax = {lmax} (L={lmax + 1} converts that one)")
    if mmax is None:
        fits.append("an alm with mmax < lmax (pad it to mmax = lmax: healpy.resize_alm(alm, lmax, mmax, lmax, lmax))")
    raise ValueError(f"alm axis has length {n}; L={L} expects a full alm of lmax = mmax = {L - 1} "
                     f"({healpy_alm_size(L)} alm).  {n} entries fit " + " or ".join(fits)
                     + (": the size alone cannot tell which" if len(fits) > 1 else ""))


def real_to_healpy_alm(coeffs, L: int, axis: int = -1):
    """Real coefficients (L*L along ``axis``) -> healpy complex alm (L(L+1)/2 along ``axis``)."""
    m, pos, neg, sign, scale = healpy_tables(L)
    if torch.is_tensor(coeffs):
        x = coeffs.movedim(axis, -1)
        _check_coefficients(x.shape[-1], L)
        dev = x.device
        re = x[..., torch.as_tensor(pos, device=dev)] * torch.as_tensor(sign / scale, dtype=x.dtype, device=dev)
        im = x[..., torch.as_tensor(neg, device=dev)] * torch.as_tensor(
            np.where(m == 0, 0.0, -sign / scale), dtype=x.dtype, device=dev
        )
        return torch.complex(re, im).movedim(-1, axis)
    x = np.moveaxis(np.asarray(coeffs, dtype=np.float64), axis, -1)
    _check_coefficients(x.shape[-1], L)
    alm = x[..., pos] * (sign / scale) - 1j * np.where(m == 0, 0.0, sign / scale) * x[..., neg]
    return np.moveaxis(alm, -1, axis)


def healpy_alm_to_real(alm, L: int, axis: int = -1):
    """healpy complex alm (L(L+1)/2 along ``axis``) -> real coefficients (L*L along ``axis``).

    The alm must have lmax = mmax = L - 1 (ValueError naming the layouts its size fits; pad an
    mmax < lmax alm with ``healpy.resize_alm``).  The size alone cannot tell a full alm from a
    truncated one of a larger lmax (lmax 8 and lmax 9 with mmax 5 both have 45 entries): give the L of
    the alm's own lmax, and pad an mmax < lmax alm first.  The imaginary part of the m = 0 terms (zero for a real map) is dropped.
    """
    m, pos, neg, sign, scale = healpy_tables(L)
    nonzero = m > 0
    if torch.is_tensor(alm):
        a = alm.movedim(axis, -1)
        _check_alm(a.shape[-1], L)
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
    _check_alm(a.shape[-1], L)
    out = np.zeros(a.shape[:-1] + (L * L,))
    out[..., pos] = a.real * (sign * scale)
    out[..., neg[nonzero]] = -a.imag[..., nonzero] * (sign * scale)[nonzero]
    return np.moveaxis(out, -1, axis)
