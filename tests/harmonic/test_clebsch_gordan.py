"""Real-basis Clebsch-Gordan tensors vs sympy, e3nn and the intertwining property."""
import numpy as np
import pytest
import torch
from sympy import S
from sympy.physics.quantum.cg import CG

from deepsphere_gen.harmonic import (
    cg_triples,
    clebsch_gordan,
    clebsch_gordan_block,
    complex_to_real_matrix,
    random_rotations,
    wigner_D_real,
)


def sympy_cg(l1, l2, l, m1, m2):
    M = m1 + m2
    if abs(M) > l:
        return 0.0
    return float(CG(S(l1), S(m1), S(l2), S(m2), S(l), S(M)).doit().evalf(30))


def sympy_real_cg(l1, l2, l):
    """Complex sympy CG turned into our real basis by the change of basis U."""
    c = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= l:
                c[m1 + l1, m2 + l2, m1 + m2 + l] = sympy_cg(l1, l2, l, m1, m2)
    u1, u2, u = complex_to_real_matrix(l1), complex_to_real_matrix(l2), complex_to_real_matrix(l)
    real = np.einsum("ia,jb,kc,abc->ijk", u1, u2, u.conj(), c)
    return real


SMALL = [t for t in cg_triples(4)]


@pytest.mark.parametrize("l1,l2,l", SMALL)
def test_matches_sympy_small_exhaustive(l1, l2, l):
    real = sympy_real_cg(l1, l2, l)
    # the phase is 1 (l1+l2+l even) or -i (odd): the other part vanishes exactly
    if (l1 + l2 + l) % 2 == 0:
        assert np.abs(real.imag).max() < 1e-15
        expected = real.real
    else:
        assert np.abs(real.real).max() < 1e-15
        expected = real.imag
    ours = clebsch_gordan(l1, l2, l).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-14)


LARGE = [(63, 63, 0), (63, 63, 1), (63, 63, 63), (63, 60, 120), (40, 63, 30), (17, 29, 25)]


@pytest.mark.parametrize("l1,l2,l", LARGE)
def test_complex_entries_match_sympy_large(l1, l2, l):
    """Random entries at L = 64 against sympy's exact values (no factorial overflow)."""
    from deepsphere_gen.harmonic._cg_complex import complex_cg

    c = complex_cg(l1, l2, l)
    rng = np.random.default_rng(l1 * 10000 + l2 * 100 + l)
    checked = 0
    while checked < 6:
        m1 = int(rng.integers(-l1, l1 + 1))
        m2 = int(rng.integers(-l2, l2 + 1))
        if abs(m1 + m2) > l:
            continue
        assert abs(c[m1 + l1, m2 + l2, m1 + m2 + l] - sympy_cg(l1, l2, l, m1, m2)) < 1e-14
        checked += 1


@pytest.mark.parametrize("l1,l2,l", [(1, 1, 1), (2, 3, 4), (5, 5, 3), (3, 4, 6), (20, 30, 17), (63, 40, 30)])
def test_intertwines_random_rotations(l1, l2, l):
    """out(D^l1 u, D^l2 v) = D^l out(u, v) for random (not grid-aligned) rotations."""
    C = clebsch_gordan(l1, l2, l)
    angles = random_rotations(3, seed=7)
    D1, D2, D = wigner_D_real(l1, angles), wigner_D_real(l2, angles), wigner_D_real(l, angles)
    lhs = torch.einsum("bia,bjc,ijk->back", D1, D2, C)
    rhs = torch.einsum("acm,bkm->back", C, D)
    assert (lhs - rhs).abs().max() < 1e-13


@pytest.mark.parametrize("l1,l2,l", [(0, 0, 0), (2, 2, 1), (7, 3, 5), (63, 63, 63), (63, 62, 2)])
def test_orthonormal(l1, l2, l):
    C = clebsch_gordan(l1, l2, l)
    G = torch.einsum("ijm,ijn->mn", C, C)
    assert (G - torch.eye(2 * l + 1, dtype=torch.float64)).abs().max() < 1e-13


