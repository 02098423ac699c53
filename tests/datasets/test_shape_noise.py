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
