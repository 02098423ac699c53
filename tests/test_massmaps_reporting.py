"""95 % intervals (Wilson, map bootstrap), paired margins and the tables of the mass-map experiment."""
import numpy as np
import pytest
from scipy.stats import binomtest

from deepsphere_gen.experiments.reporting import (
    METHOD_COLORS,
    METHOD_NAMES,
    cluster_bootstrap,
    decode_correct,
    encode_correct,
    expand_runs,
    format_margins,
    format_table,
    map_interval_fields,
    map_runs,
    margin_records,
    paired_margin,
    plot_accuracy,
    plot_curves,
    save_png,
    wilson_interval,
)


@pytest.mark.parametrize("k, n", [(0, 10), (7, 10), (10, 10), (431, 500), (3315, 3840)])
def test_wilson_interval_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)
    assert lo <= k / n <= hi


def _ci(fields):
    """The (lo, hi) interval of :func:`map_interval_fields`, or None."""
    ci = fields["ci95_maps"]
    return None if ci is None else tuple(ci)


def test_wilson_interval_errors():
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="need 0 <= k <= n"):
            wilson_interval(k, n)


def test_table_shows_intervals_and_readable_names():
    recs = [{"method": m, "sky": "1/48", "nside": 256, "noise": "ngal22.47", "noise_label": "n_gal 22.5/arcmin^2",
             "n_train": 100, "n_test": 960, "accuracy": a, "ci95": list(wilson_interval(round(a * 960), 960))}
            for m, a in (("hist_svm", 0.8), ("fcn", 0.9))]
    text = format_table(recs, ("fcn", "hist_svm"))
    head = text.splitlines()[0].split()
    assert head[-2:] == ["fcn", "hist_svm"]
    assert "90.0 [88,92]" in text and "80.0 [77,82]" in text and "1/48 @256" in text
    assert "Wilson" in text and "histogram + SVM" in text and "approximate" in text


# ------------------------------------------------------------------- map-level bootstrap, margins

def _per_map_samples(rng, maps_per_class, patches, rates):
    """Samples of 2 classes x ``maps_per_class`` maps (map numbers 10.. in both classes) x ``patches``:
    (classes, maps, correct (k, n)) with sample-level Bernoulli(rate of its map) per method."""
    classes = np.repeat([0, 1], maps_per_class * patches)
    maps = np.tile(np.repeat(np.arange(10, 10 + maps_per_class), patches), 2)
    correct = np.stack([rng.random(len(maps)) < np.repeat(r, patches) for r in rates])
    return classes, maps, correct


def test_identical_predictions_give_zero_margin_and_no_interval():
    """No spread in the paired bootstrap: no interval and a note (was: [0, 0], a width no test set supports)."""
    rng = np.random.default_rng(0)
    classes, maps, (a,) = _per_map_samples(rng, 12, 48, [rng.uniform(0.5, 1, 24)])
    m = paired_margin(a, a.copy(), maps, classes)
    assert m["margin"] == 0.0 and m["ci95"] is None and "no spread" in m["note"] and "one_sided" not in m
    assert (m["n_test"], m["n_test_maps"], m["resamples"]) == (1152, 24, 2000)


def test_non_degenerate_intervals_are_those_of_the_recorded_runs():
    """Where the bootstrap has spread, the intervals are the percentiles as before, to the bit (values of the code
    that wrote benchmarks/results/massmaps_*.json, on a synthetic set of 2 x 6 maps x 5 patches)."""
    classes, maps = np.repeat([0, 1], 30), np.tile(np.repeat(np.arange(10, 16), 5), 2)
    a = np.array([int(v) for v in "101110101111111101101111111011111111110110101111101111110101"], bool)
    b = np.array([int(v) for v in "000111110101001000111011001111101110111100110110110010100110"], bool)
    assert map_interval_fields(a, maps, classes) == {"ci95_maps": [0.7166666666666667, 0.9]}
    m = paired_margin(a, b, maps, classes)
    assert m["ci95"] == [8.333333333333337, 35.0] and "note" not in m and "one_sided" not in m


