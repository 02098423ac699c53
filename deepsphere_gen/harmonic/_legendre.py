"""Orthonormal associated Legendre functions (no Condon-Shortley phase), stable to L >= 1024.

``lambda_l^m(theta) = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m(cos theta)`` (P without the
Condon-Shortley phase), i.e. the theta part of the complex harmonic ``|Y_l^m|``:
``2 pi int_0^pi lambda_l^m(theta)**2 sin(theta) dtheta = 1``.

Method: sectoral start ``lambda_m^m = sqrt(prod_k (2k+1)/(2k) / (4 pi)) sin(theta)**m`` in
log2 space (mantissa + integer exponent, so ``sin(theta)**m`` never underflows), then the
standard three-term recursion in l on the mantissas, rescaled by 2**-600 whenever they grow
large; values are assembled with ``ldexp`` at the end (exact zeros where they truly underflow).
Computed in float64 numpy.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int

__all__ = ["normalized_legendre", "real_spherical_harmonics"]

_RESCALE_BITS = 600
_BIG = 2.0**_RESCALE_BITS


def _cos_sin(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of colatitudes, with sin exactly 0 at the poles 0 and pi."""
    theta = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta has non-finite values")
    if np.any(theta < 0) or np.any(theta > np.pi):
        raise ValueError("colatitude theta must lie in [0, pi]")
    x = np.cos(theta)
    s = np.where((theta == 0) | (theta == np.pi), 0.0, np.sin(theta))
    return x, s


def normalized_legendre(L: int, theta, m_start: int = 0, m_stop: int | None = None) -> np.ndarray:
    """Table of ``lambda_l^m(theta)`` for ``m_start <= m < m_stop`` and ``0 <= l < L``.

    Parameters
    ----------
    L : bandlimit (exclusive), any size (tested to 1024 and beyond).
    theta : (n,) colatitudes in radians, in [0, pi].
    m_start, m_stop : order range (default all orders 0..L-1); lets callers stream the
        table over chunks of m.

    Returns
    -------
    (m_stop - m_start, L, n) float64 array, zero where l < m.  Memory 8 * nm * L * n bytes.
    """
    L = check_positive_int(L, "bandlimit L")
    m_stop = L if m_stop is None else int(m_stop)
    if not 0 <= m_start <= m_stop <= L:
        raise ValueError(f"order range [{m_start}, {m_stop}) must lie inside [0, {L})")
    x, s = _cos_sin(np.atleast_1d(theta))
    n = x.shape[0]
    nm = m_stop - m_start
    out = np.zeros((nm, L, n))
    if nm == 0:
        return out
    m = np.arange(m_start, m_stop)
    # log2 of the sectoral value lambda_m^m: 0.5 log2(prod (2k+1)/(2k) / 4pi) + m log2 sin
    k = np.arange(1, L)
    cum = np.concatenate([[0.0], np.cumsum(np.log2((2 * k + 1) / (2 * k)))])
    log_c = 0.5 * (cum[m] - np.log2(4 * np.pi))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log2(s)
        log_mm = log_c[:, None] + np.where(m[:, None] == 0, 0.0, m[:, None] * log_s[None, :])
    zero = np.isneginf(log_mm)
    exp = np.where(zero, 0, np.floor(np.where(zero, 0.0, log_mm))).astype(np.int64)
    mant_start = np.where(zero, 0.0, np.exp2(np.where(zero, 0.0, log_mm) - exp))
    m2 = (m * m).astype(np.float64)[:, None]
    p1 = np.zeros((nm, n))  # lambda_{l-1}^m (mantissa)
    p2 = np.zeros((nm, n))  # lambda_{l-2}^m (mantissa)
    e = np.zeros((nm, n), dtype=np.int64)
    for ell in range(m_start, L):
        row = ell - m_start  # row of the order m = ell, which starts here
        active = slice(0, row)  # orders m < ell: three-term recursion
        if row > 0:
            l2 = float(ell * ell)
            a = np.sqrt((4 * l2 - 1) / (l2 - m2[active]))
            b = np.sqrt(((ell - 1) ** 2 - m2[active]) / (4 * (ell - 1) ** 2 - 1))
            new = a * (x[None, :] * p1[active] - b * p2[active])
            p2[active] = p1[active]
            p1[active] = new
            big = np.abs(new) > _BIG
            if big.any():
                p1[active] = np.where(big, p1[active] / _BIG, p1[active])
                p2[active] = np.where(big, p2[active] / _BIG, p2[active])
                e[active] += np.where(big, _RESCALE_BITS, 0)
        if row < nm:
            p1[row] = mant_start[row]
            p2[row] = 0.0
            e[row] = exp[row]
        top = min(row + 1, nm)
        out[:top, ell, :] = np.ldexp(p1[:top], e[:top])
    return out


def real_spherical_harmonics(L: int, theta, phi) -> np.ndarray:
    """Real orthonormal harmonics Y_lm at points, shape (n, L*L), flat index l*l + l + m.

    Y_lm = sqrt2 lambda_l^m cos(m phi) (m > 0), lambda_l^0 (m = 0),
    sqrt2 lambda_l^|m| sin(|m| phi) (m < 0); no Condon-Shortley phase.  float64 numpy.
    Memory 8 * L * L * n bytes (plus the Legendre table).
    """
    L = check_positive_int(L, "bandlimit L")
    theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    phi = np.atleast_1d(np.asarray(phi, dtype=np.float64))
    if theta.shape != phi.shape or theta.ndim != 1:
        raise ValueError(f"theta and phi must be 1-D of equal length, got {theta.shape} and {phi.shape}")
    if not np.all(np.isfinite(phi)):
        raise ValueError("phi has non-finite values")
    lam = normalized_legendre(L, theta)  # (m, l, n)
    out = np.zeros((theta.size, L * L))
    for ell in range(L):
        base = ell * ell + ell
        out[:, base] = lam[0, ell]
        if ell:
            ms = np.arange(1, ell + 1)
            amp = np.sqrt(2.0) * lam[1 : ell + 1, ell].T  # (n, ell)
            out[:, base + ms] = amp * np.cos(np.outer(phi, ms))
            out[:, base - ms] = amp * np.sin(np.outer(phi, ms))
    return out
