"""Classical baselines: linear SVMs on log power spectra and on pixel histograms."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.experiments.massmaps.baselines import HistogramSVM, PowerSpectrumSVM
from deepsphere_gen.datasets import MassMapConfig, MassMapDataset, builtin_footprint, generate_massmaps

NSIDE = 16


def _gaussian_maps(n, amplitude, slope, seed):
    ell = np.arange(3 * NSIDE)
    cl = np.where(ell >= 2, amplitude * (ell + 1.0) ** slope, 0.0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        np.random.seed(int(rng.integers(2**31)))
        out.append(hp.reorder(hp.synfast(cl, NSIDE, lmax=3 * NSIDE - 1, new=True), r2n=True))
    return np.array(out)


def test_psd_spectra_equal_anafast_on_full_sky_and_correct_fsky():
    m = _gaussian_maps(1, 1.0, -1.0, 0)
    psd = PowerSpectrumSVM(NSIDE)
    cl = psd.spectra(m, np.arange(12 * NSIDE**2))
    ref = hp.anafast(hp.reorder(m[0] - m[0].mean(), n2r=True), lmax=3 * NSIDE - 1, iter=0,
                     use_pixel_weights=False)
    np.testing.assert_allclose(cl[0], ref, rtol=1e-10)
    # half sky (6 base pixels): pseudo-C_l / f_sky is unbiased on average at intermediate l
    maps = _gaussian_maps(8, 1.0, -1.0, 1)
    half = np.arange(6 * NSIDE**2)
    pcl = psd.spectra(maps[:, half], half).mean(axis=0)
    full = psd.spectra(maps, np.arange(12 * NSIDE**2)).mean(axis=0)
    assert pcl[10:40].sum() / full[10:40].sum() == pytest.approx(1.0, abs=0.1)


def test_psd_svm_separates_spectral_slopes_on_patches():
    level_pix = 12 * NSIDE**2 // 12
    a, b = _gaussian_maps(10, 1.0, -1.0, 2), _gaussian_maps(10, 1.0, -1.6, 3)
    x = np.concatenate([a.reshape(-1, level_pix), b.reshape(-1, level_pix)])  # 12 patches per map
    idx = np.tile(np.arange(12 * NSIDE**2).reshape(12, level_pix), (20, 1))
    y = np.repeat([0, 1], 120)
    train = np.r_[0:96, 120:216]
    test = np.setdiff1d(np.arange(240), train)
    model = PowerSpectrumSVM(NSIDE, n_bins=8).fit(x[train], idx[train], y[train])
    assert model.score(x[test], idx[test], y[test]) > 0.9


def test_histogram_svm_separates_skewed_from_gaussian_with_same_variance():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((80, 500))
    ln = np.expm1(0.8 * rng.standard_normal((80, 500)))
    ln = (ln - ln.mean()) / ln.std()  # same mean and variance, different shape
    x, y = np.concatenate([g, ln]), np.repeat([0, 1], 80)
    idx = np.arange(500)
    model = HistogramSVM(n_bins=20).fit(x[::2], idx, y[::2])
    assert model.score(x[1::2], idx, y[1::2]) > 0.95
    assert model.edges.size == 21 and model.edges[0] < -1.5 and model.edges[-1] > 3
    f = model.features(x[:3], idx)
    np.testing.assert_allclose(f.sum(axis=1), 1.0)


def test_baselines_on_masked_mass_map_patches(tmp_path):
    path = generate_massmaps(MassMapConfig(nside=32, n_maps=4, seed=1), tmp_path, progress=False, verbose=False)
    mask = builtin_footprint(32)
    train = MassMapDataset(path, footprint=mask, noise=0.5, split="train", test_fraction=0.5)
    test = MassMapDataset(path, footprint=mask, noise=0.5, split="test", test_fraction=0.5)
    (xs, idx, ys), (xt, idt, yt) = train.arrays(), test.arrays()
    assert len(ys) == 4 and len(yt) == 4 and idx.shape == xs.shape  # footprint pixels only, with their indices
    assert idx.shape[1] == int(mask.sum()) and np.all(mask[idx])
    psd, hist = PowerSpectrumSVM(32, lmin=8, n_bins=6), HistogramSVM()
    for model in (psd, hist):  # the masked samples go through fit and predict (4 maps: no accuracy to expect)
        assert model.fit(xs, idx, ys).predict(xt, idt).shape == (4,)
    f = psd.features(xt, idt)
    assert f.shape == (4, 6) and np.all(np.isfinite(f))
    np.testing.assert_allclose(hist.features(xt, idt).sum(axis=1), 1.0)  # every footprint pixel in one bin


def test_baseline_errors():
    idx = np.arange(10)
    with pytest.raises(ValueError, match="fit before"):
        HistogramSVM().predict(np.zeros((2, 10)), idx)
    with pytest.raises(ValueError, match="single class"):
        HistogramSVM().fit(np.random.rand(4, 10), idx, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="UNSEEN"):
        HistogramSVM().fit(np.full((2, 10), -1.6375e30), idx, [0, 1])
    with pytest.raises(ValueError, match="indices shape"):
        PowerSpectrumSVM(NSIDE).spectra(np.zeros((2, 10)), np.arange(11))
    with pytest.raises(ValueError, match="outside"):
        PowerSpectrumSVM(NSIDE).spectra(np.zeros((1, 10)), np.arange(10) + 12 * NSIDE**2)
    with pytest.raises(ValueError, match="n_bins"):
        PowerSpectrumSVM(NSIDE, n_bins=1000)
    with pytest.raises(ValueError, match="C must be positive"):
        HistogramSVM(C=0)


def test_feature_svm_chooses_c_on_the_validation_set():
    from deepsphere_gen.experiments.massmaps.baselines import FeatureSVM

    rng = np.random.default_rng(0)
    # one informative feature among 200 noise features, few training samples: strong
    # regularisation generalises, weak regularisation overfits the noise features
    def data(n):
        y = rng.integers(0, 2, n)
        X = rng.standard_normal((n, 201))
        X[:, 0] += 1.5 * (2 * y - 1)
        return X, y
    Xtr, ytr = data(60)
    Xva, yva = data(400)
    Xte, yte = data(400)
    Cs = (1e-4, 1e-2, 1.0, 1e3)
    clf = FeatureSVM(Cs=Cs).fit(Xtr, ytr, Xva, yva)
    single = [FeatureSVM(Cs=(C,)).fit(Xtr, ytr).score(Xva, yva) for C in Cs]
    assert clf.val_accuracy == max(single) and clf.C == Cs[int(np.argmax(single))]
    assert clf.score(Xte, yte) > 0.6
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 201), np.nan))
    with pytest.raises(ValueError, match="single class"):
        FeatureSVM().fit(Xtr, np.zeros(60, dtype=int))


def test_feature_svm_flags_a_chosen_c_at_the_edge_of_its_grid():
    """C_at_edge: True where the chosen C is the grid's smallest or largest value (a validation tie goes to the
    smallest), False for an interior C and for a grid of one C, None before fitting."""
    from deepsphere_gen.experiments.massmaps.baselines import FeatureSVM

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 40)
    X = rng.standard_normal((80, 3)) + 10.0 * y[:, None]  # separable by far: every C scores 1.0
    Cs = (1.0, 0.01, 0.1)  # unsorted on purpose: the edges are min and max, not first and last
    assert FeatureSVM(Cs=Cs).C_at_edge is None
    tie = FeatureSVM(Cs=Cs).fit(X, y, X, y)
    assert tie.val_accuracy == 1.0 and tie.C == 1.0 and tie.C_at_edge  # first best on the grid's order
    assert not FeatureSVM(Cs=(1.0,)).fit(X, y, X, y).C_at_edge

    middle = FeatureSVM(Cs=(0.01, 0.1, 1.0))
    middle.C = 0.1  # as fit leaves it where the validation accuracy peaks at the middle C
    assert middle.C_at_edge is False


def test_c_edge_note_counts_the_fits_at_an_edge_per_method():
    from deepsphere_gen.experiments.massmaps.baselines import c_edge_note

    grid = [0.01, 0.1, 1.0, 10.0]
    recs = [{"method": m, "C": C, "C_grid": grid, "C_at_edge": C in (0.01, 10.0)}
            for m, C in (("psd_svm", 0.01), ("psd_svm", 0.01), ("strong_svm", 0.1), ("strong_svm", 10.0))]
    assert c_edge_note(recs) == (
        "\n(SVM C at the edge of its grid {0.01, 0.1, 1, 10} in 3 of 4 baseline fits (psd_svm 2/2, strong_svm 1/2; "
        "2 at the smallest C, which also takes validation ties): a wider grid may choose another C (README: Methods); "
        "JSON: C, C_grid, C_at_edge)")
    assert c_edge_note(recs[2:3]) == ""
    # network records and records written before the flag existed carry no C_at_edge: no note
    assert c_edge_note([{"method": "fcn", "accuracy": 1.0}, {"method": "psd_svm", "C": 0.01}]) == ""


def test_massmaps_records_and_table_flag_c_at_the_edge(tmp_path, capsys):
    """The baselines' JSON records carry C_grid (the default grid, unchanged) and C_at_edge; the printed
    table gets the footnote exactly where some chosen C is at an edge."""
    import json

    from deepsphere_gen.cli import main

    out = tmp_path / "b.json"
    argv = ["massmaps", "--nside", "8", "--n-maps", "8", "--sky-fractions", "1", "1/12", "--relative-noise", "0", "1",
            "--methods", "psd_svm", "hist_svm", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"),
            "--workers", "1", "--no-plots", "--no-progress", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    records = json.loads(out.read_text())["records"]
    assert len(records) == 2 * 2 * 2
    for r in records:
        assert r["C_grid"] == [0.01, 0.1, 1.0, 10.0] and r["C"] in r["C_grid"]
        assert r["C_at_edge"] is (r["C"] in (0.01, 10.0))
    edge = sum(r["C_at_edge"] for r in records)
    assert edge and f"SVM C at the edge of its grid {{0.01, 0.1, 1, 10}} in {edge} of 8 baseline fits (" in text
