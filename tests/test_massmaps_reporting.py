"""95 % intervals and the accuracy table of the mass-map experiment."""
import pytest
from scipy.stats import binomtest

from deepsphere_gen.experiments.reporting import format_table, wilson_interval


@pytest.mark.parametrize("k, n", [(0, 10), (7, 10), (10, 10), (431, 500), (3315, 3840)])
def test_wilson_interval_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)
    assert lo <= k / n <= hi


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
