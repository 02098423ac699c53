"""``deepsphere-gen demo``: runs end to end on tiny settings; its data have the stated spectra."""
import re

import healpy as hp
import numpy as np
import pytest
from scipy.stats import binomtest

from deepsphere_gen.cli import main
from deepsphere_gen.commands.demo import SLOPES, generate_maps


def test_demo_runs_and_prints_accuracy(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    rc = main(["demo", "--quick", "--nside", "4", "--epochs", "1", "--n-train", "16", "--n-test", "8",
               "--K", "2", "--k", "8", "--seed", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "demo epoch 1/1: train loss" in out and "test accuracy:" in out
    acc = float(out.split("test accuracy:")[1].split("%")[0])
    assert 0 <= acc <= 100 and abs(acc * 8 / 100 - round(acc * 8 / 100)) < 0.01  # k of the 8 test maps
    # the interval is scipy's Wilson interval of k of the 8 test maps
    k = round(acc * 8 / 100)
    m = re.search(rf"\({k}/8 test maps; 95 % Wilson interval ([0-9.]+)-([0-9.]+) %; chance 50.0 %\)", out)
    ci = binomtest(k, 8).proportion_ci(confidence_level=0.95, method="wilson")
    assert m and float(m[1]) == round(100 * ci.low, 1) and float(m[2]) == round(100 * ci.high, 1), out


def test_demo_quick_learns(capsys, monkeypatch, tmp_path):
    """The --quick preset (256 + 256 maps at nside 8, 5 epochs, ~3 s) tells the two slopes apart: a network at
    chance (a broken loop, BatchNorm statistics or data) fails here."""
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("test accuracy:")[1].split("%")[0]) >= 75.0


def test_demo_bad_device_is_one_line(capsys):
    assert main(["demo", "--quick", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "deepsphere-gen demo: error: unknown device 'gpu'; valid devices here: cpu" in err
    assert len(err.strip().splitlines()) == 1


def test_generated_maps_follow_their_power_law():
    nside, rng = 8, np.random.default_rng(0)
    ratios = []
    for alpha in SLOPES:
        maps = generate_maps(24, nside, alpha, 0.0, rng)
        assert maps.shape == (24, 12 * nside**2) and maps.dtype == np.float32
        np.testing.assert_allclose(maps.std(axis=1), 1.0, rtol=1e-5)
        cl = np.mean([hp.anafast(hp.reorder(m.astype(np.float64), n2r=True), lmax=16, use_weights=False, iter=0)
                      for m in maps], axis=0)
        # log-log slope between l = 2 and l = 16 recovers -alpha (NESTED order is right, else white)
        ell = np.arange(2, 17)
        slope = np.polyfit(np.log(ell + 1), np.log(cl[2:17]), 1)[0]
        assert abs(slope + alpha) < 0.25
        ratios.append(cl[16] / cl[2])
    assert ratios[0] > ratios[1]  # the shallower class carries relatively more small-scale power


@pytest.mark.parametrize("option, value, message", [
    ("--nside", "7", "--nside: nside must be a power of 2 between 1 and 8192, got 7"), ("--nside", "-8", "--nside: nside must be a power of 2"),
    ("--nside", "0", "--nside: nside must be a power of 2"), ("--epochs", "0", "--epochs must be a positive integer"),
    ("--batch-size", "0", "--batch-size must be a positive integer"), ("--n-train", "1", "--n-train must be an even number >= 2"),
    ("--n-train", "0", "--n-train must be an even number >= 2"), ("--n-test", "0", "--n-test must be an even number >= 2"),
    # odd: one class one map larger, while the help said "balanced classes" and the result line "chance 50.0 %"
    ("--n-test", "3", "--n-test must be an even number >= 2 (half the maps per class), got 3"),
    ("--n-train", "7", "--n-train must be an even number >= 2 (half the maps per class), got 7"),
    ("--lr", "-1", "--lr must be a positive number"), ("--lr", "0", "--lr must be a positive number"),
    ("--K", "0", "--K must be a positive integer"), ("--k", "0", "--k must be a positive integer"), ("--noise", "nan", "--noise must be"),
    ("--noise", "-1", "--noise must be a number >= 0"), ("--seed", "-1", "--seed must be >= 0"),
    ("--k", "192", "--k 192 graph neighbours needs inputs of more than 192 pixels (nside 4: 192 pixels): use --k <= 191"),
])
def test_demo_bad_values_are_one_line_errors(capsys, option, value, message):
    """Each bad value is refused before any work (exit 2, one line naming the option); 0 is not "not given"."""
    args = {"--nside": "4", "--epochs": "1", "--n-train": "8", "--n-test": "4", option: value}  # a valid run is ~1 s
    assert main(["demo", "--quick", *(word for pair in args.items() for word in pair)]) == 2
    err = capsys.readouterr().err
    assert f"deepsphere-gen demo: error: {message}" in err and len(err.strip().splitlines()) == 1


def test_demo_help_shows_defaults_and_distinct_metavars(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    entries = [" ".join(e.split()) for e in re.split(r"\n  (?=-)", capsys.readouterr().out)]
    text = {e.split()[0] + " " + e.split()[1]: e for e in entries if e.startswith("--")}
    for option, default in (("--nside NSIDE", "default 32; 8 with --quick"), ("--n-train N", "default 1536; 256"),
                            ("--n-test N", "default 512; 256"), ("--batch-size N", "default 16"),
                            ("--K ORDERS", "default 5"), ("--k NEIGHBOURS", "default 20"), ("--seed SEED", "default 0"),
                            ("--lr LR", "default 0.003; 0.005")):
        assert default in text[option], text.get(option, sorted(text))


def test_demo_at_nside_1_caps_the_default_k(capsys, monkeypatch, tmp_path):
    """nside 1 (12 pixels) with the default --k 20 runs as it did at 870b60e: k capped at 11 (a complete graph,
    said in a note); a given --k 12 there, or --k 48 at nside 2, is refused before any work (was: a traceback)."""
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    small = ["demo", "--quick", "--epochs", "1", "--n-train", "8", "--n-test", "4"]
    assert main([*small, "--nside", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: nside 1 has 12 pixels: the default --k 20 is capped at 11 there (a complete graph)" in out
    assert "test accuracy:" in out
    for nside, k in (("1", "12"), ("2", "48")):
        assert main([*small, "--nside", nside, "--k", k]) == 2
        err = capsys.readouterr().err
        assert f"deepsphere-gen demo: error: --k {k} graph neighbours needs inputs of more than {k} pixels" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main([*small, "--nside", "1", "--k", "11"]) == 0
    assert "note:" not in capsys.readouterr().out
