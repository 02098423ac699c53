"""Euler-angle grids on SO(3): coordinates, sizes and quadrature exactness."""
import math

import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import wigner_D_real
from deepsphere_gen.sampling import (
    GaussLegendreSO3Sampling,
    McEwenSO3Sampling,
    SOFTSampling,
    so3_sampling,
    soft_beta_weights,
)


@pytest.mark.parametrize("L", [1, 2, 7, 16])
def test_soft_weights_integrate_cosines_exactly(L):
    # int_0^pi cos(n b) sin(b) db = (1 + (-1)^n) / (1 - n^2), 0 for n = 1
    w = soft_beta_weights(L)
    beta = np.pi * (2 * np.arange(2 * L) + 1) / (4 * L)
    for n in range(2 * L):
        exact = 0.0 if n == 1 else (1 + (-1) ** n) / (1 - n * n)
        assert abs(np.sum(w * np.cos(n * beta)) - exact) < 1e-13


def test_shapes_and_layout():
    L = 5
    assert SOFTSampling(L).shape == (10, 10, 10)
    assert GaussLegendreSO3Sampling(L).shape == (5, 9, 9)
    mw = McEwenSO3Sampling(L)
    assert mw.shape == (5, 9, 9) and mw.npoints == 405 and mw.weights is None
    assert math.isclose(mw.beta_1d[-1], math.pi) and math.isclose(mw.beta_1d[0], math.pi / 9)
    s = SOFTSampling(3)
    a = s.angles.reshape(*s.shape, 3)  # beta-major, then alpha, then gamma
    assert np.allclose(a[:, 0, 0, 1], s.beta_1d) and np.allclose(a[0, :, 0, 0], s.alpha_1d)
    assert np.allclose(a[0, 0, :, 2], s.gamma_1d) and np.allclose(s.alpha_1d, np.pi * np.arange(6) / 3)
    assert isinstance(so3_sampling("mw", 4), McEwenSO3Sampling)
    assert all(McEwenSO3Sampling(n).beta_1d[-1] == math.pi for n in (7, 24))  # not rounded above pi


@pytest.mark.parametrize("make", [SOFTSampling, GaussLegendreSO3Sampling])
def test_weights_orthogonality_of_wigner_D(make):
    # int D^l_mn D^l'_m'n' dR = 8 pi^2 / (2l+1) delta (real basis too); total volume 8 pi^2
    L = 4
    s = make(L)
    w = torch.as_tensor(s.weights)
    assert math.isclose(float(w.sum()), 8 * math.pi**2, rel_tol=1e-13)
    D = torch.cat([wigner_D_real(l, torch.as_tensor(s.angles)).reshape(s.npoints, -1) for l in range(L)], dim=1)
    gram = D.T @ (w[:, None] * D)
    norm = torch.cat([torch.full(((2 * l + 1) ** 2,), 8 * math.pi**2 / (2 * l + 1), dtype=torch.float64) for l in range(L)])
    assert torch.allclose(gram, torch.diag(norm), atol=1e-12)


def test_bad_inputs():
    for bad in (0, -2, 2.5, True, "4"):
        with pytest.raises(ValueError, match="bandlimit"):
            SOFTSampling(bad)
    with pytest.raises(ValueError, match="unknown SO\\(3\\) sampling"):
        so3_sampling("healpix", 4)
