"""Multi-plane log-normal convergence (the default mass-map generator): shells against pyccl and analytic moments."""
import healpy as hp
import numpy as np
import pytest
from scipy.stats import skew

from deepsphere_gen.datasets import COSMOLOGIES, MassMapConfig, convergence_cl, generate_massmaps, load_massmaps
from deepsphere_gen.datasets._lognormal import lognormal_skewness
from deepsphere_gen.datasets._shells import (SHELL_WIDTH_MPC, TAIL_VARIANCE, lensing_shells, shell_alms,
                                             shell_spectrum_sum, shells_convergence)
from deepsphere_gen.datasets._spectra import empty_beam_convergence, lognormal_shift
from deepsphere_gen.datasets.massmaps import convergence_map, gaussian_alm, map_rng

LMAX = 95  # nside 32


@pytest.mark.parametrize("c", [0, 1])
def test_shells_sum_to_pyccl_weak_lensing_spectrum(c):
    """In the Limber approximation sum_i W_i^2 C_l^i is the convergence spectrum; pyccl's weak-lensing tracer (with
    its (l+2)!/(l-2)! / (l+1/2)^4 factor, 1 + O(1/l^2)) is the external truth: 0.3 % for l >= 30, 3 % for l >= 10."""
    shells = lensing_shells(COSMOLOGIES[c], LMAX)
    ratio = shell_spectrum_sum(shells)[2:] / convergence_cl(COSMOLOGIES[c], LMAX)[2:]
    ell = np.arange(2, LMAX + 1)
    assert np.all(np.abs(ratio[ell >= 30] - 1) < 3e-3), ratio[ell >= 30]
    assert np.all(np.abs(ratio[ell >= 10] - 1) < 3e-2)
    # a shell missing (or counted twice) would show
    assert np.all(np.abs(ratio[ell >= 30] - 1 + shells.weights[5] ** 2 * shells.cl_density[5, 30:] /
                         convergence_cl(COSMOLOGIES[c], LMAX)[30:]) > 3e-3)


@pytest.mark.parametrize("c", [0, 1])
def test_shells_cover_the_kernel_in_order(c):
    shells = lensing_shells(COSMOLOGIES[c], LMAX)
    assert 15 <= shells.n_shells <= 40
    np.testing.assert_allclose(np.diff(shells.edges_mpc), SHELL_WIDTH_MPC)
    assert shells.edges_mpc[0] == 0
    # the cut is the nearest one that drops at most TAIL_VARIANCE: keeping one shell fewer would drop more
    variance = shells.weights**2 * np.array([np.sum((2 * np.arange(LMAX + 1) + 1) * cl) for cl in shells.cl_density])
    total = variance.sum() / (1 - shells.dropped_variance)
    assert shells.dropped_variance <= TAIL_VARIANCE < shells.dropped_variance + variance[-1] / total
    # the weights sum to the empty-beam convergence (the dropped far shells and the kernel's sampling: < 2 %)
    assert 0.98 < shells.weights.sum() / empty_beam_convergence(COSMOLOGIES[c]) <= 1.0
    # nearer shells are more non-Gaussian: their Gaussian fields have the larger variance
    assert np.all(np.diff(shells.var_gauss[:10]) < 0)
    assert not shells.weights.flags.writeable


def test_shell_alms_have_the_gaussian_spectra():
    shells = lensing_shells(COSMOLOGIES[0], LMAX)
    alms = np.stack(list(shell_alms(shells, np.random.default_rng(0))))
    assert alms.shape == (shells.n_shells, hp.Alm.getsize(LMAX)) and alms.dtype == np.complex128
    assert np.all(alms[:, : LMAX + 1].imag == 0)  # m = 0
    measured = np.array([hp.alm2cl(a) for a in alms])[:, 10:]
    want = shells.cl_gauss[:, 10:]
    modes = (2 * np.arange(10, LMAX + 1) + 1).sum()
    z = (measured.sum(1) / want.sum(1) - 1) / np.sqrt(2 / modes)  # one band per shell
    assert np.all(np.abs(z) < 4), z
    np.testing.assert_array_equal(alms, np.stack(list(shell_alms(shells, np.random.default_rng(0)))))


