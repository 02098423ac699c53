"""Hand-crafted mass-map statistics against analytic results for Gaussian fields and known cases."""
import numpy as np
import pytest
from scipy.special import erfc
from scipy.stats import kurtosis, skew

from deepsphere_gen.experiments.massmaps.features import (
    MIN_SIDE,
    PatchFeatures,
    minkowski_functionals,
    moments,
    peak_counts,
)


@pytest.fixture(scope="module")
def gaussian_fields():
    """Periodic 2-D Gaussian fields, Gaussian spectrum of correlation length ~4 pixels, unit std."""
    rng = np.random.default_rng(0)
    n, length = 384, 4.0
    k = np.fft.fftfreq(n) * 2 * np.pi
    kernel = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) * length**2 / 4)
    u = np.stack([np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * kernel).real for _ in range(4)])
    return u / u.std()


def test_minkowski_functionals_of_a_gaussian_field_match_the_analytic_expectation(gaussian_fields):
    u = gaussian_fields
    s0 = u.std()
    uy, ux = np.gradient(u, axis=(1, 2))
    s1 = np.sqrt((ux**2 + uy**2).mean())
    x = np.linspace(-2.0, 2.0, 17)
    mf = minkowski_functionals(u, x * s0).mean(0)
    g = np.exp(-x**2 / 2)
    v0 = 0.5 * erfc(x / np.sqrt(2))
    v1 = s1 / (8 * np.sqrt(2) * s0) * g
    v2 = s1**2 / (2 * s0**2 * (2 * np.pi) ** 1.5) * x * g
    np.testing.assert_allclose(mf[0], v0, atol=0.006)  # sample variance of 4 fields
    np.testing.assert_allclose(mf[1], v1, rtol=0.05)
    np.testing.assert_allclose(mf[2], v2, atol=0.06 * v2.max())
    # V0 is exactly the area fraction above the threshold
    assert mf[0][8] == pytest.approx(np.mean(u > 0), abs=1e-12)


def test_minkowski_functionals_see_a_skewed_field(gaussian_fields):
    """A log-normal transform (the mass maps' non-Gaussianity) changes V2 by more than the noise."""
    u = gaussian_fields
    ln = np.expm1(0.5 * u)
    ln = (ln - ln.mean()) / ln.std()
    x = np.linspace(-2.0, 2.0, 17)
    a, b = minkowski_functionals(u, x), minkowski_functionals(ln, x)
    diff = (b[:, 2] - a[:, 2]).mean(0)
    err = (b[:, 2] - a[:, 2]).std(0) / 2
    assert np.max(np.abs(diff) / (err + 1e-12)) > 5


def test_peak_counts_and_moments_known_cases():
    img = np.zeros((1, 16, 16))
    img[0, 5, 5], img[0, 10, 12], img[0, 8, 2] = 3.0, 1.0, 0.5
    counts = peak_counts(img, np.array([0.0, 0.75, 2.0, 4.0])) * 256
    np.testing.assert_array_equal(counts, [[1, 1, 1]])
    assert peak_counts(np.zeros((1, 8, 8)), np.array([-1.0, 1.0])).sum() == 0  # plateaus are no peaks
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(3, 32, 32))
    m = moments(x)
    flat = x.reshape(3, -1)
    np.testing.assert_allclose(m[:, 0], flat.mean(1))
    np.testing.assert_allclose(m[:, 1], flat.std(1))
    np.testing.assert_allclose(m[:, 2], skew(flat, axis=1))
    np.testing.assert_allclose(m[:, 3], kurtosis(flat, axis=1))


def test_patch_features_shapes_and_errors():
    rng = np.random.default_rng(2)
    values = rng.standard_normal((6, 32 * 32))
    f = PatchFeatures(nside=64, side=32, scales_pix=(0, 2), nu=np.linspace(-2, 2, 5), n_hist=10, n_psd=6)
    with pytest.raises(ValueError, match="call fit"):
        f.transform(values)
    out = f.fit(values).transform(values)
    assert {k: v.shape for k, v in out.items()} == {"psd": (6, 6), "hist": (6, 10), "moments": (6, 8),
                                                    "peaks": (6, 8), "minkowski": (6, 30)}
    assert all(np.all(np.isfinite(v)) for v in out.values())
    np.testing.assert_allclose(out["hist"].sum(1), 1.0)
    with pytest.raises(ValueError, match="unknown feature group"):
        f.transform(values, groups=("psd", "wavelets"))
    with pytest.raises(ValueError, match="equally spaced"):
        minkowski_functionals(values.reshape(6, 32, 32), np.array([0.0, 1.0, 3.0]))
    with pytest.raises(ValueError, match="too small"):
        PatchFeatures(nside=8, side=MIN_SIDE // 2)
    assert PatchFeatures(nside=8, side=MIN_SIDE).side == MIN_SIDE  # the smallest side accepted (the command's limit)


def test_dct_smoothing_is_scipy_gaussian_filter_with_reflecting_edges():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    img = rng.standard_normal((2, 32, 32))
    f = PatchFeatures(nside=64, side=32)
    # the DCT multiplies by the continuous Gaussian's transform, scipy convolves with the sampled
    # kernel: equal once the kernel is well sampled, within 0.5 % at sigma = 1 pixel
    for s, atol in ((1.0, 5e-3), (2.5, 1e-10), (4.0, 1e-10)):
        ref = gaussian_filter(img, sigma=(0, s, s), mode="reflect", truncate=12.0)
        np.testing.assert_allclose(f._smooth(img, s), ref, atol=atol)
