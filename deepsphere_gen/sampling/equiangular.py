"""Equiangular samplings for bandlimit L: Driscoll-Healy, Gauss-Legendre, McEwen-Wiaux.

Pixels are in ring-major order (colatitude theta major, longitude phi minor), so a map
(batch, ntheta * nphi, channels) reshapes to (batch, ntheta, nphi, channels).
"""
from __future__ import annotations

import ducc0.misc
import numpy as np

from .._validation import check_positive_int
from ._base import Rings, Sampling

__all__ = [
    "EquiangularSampling",
    "DriscollHealySampling",
    "GaussLegendreSampling",
    "McEwenWiauxSampling",
    "dh_theta_weights",
    "gauss_legendre_theta",
    "mw_area_weights",
]


def gauss_legendre_theta(L: int) -> tuple[np.ndarray, np.ndarray]:
    """The L Gauss-Legendre colatitudes (increasing, radians) and their weights for
    int_0^pi g(theta) sin(theta) dtheta (summing to 2), from ducc0: accurate to rounding at
    every L, where numpy's ``leggauss`` weights drift (6e-8 relative at L = 2048: integrals of
    P_l^2 off by 1e-10).  Shared by the S^2 and SO(3) Gauss-Legendre grids."""
    return ducc0.misc.GL_thetas(L), ducc0.misc.GL_weights(L, 1) / (2 * np.pi)


def dh_theta_weights(ntheta: int) -> np.ndarray:
    """Quadrature weights on theta_j = pi j / ntheta (j < ntheta) for int_0^pi g(theta) sin(theta) dtheta.

    Exact for every g in span{cos(n theta), n < ntheta}: this includes the products of
    two band-limited harmonics of degree < ntheta / 2 (Driscoll & Healy 1994).  Closed
    form: w_j = (4 / ntheta) sin(theta_j) sum_{k < ntheta/2} sin((2k+1) theta_j) / (2k+1).
    """
    j = np.arange(ntheta)
    th = np.pi * j / ntheta
    k = np.arange(ntheta // 2)[:, None]
    s = np.sum(np.sin((2 * k + 1) * th[None, :]) / (2 * k + 1), axis=0)
    return 4.0 / ntheta * np.sin(th) * s


def mw_area_weights(L: int) -> np.ndarray:
    """(L,) weight (steradians) of each pixel of the L McEwen-Wiaux rings (the last: the south
    pole, one pixel) that integrates maps band-limited below L exactly.

    The ring mean over phi is exact (2L-1 samples, |m| < L); the mean G(theta) is a cosine
    polynomial of degree < L, extended to the torus theta_k = pi (2k+1) / (2L-1), k < 2L-1
    (mirrored: G(2 pi - theta) = G(theta)), so that its Fourier coefficients G_p are exact and
    int_0^pi G sin = sum_p G_p w(p), w(p) = int_0^pi e^{i p theta} sin = 2 / (1 - p^2) (p even),
    +-i pi/2 (p = +-1), 0 else (McEwen & Wiaux 2011).  Folding the torus samples back onto the
    rings gives the weights; cost O(L^2).
    """
    L = check_positive_int(L, "bandlimit L")
    N = 2 * L - 1
    theta = np.pi * (2 * np.arange(N) + 1) / N
    p = np.arange(2, L, 2)  # even p > 0 (p = 0 and p = +-1 written out)
    torus = (2.0 + np.cos(np.outer(theta, p)) @ (4.0 / (1.0 - p.astype(np.float64) ** 2))
             + np.pi * np.sin(theta)) / N  # per torus sample: sum_p w(p) e^{-i p theta_k} / N (real)
    ring = torus[:L].copy()
    ring[: L - 1] += torus[L:][::-1]  # sample k >= L is ring 2L-2-k mirrored
    nphi = np.full(L, N)
    nphi[-1] = 1
    return ring * (2 * np.pi / nphi)


class EquiangularSampling(Sampling):
    """Tensor-product grid theta (ntheta,) x phi (nphi,) with equispaced phi from 0."""

    name = "equiangular"

    def __init__(self, L: int, theta_1d: np.ndarray, nphi: int, theta_weights: np.ndarray | None):
        self.L = check_positive_int(L, "bandlimit L")
        self.theta_1d = np.asarray(theta_1d, dtype=np.float64)
        self.phi_1d = 2 * np.pi * np.arange(nphi) / nphi
        self.ntheta, self.nphi = self.theta_1d.size, int(nphi)
        self._theta_weights = theta_weights
        th, ph = np.meshgrid(self.theta_1d, self.phi_1d, indexing="ij")
        self.theta, self.phi = th.ravel(), ph.ravel()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ntheta, self.nphi)

    @property
    def weights(self) -> np.ndarray | None:
        if self._theta_weights is None:
            return None
        return np.repeat(self._theta_weights * (2 * np.pi / self.nphi), self.nphi)

    @property
    def max_bandlimit(self) -> int:
        """The grid's bandlimit L."""
        return self.L

    def rings(self) -> Rings:
        n = self.ntheta
        return Rings(
            theta=self.theta_1d.copy(),
            nphi=np.full(n, self.nphi, dtype=np.int64),
            phi0=np.zeros(n),
            start=np.arange(n, dtype=np.int64) * self.nphi,
            order=np.arange(self.npix, dtype=np.int64),
            weights=None if self._theta_weights is None else self._theta_weights * (2 * np.pi / self.nphi),
        )

    def cache_key(self) -> str:
        return f"{self.name}-L{self.L}"


