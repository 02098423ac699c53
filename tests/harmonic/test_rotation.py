"""Rotations of points, coefficients, fragments and maps vs scipy, healpy and point evaluation."""
import math

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y
from scipy.spatial.transform import Rotation

from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.harmonic import (
    clebsch_gordan,
    complex_to_real_matrix,
    compose_rotations,
    euler_to_matrix,
    healpy_alm_to_real,
    invert_rotation,
    matrix_to_euler,
    random_rotations,
    real_to_healpy_alm,
    rotate_coefficients,
    rotate_fragments,
    rotate_map,
    rotate_points,
    synthesis,
)
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling


def real_harmonics(L, theta, phi):
    """(npts, L*L) real Y_lm at (theta, phi), flat index l*l+l+m, via scipy + basis change."""
    cols = []
    for l in range(L):
        yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)])
        cols.append((complex_to_real_matrix(l) @ yc).real)
    return np.concatenate(cols, axis=0).T


def test_random_rotations_uniform_and_seeded():
    a = random_rotations(20000, seed=0)
    assert a.shape == (20000, 3) and a.dtype == torch.float64
    assert torch.equal(a, random_rotations(20000, seed=0))
    assert not torch.equal(a[:10], random_rotations(10, seed=1))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_rotations(5, seed=g), random_rotations(5, seed=0))
    # Haar measure: E[R] = 0 and E[R_ij^2] = 1/3; cos(beta) uniform
    R = euler_to_matrix(a)
    assert R.mean(0).abs().max() < 0.02
    assert ((R**2).mean(0) - 1 / 3).abs().max() < 0.02
    hist = torch.histc(torch.cos(a[:, 1]), bins=10, min=-1, max=1) / 20000
    assert (hist - 0.1).abs().max() < 0.01
    with pytest.raises(ValueError):
        random_rotations(-1)


def test_euler_matrix_round_trip_vs_scipy():
    a = random_rotations(50, seed=2)
    R = euler_to_matrix(a)
    np.testing.assert_allclose(R.numpy(), Rotation.from_euler("ZYZ", a.numpy()).as_matrix(), atol=1e-15)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(R)).numpy(), R.numpy(), atol=1e-14)
    # at and next to the poles (gimbal lock), also from float32 matrices
    for beta in (0.0, 1e-9, 1e-4, math.pi - 1e-4, math.pi):
        R0 = euler_to_matrix([0.3, beta, 1.1])
        np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(R0)).numpy(), R0.numpy(), atol=1e-14)
        R32 = R0.float()
        back = euler_to_matrix(matrix_to_euler(R32.double()))
        assert (back - R32.double()).abs().max() < 1e-6
    with pytest.raises(ValueError):
        matrix_to_euler(torch.eye(3) * 2)
    with pytest.raises(ValueError):
        matrix_to_euler(-torch.eye(3))


def test_compose_and_invert():
    a1, a2 = random_rotations(10, seed=3), random_rotations(10, seed=4)
    R1, R2 = euler_to_matrix(a1), euler_to_matrix(a2)
    assert (euler_to_matrix(compose_rotations(a1, a2)) - R1 @ R2).abs().max() < 1e-14
    assert (euler_to_matrix(invert_rotation(a1)) - R1.transpose(-1, -2)).abs().max() < 1e-14


