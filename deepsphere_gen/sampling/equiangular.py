"""Equiangular samplings for bandlimit L: Driscoll-Healy, Gauss-Legendre, McEwen-Wiaux.

Pixels are in ring-major order (colatitude theta major, longitude phi minor), so a map
(batch, ntheta * nphi, channels) reshapes to (batch, ntheta, nphi, channels).
"""
from __future__ import annotations

import hashlib

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
    """Tensor-product grid theta (ntheta,) x phi (nphi,) with equispaced phi from 0, for bandlimit L.

    ``theta_1d``: the rings' colatitudes (radians); ``theta_weights``: None (synthesis only: the
    analysis is refused) or (ntheta,) weights of ``int_0^pi g(theta) sin(theta) dtheta`` (sum 2) that
    integrate every polynomial in cos(theta) of degree <= 2L-2 exactly (products of two maps
    band-limited below L), e.g. Fejer's or Clenshaw-Curtis' rules on enough rings.  Refused
    (ValueError) at construction, naming the largest valid L: ``nphi < 2L-1`` or fewer than L
    rings (no exact analysis at L on any weights), and weights whose integrals of the Legendre
    polynomials P_l(cos theta), l <= 2L-2, miss 2 delta_l0 by more than 1e-10 (checked by
    recurrence, O(ntheta L)).  The SHT trusts both: it runs at any L <= ``max_bandlimit`` = L.
    """

    name = "equiangular"
    #: True for the grids fully defined by their name and L (DH, GL): their key is ``<name>-L<L>`` and
    #: their weights exact by construction (tests/sampling/test_equiangular.py), not checked again
    _defined_by_name = False

    def __init__(self, L: int, theta_1d: np.ndarray, nphi: int, theta_weights: np.ndarray | None):
        self.L = check_positive_int(L, "bandlimit L")
        self.theta_1d = np.asarray(theta_1d, dtype=np.float64)
        nphi = check_positive_int(nphi, "nphi")
        self.phi_1d = 2 * np.pi * np.arange(nphi) / nphi
        self.ntheta, self.nphi = self.theta_1d.size, nphi
        largest = min(self.ntheta, (nphi + 1) // 2)
        if self.L > largest:
            raise ValueError(f"bandlimit L={self.L} is too large for a {self.ntheta} x {nphi} grid: an exact analysis "
                             f"needs nphi >= 2L-1 and at least L rings; at most L = {largest}")
        if theta_weights is not None:
            theta_weights = np.asarray(theta_weights, dtype=np.float64)
            if theta_weights.shape != self.theta_1d.shape:
                raise ValueError(f"theta_weights: expected one per ring, shape {self.theta_1d.shape}, "
                                 f"got {theta_weights.shape}")
            if not self._defined_by_name:
                _check_theta_weights(self.theta_1d, theta_weights, self.L, f"{self.ntheta} x {nphi} grid")
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
        """``<name>-L<L>-<hash>``: 16 hex digits of the SHA-1 of the colatitudes, nphi and theta weights, so
        that two grids of one L and size have two keys (the functional SHT and the graph cache key on it);
        DH and GL, fully defined by their name and L: ``dh-L<L>``, ``gl-L<L>``."""
        if self._defined_by_name:
            return f"{self.name}-L{self.L}"
        h = hashlib.sha1(self.theta_1d.tobytes())
        h.update(np.int64(self.nphi).tobytes())
        h.update(b"none" if self._theta_weights is None else self._theta_weights.tobytes())
        return f"{self.name}-L{self.L}-{h.hexdigest()[:16]}"


def _check_theta_weights(theta: np.ndarray, w: np.ndarray, L: int, label: str, tol: float = 1e-10) -> None:
    """ValueError unless ``sum_j w_j P_l(cos theta_j) = 2 delta_l0`` to ``tol`` for l <= 2L-2 (Legendre
    recurrence, O(ntheta L); rounding leaves ~2e-15 on the DH and GL rules up to L = 2048)."""
    x = np.cos(theta)
    prev, cur = np.ones_like(x), x
    for l in range(2 * L - 1):
        if l >= 2:
            prev, cur = cur, ((2 * l - 1) * x * cur - (l - 1) * prev) / l
        err = abs((w.sum() - 2.0) if l == 0 else float(w @ cur))
        if not err <= tol:
            raise ValueError(f"theta_weights of the {label} do not integrate P_{l}(cos theta) exactly (error {err:.1e}): "
                             f"an analysis at L={L} needs degrees <= 2L-2 = {2 * L - 2}; "
                             + (f"these weights support L <= {(l + 1) // 2}" if l >= 1 else "they must sum to 2"))


class DriscollHealySampling(EquiangularSampling):
    """Driscoll-Healy grid, 2L x 2L: theta_j = pi j / (2L), phi_k = pi k / L.

    Exact quadrature for bandlimit L; 2x2 pooling maps DH(L) onto DH(L/2).
    """

    name = "dh"
    _defined_by_name = True

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        super().__init__(L, np.pi * np.arange(2 * L) / (2 * L), 2 * L, dh_theta_weights(2 * L))


class GaussLegendreSampling(EquiangularSampling):
    """Gauss-Legendre grid, L x (2L-1): theta at the Gauss-Legendre nodes (increasing)."""

    name = "gl"
    _defined_by_name = True

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