@pytest.fixture(scope="module")
def raw_shell_maps():
    """Unsmoothed shell maps (values at pixel centres), nside 32, 16 per class."""
    cfg = MassMapConfig(nside=32, smoothing_arcmin=0.0, pixel_window=False)
    return [np.stack([convergence_map(c, cfg, np.random.default_rng([4, i])) for i in range(16)]) for c in COSMOLOGIES]


def test_skewness_is_that_of_a_sum_of_independent_lognormal_shells(raw_shell_maps):
    """kappa = sum_i W_i delta_i, delta_i independent, shift 1: the pixel variance is sum W_i^2 v_i and the third
    moment sum W_i^3 s_i v_i^(3/2), v_i = exp(var_i) - 1, s_i = 3 r_i + r_i^3 (r_i = sqrt(v_i)); a single log-normal
    field of the same variance (the "lognormal" generator's shift) and a Gaussian field are both excluded."""
    for c, maps in enumerate(raw_shell_maps):
        shells = lensing_shells(COSMOLOGIES[c], LMAX)
        v = np.expm1(shells.var_gauss)
        variance = np.sum(shells.weights**2 * v)
        third = np.sum(shells.weights**3 * lognormal_skewness(v, 1.0) * v**1.5)
        pred = third / variance**1.5
        sk = np.array([skew(m) for m in maps])
        err = sk.std(ddof=1) / np.sqrt(sk.size)
        assert abs(sk.mean() - pred) < 4 * err, (sk.mean(), pred, err)
        assert maps.var(axis=1).mean() == pytest.approx(variance, rel=0.1)
        single = lognormal_skewness(variance, lognormal_shift(COSMOLOGIES[c]))  # one log-normal field, same variance
        assert abs(single - pred) > 4 * err and abs(pred) > 4 * err, (single, pred)


def test_shell_maps_are_the_gaussian_alms_exponentiated():
    """convergence_map = shells_convergence of gaussian_alm drawn from the same generator (then smoothed)."""
    cfg = MassMapConfig(nside=16, smoothing_arcmin=0.0, pixel_window=False)
    cosmo = COSMOLOGIES[1]
    alm = gaussian_alm(cosmo, cfg, map_rng(cfg, 1, 0))
    direct = hp.reorder(shells_convergence(alm, lensing_shells(cosmo, cfg.band_limit), 16), r2n=True)
    np.testing.assert_array_equal(convergence_map(cosmo, cfg, map_rng(cfg, 1, 0)), direct)
    shells = lensing_shells(cosmo, cfg.band_limit)
    with pytest.raises(ValueError, match=f"one alm per shell \\({shells.n_shells}\\), got 3"):
        shells_convergence(alm[:3], shells, 16)
    with pytest.raises(ValueError, match="got more"):
        shells_convergence(iter([*alm, alm[0]]), shells, 16)


def test_generator_names_its_data_set(tmp_path):
    """Each generator has its own cache entry; those of the records made before the shells keep their keys."""
    a = MassMapConfig(nside=16, n_maps=24, generator="gaussian").generation_params()
    assert a["lognormal"] is False and "generator" not in a
    assert MassMapConfig(nside=256, n_maps=48, generator="lognormal").generation_params()["lognormal"] is True
    from deepsphere_gen.datasets.massmaps import _dataset_dir
    assert _dataset_dir(MassMapConfig(nside=256, n_maps=48, generator="lognormal"), ".").name == \
        "massmaps-nside256-fe549cd77201d93a"  # the key of the recorded default runs
    assert _dataset_dir(MassMapConfig(nside=16, n_maps=24, generator="gaussian"), ".").name == \
        "massmaps-nside16-bafe12f3daf6f071"
    shells = MassMapConfig(nside=8, n_maps=1)
    assert shells.generator == "shells" and shells.generation_params()["generator"]["name"] == "shells"
    path = generate_massmaps(shells, tmp_path, progress=False, verbose=False)
    _, meta = load_massmaps(path)
    assert meta["classes"][0]["n_shells"] == lensing_shells(COSMOLOGIES[0], 23).n_shells
    spectra = np.load(path / "spectra.npz")
    np.testing.assert_allclose(spectra["cl_kappa_0"], shell_spectrum_sum(lensing_shells(COSMOLOGIES[0], 23)))
    assert spectra["cl_gauss_0"].shape == (meta["classes"][0]["n_shells"], 24)
    with pytest.raises(ValueError, match="generator must be one of shells, lognormal, gaussian"):
        MassMapConfig(nside=8, generator="nbody")
