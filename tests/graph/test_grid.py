import numpy as np
import pytest

from deepsphere_gen.graph import equiangular_4neighbour_graph
from deepsphere_gen.sampling import DriscollHealySampling, GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling


def reference_grid(theta_1d, nphi):
    """Dense 4-neighbour graph built pixel by pixel from (theta, phi) on the grid."""
    nt = len(theta_1d)
    phi = 2 * np.pi * np.arange(nphi) / nphi

    def vec(t, p):
        return np.array([np.sin(theta_1d[t]) * np.cos(phi[p]), np.sin(theta_1d[t]) * np.sin(phi[p]),
                         np.cos(theta_1d[t])])

    n = nt * nphi
    W = np.zeros((n, n))
    for t in range(nt):
        for p in range(nphi):
            for t2, p2 in ((t, (p + 1) % nphi), (t, (p - 1) % nphi), (t + 1, p), (t - 1, p)):
                if 0 <= t2 < nt:
                    d = np.linalg.norm(vec(t, p) - vec(t2, p2))
                    if d > 1e-12:
                        W[t * nphi + p, t2 * nphi + p2] = 1 / d
    return W


@pytest.mark.parametrize("cls", [GaussLegendreSampling, DriscollHealySampling])
def test_matches_reference(cls):
    s = cls(6)
    W = equiangular_4neighbour_graph(s)
    np.testing.assert_allclose(W.toarray(), reference_grid(s.theta_1d, s.nphi), rtol=1e-12)
    assert abs(W - W.T).max() == 0 and np.all(W.diagonal() == 0)


def test_degrees_and_weights_gl():
    s = GaussLegendreSampling(8)
    W = equiangular_4neighbour_graph(s)
    deg = np.diff(W.indptr).reshape(s.ntheta, s.nphi)
    assert np.all(deg[1:-1] == 4) and np.all(deg[[0, -1]] == 3)
    # phi periodic: first and last sample of a ring are linked with w = 1 / (2 sin(theta) sin(pi / nphi))
    t = 3
    w = W[t * s.nphi, t * s.nphi + s.nphi - 1]
    assert w == pytest.approx(1 / (2 * np.sin(s.theta_1d[t]) * np.sin(np.pi / s.nphi)), rel=1e-12)


def test_dh_pole_ring_not_linked_to_itself():
    s = DriscollHealySampling(4)
    W = equiangular_4neighbour_graph(s)
    assert W[:8][:, :8].nnz == 0  # 8 copies of the north pole
    assert np.all(np.diff(W.indptr)[:8] == 1)  # each linked to the next ring only
    assert np.isfinite(W.data).all()


def test_mw_south_pole():
    L = 6
    s = McEwenWiauxSampling(L)
    W = equiangular_4neighbour_graph(s)
    pole = s.npix - 1
    assert W[pole].nnz == s.nphi
    np.testing.assert_allclose(W[pole].data, 1 / (2 * np.sin((np.pi - s.theta_1d[-2]) / 2)), rtol=1e-12)
    ref = reference_grid(s.theta_1d[:-1], s.nphi)
    np.testing.assert_allclose(W[:pole][:, :pole].toarray(), ref, rtol=1e-12)


def test_rejects_healpix():
    with pytest.raises(ValueError, match="equiangular"):
        equiangular_4neighbour_graph(HealpixSampling(2))
