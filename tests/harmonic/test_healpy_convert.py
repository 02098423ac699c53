"""Real coefficients <-> healpy complex alm: exact, both directions, numpy and torch."""
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import (
    SHT,
    healpy_alm_size,
    healpy_alm_to_real,
    real_spherical_harmonics,
    real_to_healpy_alm,
)
from deepsphere_gen.sampling import HealpixSampling


def _real(L, shape=(), seed=0):
    return np.random.default_rng(seed).standard_normal(shape + (L * L,))


def _alm(L, seed=0):
    rng = np.random.default_rng(seed)
    n = healpy_alm_size(L)
    alm = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    alm[:L] = alm[:L].real  # m = 0 terms of a real map are real
    return alm


def test_round_trips_exact():
    L = 9
    a = _real(L)
    np.testing.assert_allclose(healpy_alm_to_real(real_to_healpy_alm(a, L), L), a, atol=1e-15, rtol=0)
    alm = _alm(L)
    np.testing.assert_allclose(real_to_healpy_alm(healpy_alm_to_real(alm, L), L), alm, atol=1e-15, rtol=0)


def test_healpy_synthesis_of_converted_alm_equals_real_harmonic_sum():
    nside, L = 8, 12
    a = _real(L, seed=1)
    pix = HealpixSampling(nside)
    ours = real_spherical_harmonics(L, pix.theta, pix.phi) @ a  # NESTED pixel order
    ref = hp.reorder(hp.alm2map(real_to_healpy_alm(a, L), nside, lmax=L - 1), r2n=True)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    sht = SHT(pix, L, dtype=torch.float64)
    np.testing.assert_allclose(sht.inverse(torch.as_tensor(a)[None, :, None])[0, :, 0].numpy(), ref, atol=1e-12)


def test_known_single_terms():
    # Y_{1,1} (real, no CS) = sqrt2 (-1) Re Y_1^1 -> alm(l=1, m=1) = -1/sqrt2; Y_{1,-1} -> +i/sqrt2
    L = 2
    a = np.zeros(4)
    a[3] = 1.0  # (l, m) = (1, 1)
    alm = real_to_healpy_alm(a, L)
    idx = hp.Alm.getidx(L - 1, 1, 1)
    assert alm[idx] == pytest.approx(-1 / np.sqrt(2))
    a[:] = 0
    a[1] = 1.0  # (1, -1)
    assert real_to_healpy_alm(a, L)[idx] == pytest.approx(1j / np.sqrt(2))


def test_torch_matches_numpy_and_axis():
    L = 7
    a = _real(L, shape=(2, 3), seed=2)  # (batch, channels, L*L)
    ref = real_to_healpy_alm(a, L)
    t = torch.as_tensor(a).permute(0, 2, 1)  # (batch, L*L, channels)
    alm_t = real_to_healpy_alm(t, L, axis=1)
    assert alm_t.is_complex() and alm_t.shape == (2, healpy_alm_size(L), 3)
    np.testing.assert_allclose(alm_t.permute(0, 2, 1).numpy(), ref, atol=1e-15)
    back = healpy_alm_to_real(alm_t, L, axis=1)
    np.testing.assert_allclose(back.numpy(), t.numpy(), atol=1e-15)


def test_torch_conversion_is_differentiable():
    L = 4
    a = torch.randn(L * L, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: torch.view_as_real(real_to_healpy_alm(x, L)), (a,))
    alm = torch.randn(healpy_alm_size(L), dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: healpy_alm_to_real(z, L), (alm,))


def test_wrong_lengths():
    with pytest.raises(ValueError, match=r"length 15 \(not L\*L for any L\), expected L\*L = 16 for L=4"):
        real_to_healpy_alm(np.zeros(15), 4)
    with pytest.raises(ValueError, match=r"length 25 \(L\*L for L=5\)"):
        real_to_healpy_alm(np.zeros(25), 4)
    with pytest.raises(ValueError, match=r"length 11: no healpy size.*lmax = mmax = 3 \(10 alm\)"):
        healpy_alm_to_real(torch.zeros(11, dtype=torch.complex128), 4)
    with pytest.raises(ValueError, match="positive integer"):
        real_to_healpy_alm(np.zeros(1), 0)


@pytest.mark.parametrize("nside", [8, 64])
def test_alm_size_errors_speak_healpy_lmax(nside):
    """An alm of another lmax is named by healpy's own lmax (hp.Alm.getlmax) and the L that
    would take it; an mmax < lmax alm is said to be unsupported, with the padding that works."""
    m = np.random.default_rng(nside).normal(size=12 * nside**2)
    L = 2 * nside
    big = hp.map2alm(m, lmax=3 * nside - 1, iter=0)  # healpy's default lmax
    lmax = hp.Alm.getlmax(big.size)
    with pytest.raises(ValueError, match=rf"lmax = mmax = {lmax} \(pass L={lmax + 1}\); L={L} expects lmax = mmax = "
                                         rf"{L - 1} \({hp.Alm.getsize(L - 1)} alm\)"):
        healpy_alm_to_real(big, L)
    assert healpy_alm_to_real(big, lmax + 1).shape == ((lmax + 1) ** 2,)  # the L it names works
    cut = hp.map2alm(m, lmax=L - 1, mmax=nside // 2, iter=0)
    with pytest.raises(ValueError, match="Only mmax = lmax alm are supported.*resize_alm"):
        healpy_alm_to_real(cut, L)
    padded = hp.resize_alm(cut, L - 1, nside // 2, L - 1, L - 1)  # the cure it names
    np.testing.assert_allclose(real_to_healpy_alm(healpy_alm_to_real(padded, L), L), padded, atol=1e-12)
