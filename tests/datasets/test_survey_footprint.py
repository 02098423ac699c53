"""The built-in stage-III footprint and its exact rotated copies."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets import band_footprint
from deepsphere_gen.datasets.survey_footprint import (
    FOOTPRINT_HOLES,
    footprint_area_deg2,
    footprint_copies,
    stage3_footprint,
)


@pytest.mark.parametrize("nside", [64, 128])
def test_stage3_footprint_is_stage3_sized_with_holes(nside):
    mask = stage3_footprint(nside)
    assert 950 < footprint_area_deg2(mask) < 1050
    # every hole centre is masked while the footprint surrounds it (a ring 1 deg outside is mostly kept)
    for lon, lat, radius in FOOTPRINT_HOLES:
        assert not mask[hp.ang2pix(nside, lon, lat, nest=True, lonlat=True)]
        ring = [hp.ang2pix(nside, lon + (radius + 1.0) * np.cos(t), lat + (radius + 1.0) * np.sin(t), nest=True,
                           lonlat=True) for t in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
        assert mask[ring].mean() > 0.6
    # ragged edge: the boundary is no ellipse; its latitude extent varies along longitude
    lon, lat = hp.pix2ang(nside, np.flatnonzero(mask), nest=True, lonlat=True)
    lon = (lon + 180) % 360 - 180
    assert np.ptp(lat) < 35 and np.ptp(lon) < 50


def test_stage3_footprint_rejects_coarse_nside():
    with pytest.raises(ValueError, match="nside >= 32"):
        stage3_footprint(16)


def test_copies_are_exact_disjoint_rotations():
    nside = 64
    copies = footprint_copies(stage3_footprint(nside))
    assert copies.shape[0] == 4
    assert len(np.unique(copies)) == copies.size  # disjoint
    v0 = np.stack(hp.pix2vec(nside, copies[0], nest=True), -1)
    for k in range(1, 4):
        a = k * np.pi / 2
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        vk = np.stack(hp.pix2vec(nside, copies[k], nest=True), -1)
        np.testing.assert_allclose(vk, v0 @ rot.T, atol=1e-12)  # pixel i of copy k = rotated pixel i


def test_a_footprint_outside_one_equatorial_base_pixel_has_one_copy():
    mask = band_footprint(32)
    copies = footprint_copies(mask)
    assert copies.shape == (1, mask.sum())
    np.testing.assert_array_equal(copies[0], np.flatnonzero(mask))
