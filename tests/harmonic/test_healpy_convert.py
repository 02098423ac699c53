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
    with pytest.raises(ValueError, match=r"length 11; L=4 expects a full alm of lmax = mmax = 3 \(10 alm\).  11 entries "
                                         r"fit an alm with mmax < lmax \(pad it"):
        healpy_alm_to_real(torch.zeros(11, dtype=torch.complex128), 4)
    with pytest.raises(ValueError, match="positive integer"):
        real_to_healpy_alm(np.zeros(1), 0)


@pytest.mark.parametrize("nside", [8, 64])
def test_alm_size_errors_speak_healpy_lmax(nside):
    """An alm of another lmax is named by healpy's own lmax (hp.Alm.getlmax) and the L that
    converts it; an mmax < lmax alm is named by its mmax, with the padding that works."""
    m = np.random.default_rng(nside).normal(size=12 * nside**2)
    L = 2 * nside
    big = hp.map2alm(m, lmax=3 * nside - 1, iter=0)  # healpy's default lmax
    lmax = hp.Alm.getlmax(big.size)
    with pytest.raises(ValueError, match=rf"L={L} expects a full alm of lmax = mmax = {L - 1} \({hp.Alm.getsize(L - 1)} "
                                         rf"alm\).  {big.size} entries fit a full alm of lmax = mmax = {lmax} "
                                         rf"\(L={lmax + 1} converts that one\) or an alm with mmax < lmax"):
        healpy_alm_to_real(big, L)
    assert healpy_alm_to_real(big, lmax + 1).shape == ((lmax + 1) ** 2,)  # the L it names works
    cut = hp.map2alm(m, lmax=L - 1, mmax=nside // 2, iter=0)
    with pytest.raises(ValueError, match=rf"fit an alm of lmax = {L - 1} with mmax = {nside // 2} \(pad it to mmax = "
                                         rf"lmax: healpy.resize_alm\(alm, {L - 1}, {nside // 2}, {L - 1}, {L - 1}\)\)"):
        healpy_alm_to_real(cut, L)
    padded = hp.resize_alm(cut, L - 1, nside // 2, L - 1, L - 1)  # the cure it names
    np.testing.assert_allclose(real_to_healpy_alm(healpy_alm_to_real(padded, L), L), padded, atol=1e-12)


def test_alm_size_of_a_truncated_alm_and_of_a_full_one_suggests_no_wrong_L():
    """lmax 9 with mmax 5 has 45 entries, as a full alm of lmax 8: the message names both layouts and
    healpy.resize_alm for the first; it no longer says 'pass L=9' (which misreads the truncated alm)."""
    alm = hp.map2alm(np.random.default_rng(0).normal(size=12 * 8**2), lmax=9, mmax=5, iter=0)
    assert alm.size == hp.Alm.getsize(8) == 45
    with pytest.raises(ValueError) as err:
        healpy_alm_to_real(alm, 10)
    msg = str(err.value)
    assert "pass L=" not in msg
    assert ("45 entries fit an alm of lmax = 9 with mmax = 5 (pad it to mmax = lmax: healpy.resize_alm(alm, 9, 5, 9, 9)) "
            "or a full alm of lmax = mmax = 8 (L=9 converts that one): the size alone cannot tell which") in msg
    # the padding it names converts the alm: healpy's own synthesis of both agrees
    ours = healpy_alm_to_real(hp.resize_alm(alm, 9, 5, 9, 9), 10)
    np.testing.assert_allclose(hp.alm2map(real_to_healpy_alm(ours, 10), 8, lmax=9),
                               hp.alm2map(alm, 8, lmax=9, mmax=5), atol=1e-12)
