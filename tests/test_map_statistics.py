"""Out-of-distribution statistics of map samples (experiments.massmaps.map_statistics) and run fingerprints."""
from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from deepsphere_gen._fingerprint import differing_fields, field_value, fingerprint
from deepsphere_gen.experiments.massmaps.map_statistics import (STATISTICS, check_inputs, sample_statistics,
                                                                 training_distribution)


def test_small_scale_fraction_ground_truth():
    rng = np.random.default_rng(0)
    nside = 32
    white = rng.standard_normal((4, 12 * nside**2))
    # iid pixels: E[within-group sum of squares] / E[total] = 3/4
    np.testing.assert_allclose(sample_statistics(white)["small_scale"], 0.75, atol=0.01)
    # a map constant on every parent pixel (healpy's ud_grade from nside / 2): no power inside the groups
    coarse = hp.ud_grade(rng.standard_normal(12 * (nside // 2) ** 2), nside, order_in="NESTED", order_out="NESTED")
    assert sample_statistics(coarse[None])["small_scale"][0] == pytest.approx(0.0, abs=1e-12)
    # a smooth healpy map (steep spectrum) lies in between, far from white
    m = hp.reorder(hp.synfast(1.0 / (np.arange(3 * nside) + 1.0) ** 3, nside), r2n=True)
    assert 0.0 < sample_statistics(m[None])["small_scale"][0] < 0.2
    stats = sample_statistics(3 * white + 5)
    np.testing.assert_allclose(stats["log_std"], np.log(3 * white.std(axis=1)))
    np.testing.assert_allclose(stats["mean"], 3 * white.mean(axis=1) + 5)


def test_sibling_groups_of_a_footprint():
    idx = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13])  # only groups 1 (4..7) and 2 (8..11) are complete
    vals = np.where((idx >= 4) & (idx < 12), idx % 4, 1.5)[None]  # incomplete groups at the mean value
    assert sample_statistics(vals, idx)["small_scale"][0] == pytest.approx(1.0)  # all variance inside groups
    vals = np.where((idx >= 4) & (idx < 12), idx // 4, 1.5)[None]  # constant on each complete group
    assert sample_statistics(vals, idx)["small_scale"][0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="complete group of 4"):
        sample_statistics(np.ones((1, 3)), np.array([0, 1, 2]))


def test_check_inputs_flags_amplitude_noise_and_offset():
    rng = np.random.default_rng(1)
    nside = 16

    def smooth():
        return hp.reorder(hp.synfast(1.0 / (np.arange(3 * nside) + 1.0) ** 2, nside), r2n=True)

    np.random.seed(0)  # healpy's synfast draws from numpy's global generator
    train = [smooth() for _ in range(12)]
    items = [(m[:, None], 0, np.arange(m.size)) for m in train]
    dist = training_distribution(items)
    assert dist["maps"] == 12 and dist["samples_per_map"] == 1
    new = smooth()
    assert check_inputs(new[None], None, dist) == []
    assert any("pixel std" in s for s in check_inputs(1000 * new[None], None, dist))
    assert any("small-scale" in s for s in check_inputs(new.std() * rng.standard_normal((1, new.size)), None, dist))
    assert any("pixel mean" in s for s in check_inputs(new[None] + 3 * new.std(), None, dist))
    # per map: the median over a map's patches is compared
    patches = [(m.reshape(12, -1)[k][:, None], 0, np.arange(nside**2)) for m in train for k in range(12)]
    per = training_distribution(patches, per_map=12)
    assert per["maps"] == 12 and check_inputs(new.reshape(12, -1), None, per) == []


def test_fingerprint_is_order_free_and_names_differences():
    a = {"data": {"nside": 8, "n_maps": 4}, "train": {"epochs": 2, "lr": 0.1}}
    b = {"train": {"lr": 0.1, "epochs": 2}, "data": {"n_maps": 4, "nside": 8}}
    assert fingerprint(a) == fingerprint(b) and len(fingerprint(a)) == 12
    c = {"data": {"nside": 16, "n_maps": 4}, "train": {"epochs": 3, "lr": 0.1}, "extra": 1}
    assert fingerprint(c) != fingerprint(a)
    assert differing_fields(a, c) == ["data.nside", "extra", "train.epochs"]
    assert [field_value(a, n) for n in ("data.nside", "extra", "train.epochs")] == ["8", "missing", "2"]
    assert field_value({"g": list(range(100))}, "g", width=12) == "[0, 1, 2,..."  # cut to the width
    assert fingerprint({"t": (1, 2)}) == fingerprint({"t": [1, 2]})  # tuples and lists as JSON


def test_skewness_is_scipys_and_flags_a_flipped_map():
    """The skew statistic is scipy.stats.skew (biased, per sample); -x of log-normal samples lies outside."""
    from scipy.stats import skew

    from deepsphere_gen.experiments.massmaps.map_statistics import check_inputs, sample_statistics, training_distribution

    rng = np.random.default_rng(3)
    x = np.exp(0.5 * rng.standard_normal((20, 12 * 16**2))) - np.exp(0.125)  # log-normal, skewed, mean ~0
    np.testing.assert_allclose(sample_statistics(x)["skew"], skew(x, axis=1), rtol=1e-10)
    dist = training_distribution([(row[:, None], 0) for row in x[:16]])
    assert check_inputs(x[16:17], None, dist) == []
    (msg,) = check_inputs(-x[16:17], None, dist)
    assert msg.startswith("pixel skewness -")
    del dist["skew"]  # a checkpoint written before the statistic
    assert check_inputs(-x[16:17], None, dist) == []


def test_an_input_of_fewer_patches_is_compared_with_single_patches():
    """A cut-sky map covering one patch was compared with the range of whole-map medians (over 12 patches),
    which single patches of new maps of the same kind leave often; training_distribution stores the range
    of the single samples too (their own statistics: ground truth sample_statistics), and check_inputs uses it
    for inputs of fewer samples than a map, padded by the tolerance only; white noise is still flagged."""
    nside = 16
    np.random.seed(3)  # healpy's synfast draws from numpy's global generator
    cl = 1.0 / (np.arange(3 * nside) + 1.0) ** 2
    train = [hp.reorder(hp.synfast(cl, nside), r2n=True) for _ in range(12)]
    patches = [(m.reshape(12, -1)[k][:, None], 0, np.arange(nside**2)) for m in train for k in range(12)]
    dist = training_distribution(patches, per_map=12)
    single = sample_statistics(np.stack([p[0][:, 0] for p in patches]), np.arange(nside**2), dist["ref_std"])
    for name in STATISTICS:
        assert dist["per_sample"][name]["min"] == pytest.approx(single[name].min())
        assert dist["per_sample"][name]["max"] == pytest.approx(single[name].max())
    assert "per_sample" not in training_distribution([(m[:, None], 0, np.arange(m.size)) for m in train])
    new = [hp.reorder(hp.synfast(cl, nside), r2n=True).reshape(12, -1) for _ in range(6)]
    older = {k: v for k, v in dist.items() if k != "per_sample"}  # a checkpoint written before per_sample
    flagged = lambda d: sum(bool(check_inputs(m[k:k + 1], None, d)) for m in new for k in range(12))  # noqa: E731
    assert flagged(dist) <= 2 < flagged(older)
    assert all(check_inputs(m, None, dist) == [] for m in new)  # whole maps: the whole-map ranges, as before
    rng = np.random.default_rng(0)
    white = [m[k].std() * rng.standard_normal((1, nside**2)) for m in new for k in range(12)]
    got = [check_inputs(w, None, dist) for w in white]
    assert sum("small-scale variance fraction" in " ".join(g) for g in got) >= 0.6 * len(white)
    assert any("trained range of single patches" in " ".join(g) for g in got)
