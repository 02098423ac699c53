"""Wigner small-d and real-basis Wigner-D vs sympy, e3nn, scipy and group laws."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.special import sph_harm_y
from scipy.spatial.transform import Rotation

from deepsphere_gen.harmonic import (
    complex_to_real_matrix,
    compose_rotations,
    euler_to_matrix,
    invert_rotation,
    random_rotations,
    wigner_d,
    wigner_D_blocks,
    wigner_D_real,
)


def jy(l):
    m = np.arange(-l, l + 1)
    jp = np.diag(np.sqrt(l * (l + 1.0) - m[:-1] * (m[:-1] + 1.0)), -1)  # <m+1|J+|m>
    return (jp - jp.T) / 2j


def test_complex_to_real_matches_definition():
    """U Y_complex = sqrt2 (-1)^m Re/Im Y_l^|m| (healpy/Wikipedia real harmonics)."""
    rng = np.random.default_rng(0)
    theta, phi = rng.uniform(0, np.pi, 40), rng.uniform(0, 2 * np.pi, 40)
    for l in range(6):
        yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)])
        rows = []
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            rows.append(y.real if m == 0 else math.sqrt(2) * (-1) ** m * (y.real if m > 0 else y.imag))
        U = complex_to_real_matrix(l)
        np.testing.assert_allclose(U @ yc, np.stack(rows), atol=1e-14)
        np.testing.assert_allclose(U @ U.conj().T, np.eye(2 * l + 1), atol=1e-15)
    # no Condon-Shortley sign left in the real basis: Y_{m,m}(theta, 0) > 0
    yc = np.stack([sph_harm_y(3, m, 1.0, 0.0) for m in range(-3, 4)])
    assert (complex_to_real_matrix(3) @ yc).real[-1] > 0


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_small_d_matches_sympy(l):
    from sympy import N
    from sympy.physics.wigner import wigner_d_small

    beta = 0.813
    # sympy's matrix is exp(+i beta J_y) with indices (l - m', l - m): ours at -beta, flipped
    ref = np.array(N(wigner_d_small(l, -beta)), dtype=np.float64)[::-1, ::-1]
    np.testing.assert_allclose(wigner_d(l, beta).numpy(), ref, atol=1e-14)


@pytest.mark.parametrize("l", [1, 4, 9])
def test_small_d_is_exp_of_jy(l):
    betas = torch.tensor([0.0, 0.37, 1.9, math.pi])
    d = wigner_d(l, betas)
    assert d.shape == (4, 2 * l + 1, 2 * l + 1)
    for b, db in zip(betas.tolist(), d):
        np.testing.assert_allclose(db.numpy(), scipy.linalg.expm(-1j * b * jy(l)).real, atol=1e-13)


def test_real_D_from_complex_D():
    """Real D = conj(U) D_complex U^T with D_complex = e^{-i m' alpha} d(beta) e^{-i m gamma}."""
    angles = random_rotations(3, seed=1)
    for l in (1, 5, 12):
        m = np.arange(-l, l + 1)
        U = complex_to_real_matrix(l)
        for a, b, g in angles.tolist():
            dc = np.exp(-1j * m * a)[:, None] * wigner_d(l, b).numpy() * np.exp(-1j * m * g)[None, :]
            ref = U.conj() @ dc @ U.T
            assert np.abs(ref.imag).max() < 1e-13
            np.testing.assert_allclose(wigner_D_real(l, [a, b, g]).numpy(), ref.real, atol=1e-13)


def test_D1_is_rotation_matrix_in_yzx_order():
    angles = random_rotations(5, seed=2)
    R = Rotation.from_euler("ZYZ", angles.numpy()).as_matrix()  # intrinsic ZYZ = Rz Ry Rz
    P = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])  # (x, y, z) -> (y, z, x)
    np.testing.assert_allclose(wigner_D_real(1, angles).numpy(), P @ R @ P.T, atol=1e-15)