class DriscollHealySampling(EquiangularSampling):
    """Driscoll-Healy grid, 2L x 2L: theta_j = pi j / (2L), phi_k = pi k / L.

    Exact quadrature for bandlimit L; 2x2 pooling maps DH(L) onto DH(L/2).
    """

    name = "dh"

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        super().__init__(L, np.pi * np.arange(2 * L) / (2 * L), 2 * L, dh_theta_weights(2 * L))


class GaussLegendreSampling(EquiangularSampling):
    """Gauss-Legendre grid, L x (2L-1): theta at the Gauss-Legendre nodes (increasing)."""

    name = "gl"

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        theta, weights = gauss_legendre_theta(L)
        super().__init__(L, theta, 2 * L - 1, weights)


class McEwenWiauxSampling(Sampling):
    """McEwen-Wiaux sampling (2011): (L-1)(2L-1) + 1 samples, the fewest of any sampling theorem.

    theta_t = pi (2t+1) / (2L-1) for t = 0..L-1 (the last ring is the south pole,
    stored as one sample), phi_p = 2 pi p / (2L-1).  It has no direct quadrature for the
    analysis (products of two band-limited maps): its exact transform extends the signal to
    the torus (see ``harmonic``); its ``weights`` integrate one band-limited map exactly.
    Pixel order: rings t = 0..L-2 of 2L-1 samples each, then the south pole.
    """

    name = "mw"

    def __init__(self, L: int):
        self.L = check_positive_int(L, "bandlimit L")
        t = np.arange(self.L)
        self.theta_1d = np.pi * (2 * t + 1) / (2 * self.L - 1)
        self.theta_1d[-1] = np.pi  # exactly the south pole (rounding can land just above pi)
        self.nphi = 2 * self.L - 1
        self.phi_1d = 2 * np.pi * np.arange(self.nphi) / self.nphi
        th, ph = np.meshgrid(self.theta_1d[:-1], self.phi_1d, indexing="ij")
        self.theta = np.concatenate([th.ravel(), [np.pi]])
        self.phi = np.concatenate([ph.ravel(), [0.0]])

    @property
    def max_bandlimit(self) -> int:
        """The grid's bandlimit L."""
        return self.L

    @property
    def weights(self) -> np.ndarray:
        """(npix,) area weights in steradians, positive, summing to 4 pi: ``sum_i w_i f_i`` is the
        integral of any map f band-limited below L, exactly (McEwen-Wiaux's rule for degree 0,
        :func:`mw_area_weights`).  Not a quadrature for products of two such maps (degree up to
        2L-2): the SHT does not use them, it runs the exact McEwen-Wiaux theta rule (``rings()``)."""
        return np.repeat(mw_area_weights(self.L), self.rings().nphi)  # pixels in ring-major order (rings().order)

    def rings(self) -> Rings:
        """L rings; no quadrature weights: the SHT uses the exact McEwen-Wiaux theta rule."""
        n = self.L
        nphi = np.full(n, self.nphi, dtype=np.int64)
        nphi[-1] = 1
        return Rings(
            theta=self.theta_1d.copy(),
            nphi=nphi,
            phi0=np.zeros(n),
            start=np.arange(n, dtype=np.int64) * self.nphi,
            order=np.arange(self.npix, dtype=np.int64),
            rule="mcewen-wiaux",
        )

    def cache_key(self) -> str:
        return f"mw-L{self.L}"
