import ducc0
import numpy as np
import pytest
from scipy.special import sph_harm_y

from deepsphere_gen.sampling import (
    DriscollHealySampling,
    EquiangularSampling,
    GaussLegendreSampling,
    McEwenWiauxSampling,
    dh_theta_weights,
)


def _ylm(l, m, s):
    return sph_harm_y(l, m, s.theta, s.phi)


@pytest.mark.parametrize("cls", [DriscollHealySampling, GaussLegendreSampling])
@pytest.mark.parametrize("L", [3, 8])
def test_quadrature_is_exact_for_bandlimit(cls, L):
    """sum_i w_i Y_lm conj(Y_l'm') = delta for all l, l' < L (orthonormality by quadrature)."""
    s = cls(L)
    w = s.weights
    Y = np.stack([_ylm(l, m, s) for l in range(L) for m in range(-l, l + 1)])
    gram = (Y * w) @ Y.conj().T
    np.testing.assert_allclose(gram, np.eye(L * L), atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3, 8, 17])
def test_mcewen_wiaux_area_weights_integrate_band_limited_maps(L):
    """sum_i w_i Y_lm = sqrt(4 pi) delta_l0 for every l < L (scipy's harmonics): positive area weights,
    sum 4 pi, exact for any map band-limited below L (not for products: the MW analysis does not use them)."""
    s = McEwenWiauxSampling(L)
    w = s.weights
    assert w.shape == (s.npix,) and np.all(w > 0)
    assert w.sum() == pytest.approx(4 * np.pi, rel=1e-14)
    integrals = np.array([_ylm(l, m, s) @ w for l in range(L) for m in range(-l, l + 1)])
    np.testing.assert_allclose(integrals, np.sqrt(4 * np.pi) * (np.arange(L * L) == 0), atol=1e-13)


def test_gauss_legendre_weights_exact_at_large_bandlimit():
    # int_{-1}^{1} P_l(x)^2 dx = 2 / (2l + 1) by the L-node rule for l < L, to rounding even at
    # L = 2048 (numpy's leggauss weights were off by 1e-10 there)
    from scipy.special import eval_legendre

    L = 2048
    s = GaussLegendreSampling(L)
    x = np.cos(s.theta_1d)
    w = s.rings().weights * s.nphi / (2 * np.pi)
    assert np.all(np.diff(s.theta_1d) > 0)
    for l in (7, L // 2, L - 1):
        assert abs((w * eval_legendre(l, x) ** 2).sum() * (2 * l + 1) / 2 - 1) < 1e-13


def test_grid_sizes():
    L = 10
    assert DriscollHealySampling(L).shape == (2 * L, 2 * L)
    assert GaussLegendreSampling(L).shape == (L, 2 * L - 1)
    mw = McEwenWiauxSampling(L)
    assert mw.npix == (L - 1) * (2 * L - 1) + 1
    assert mw.theta[-1] == pytest.approx(np.pi)
    r = mw.rings()
    assert r.nphi.sum() == mw.npix and r.nphi[-1] == 1


def test_dh_weights_integrate_polynomials_in_cos_theta():
    n = 16
    w = dh_theta_weights(n)
    th = np.pi * np.arange(n) / n
    for k in range(n):
        exact = (1 + (-1) ** k) / (k + 1)
        assert (w * np.cos(th) ** k).sum() == pytest.approx(exact, abs=1e-13)


def test_dh_pooling_grid_is_nested():
    fine, coarse = DriscollHealySampling(8), DriscollHealySampling(4)
    np.testing.assert_allclose(fine.theta_1d[::2], coarse.theta_1d)
    np.testing.assert_allclose(fine.phi_1d[::2], coarse.phi_1d)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_bandlimit(bad):
    with pytest.raises(ValueError, match="bandlimit"):
        GaussLegendreSampling(bad)


@pytest.mark.parametrize("L", [7, 24, 42, 50])
def test_mw_last_ring_is_exactly_the_south_pole(L):
    s = McEwenWiauxSampling(L)
    assert s.theta_1d[-1] == np.pi and s.theta.max() == np.pi


def _fejer1(n: int, nphi: int, L: int) -> EquiangularSampling:
    """A cell-centred lat-lon grid with ducc0's Fejer-I weights (exact to degree n-1 in cos theta)."""
    return EquiangularSampling(L, np.pi * (np.arange(n) + 0.5) / n, nphi,
                               ducc0.sht.experimental.get_gridweights("F1", n) / (2 * np.pi))


def test_grids_of_one_bandlimit_and_size_have_their_own_keys():
    """The key covers the rings, nphi and weights (the functional SHT and the graph cache key on it); the named
    grids keep their name-and-L keys (graph cache entries of DH / GL stay valid)."""
    cell, quarter = np.pi * (np.arange(16) + 0.5) / 16, np.pi * (np.arange(16) + 0.25) / 16
    keys = {EquiangularSampling(8, cell, 32, None).cache_key(), EquiangularSampling(8, quarter, 32, None).cache_key(),
            EquiangularSampling(8, cell, 30, None).cache_key(), _fejer1(16, 32, 8).cache_key()}
    assert len(keys) == 4 and all(k.startswith("equiangular-L8-") for k in keys)
    assert EquiangularSampling(8, cell.copy(), 32, None).cache_key() == EquiangularSampling(8, cell, 32, None).cache_key()
    assert (DriscollHealySampling(8).cache_key(), GaussLegendreSampling(8).cache_key()) == ("dh-L8", "gl-L8")


def test_bandlimit_beyond_the_grid_or_its_weights_is_refused():
    """No exact analysis at L with nphi < 2L-1 or fewer than L rings, nor with weights that miss a Legendre integral
    of degree <= 2L-2: refused, naming the largest L; Fejer-I on n rings (exact to degree n-1) serves L <= n/2."""
    cell = np.pi * (np.arange(64) + 0.5) / 64
    with pytest.raises(ValueError, match=r"L=100 is too large for a 64 x 128 grid.*at most L = 64"):
        EquiangularSampling(100, cell, 128, None)
    with pytest.raises(ValueError, match=r"L=33 is too large for a 64 x 64 grid.*at most L = 32"):
        EquiangularSampling(33, cell, 64, None)
    assert _fejer1(64, 128, 32).max_bandlimit == 32
    for L in (33, 48, 64):
        with pytest.raises(ValueError, match=r"64 x 128 grid do not integrate P_64\(cos theta\).*support L <= 32"):
            _fejer1(64, 128, L)
    with pytest.raises(ValueError, match="must sum to 2"):
        EquiangularSampling(4, cell, 128, np.full(64, 1 / 64))
    with pytest.raises(ValueError, match="one per ring"):
        EquiangularSampling(4, cell, 128, np.full(63, 2 / 63))
