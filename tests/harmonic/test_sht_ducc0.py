"""Every transform against ducc0 called directly (its own grids and complex a_lm), both engines.

Ground truth: ``ducc0.sht.experimental.synthesis_2d`` / ``analysis_2d`` on ducc0's GL,
DH and MW grids (geometry computed by ducc0, not from our rings), and ducc0's
``synthesis`` / ``adjoint_synthesis`` on the HEALPix rings of ``healpy.ringinfo``;
coefficients compared through healpy's complex layout (``real_to_healpy_alm``).
"""
import dataclasses

import ducc0.sht.experimental as ducc
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import SHT, SphericalAnalysis, SphericalSynthesis, healpy_alm_to_real, real_to_healpy_alm
from deepsphere_gen.harmonic._sht_legendre import ChunkedLegendre
from deepsphere_gen.sampling import (DriscollHealySampling, EquiangularSampling, GaussLegendreSampling, HealpixSampling,
                                     McEwenWiauxSampling)

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
@pytest.mark.parametrize("nside,L", [(4, 12), (16, 40), (64, 96)])  # nside 64: one map's arrays over 128 KiB
def test_healpix_matches_ducc0_ring_transforms(nside, L, dtype, engine):
    start, nphi, costheta, _, shifted = hp.ringinfo(nside, np.arange(1, 4 * nside))
    geo = dict(theta=np.arccos(costheta), nphi=nphi.astype(np.uintp), phi0=np.where(shifted, np.pi / nphi, 0.0),
               ringstart=start.astype(np.uintp), lmax=L - 1, spin=0)
    sht = SHT(HealpixSampling(nside), L, dtype=dtype, engine=engine, iterations=0)  # ducc0's adjoint_synthesis
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


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
def test_synthesis_on_a_grid_without_weights_matches_ducc0(engine):
    """A 19 x 36 lat-lon grid with both poles and no weights: the synthesis needs none (ducc0's ring
    synthesis); its analysis is refused, by SphericalAnalysis at construction and by SHT at the call."""
    L = 9
    theta = np.linspace(0, np.pi, 19)
    S = EquiangularSampling(L, theta, 36, None)
    r = np.random.default_rng(0).standard_normal((2, L * L))
    ref = ducc.synthesis(alm=real_to_healpy_alm(r, L)[:, None], theta=theta, nphi=np.full(19, 36, dtype=np.uintp),
                         phi0=np.zeros(19), ringstart=(36 * np.arange(19)).astype(np.uintp), lmax=L - 1, spin=0)[:, 0]
    coeffs = torch.as_tensor(r.T, dtype=F64)[None]  # (1, L*L, 2)
    for synth in (SphericalSynthesis(S, L, dtype=F64, engine=engine), SHT(S, L, dtype=F64, engine=engine).inverse):
        np.testing.assert_allclose(synth(coeffs)[0].T.numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="no quadrature weights: no analysis possible"):
        SphericalAnalysis(S, L, dtype=F64, engine=engine)
    with pytest.raises(ValueError, match="no quadrature weights: no analysis possible"):
        SHT(S, L, dtype=F64, engine=engine)(torch.zeros(1, S.npix, 1, dtype=F64))


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


SAMPLINGS = [(GaussLegendreSampling(12), 12), (DriscollHealySampling(10), 10), (McEwenWiauxSampling(9), 9),
             (HealpixSampling(4), 12)]


