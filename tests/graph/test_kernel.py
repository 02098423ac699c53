import numpy as np
import pytest

from deepsphere_gen.graph import KERNEL_WIDTHS_NSIDE32, default_sigma, kernel_width, knn_distances
from deepsphere_gen.sampling import MAX_NSIDE, DriscollHealySampling, GaussLegendreSampling, HealpixSampling

from ._points import distinct_pixels

# DeepSphere v2 (Defferrard et al. 2020) optimum at nside 32, halved per doubling of nside
TABLE_32 = {8: 0.02500, 20: 0.03185, 40: 0.042432, 60: 0.051720}
TABLE_64 = {8: 0.012500, 20: 0.015925, 40: 0.021216, 60: 0.025860}


@pytest.mark.parametrize("k", [8, 20, 40, 60])
def test_table_nside32_and_64(k):
    assert kernel_width(32, k) == pytest.approx(TABLE_32[k], rel=1e-12)
    assert kernel_width(64, k) == pytest.approx(TABLE_64[k], rel=1e-12)
    assert KERNEL_WIDTHS_NSIDE32[k] == TABLE_32[k]


@pytest.mark.parametrize("k", [8, 20, 40, 60, 5, 30])
def test_halves_with_each_doubling_for_every_nside(k):
    nsides = [2**p for p in range(int(np.log2(MAX_NSIDE)) + 1)]
    widths = np.array([kernel_width(n, k) for n in nsides])
    np.testing.assert_allclose(widths[:-1] / widths[1:], 2.0, rtol=1e-12)
    assert kernel_width(1, k) == pytest.approx(32 * kernel_width(32, k))
    assert kernel_width(1024, k) == pytest.approx(kernel_width(32, k) / 32)


def test_interpolation_in_k_is_continuous_and_increasing():
    ks = np.arange(1, 200)
    s = np.array([kernel_width(32, int(k)) for k in ks])
    assert np.all(np.diff(s) > 0)
    # sigma^2 is piecewise linear in k: midpoints are the averages of the tabulated ends
    assert kernel_width(32, 14) ** 2 == pytest.approx((TABLE_32[8] ** 2 + TABLE_32[20] ** 2) / 2)
    assert kernel_width(32, 50) ** 2 == pytest.approx((TABLE_32[40] ** 2 + TABLE_32[60] ** 2) / 2)
    for k in TABLE_32:  # continuous at the table
        assert kernel_width(32, k + 1) ** 2 - kernel_width(32, k) ** 2 < 5e-5
        assert kernel_width(32, k) ** 2 - kernel_width(32, k - 1) ** 2 < 5e-5


@pytest.mark.parametrize("nside", [0, 3, 48, 2 * MAX_NSIDE, 1.5, "32"])
def test_bad_nside(nside):
    with pytest.raises(ValueError, match="nside"):
        kernel_width(nside, 20)


@pytest.mark.parametrize("k", [0, -3, 2.5, None])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k"):
        kernel_width(32, k)


def test_default_sigma_healpix_full_and_partial():
    assert default_sigma(HealpixSampling(64), 20) == kernel_width(64, 20)
    assert default_sigma(HealpixSampling.base_patch(64, 1, 5), 40) == kernel_width(64, 40)


def test_default_sigma_equiangular_scales_with_neighbour_distance():
    for cls in (DriscollHealySampling, GaussLegendreSampling):
        s1, s2 = cls(16), cls(32)
        ratio = default_sigma(s1, 20) / default_sigma(s2, 20)
        _, d1 = knn_distances(s1.xyz[distinct_pixels(s1)], 20)
        _, d2 = knn_distances(s2.xyz[distinct_pixels(s2)], 20)
        assert ratio == pytest.approx(np.sqrt(d1).mean() / np.sqrt(d2).mean(), rel=1e-12)
        assert 1.8 < ratio < 2.2  # halves with each doubling of the resolution, as on HEALPix
    # a HEALPix-like point density gets a HEALPix-like width
    dh = DriscollHealySampling(32)  # 4096 points, about HEALPix nside 18
    assert 0.5 < default_sigma(dh, 20) / (kernel_width(16, 20) * 16 / np.sqrt(4096 / 12)) < 2
