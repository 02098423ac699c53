import math

import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets.shape_noise import pixel_area_arcmin2, pixel_noise_std


@pytest.mark.parametrize("nside", [16, 256, 1024])
def test_pixel_area_matches_healpy(nside):
    assert pixel_area_arcmin2(nside) == pytest.approx(hp.nside2pixarea(nside, degrees=True) * 3600, rel=1e-12)


def test_noise_of_one_survey_averages_down_across_resolutions():
    # averaging the 4 children of a pixel (independent noise) gives the parent's noise
    s_hi, s_lo = pixel_noise_std(512, 10.0), pixel_noise_std(256, 10.0)
    assert s_hi / 2 == pytest.approx(s_lo, rel=1e-12)
    rng = np.random.default_rng(0)
    children = rng.normal(0, s_hi, (200_000, 4)).mean(1)
    assert children.std() == pytest.approx(s_lo, rel=0.01)


def test_known_value_and_bad_inputs():
    # nside 1024: 11.8024 arcmin^2 pixels (41252.96 deg^2 / 12582912 pixels); 30 gal/arcmin^2, sigma_e 0.26 -> 0.26 / sqrt(354)
    assert pixel_noise_std(1024, 30.0, 0.26) == pytest.approx(0.26 / math.sqrt(30 * 11.8024), rel=1e-5)
    assert pixel_noise_std(64, math.inf) == 0.0
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="galaxy density"):
            pixel_noise_std(64, bad)
    with pytest.raises(ValueError, match="sigma_e"):
        pixel_noise_std(64, 10, -0.1)
    # a HEALPix nside is a power of 2 (the project's check_nside); 33 was given an area and a noise std
    for call in (lambda: pixel_area_arcmin2(33), lambda: pixel_noise_std(33, 6), lambda: pixel_noise_std(33, math.inf),
                 lambda: pixel_noise_std(0, 6)):
        with pytest.raises(ValueError, match="nside must be a power of 2"):
            call()


def test_module_docstring_level_matches_the_function():
    """The module docstring's example "DeepSphere level 2 (n_gal = X /arcmin^2)" is what the function gives
    (it said 22.6; the function gives 22.47)."""
    import re

    from deepsphere_gen.datasets import shape_noise

    level, ngal = re.search(r"DeepSphere level (\S+)\s+\(n_gal = (\S+) /arcmin\^2\)", shape_noise.__doc__).groups()
    assert f"{shape_noise.deepsphere_level_to_ngal(float(level)):.2f}" == ngal


def test_clean_pixel_std_matches_generated_maps(tmp_path):
    """The analytic clean std (C_l x beam^2 x pixel window^2) is the std of the generator's maps."""
    from deepsphere_gen.datasets import MassMapConfig, generate_massmaps, load_massmaps
    from deepsphere_gen.datasets.shape_noise import DEEPSPHERE_SMOOTHING_FWHM_ARCMIN, clean_pixel_std

    cfg = MassMapConfig(nside=32, n_maps=6, seed=1)
    assert cfg.smoothing_arcmin == pytest.approx(7.064, abs=1e-3)  # sigma 3' as DeepSphere
    maps, meta = load_massmaps(generate_massmaps(cfg, tmp_path, progress=False, verbose=False))
    per_class = clean_pixel_std(32, DEEPSPHERE_SMOOTHING_FWHM_ARCMIN, per_class=True)
    for c in range(2):
        assert meta["classes"][c]["clean_std"] == pytest.approx(per_class[c], rel=0.03)
    assert meta["clean_std"] == pytest.approx(clean_pixel_std(32), rel=0.03)


def test_deepsphere_levels_as_galaxy_densities():
    from deepsphere_gen.datasets.shape_noise import (
        DEEPSPHERE_REFERENCE_NSIDE,
        clean_pixel_std,
        deepsphere_level_to_ngal,
        ngal_to_deepsphere_level,
    )

    ref = clean_pixel_std(DEEPSPHERE_REFERENCE_NSIDE)
    for level in (0.5, 1.0, 2.0, 3.5):
        ngal = deepsphere_level_to_ngal(level)
        # definition: the per-pixel shape noise at nside 1024 is level x the clean std there
        assert pixel_noise_std(DEEPSPHERE_REFERENCE_NSIDE, ngal) == pytest.approx(level * ref, rel=1e-12)
        assert ngal_to_deepsphere_level(ngal) == pytest.approx(level, rel=1e-12)
    # DeepSphere's level 2 is a stage-III-like survey (about 22 galaxies/arcmin^2 with sigma_e 0.26)
    assert 18 < deepsphere_level_to_ngal(2.0) < 27
    assert deepsphere_level_to_ngal(2.0, sigma_e=0.52) == pytest.approx(4 * deepsphere_level_to_ngal(2.0))
    assert deepsphere_level_to_ngal(0.0) == math.inf and ngal_to_deepsphere_level(math.inf) == 0.0
    # the same survey is relatively noisier at higher resolution: ~0.63 x clean std at nside 256
    rel256 = pixel_noise_std(256, deepsphere_level_to_ngal(2.0)) / clean_pixel_std(256)
    assert 0.5 < rel256 < 0.75
    with pytest.raises(ValueError, match="DeepSphere noise level"):
        deepsphere_level_to_ngal(-1)