# L = 48: 2352 (re, im) coefficient rows, two blocks of the engine's channel-major gather (2048 rows per block)
@pytest.mark.parametrize("sampling,L", SAMPLINGS + [(HealpixSampling(16), 48)])
def test_many_maps_equal_one_map_at_a_time(sampling, L):
    # one map takes ducc0's 2D functions on its own grids (flat gathers), several maps the
    # ring functions (C maps per call, strided views) or, for MW's analysis, one 2D call per
    # map: every path and its backward (the adjoint) give the same numbers
    sht = SHT(sampling, L, dtype=F64)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, L * L, 3, dtype=F64, generator=g, requires_grad=True)
    x = torch.randn(2, sampling.npix, 3, dtype=F64, generator=g, requires_grad=True)
    wa = torch.randn(2, sampling.npix, 3, dtype=F64, generator=g)
    wx = torch.randn(2, L * L, 3, dtype=F64, generator=g)
    syn, ana = sht.inverse(a), sht(x)
    (ga,) = torch.autograd.grad((syn * wa).sum(), a)
    (gx,) = torch.autograd.grad((ana * wx).sum(), x)
    for b in range(2):
        for c in range(3):
            ab = a[b : b + 1, :, c : c + 1].detach().requires_grad_()
            xb = x[b : b + 1, :, c : c + 1].detach().requires_grad_()
            s1, a1 = sht.inverse(ab), sht(xb)
            (g1,) = torch.autograd.grad((s1 * wa[b : b + 1, :, c : c + 1]).sum(), ab)
            (h1,) = torch.autograd.grad((a1 * wx[b : b + 1, :, c : c + 1]).sum(), xb)
            for many, one in ((syn, s1), (ana, a1), (ga, g1), (gx, h1)):
                torch.testing.assert_close(many[b : b + 1, :, c : c + 1], one, atol=1e-13, rtol=0)


@pytest.mark.parametrize("sampling,L", SAMPLINGS)
def test_no_grad_path_equals_autograd_path(sampling, L):
    # an input that needs no gradient skips the autograd Function: same values, bit for bit
    sht = SHT(sampling, L, dtype=F64)
    a = torch.randn(1, L * L, 1, dtype=F64)
    x = torch.randn(1, sampling.npix, 1, dtype=F64)
    assert not sht.inverse(a).requires_grad
    for fn, v in ((sht.inverse, a), (sht, x)):
        with_grad = fn(v.clone().requires_grad_())
        assert with_grad.requires_grad and with_grad.grad_fn is not None
        torch.testing.assert_close(fn(v), with_grad.detach(), atol=0, rtol=0)
        with torch.no_grad():
            torch.testing.assert_close(fn(v.clone().requires_grad_()), with_grad.detach(), atol=0, rtol=0)


def test_ducc_grid_recognises_its_grids_only():
    from deepsphere_gen.harmonic._sht_ducc import ducc_grid
    from deepsphere_gen.harmonic._sht_geometry import RingGeometry

    assert ducc_grid(RingGeometry.from_sampling(GaussLegendreSampling(16), 16)) == ("GL", 16, 31)
    assert ducc_grid(RingGeometry.from_sampling(GaussLegendreSampling(16), 9)) == ("GL", 16, 31)  # L below the grid's
    assert ducc_grid(RingGeometry.from_sampling(DriscollHealySampling(8), 8)) == ("DH", 16, 16)
    assert ducc_grid(RingGeometry.from_sampling(McEwenWiauxSampling(8), 8)) == ("MW", 8, 15)
    assert ducc_grid(RingGeometry.from_sampling(HealpixSampling(4), 12)) is None
    assert ducc_grid(RingGeometry.from_sampling(HealpixSampling(4), 12, order="RING")) is None
    g = RingGeometry.from_sampling(GaussLegendreSampling(16), 16)
    for change in (dict(weights=g.weights * (1 + 1e-9)), dict(phi0=g.phi0 + 0.1), dict(theta=g.theta + 1e-9)):
        assert ducc_grid(dataclasses.replace(g, **change)) is None  # not ducc0's grid: the ring functions


@pytest.mark.parametrize("sampling,L,maps", [(HealpixSampling(64), 64, 1), (HealpixSampling(32), 48, 3),
                                             (GaussLegendreSampling(128), 128, 1)])