@pytest.mark.parametrize("l", [2, 7, 30])
def test_group_laws(l):
    a1, a2 = random_rotations(4, seed=3), random_rotations(4, seed=4)
    D1, D2 = wigner_D_real(l, a1), wigner_D_real(l, a2)
    D12 = wigner_D_real(l, compose_rotations(a1, a2))
    assert (D12 - D1 @ D2).abs().max() < 1e-12
    Dinv = wigner_D_real(l, invert_rotation(a1))
    assert (Dinv - D1.transpose(-1, -2)).abs().max() < 1e-12
    eye = torch.eye(2 * l + 1, dtype=torch.float64)
    assert (wigner_D_real(l, [0.0, 0.0, 0.0]) - eye).abs().max() < 1e-14


def test_unitarity_l512():
    D = wigner_D_real(512, random_rotations(1, seed=5)[0])
    err = (D @ D.T - torch.eye(1025, dtype=torch.float64)).abs().max()
    assert err <= 1e-10


@pytest.mark.slow
def test_unitarity_and_group_law_l1024():
    a1, a2 = random_rotations(1, seed=6)[0], random_rotations(1, seed=7)[0]
    D1, D2 = wigner_D_real(1024, a1), wigner_D_real(1024, a2)
    assert (D1 @ D1.T - torch.eye(2049, dtype=torch.float64)).abs().max() <= 1e-10
    assert (wigner_D_real(1024, compose_rotations(a1, a2)) - D1 @ D2).abs().max() <= 1e-10


@pytest.mark.parametrize("l", [1, 2, 3, 5])
def test_matches_e3nn_up_to_basis(l):
    """e3nn's D (its own real basis, YXY angles) and ours are the same representation:
    ours(R) = Q e3nn(R) Q^T for one orthogonal Q fitted from the harmonics."""
    o3 = pytest.importorskip("e3nn.o3")
    rng = np.random.default_rng(l)
    pts = rng.normal(size=(64, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    ye = o3.spherical_harmonics(l, torch.as_tensor(pts), normalize=True, normalization="integral").numpy()
    theta, phi = np.arccos(pts[:, 2]), np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * np.pi)
    yc = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)])
    yo = (complex_to_real_matrix(l) @ yc).real.T
    Q = np.linalg.lstsq(ye, yo, rcond=None)[0].T  # yo = ye Q^T
    np.testing.assert_allclose(Q @ Q.T, np.eye(2 * l + 1), atol=1e-10)
    angles = random_rotations(3, seed=8)
    R = euler_to_matrix(angles)
    De = o3.wigner_D(l, *o3.matrix_to_angles(R)).numpy()
    # e3nn's D = matrix_exp of its so3_generators, built in float32: e3nn's own D^1 differs
    # from R by ~2e-7, hence the tolerance
    np.testing.assert_allclose(wigner_D_real(l, angles).numpy(), Q @ De @ Q.T, atol=2e-6)


def test_batch_blocks_dtype_device():
    angles = random_rotations(6, seed=9).reshape(2, 3, 3)
    D = wigner_D_real(3, angles)
    assert D.shape == (2, 3, 7, 7) and D.dtype == torch.float64
    assert torch.allclose(D[1, 2], wigner_D_real(3, angles[1, 2]), atol=1e-15)
    blocks = wigner_D_blocks(4, angles[0, 0])
    assert [b.shape for b in blocks] == [(2 * l + 1, 2 * l + 1) for l in range(4)]
    D32 = wigner_D_real(32, angles[0, 0].float())
    assert D32.dtype == torch.float32
    # float32: orthogonality and agreement with float64 to ~1e-5 at l = 32 (documented)
    assert (D32 @ D32.T - torch.eye(65)).abs().max() < 1e-5
    assert (D32.double() - wigner_D_real(32, angles[0, 0])).abs().max() < 1e-4
    assert wigner_D_real(2, angles[0, 0], dtype=torch.float32, device="cpu").dtype == torch.float32


@pytest.mark.parametrize(
    "call",
    [
        lambda: wigner_D_real(-1, [0.0, 0.0, 0.0]),
        lambda: wigner_D_real(2.5, [0.0, 0.0, 0.0]),
        lambda: wigner_D_real(2, [0.0, 0.0]),
        lambda: wigner_D_real(2, [0.0, float("nan"), 0.0]),
        lambda: wigner_D_real(2, [0.0, 0.0, 0.0], dtype=torch.int64),
        lambda: wigner_d(2, float("inf")),
        lambda: wigner_D_blocks(0, [0.0, 0.0, 0.0]),
    ],
)
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