def test_perfect_test_sets_get_no_zero_width_interval():
    """24 of 24 full-sky test maps right (the default run's full sky): the map interval is Wilson's over the 24
    maps, as scipy gives it (was: [1, 1]); two perfect methods: margin undefined (was: 0 [0, 0]); a perfect
    baseline: the interval pinned at the ceiling is marked one-sided, its values as before."""
    classes, maps = np.repeat([0, 1], 12), np.tile(np.arange(12), 2)
    right = np.ones(24, bool)
    fields = map_interval_fields(right, maps, classes)
    ci = binomtest(24, 24).proportion_ci(confidence_level=0.95, method="wilson")
    assert fields["ci95_maps"] == [pytest.approx(ci.low, abs=1e-12), 1.0] and 0.86 < ci.low < 0.863
    assert "Wilson interval of 24 of 24 test maps" in fields["ci95_maps_note"]
    assert _ci(map_interval_fields(~right, maps, classes)) == (0.0, pytest.approx(1 - ci.low, abs=1e-12))
    both = paired_margin(right, right, maps, classes)
    assert both["margin"] is None and both["ci95"] is None and "margin undefined" in both["note"]
    net = right.copy()
    net[[0, 5, 13, 20]] = False
    below = paired_margin(net, right, maps, classes)
    assert below["one_sided"] == "lower" and below["ci95"][1] <= 0 and "only the lower bound" in below["note"]
    assert below["margin"] == pytest.approx(-100 * 4 / 24)
    above = paired_margin(right, net, maps, classes)
    assert above["one_sided"] == "upper" and above["ci95"][0] >= 0
    # a network answering one class: every resample gives 50 %: no map interval, said why
    half = map_interval_fields(classes == 0, maps, classes)
    assert half["ci95_maps"] is None and "50.0 %" in half["ci95_maps_note"]
    # the printed cells say so
    text = format_margins([{**both, "sky": "1", "noise": "none", "noise_label": "none", "method": "fcn",
                            "baseline": "psd_svm", "accuracy": 1.0, "baseline_accuracy": 1.0},
                           {**below, "sky": "1", "noise": "none", "noise_label": "none", "method": "fcn",
                            "baseline": "strong_svm", "accuracy": 20 / 24, "baseline_accuracy": 1.0}], ("fcn",))
    assert "undefined vs psd_svm" in text and f"{below['ci95'][1]:+.1f}]*" in text and "'*': one-sided" in text


def test_bootstrap_width_matches_the_analytic_standard_error():
    """Independent maps of equal size: the accuracy is the mean of the map means, and the stratified
    bootstrap's variance is sum_s (m_s / M)^2 var_s / m_s (plug-in variance of the map means of
    class s): the 95 % interval is 2 x 1.96 of its root, for a margin and for one accuracy."""
    rng = np.random.default_rng(1)
    m_s, patches = 80, 16
    classes, maps, (a, b) = _per_map_samples(rng, m_s, patches, rng.uniform(0.4, 1.0, (2, 2 * m_s)))
    d = (a.astype(float) - b).reshape(2, m_s, patches).mean(-1)  # (class, map) map-level differences
    se = 100 * np.sqrt(sum(d[s].var() / m_s for s in range(2)) / 4)
    res = paired_margin(a, b, maps, classes, resamples=4000, seed=3)
    assert res["margin"] == pytest.approx(100 * d.mean())
    lo, hi = res["ci95"]
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.08)
    assert lo < res["margin"] < hi
    ma = a.astype(float).reshape(2, m_s, patches).mean(-1)
    se_a = np.sqrt(sum(ma[s].var() / m_s for s in range(2)) / 4)
    lo, hi = _ci(map_interval_fields(a, maps, classes, resamples=4000, seed=3))
    assert hi - lo == pytest.approx(2 * 1.96 * se_a, rel=0.08)
    # patches of one map are correlated here (map rates spread 0.4-1): the binomial interval is too narrow
    w_lo, w_hi = wilson_interval(int(a.sum()), a.size)
    assert (w_hi - w_lo) < 0.8 * (hi - lo)


def test_resamples_keep_the_number_of_maps_per_class():
    """Always right on class 0, always wrong on class 1, equal map sizes: every replicate draws as many
    maps of each class as there are, so the accuracy is 1/2 in every one of them."""
    classes = np.repeat([0, 1], [5 * 7, 3 * 7])  # 5 maps of class 0, 3 of class 1, 7 patches each
    maps = np.concatenate([np.repeat(np.arange(5), 7), np.repeat(np.arange(3), 7)])
    acc = cluster_bootstrap(classes == 0, maps, classes, resamples=500)
    assert acc.shape == (500, 1) and np.all(acc == 5 / 8)


