"""``deepsphere-gen demo``: runs end to end on tiny settings; its data have the stated spectra."""
import healpy as hp
import numpy as np

from deepsphere_gen.cli import main
from deepsphere_gen.commands.demo import SLOPES, generate_maps


def test_demo_runs_and_prints_accuracy(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path))
    rc = main(["demo", "--quick", "--nside", "4", "--epochs", "1", "--n-train", "16", "--n-test", "8",
               "--K", "2", "--k", "8", "--seed", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "demo epoch 1/1: loss" in out and "test accuracy:" in out
    acc = float(out.split("test accuracy:")[1].split("%")[0])
    assert 0 <= acc <= 100 and abs(acc * 8 / 100 - round(acc * 8 / 100)) < 0.01  # k of the 8 test maps


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
