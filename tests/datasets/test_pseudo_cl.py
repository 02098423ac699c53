"""MASTER pseudo-C_l band powers on the survey footprint."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets.pseudo_cl import PseudoCl, coupling_matrix, default_bin_edges, wigner3j_000_squared
from deepsphere_gen.datasets.survey_footprint import stage3_footprint


def test_wigner3j_matches_sympy():
    from sympy.physics.wigner import wigner_3j

    rng = np.random.default_rng(0)
    for _ in range(20):
        l1, l2, l3 = (int(v) for v in rng.integers(0, 30, 3))
        want = float(wigner_3j(l1, l2, l3, 0, 0, 0)) ** 2
        got = wigner3j_000_squared(l1, np.array([l2]), np.array([l3]))[0]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_full_sky_coupling_is_identity():
    lmax = 20
    mask_cl = np.zeros(2 * lmax + 1)
    mask_cl[0] = 4 * np.pi  # spectrum of the all-ones mask
    np.testing.assert_allclose(coupling_matrix(mask_cl, lmax), np.eye(lmax + 1), atol=1e-12)


def test_coupling_table_and_ring_placement_are_the_reference_bits():
    """The coupling matrix's log-factorial table gives the bits of gammaln per entry, and the pseudo
    spectra place the footprint straight into a RING map: the bits of healpy.reorder of the NESTED map."""
    est = PseudoCl(stage3_footprint(32))
    mask_cl = hp.anafast(hp.reorder(est.mask.astype(np.float64), n2r=True), lmax=est.lmax, iter=0)
    l2, l3 = np.arange(est.lmax + 1), np.arange(mask_cl.size)
    ref = np.stack([wigner3j_000_squared(l1, l2[:, None], l3[None, :]) @ ((2 * l3 + 1) * mask_cl)
                    for l1 in range(est.lmax + 1)]) * (2 * l2 + 1)[None, :] / (4 * np.pi)
    assert np.array_equal(coupling_matrix(mask_cl, est.lmax), ref) and np.array_equal(est.coupling, ref)
    v = np.random.default_rng(1).standard_normal((2, est.indices.size))
    full = np.zeros((2, est.mask.size))
    full[:, est.indices] = v
    alms = [hp.map2alm(hp.reorder(f, n2r=True), lmax=est.lmax, iter=0) for f in full]
    want = np.stack([hp.alm2cl(alms[0]), hp.alm2cl(alms[0], alms[1]), hp.alm2cl(alms[1])])
    assert np.array_equal(est.pseudo_spectra(v), want)


def test_pseudo_cl_recovers_the_input_spectrum_on_the_footprint():
    nside, n_sims = 64, 40
    est = PseudoCl(stage3_footprint(nside))
    ell = np.arange(3 * nside)
    cl = np.zeros(3 * nside)
    cl[2:] = 1e-9 * (ell[2:] / 50.0) ** -1.2
    rng_seed = np.random.default_rng(3)
    res = []
    for _ in range(n_sims):
        np.random.seed(int(rng_seed.integers(2**31)))  # healpy.synfast draws from numpy's global RNG
        m = hp.reorder(hp.synfast(cl, nside, lmax=3 * nside - 1, pixwin=False), r2n=True)
        res.append(est(m[est.indices][None])[0])
    res = np.array(res)
    theory = est.bin_theory(cl)
    mean, sd = res.mean(0), res.std(0, ddof=1)
    # unbiased: the mean of the estimates matches windows @ C_l within its expected scatter
    assert np.all(np.abs(mean - theory) < 3.5 * sd / np.sqrt(n_sims)), (mean - theory) / (sd / np.sqrt(n_sims))
    # windows are close to the band average of C_l (C_l is smooth), except the lowest band
    binned = np.array([cl[a:b].mean() for a, b in zip(est.edges[:-1], est.edges[1:])])
    np.testing.assert_allclose(theory[1:], binned[1:], rtol=0.05)
    # above the lowest band (decoupled from the largest, least visible scales: 3.5x noisier) the
    # scatter is the cosmic variance of the visible modes (Knox formula) within a factor 2
    knox = theory * np.sqrt(2 / ((2 * est.ell + 1) * np.diff(est.edges) * est.fsky))
    ratio = (sd / knox)[1:]
    assert np.all((ratio > 0.7) & (ratio < 2.0)), ratio


def test_bin_theory_wants_the_maps_pixel_window():
    """Band powers of maps carrying the pixel window (each pixel the average of its 64 sub-pixels: a band-limited
    field made at 8 nside and ud_graded) are unbiased for ``bin_theory(cl * w_l^2)``, not ``bin_theory(cl)``: the
    theory must carry every transfer function of the maps (0.72 was measured at l ~ 123 on a 40-degree cap at
    nside 64 without it).  Here a 40-degree cap at nside 32, 48 maps; tolerances from their scatter."""
    from deepsphere_gen.datasets import pixel_window

    nside, up, n_sims = 32, 8, 48
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[hp.query_disc(nside, hp.ang2vec(np.pi / 3, 0.5), np.radians(40), nest=True)] = True
    est = PseudoCl(mask)
    ell = np.arange(est.lmax + 1)
    cl = np.zeros(est.lmax + 1)
    cl[2:] = (ell[2:] / 20.0) ** -1.0
    rng = np.random.default_rng(1)
    res = []
    for _ in range(n_sims):
        np.random.seed(int(rng.integers(2**31)))  # healpy.synfast draws from numpy's global RNG
        fine = hp.reorder(hp.synfast(cl, up * nside, lmax=est.lmax, pixwin=False), r2n=True)
        res.append(est(hp.ud_grade(fine, nside, order_in="NESTED")[est.indices][None])[0])
    res = np.array(res)
    mean, se = res.mean(0), res.std(0, ddof=1) / np.sqrt(n_sims)
    with_window = (mean - est.bin_theory(cl * pixel_window(nside, est.lmax) ** 2)) / se
    assert np.all(np.abs(with_window) < 3.5), with_window
    without = (mean - est.bin_theory(cl)) / se
    assert without[-1] < -5, without  # l ~ 56: w_l^2 ~ 0.75, a bias of many standard errors


def test_cross_spectra_shapes_and_symmetry():
    nside = 32
    est = PseudoCl(stage3_footprint(nside))
    v = np.random.default_rng(0).standard_normal((2, 3, est.indices.size))
    out = est(v)
    assert out.shape == (2, 6, est.n_bands)
    swapped = est(v[:, [1, 0, 2]])
    np.testing.assert_allclose(swapped[:, 1], out[:, 1])  # C_01 = C_10


def test_bad_inputs_raise():
    est = PseudoCl(stage3_footprint(32))
    with pytest.raises(ValueError, match="footprint pixels"):
        est(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="bin_edges"):
        PseudoCl(stage3_footprint(32), bin_edges=[10, 5])
    with pytest.raises(ValueError, match="fsky"):
        default_bin_edges(64, 0.0)


@pytest.mark.parametrize("nside", [4, 8, 16, 32, 128, 1024])
def test_min_band_fsky_is_where_the_default_bands_start(nside):
    """min_band_fsky is read off default_bin_edges' own construction: at it the default edges give >= 2 bands, just
    below it they refuse, naming the band width, f_sky and that minimum."""
    from deepsphere_gen.datasets.pseudo_cl import band_width, min_band_fsky

    low = min_band_fsky(nside)
    assert len(default_bin_edges(nside, low)) >= 3
    with pytest.raises(ValueError, match=rf"fewer than 2 bands of width {band_width(low * 0.999)} .* the default bands "
                                         rf"need f_sky >= {low:.4g} \(.* deg\^2\) at nside {nside}"):
        default_bin_edges(nside, low * 0.999)
    # the built-in ~1,000 deg^2 footprint has its bands from nside 32 (its smallest) up
    assert nside < 32 or min_band_fsky(nside) < stage3_footprint(32).mean()


def test_no_footprint_has_default_bands_at_nside_2():
    from deepsphere_gen.datasets.pseudo_cl import min_band_fsky

    assert min_band_fsky(2) == np.inf and min_band_fsky(1) == np.inf
    with pytest.raises(ValueError, match="no footprint gives 2 default bands at nside 2"):
        default_bin_edges(2, 0.5)
