"""McEwen-Wiaux (2011) exact quadrature in theta, as a ring-mixing matrix per parity of m.

On the MW grid theta_t = pi (2t+1) / (2L-1), t = 0..L-1, the Fourier coefficient
G_m(theta) of a band-limited signal is a trigonometric polynomial of degree <= L-1 in
theta, and the sphere identity f(2pi - theta, phi) = f(theta, phi + pi) extends it to the
torus with G_m(2pi - theta) = (-1)^m G_m(theta).  The 2L-1 extended samples are
equispaced on the torus, so an FFT in theta gives its coefficients G_p exactly.  For
any lambda(theta) = lambda_l^m(cos theta) (same parity, same degree bound)

    int_0^pi G_m lambda sin(theta) dtheta = sum_{p,s} G_p lambda_s w(p + s),
    w(q) = int_0^pi e^{i q theta} sin(theta) dtheta = (1 + (-1)^q) / (1 - q^2), w(+-1) = +-i pi/2,

(the convolution with MW's weight function), which equals sum_t lambda(theta_t) (M G)_t for
the real L x L matrix M built below.  So the MW forward transform is the ring-based
quadrature transform with the ring values mixed by M (M depends on m only through its
parity).  Exact for bandlimit <= L.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int

__all__ = ["mw_theta_mixing", "mw_weight"]


def mw_weight(q: np.ndarray) -> np.ndarray:
    """w(q) = int_0^pi exp(i q theta) sin(theta) dtheta for integer q (complex128)."""
    q = np.asarray(q)
    w = np.zeros(q.shape, dtype=np.complex128)
    even = q % 2 == 0
    w[even] = 2.0 / (1.0 - q[even].astype(np.float64) ** 2)
    w[q == 1] = 0.5j * np.pi
    w[q == -1] = -0.5j * np.pi
    return w


def mw_theta_mixing(L: int) -> np.ndarray:
    """(2, L, L) float64 matrices M[parity] with int_0^pi G(theta) lambda(theta) sin(theta) dtheta
    = sum_t lambda(theta_t) sum_t' M[t, t'] G(theta_t') for MW rings theta_t (t = 0..L-1).

    ``M[0]`` serves even m, ``M[1]`` odd m.  Cost O(L^3) once; memory 16 L^2 bytes.
    """
    L = check_positive_int(L, "bandlimit L")
    N = 2 * L - 1
    k = np.arange(N)
    theta = np.pi * (2 * k + 1) / N
    p = np.arange(-(L - 1), L)  # Fourier degrees on the torus
    out = np.empty((2, L, L))
    mirror = 2 * L - 2 - k  # torus sample k >= L reflects onto ring 2L-2-k
    for parity in (0, 1):
        sign = -1.0 if parity else 1.0
        extend = np.zeros((N, L))  # torus samples from ring samples
        extend[np.arange(L), np.arange(L)] = 1.0
        extend[np.arange(L, N), mirror[L:]] = sign
        fourier = np.exp(-1j * np.outer(p, theta)) / N  # G_p from torus samples
        conv = mw_weight(p[None, :] + p[:, None])  # Ghat(s) = sum_p w(p + s) G_p
        back = np.exp(-1j * np.outer(theta, p)) / N  # u_k = sum_s Ghat(s) e^{-i s theta_k} / N
        fold = np.zeros((L, N))  # sum_k lambda(theta_k) u_k -> rings t < L
        fold[np.arange(L), np.arange(L)] = 1.0
        fold[mirror[L:], np.arange(L, N)] = sign
        m = fold @ back @ conv @ fourier @ extend
        out[parity] = m.real
    return out