def test_kept_work_arrays_never_alias_results(sampling, L, maps):
    # work arrays over 128 KiB are kept between calls: a later call must not change an earlier result
    sht = SHT(sampling, L, dtype=F64)
    a1, a2 = torch.randn(2, 2, L * L, maps, dtype=F64)
    x1, x2 = torch.randn(2, 2, sampling.npix, maps, dtype=F64)
    y1, c1 = sht.inverse(a1), sht(x1)
    y1c, c1c = y1.clone(), c1.clone()
    sht.inverse(a2), sht(x2)
    assert torch.equal(y1, y1c) and torch.equal(c1, c1c)
    torch.testing.assert_close(sht.inverse(a1), y1c, atol=0, rtol=0)


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
def test_used_module_deep_copies_and_pickles(engine):
    # engines keep per-thread work arrays between calls; copies start without them
    import copy
    import io

    S = HealpixSampling(32)
    sht = SHT(S, 48, dtype=F64, engine=engine)
    a = torch.randn(2, 48 * 48, 3, dtype=F64)
    y = sht.inverse(a)
    buf = io.BytesIO()
    torch.save(sht, buf)
    buf.seek(0)
    for other in (copy.deepcopy(sht), torch.load(buf, weights_only=False)):
        torch.testing.assert_close(other.inverse(a), y, atol=0, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-11), (torch.float32, 3e-6)])
def test_torch_engine_rescaled_recursion_matches_ducc0(dtype, tol):
    # at L = 320 the near-pole sectoral values sin(theta)^m underflow float64 (theta_0 ~ 0.0075:
    # sin^319 ~ 2^-2200): the recursion carries them as mantissa and exponent (the mantissas
    # never grow past 2^600 here, so no rescale: see the L = 2048 rings test); several Legendre
    # blocks, both directions, against ducc0
    L = 320
    S = GaussLegendreSampling(L)
    ref = SHT(S, L, dtype=dtype)
    eng = SHT(S, L, dtype=dtype, engine="torch", block_bytes=2**22)
    leg = eng.engine_for(torch.zeros(0, dtype=dtype)).legendre
    assert leg.nk < L and float(leg.exp0.min()) < -1100
    g = torch.Generator().manual_seed(3)
    a = torch.randn(1, L * L, 2, dtype=dtype, generator=g)
    x = torch.randn(1, S.npix, 1, dtype=dtype, generator=g)
    for ours, truth in ((eng.inverse(a), ref.inverse(a)), (eng(x), ref(x))):
        assert float((ours - truth).abs().max() / truth.abs().max()) < tol


def test_torch_legendre_mantissa_rescale_matches_ducc0_at_L2048():
    # the mantissas grow past 2^600 (and are rescaled by 2^-600) only at L >~ 1000; at L = 2048
    # rows m ~ 700 on rings with sin(theta) ~ 1/e start near 2^-1060 and grow back to O(1)
    # values, so a wrong rescale (none: inf / NaN; exponent, factor or previous step left
    # unscaled) shows in the Legendre sums.  A few rings, every m, both directions, float64 and
    # float32, against ducc0's alm2leg / leg2alm (its lambda_l^m has the Condon-Shortley phase)
    L, theta = 2048, np.array([0.3, 0.3767, 0.45, np.pi - 0.3767])
    g = torch.Generator().manual_seed(5)
    m, k = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    inside = m + k < L
    flat = (m * L + k)[inside]  # ducc0's index of a_lm: m L + l - m (mstart = m (L - 1))
    mval, mstart = np.arange(L, dtype=np.uintp), (np.arange(L) * (L - 1)).astype(np.uintp)
    phase = (-1.0) ** np.arange(L)
    grid = torch.randn(L, L, 1, dtype=F64, generator=g) * torch.as_tensor(inside)[..., None]
    alm = np.zeros((1, L * L), np.complex128)
    alm[0, flat] = grid[..., 0].numpy()[inside]
    sums = ducc.alm2leg(alm=alm, lmax=L - 1, theta=theta, mval=mval, mstart=mstart)[0].real.T * phase[:, None]
    z = torch.randn(L, theta.size, 1, dtype=F64, generator=g)
    leg = (z[..., 0].numpy().T * phase)[None].astype(np.complex128)
    proj = ducc.leg2alm(leg=leg, lmax=L - 1, theta=theta, mval=mval, mstart=mstart)[0].real[flat]
    for dtype, tol in ((F64, 1e-11), (torch.float32, 3e-6)):  # measured 2.8e-13, 2.3e-7
        ours = ChunkedLegendre(L, theta, dtype, block_bytes=2**20)
        even, odd = ours.evaluate(grid.to(dtype))
        err = np.abs((even + odd)[..., 0].double().numpy() - sums).max() / np.abs(sums).max()
        assert err < tol, (dtype, err)
        err = np.abs(ours.project(z.to(dtype), z.to(dtype))[..., 0].double().numpy()[inside] - proj).max()
        assert err / np.abs(proj).max() < tol, (dtype, err / np.abs(proj).max())
        rescaled = float((ours._steps()[1] - ours.exp0).max())  # the exponents after the last step
        assert rescaled > 0, rescaled  # the test exercised the rescale