def test_completeness_over_l():
    """sum_l C C^T over all admissible l is the identity on the product space."""
    l1, l2 = 3, 5
    B = clebsch_gordan_block(l1, l2, None).reshape((2 * l1 + 1) * (2 * l2 + 1), -1)
    assert B.shape[0] == B.shape[1]
    assert (B @ B.T - torch.eye(B.shape[0], dtype=torch.float64)).abs().max() < 1e-13


def test_l1_cross_product():
    """C[1,1->1] in the (y, z, x) basis is the cross product / sqrt2."""
    C = clebsch_gordan(1, 1, 1)
    u, v = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    perm = [2, 0, 1]  # (y, z, x) -> (x, y, z)
    out = torch.einsum("ijk,i,j->k", C, u, v)[perm]
    cross = torch.linalg.cross(u[perm], v[perm])
    assert torch.allclose(out * 2**0.5, cross, atol=1e-15) or torch.allclose(-out * 2**0.5, cross, atol=1e-15)


@pytest.mark.parametrize("l1,l2,l", [(1, 1, 2), (2, 1, 2), (2, 2, 2), (3, 2, 4), (4, 4, 3)])
def test_matches_e3nn_up_to_basis_and_sign(l1, l2, l):
    """e3nn's wigner_3j lives in e3nn's real basis; map it to ours with the orthogonal
    Q_l fitted between e3nn's and our D^l (same rotation matrices), then compare up to
    one global sign (e3nn normalises ||3j|| = 1, we normalise each output column)."""
    e3nn_o3 = pytest.importorskip("e3nn.o3")
    torch.manual_seed(0)

    def q(ll):  # orthogonal Q with ours(R) = Q e3nn(R) Q^T, from the harmonics
        pts = torch.randn(64, 3, dtype=torch.float64)
        pts = pts / pts.norm(dim=1, keepdim=True)
        ye = e3nn_o3.spherical_harmonics(ll, pts, normalize=True, normalization="integral")  # (n, 2l+1)
        yo = _our_harmonics(ll, pts)
        sol = torch.linalg.lstsq(ye, yo).solution  # yo = ye @ sol
        assert (ye @ sol - yo).abs().max() < 1e-10
        Q = sol.T
        assert (Q @ Q.T - torch.eye(2 * ll + 1, dtype=torch.float64)).abs().max() < 1e-10
        return Q

    Q1, Q2, Q = q(l1), q(l2), q(l)
    w = e3nn_o3.wigner_3j(l1, l2, l, dtype=torch.float64)
    w = torch.einsum("ia,jb,kc,abc->ijk", Q1, Q2, Q, w)
    C = clebsch_gordan(l1, l2, l)
    C = C / C.norm()
    assert min((w - C).abs().max(), (w + C).abs().max()) < 1e-10


def _our_harmonics(l, xyz):
    """Our real Y_lm at unit vectors (n, 3), via scipy and the change of basis."""
    from scipy.special import sph_harm_y

    x = xyz.numpy()
    theta = np.arccos(np.clip(x[:, 2], -1, 1))
    phi = np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
    yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)])
    return torch.as_tensor((complex_to_real_matrix(l) @ yc).real.T)


def test_block_and_triples():
    assert cg_triples(2) == [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert len(cg_triples(3, max_l=1)) == 3
    B = clebsch_gordan_block(2, 3, [1, 4])
    assert B.shape == (5, 7, 3 + 9)
    assert torch.equal(B[..., 3:], clebsch_gordan(2, 3, 4))


def test_dtype_device_and_cache_isolation():
    C32 = clebsch_gordan(2, 2, 2, dtype=torch.float32, device="cpu")
    assert C32.dtype == torch.float32 and C32.device.type == "cpu"
    C32.zero_()  # the returned tensor is a copy: the cache is untouched
    assert clebsch_gordan(2, 2, 2).abs().sum() > 0


@pytest.mark.parametrize("args", [(1, 1, 3), (2, 5, 2), (-1, 1, 1), (1.5, 1, 1), (True, 1, 1)])
def test_bad_input(args):
    with pytest.raises(ValueError):
        clebsch_gordan(*args)