def test_paired_interval_is_much_narrower_when_the_methods_share_hard_samples():
    """Two methods wrong on the same hard maps (b = a with 2 % of the samples flipped): the map-to-map
    spread cancels in the paired margin, not in the difference of two separate bootstraps."""
    rng = np.random.default_rng(2)
    classes, maps, (a,) = _per_map_samples(rng, 12, 48, [rng.uniform(0.3, 1.0, 24)])
    b = a ^ (rng.random(a.size) < 0.02)
    paired = paired_margin(a, b, maps, classes)
    unpaired = 100 * (cluster_bootstrap(a, maps, classes, seed=1)[:, 0]
                      - cluster_bootstrap(b, maps, classes, seed=2)[:, 0])
    lo, hi = np.quantile(unpaired, [0.025, 0.975])
    assert paired["ci95"][1] - paired["ci95"][0] < 0.3 * (hi - lo)


def test_bootstrap_seeds_reproducible():
    rng = np.random.default_rng(4)
    classes, maps, (a, b) = _per_map_samples(rng, 12, 8, rng.uniform(0.5, 1.0, (2, 24)))
    assert paired_margin(a, b, maps, classes, seed=5) == paired_margin(a, b, maps, classes, seed=5)
    assert np.array_equal(cluster_bootstrap(a, maps, classes, seed=5), cluster_bootstrap(a, maps, classes, seed=5))
    assert not np.array_equal(cluster_bootstrap(a, maps, classes, seed=5), cluster_bootstrap(a, maps, classes, seed=6))


def test_bootstrap_errors():
    a, maps, classes = np.ones(6, bool), np.arange(6), np.zeros(6, int)
    with pytest.raises(ValueError, match="mismatched lengths"):
        paired_margin(a, a[:5], maps, classes)
    with pytest.raises(ValueError, match="mismatched lengths"):
        cluster_bootstrap(a, maps[:5], classes)
    with pytest.raises(ValueError, match="no test samples"):
        paired_margin(a[:0], a[:0], maps[:0], classes[:0])
    with pytest.raises(ValueError, match="booleans"):
        _ci(map_interval_fields(np.full(6, 2), maps, classes))
    with pytest.raises(ValueError, match="resamples"):
        _ci(map_interval_fields(a, maps, classes, resamples=0))
    with pytest.raises(ValueError, match="1-d"):
        paired_margin(a[None], a[None], maps, classes)


def test_per_sample_encodings_round_trip():
    rng = np.random.default_rng(5)
    c = rng.random(37) < 0.5
    assert np.array_equal(decode_correct(encode_correct(c)), c) and len(encode_correct(c)) == 37
    classes, maps = np.repeat([0, 0, 1, 1], [3, 2, 4, 1]), np.repeat([7, 8, 7, 9], [3, 2, 4, 1])
    runs = map_runs(classes, maps)
    assert runs == [[0, 7, 3], [0, 8, 2], [1, 7, 4], [1, 9, 1]]
    assert all(np.array_equal(u, v) for u, v in zip(expand_runs(runs), (classes, maps)))
    with pytest.raises(ValueError, match="0 and 1"):
        decode_correct("01x")


def _record(method, correct, runs, sky="1/48", noise="ngal22.47"):
    return {"method": method, "sky": sky, "noise": noise, "noise_label": "n_gal 22.5/arcmin^2",
            "accuracy": float(np.mean(correct)), "correct": encode_correct(correct), "test_maps": runs}


def test_margin_records_and_table():
    rng = np.random.default_rng(6)
    classes, maps, (fcn, psd, hist, strong) = _per_map_samples(rng, 12, 4, [np.full(24, p) for p in (.9, .6, .8, .9)])
    runs = map_runs(classes, maps)
    recs = [_record(m, c, runs)
            for m, c in (("fcn", fcn), ("psd_svm", psd), ("hist_svm", hist), ("strong_svm", strong))]
    recs.append({"method": "fcn", "sky": "1/192", "noise": "none", "accuracy": 0.7})  # older record: no samples
    out = margin_records(recs, ("fcn", "cnn"), ("psd_svm", "hist_svm", "strong_svm"))
    assert [(m["method"], m["baseline"]) for m in out] == [("fcn", b) for b in ("psd_svm", "hist_svm", "strong_svm")]
    hist_m = out[1]
    assert hist_m["margin"] == pytest.approx(100 * (fcn.mean() - hist.mean()))
    assert hist_m["n_test_maps"] == 24 and hist_m["ci95"][0] < hist_m["margin"] < hist_m["ci95"][1]
    text = format_margins(out, ("fcn",))
    assert f"{hist_m['margin']:+.1f} [{hist_m['ci95'][0]:+.1f},{hist_m['ci95'][1]:+.1f}] vs hist_svm" in text
    assert "psd_svm" not in text.splitlines()[2] and "bootstrap over test maps" in text
    assert "histogram + SVM" in text and "1/192" not in text
    # the note's G is per class and the run's own (the 'test maps' column counts both classes: 24)
    assert hist_m["n_test_maps_per_class"] == 12 and "here G = 12: 4 %" in text
    classes6, maps6, (a6, b6) = _per_map_samples(rng, 6, 4, [np.full(12, p) for p in (.9, .6)])
    six = format_margins(margin_records([_record("fcn", a6, map_runs(classes6, maps6)),
                                         _record("psd_svm", b6, map_runs(classes6, maps6))], ("fcn",), ("psd_svm",)))
    assert "here G = 6: 9 %" in six and "G per class" not in six and "counts both classes" in six
    # one baseline scored on other samples: refused, not silently paired
    recs[1]["test_maps"] = map_runs(classes[::-1], maps[::-1])
    with pytest.raises(ValueError, match="different test samples"):
        margin_records(recs, ("fcn",), ("psd_svm",))
    assert "no paired margins" in format_margins([])