def test_conversion_tables_made_per_precision_used():
    """A float32 SHT keeps float32 factors only; a float64 call adds its own, sharing the indices,
    and gives the values of a module that only ever ran float64."""
    S = HealpixSampling(8)
    sht = SHT(S, 16, dtype=torch.float32)
    x = torch.randn(1, S.npix, 1, dtype=F64)
    sht(x.float())
    eng = sht.engine_for(x.float())
    assert {str(k) for k in eng._tables} == {"float32", "complex64"}
    ref = SHT(S, 16, dtype=F64)
    sht.double()
    assert torch.equal(sht(x), ref(x)) and torch.equal(sht.inverse(ref(x)), ref.inverse(ref(x)))
    assert {str(k) for k in eng._tables} == {"float32", "complex64", "float64", "complex128"}
    assert eng._tables[np.dtype(np.float64)][0] is eng._tables[np.dtype(np.float32)][0]


@pytest.mark.parametrize("L", [1, 2, 7, 40])
def test_conversion_tables_equal_healpy_tables_formula(L):
    """The conversion tables (the per-order / per-degree blocks concatenated) equal the whole-table
    formula on healpy_tables, bit for bit."""
    from deepsphere_gen.harmonic._ducc_layout import DuccLayout
    from deepsphere_gen.harmonic._healpy_convert import healpy_tables

    m, pos, neg, sign, scale = healpy_tables(L)
    to_real, to_real_f = np.zeros(L * L, dtype=np.int64), np.zeros(L * L)
    i, nz = np.arange(m.size), m > 0
    to_real[pos], to_real_f[pos] = 2 * i, sign * scale
    to_real[neg[nz]], to_real_f[neg[nz]] = 2 * i[nz] + 1, -(sign * scale)[nz]
    ref = (np.stack([pos, neg], axis=1).ravel(), np.stack([sign / scale, np.where(m == 0, 0.0, -sign / scale)], 1).ravel(),
           to_real, to_real_f)
    layout = DuccLayout(L)
    (to_ducc, back), (f, g) = layout.tables(), layout.table_factors(np.float64)
    for got, want in zip((to_ducc, f, back, g), ref):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_functional_transforms_keep_grids_of_one_size_apart():
    """Two 16 x 32 lat-lon grids at L = 8, cell-centred (Fejer-I weights) and quarter-offset rings: the functional
    synthesis (memoised by the sampling's key) gives each its own ducc0 synthesis, whichever was called first, and
    the analysis inverts it (before, both shared one key, and the second grid got the first one's transform)."""
    from deepsphere_gen.harmonic import analysis, clear_sht_cache, synthesis

    L, n, nphi = 8, 16, 32
    grids = [EquiangularSampling(L, np.pi * (np.arange(n) + 0.5) / n, nphi, ducc.get_gridweights("F1", n) / (2 * np.pi)),
             EquiangularSampling(L, np.pi * (np.arange(n) + 0.25) / n, nphi, None)]
    r = np.random.default_rng(1).standard_normal(L * L)
    coeffs = torch.as_tensor(r, dtype=F64)[None, :, None]
    clear_sht_cache()
    for S in grids:
        ref = ducc.synthesis(alm=real_to_healpy_alm(r, L)[None], theta=S.theta_1d, nphi=np.full(n, nphi, dtype=np.uintp),
                             phi0=np.zeros(n), ringstart=(nphi * np.arange(n)).astype(np.uintp), lmax=L - 1, spin=0)[0]
        np.testing.assert_allclose(synthesis(coeffs, S, L)[0, :, 0].numpy(), ref, atol=1e-12)
    back = analysis(synthesis(coeffs, grids[0], L), grids[0], L)
    np.testing.assert_allclose(back[0, :, 0].numpy(), r, atol=1e-12)
