"""Every transform against ducc0 called directly (its own grids and complex a_lm), both engines.

Ground truth: ``ducc0.sht.experimental.synthesis_2d`` / ``analysis_2d`` on ducc0's GL,
DH and MW grids (geometry computed by ducc0, not from our rings), and ducc0's
``synthesis`` / ``adjoint_synthesis`` on the HEALPix rings of ``healpy.ringinfo``;
coefficients compared through healpy's complex layout (``real_to_healpy_alm``).
"""
import ducc0.sht.experimental as ducc
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import SHT, healpy_alm_to_real, real_to_healpy_alm
from deepsphere_gen.sampling import DriscollHealySampling, GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling

F64 = torch.float64
GRIDS = {"GL": (GaussLegendreSampling, lambda L: (L, 2 * L - 1)), "DH": (DriscollHealySampling, lambda L: (2 * L, 2 * L)),
         "MW": (McEwenWiauxSampling, lambda L: (L, 2 * L - 1))}
TOL = {torch.float64: 1e-12, torch.float32: 3e-6}


def _to_ducc_map(x, geometry, L):
    """Our (npix,) map -> ducc0's (1, ntheta, nphi) grid (MW: the pole sample repeated)."""
    ntheta, nphi = GRIDS[geometry][1](L)
    if geometry == "MW":
        return np.concatenate([x[:-1], np.full(nphi, x[-1])]).reshape(1, ntheta, nphi)
    return x.reshape(1, ntheta, nphi)


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("geometry", list(GRIDS))
@pytest.mark.parametrize("L", [5, 32])
def test_grids_match_ducc0_2d(geometry, L, dtype, engine):
    cls, shape = GRIDS[geometry]
    S = cls(L)
    sht = SHT(S, L, dtype=dtype, engine=engine)
    rng = np.random.default_rng(L)
    r = rng.standard_normal(L * L)
    alm = real_to_healpy_alm(r, L)[None]
    ref = ducc.synthesis_2d(alm=alm, lmax=L - 1, spin=0, geometry=geometry, ntheta=shape(L)[0], nphi=shape(L)[1])
    ours = sht.inverse(torch.as_tensor(r, dtype=dtype)[None, :, None])[0, :, 0].double().numpy()
    tol = TOL[dtype] * np.abs(ref).max()
    np.testing.assert_allclose(_to_ducc_map(ours, geometry, L), ref, atol=tol)
    # analysis of a band-limited map: ducc0's exact analysis and ours agree (and invert synthesis)
    back = ducc.analysis_2d(map=_to_ducc_map(ours, geometry, L), lmax=L - 1, spin=0, geometry=geometry)
    mine = sht(torch.as_tensor(ours, dtype=dtype)[None, :, None])[0, :, 0].double().numpy()
    np.testing.assert_allclose(mine, healpy_alm_to_real(back[0], L), atol=TOL[dtype] * np.abs(r).max() * 10)


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("nside,L", [(4, 12), (16, 40)])
def test_healpix_matches_ducc0_ring_transforms(nside, L, dtype, engine):
    start, nphi, costheta, _, shifted = hp.ringinfo(nside, np.arange(1, 4 * nside))
    geo = dict(theta=np.arccos(costheta), nphi=nphi.astype(np.uintp), phi0=np.where(shifted, np.pi / nphi, 0.0),
               ringstart=start.astype(np.uintp), lmax=L - 1, spin=0)
    sht = SHT(HealpixSampling(nside), L, dtype=dtype, engine=engine)
    rng = np.random.default_rng(nside)
    r = rng.standard_normal(L * L)
    ref = ducc.synthesis(alm=real_to_healpy_alm(r, L)[None], **geo)[0]  # RING order
    ours = sht.inverse(torch.as_tensor(r, dtype=dtype)[None, :, None])[0, :, 0].double().numpy()
    np.testing.assert_allclose(ours[hp.ring2nest(nside, np.arange(12 * nside**2))], ref,
                               atol=TOL[dtype] * np.abs(ref).max())
    m = rng.standard_normal(12 * nside**2)  # RING order, not band-limited
    w = np.full(geo["theta"].size, 4 * np.pi / m.size)
    ref_a = healpy_alm_to_real(ducc.adjoint_synthesis(map=m[None], ringfactor=w, **geo)[0], L)
    mine = sht(torch.as_tensor(m[hp.nest2ring(nside, np.arange(m.size))], dtype=dtype)[None, :, None])
    np.testing.assert_allclose(mine[0, :, 0].double().numpy(), ref_a, atol=TOL[dtype] * np.abs(ref_a).max())


@pytest.mark.parametrize("sampling,L", [(GaussLegendreSampling(9), 9), (HealpixSampling(4), 12),
                                        (McEwenWiauxSampling(8), 8), (DriscollHealySampling(6), 6)])
def test_backward_is_the_adjoint(sampling, L):
    # <S a, f> = <a, S^T f> and <A f, g> = <f, A^T g> with S^T, A^T what backward applies
    sht = SHT(sampling, L, dtype=F64)
    a = torch.randn(2, L * L, 3, dtype=F64, requires_grad=True)
    f = torch.randn(2, sampling.npix, 3, dtype=F64, requires_grad=True)
    (ga,) = torch.autograd.grad((sht.inverse(a) * f.detach()).sum(), a)
    (gf,) = torch.autograd.grad((sht(f) * a.detach()).sum(), f)
    assert torch.allclose((sht.inverse(a) * f).sum(), (a * ga).sum(), rtol=1e-12)
    assert torch.allclose((sht(f) * a).sum(), (f * gf).sum(), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("L", [1024, 2048])
def test_torch_engine_large_bandlimit_float64(L):
    # sin(theta)^m underflows float64 for m log10(m / L) < -308 (L >~ 1500): the recursion
    # keeps mantissa and exponent; the torch engine must match ducc0 at L = 2048 too
    S = GaussLegendreSampling(L)
    a = torch.randn(1, L * L, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    ref = SHT(S, L, dtype=F64).inverse(a)
    ours = SHT(S, L, dtype=F64, engine="torch").inverse(a)
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-10  # measured 1.5e-11 at L = 2048