def _plotted_record(method, sky="1/48", noise=0.0, acc=0.8):
    return {"method": method, "sky": sky, "noise": noise, "accuracy": acc, "ci95": (acc - 0.02, acc + 0.02),
            "history": [{"epoch": 1, "train_loss": 0.5, "val_accuracy": acc}]}


def test_a_method_keeps_its_colour_whichever_methods_a_figure_shows(tmp_path):
    """The default run's figure (six methods) and the large run's (four) draw the FCN, the PSD and
    the strong set in the same colours; before, colours followed the position among the methods shown."""
    import matplotlib.colors as mcolors

    colours = []

    def keep(fig, path):
        found = {}
        for ax in fig.axes:
            for container in ax.containers:
                found[container.get_label()] = mcolors.to_hex(container.lines[0].get_color())
            for line in ax.get_lines():
                if line.get_label() and not line.get_label().startswith("_"):
                    found[line.get_label().split(",")[0]] = mcolors.to_hex(line.get_color())
        colours.append(found)
        return save_png(fig, path)

    few = ["fcn", "psd_svm", "hist_svm", "strong_svm"]
    many = ["fcn", "harmonic", "hybrid", "psd_svm", "hist_svm", "strong_svm"]
    for methods in (few, many):
        plot_accuracy([_plotted_record(m) for m in methods], tmp_path / "acc.png", keep, methods)
    plot_curves([_plotted_record(m) for m in ("harmonic", "fcn")], tmp_path / "curves.png", keep)
    acc_few, acc_many, curves = colours
    for m in few:
        assert acc_few[METHOD_NAMES[m]] == acc_many[METHOD_NAMES[m]] == mcolors.to_hex(METHOD_COLORS[m])
    assert curves[METHOD_NAMES["fcn"]] == acc_many[METHOD_NAMES["fcn"]]
    assert curves[METHOD_NAMES["harmonic"]] == acc_many[METHOD_NAMES["harmonic"]]
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)


def test_accuracy_axis_shows_every_interval_whole(tmp_path):
    """The y axis starts at 40 % unless an interval reaches lower (a quick run's harmonic model:
    38.9 % was cut off)."""
    floors = []

    def keep(fig, path):
        floors.append(fig.axes[0].get_ylim()[0])
        return save_png(fig, path)

    low = dict(_plotted_record("harmonic", acc=0.5), ci95=(0.389, 0.61))
    plot_accuracy([_plotted_record("fcn"), low], tmp_path / "a.png", keep)
    plot_accuracy([_plotted_record("fcn")], tmp_path / "b.png", keep)
    assert floors[0] <= 38.9 and floors[1] == 40


