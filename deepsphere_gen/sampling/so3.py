"""Euler-angle grids on the rotation group SO(3) for bandlimit L (degrees l < L).

Each grid is a tensor product beta (nbeta,) x alpha (nalpha,) x gamma (ngamma,) of ZYZ
Euler angles (R = Rz(alpha) Ry(beta) Rz(gamma), docs/conventions.md), with alpha and gamma
equispaced from 0.  Samples are stored beta-major, then alpha, then gamma, so a signal
(batch, npoints, channels) reshapes to (batch, nbeta, nalpha, ngamma, channels).

* :class:`SOFTSampling` (Kostelec & Rockmore 2008, the Driscoll-Healy-type grid used by
  Cohen et al. 2018): 2L x 2L x 2L, beta_t = pi (2t+1) / (4L), closed-form weights.
* :class:`GaussLegendreSO3Sampling`: beta at the L Gauss-Legendre nodes, 2L-1 alphas
  and gammas.
* :class:`McEwenSO3Sampling` (McEwen, Buttner, Leistedt, Peiris & Wiaux 2015, "MW-SO(3)"):
  beta_t = pi (2t+1) / (2L-1), t = 0..L-1 (the last at beta = pi), 2L-1 alphas and
  gammas: (2L-1)^2 L samples, about a quarter of SOFT's (as many as Gauss-Legendre, but
  equiangular in beta).  No direct quadrature: its exact
  transform extends the beta samples to the torus (see ``harmonic._so3_transform``).

Quadrature weights (where the grid has them) integrate over SO(3) with the Haar measure
sin(beta) d alpha d beta d gamma (total volume 8 pi^2) exactly for products of two
Wigner-D functions of degree < L.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int
from .equiangular import gauss_legendre_theta

__all__ = [
    "SO3Sampling",
    "SOFTSampling",
    "GaussLegendreSO3Sampling",
    "McEwenSO3Sampling",
    "soft_beta_weights",
    "so3_sampling",
]


def soft_beta_weights(L: int) -> np.ndarray:
    """(2L,) weights w_t on beta_t = pi (2t+1) / (4L) with sum_t w_t g(beta_t) = int_0^pi g sin(beta) d beta.

    Exact for g in span{cos(k beta), k < 2L} (every product of two Wigner d^l_mn, l < L,
    of the same (m, n)).  Closed form (Kostelec & Rockmore 2008):
    w_t = (4 / (2L)) sin(beta_t) sum_{k<L} sin((2k+1) beta_t) / (2k+1).
    """
    L = check_positive_int(L, "bandlimit L")
    beta = np.pi * (2 * np.arange(2 * L) + 1) / (4 * L)
    k = np.arange(L)[:, None]
    s = np.sum(np.sin((2 * k + 1) * beta[None, :]) / (2 * k + 1), axis=0)
    return 2.0 / L * np.sin(beta) * s


class SO3Sampling:
    """Tensor-product Euler-angle grid on SO(3) for bandlimit L.

    Attributes: ``L``; ``alpha_1d`` (nalpha,), ``beta_1d`` (nbeta,), ``gamma_1d``
    (ngamma,) in radians; ``alpha``, ``beta``, ``gamma`` (npoints,) flattened
    beta-major; ``beta_weights`` (nbeta,) for int_0^pi g sin(beta) d beta, or None.
    """

    name = "so3"

    def __init__(self, L: int, beta_1d: np.ndarray, nalpha: int, ngamma: int, beta_weights: np.ndarray | None):
        self.L = check_positive_int(L, "bandlimit L")
        self.beta_1d = np.asarray(beta_1d, dtype=np.float64)
        self.alpha_1d = 2 * np.pi * np.arange(nalpha) / nalpha
        self.gamma_1d = 2 * np.pi * np.arange(ngamma) / ngamma
        self.beta_weights = None if beta_weights is None else np.asarray(beta_weights, dtype=np.float64)
        b, a, g = np.meshgrid(self.beta_1d, self.alpha_1d, self.gamma_1d, indexing="ij")
        self.alpha, self.beta, self.gamma = a.ravel(), b.ravel(), g.ravel()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nbeta, nalpha, ngamma)."""
        return (self.beta_1d.size, self.alpha_1d.size, self.gamma_1d.size)

    @property
    def npoints(self) -> int:
        return int(self.alpha.size)

    @property
    def angles(self) -> np.ndarray:
        """(npoints, 3) float64 ZYZ Euler angles (alpha, beta, gamma)."""
        return np.stack([self.alpha, self.beta, self.gamma], axis=-1)

    @property
    def weights(self) -> np.ndarray | None:
        """(npoints,) Haar quadrature weights (sum 8 pi^2), or None."""
        if self.beta_weights is None:
            return None
        da = 2 * np.pi / self.alpha_1d.size
        dg = 2 * np.pi / self.gamma_1d.size
        return np.repeat(self.beta_weights * da * dg, self.alpha_1d.size * self.gamma_1d.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(L={self.L}, shape={self.shape}, npoints={self.npoints})"


class SOFTSampling(SO3Sampling):
    """Kostelec-Rockmore (SOFT) grid: 2L x 2L x 2L, beta_t = pi (2t+1) / (4L), alpha, gamma = pi k / L."""

    name = "soft"

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        super().__init__(L, np.pi * (2 * np.arange(2 * L) + 1) / (4 * L), 2 * L, 2 * L, soft_beta_weights(L))


class GaussLegendreSO3Sampling(SO3Sampling):
    """beta at the L Gauss-Legendre nodes (increasing), 2L-1 alphas and gammas."""

    name = "gl-so3"

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        theta, weights = gauss_legendre_theta(L)
        super().__init__(L, theta, 2 * L - 1, 2 * L - 1, weights)


class McEwenSO3Sampling(SO3Sampling):
    """MW-SO(3) grid (McEwen et al. 2015): beta_t = pi (2t+1) / (2L-1), t < L; 2L-1 alphas and gammas.

    Has no quadrature weights (``weights`` is None): the exact transform mixes the beta
    rings with the McEwen-Wiaux torus quadrature.
    """

    name = "mw-so3"

    def __init__(self, L: int):
        L = check_positive_int(L, "bandlimit L")
        beta = np.pi * (2 * np.arange(L) + 1) / (2 * L - 1)
        beta[-1] = np.pi  # exactly (the formula rounds above pi for some L, e.g. 7, 24)
        super().__init__(L, beta, 2 * L - 1, 2 * L - 1, None)


_KINDS = {"soft": SOFTSampling, "dh": SOFTSampling, "gl": GaussLegendreSO3Sampling, "mw": McEwenSO3Sampling}


def so3_sampling(kind: str, L: int) -> SO3Sampling:
    """Build a grid by name: "mw" (MW-SO(3)), "gl" (Gauss-Legendre) or "soft" / "dh"."""
    if kind not in _KINDS:
        raise ValueError(f"unknown SO(3) sampling {kind!r}; choose one of {sorted(_KINDS)}")
    return _KINDS[kind](L)