def test_rotate_points_xyz_and_theta_phi():
    a = random_rotations(1, seed=5)[0]
    x = np.random.default_rng(0).normal(size=(30, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = Rotation.from_euler("ZYZ", a.numpy()).apply(x)
    out = rotate_points(x, a)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, ref, atol=1e-15)
    np.testing.assert_allclose(rotate_points(out, a, inverse=True), x, atol=1e-15)
    by_matrix = rotate_points(torch.as_tensor(x), matrix=euler_to_matrix(a))
    np.testing.assert_allclose(by_matrix.numpy(), ref, atol=1e-15)
    theta, phi = np.arccos(x[:, 2]), np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
    t2, p2 = rotate_points((theta, phi), a)
    np.testing.assert_allclose(np.cos(t2), ref[:, 2], atol=1e-14)
    np.testing.assert_allclose(np.sin(t2) * np.cos(p2), ref[:, 0], atol=1e-14)


@pytest.mark.parametrize("L", [4, 9])
def test_rotate_coefficients_equals_point_evaluation(L):
    """Coefficients of R f evaluated at w == f evaluated at R^-1 w (random rotations)."""
    rng = np.random.default_rng(L)
    theta, phi = rng.uniform(0, np.pi, 200), rng.uniform(0, 2 * np.pi, 200)
    Y = real_harmonics(L, theta, phi)
    coeffs = torch.as_tensor(rng.normal(size=(2, L * L, 3)))
    for a in random_rotations(3, seed=L):
        t2, p2 = rotate_points((theta, phi), a, inverse=True)
        direct = np.einsum("pk,bkc->bpc", real_harmonics(L, t2, p2), coeffs.numpy())
        rotated = np.einsum("pk,bkc->bpc", Y, rotate_coefficients(coeffs, a).numpy())
        np.testing.assert_allclose(rotated, direct, atol=1e-12)


def test_rotate_coefficients_per_batch_matrix_and_composition():
    L = 6
    c = torch.randn(3, L * L, 2, dtype=torch.float64)
    a = random_rotations(3, seed=6)
    out = rotate_coefficients(c, a)
    for i in range(3):
        assert torch.allclose(out[i : i + 1], rotate_coefficients(c[i : i + 1], a[i]), atol=1e-14)
    assert torch.allclose(rotate_coefficients(c, matrix=euler_to_matrix(a)), out, atol=1e-13)
    twice = rotate_coefficients(rotate_coefficients(c, a[1]), a[0])
    assert torch.allclose(twice, rotate_coefficients(c, compose_rotations(a[0], a[1])), atol=1e-13)
    assert torch.allclose(rotate_coefficients(out, invert_rotation(a)), c, atol=1e-13)
    # float32 runs on float32 tables; agreement ~1e-6 (documented)
    o32 = rotate_coefficients(c.float(), a)
    assert o32.dtype == torch.float32 and (o32.double() - out).abs().max() < 1e-5


def test_rotate_coefficients_bad_input():
    c = torch.randn(1, 16, 1, dtype=torch.float64)
    a = random_rotations(1, seed=0)[0]
    with pytest.raises(ValueError, match="L\\*L"):
        rotate_coefficients(c, a, L=3)
    with pytest.raises(ValueError):
        rotate_coefficients(torch.randn(1, 15, 1), a)
    with pytest.raises(ValueError):
        rotate_coefficients(c, random_rotations(2, seed=0))  # 2 rotations for a batch of 1
    with pytest.raises(ValueError):
        rotate_coefficients(c)  # neither angles nor matrix
    with pytest.raises(ValueError):
        rotate_coefficients(c, [0.0, float("nan"), 0.0])
    # a numpy view with a negative stride (healpy's angle order reversed, a[::-1]) is taken like its copy
    flipped = np.array([0.3, 1.1, 2.0])[::-1]
    assert torch.equal(rotate_coefficients(c, flipped), rotate_coefficients(c, flipped.copy()))
    R = euler_to_matrix(torch.tensor([0.3, 1.1, 2.0], dtype=torch.float64)).numpy()
    reversed_stack = np.stack([R, R.T])[::-1][:1]  # R.T alone, through a view with a negative stride
    assert torch.allclose(rotate_coefficients(c, matrix=reversed_stack), rotate_coefficients(c, matrix=R.T[None].copy()))


@pytest.mark.parametrize("L", [8, 16])
def test_agrees_with_healpy_rotate_alm(L):
    rng = np.random.default_rng(L)
    r = rng.normal(size=L * L)
    alm = real_to_healpy_alm(r, L)
    ct = torch.as_tensor(r).reshape(1, L * L, 1)
    for a in random_rotations(3, seed=L):
        alpha, beta, gamma = a.tolist()
        ours = rotate_coefficients(ct, a)[0, :, 0].numpy()
        by_matrix = alm.copy()
        hp.rotate_alm(by_matrix, matrix=euler_to_matrix(a).numpy())
        np.testing.assert_allclose(healpy_alm_to_real(by_matrix, L), ours, atol=1e-10)
        by_angles = alm.copy()
        hp.rotate_alm(by_angles, gamma, beta, alpha)  # healpy's (psi, theta, phi)
        np.testing.assert_allclose(healpy_alm_to_real(by_angles, L), ours, atol=1e-10)
        rot = hp.Rotator(rot=(-gamma, beta, -alpha), eulertype="Y", deg=False)
        np.testing.assert_allclose(healpy_alm_to_real(rot.rotate_alm(alm), L), ours, atol=1e-10)


def test_rotate_fragments():
    L, batch, ch = 5, 2, 3
    frags = [torch.randn(batch, ch, 2 * l + 1, l + 1, dtype=torch.float64) for l in range(L)]
    a = random_rotations(batch, seed=9)
    out = rotate_fragments(frags, a)
    for l, (f, o) in enumerate(zip(frags, out)):
        # each tau column is a coefficient vector of degree l: compare with rotate_coefficients
        for t in range(l + 1):
            c = torch.zeros(batch, L * L, ch, dtype=torch.float64)
            c[:, l * l : (l + 1) ** 2, :] = f[..., t].transpose(1, 2)
            ref = rotate_coefficients(c, a)[:, l * l : (l + 1) ** 2, :].transpose(1, 2)
            assert torch.allclose(o[..., t], ref, atol=1e-14)
    single = rotate_fragments(frags, a[0])
    assert torch.allclose(single[3][0], out[3][0], atol=1e-14)
    with pytest.raises(ValueError, match="fragment 1"):
        rotate_fragments([frags[0], frags[2]], a)
    with pytest.raises(ValueError):
        rotate_fragments([], a)


def test_cg_product_is_equivariant_under_rotate_fragments():
    """A CG tensor product of fragments commutes with rotation (equivariance.py's measure)."""
    C = clebsch_gordan(2, 3, 4)

    def op(fr):  # degree-2 x degree-3 -> degree 4, output as a list padded to l = 4
        y = torch.einsum("ijk,bci,bcj->bck", C, fr[2][..., 0], fr[3][..., 0])[..., None]
        return [torch.zeros(y.shape[0], y.shape[1], 2 * l + 1, 1, dtype=y.dtype) for l in range(4)] + [y]

    x = [torch.randn(2, 2, 2 * l + 1, 1, dtype=torch.float64) for l in range(4)]
    res = assert_equivariant(op, x, list(random_rotations(3, seed=10)), rotate_fragments)
    assert res.max < 1e-13


def test_rotate_map_gauss_legendre_exact():
    """On a GL grid, rotating a band-limited map == evaluating it at R^-1 w."""
    L = 8
    s = GaussLegendreSampling(L)
    c = torch.randn(2, L * L, 2, dtype=torch.float64)
    maps = synthesis(c, s, L)
    a = random_rotations(1, seed=11)[0]
    out = rotate_map(maps, s, a, L)
    t2, p2 = rotate_points((s.theta, s.phi), a, inverse=True)
    direct = np.einsum("pk,bkc->bpc", real_harmonics(L, t2, p2), c.numpy())
    np.testing.assert_allclose(out.numpy(), direct, atol=1e-12)
    assert torch.allclose(rotate_map(maps, s, a), out)  # L defaults to the sampling's


def test_rotate_map_checks_values_once():
    """The input map is checked (NaN -> ValueError); the coefficients rotate_map computes are not
    re-checked before the synthesis: two host syncs (map values, angles), not three."""
    from tests._syncs import count_syncs

    L = 6
    s = GaussLegendreSampling(L)
    maps = synthesis(torch.randn(1, L * L, 1, dtype=torch.float64), s, L)
    a = random_rotations(1, seed=3)[0]
    rotate_map(maps, s, a, L)  # tables cached
    with count_syncs() as n:
        rotate_map(maps, s, a, L)
    assert n["check_finite"] == 1 and n["host"] == 2
    maps[0, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rotate_map(maps, s, a, L)


def test_rotate_map_healpix_approximate():
    """HEALPix analysis is approximate: documented error ~1e-3 (0 iterations), <1e-6 (3)."""
    nside, L = 8, 9
    s = HealpixSampling(nside)
    c = torch.randn(1, L * L, 1, dtype=torch.float64)
    a = random_rotations(1, seed=12)[0]
    exact = synthesis(rotate_coefficients(c, a), s, L)
    maps = synthesis(c, s, L)
    errs = [float((rotate_map(maps, s, a, L, iterations=it) - exact).norm() / exact.norm()) for it in (0, 3)]
    assert errs[0] < 1e-2 and errs[1] < 1e-5 and errs[1] < errs[0]
    with pytest.raises(ValueError):
        rotate_map(maps, s, a)  # HEALPix has no intrinsic bandlimit: L is required


def test_gradients_wrt_coefficients_and_angles():
    c = torch.randn(1, 9, 2, dtype=torch.float64, requires_grad=True)
    a = random_rotations(1, seed=13)[0].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: rotate_coefficients(x, y), (c, a))