def test_footprint_figures_show_the_footprint_and_its_area(tmp_path):
    """A footprint run: accuracy_vs_noise.png's title gives the footprint's area and f_sky (was: 'sky fraction
    footprint'); examples.png draws the footprint's maps (was: a 1/12 patch), grey outside it."""
    import healpy as hp

    from deepsphere_gen.experiments.reporting import plot_examples

    titles, xlabels = [], {}

    def keep(fig, path):
        titles.extend(ax.get_title() for ax in fig.axes)
        xlabels.update((ax.get_xlabel(), ax.get_xlim()) for ax in fig.axes)
        return save_png(fig, path)

    rec = dict(_plotted_record("fcn", sky="footprint"), sky_fraction=0.0245)
    plot_accuracy([rec], tmp_path / "a.png", keep)
    assert titles[0] == "footprint, 1011 deg$^2$ (f_sky 0.0245)"
    nside = 8
    mask = np.zeros(12 * nside**2, bool)
    mask[hp.query_disc(nside, hp.ang2vec(60, 20, lonlat=True), np.radians(25), nest=True)] = True
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, mask.size))
    classes = [{"omega_m": 0.31, "sigma8": 0.82}, {"omega_m": 0.26, "sigma8": 0.91}]
    titles.clear()
    plot_examples(maps, maps, maps + 1e6 * ~mask, classes, "noisy", nside, "footprint, 1000 deg2", tmp_path / "e.png",
                  keep, footprint=mask)  # values outside the footprint must not reach the colour scale or histogram
    assert sum("footprint, 1000 deg2" in t for t in titles) == 4 and (tmp_path / "e.png").stat().st_size > 10_000
    assert xlabels["convergence $\\kappa$ (the footprints shown)"][1] < 100  # the 1e6 outside left out


def test_one_point_panel_limits_follow_the_histograms(tmp_path):
    """examples.png's one-point panel at --quick size (1/12 patches at nside 16: 256 pixels, 1.3 decades of
    density): its log y axis runs from just below the smallest non-empty bin to a legend band of about a quarter
    of the axis above the peak, its x axis over the filled bins (was: a top at 30x the peak, half the panel empty,
    and the empty bins up to 2 vmax on x).  The bins and densities are numpy's histogram of the maps shown."""
    from deepsphere_gen.experiments.reporting import plot_examples

    rng = np.random.default_rng(0)
    patches = rng.normal(0, 1.5e-3, (2, 16, 16))
    noisy = patches + rng.normal(0, 5e-4, patches.shape)
    classes = [{"omega_m": 0.31, "sigma8": 0.82}, {"omega_m": 0.26, "sigma8": 0.91}]
    limits = {}

    def keep(fig, path):
        (ax,) = [a for a in fig.axes if a.get_title() == "one-point distribution"]
        limits.update(x=ax.get_xlim(), y=ax.get_ylim())
        return save_png(fig, path)

    plot_examples(rng.normal(0, 1e-3, (2, 12 * 16**2)), patches, noisy, classes, "noisy", 16, "1/12 patch, nside 16",
                  tmp_path / "e.png", keep)
    vmax = np.quantile(np.abs(noisy), 0.995)
    hists = [np.histogram(m, bins=np.linspace(-vmax, 2 * vmax, 80), density=True) for m in (*patches, *noisy)]
    edges = hists[0][1]
    density = np.array([h for h, _ in hists])
    lo, hi = density[density > 0].min(), density.max()
    (bottom, top), (left, right) = limits["y"], limits["x"]
    decades = np.log10(top / bottom)
    assert bottom < lo and np.log10(lo / bottom) <= 0.1 * decades  # the lowest bin just above the bottom
    assert hi < top and np.log10(top / hi) <= 0.3 * decades  # a legend band (a quarter), not half the panel
    filled = np.flatnonzero(density.max(0) > 0)
    span = edges[filled[-1] + 1] - edges[filled[0]]
    assert edges[filled[0]] - 0.1 * span <= left < edges[filled[0]] and edges[filled[-1] + 1] < right
    assert right <= edges[filled[-1] + 1] + 0.1 * span


def test_massmaps_json_is_strict_with_ngal_inf(tmp_path):
    """``--ngal inf`` (no noise) was written as the non-standard ``Infinity``; strict JSON readers refused it."""
    import json
    import math

    from deepsphere_gen.experiments.massmaps import ExperimentConfig
    from deepsphere_gen.experiments.massmaps.output import write_json

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    path = write_json(tmp_path / "r.json", [], ExperimentConfig(nside=16, ngal=(math.inf, 22.5)))
    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert doc["config"]["ngal"] == ["inf", 22.5]


def test_a_perfect_network_against_a_constant_baseline_is_not_called_identical():
    """No spread because the network is right everywhere and the baseline answers one class (50 % in every
    resample): the note said 'identical predictions'."""
    maps, classes = np.repeat(np.arange(24) % 12, 2), np.repeat(np.arange(24) // 12, 2)
    out = paired_margin(np.ones(48, bool), classes == 0, maps, classes)
    assert out["margin"] == 50.0 and out["ci95"] is None
    assert out["note"].startswith("the network is right on every test sample") and "identical" not in out["note"]
