"""The cosmo figures and table say what they show: sample counts as maps x footprint copies, no noise named where
there is none, error bars and identity line explained, one row scale, the legend off the fiducial point, and
one spelling of sigma_8 defined in the table's footnote."""
import json
from pathlib import Path

import numpy as np
import pytest

from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
from deepsphere_gen.experiments.cosmo import CosmoExperimentConfig, format_table
from deepsphere_gen.experiments.cosmo import plots


def _preds(rng, n_cosmo=5, per=4, n_fid=8):
    theta = np.repeat(np.column_stack([rng.uniform(0.2, 0.4, n_cosmo), rng.uniform(0.6, 1.0, n_cosmo)]), per, 0)
    cov = np.tile(np.diag([1e-3, 2e-3]), (len(theta), 1, 1))
    return {"test": {"mean": theta + rng.normal(0, 0.02, theta.shape), "cov": cov, "theta": theta},
            "fiducial": {"mean": np.array([0.3, 0.8]) + rng.normal(0, 0.02, (n_fid, 2)), "cov": cov[:n_fid]}}


@pytest.mark.parametrize("ngal, sigma_e, noise", [(float("inf"), 0.26, "no noise"), (6.0, 0.0, "no noise"),
                                                  (6.0, 0.26, "shape noise 6 gal/arcmin")])
def test_figures_say_what_they_show(tmp_path, monkeypatch, ngal, sigma_e, noise):
    figs = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figs.append(fig))
    rng = np.random.default_rng(0)
    preds = {m: _preds(rng) for m in ("graph", "power_spectrum")}
    config = CosmoExperimentConfig(grid=CosmoGridConfig(nside=16, n_fiducial=2), ngal=ngal, sigma_e=sigma_e,
                                   out_dir=str(tmp_path))
    plots.plot_all({"predictions": preds}, config)
    scatter, ellipses = figs
    title = scatter._suptitle.get_text()
    assert "5 held-out cosmologies (20 samples)" in title and r"1\sigma" in title
    labels = scatter.axes[0].get_legend_handles_labels()[1]
    assert "predicted = true" in labels and any("calibrated" in t for t in labels)
    for row in (scatter.axes[:2], scatter.axes[2:]):  # one scale per row; the identity line spans it
        assert row[0].get_xlim() == row[1].get_xlim() and row[0].get_ylim() == row[1].get_ylim()
        for ax in row:
            line = next(ln for ln in ax.get_lines() if ln.get_label() == "predicted = true")
            assert tuple(line.get_xdata()) == ax.get_xlim() == ax.get_ylim()
    title = ellipses._suptitle.get_text()
    assert "2 maps x 4 footprint copies = 8 samples" in title and noise in title and "noisy" not in title
    assert all(plots.QUICK_LABEL not in f._suptitle.get_text() for f in figs)  # not a --quick run
    assert (noise == "no noise") == ("gal/arcmin" not in title)
    # the legend is the figure's, below the panels: not on the fiducial "+" in the middle of a panel
    assert all(ax.get_legend() is None for ax in ellipses.axes) and len(ellipses.legends) == 1
    box = ellipses.legends[0].get_window_extent(ellipses.canvas.get_renderer())
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in ellipses.axes)


def test_quick_figures_say_smoke_test_and_one_copy_is_singular(tmp_path, monkeypatch):
    """A --quick run's two PNGs open their titles with the smoke-test label (the table and JSON said it, the figures
    did not: a copied PNG lost the caveat); a footprint of one copy reads "1 footprint copy" (was "copies")."""
    figs = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figs.append(fig))
    rng = np.random.default_rng(0)
    preds = {"graph": _preds(rng, n_fid=4)}
    config = CosmoExperimentConfig(grid=CosmoGridConfig(nside=16, n_fiducial=4), out_dir=str(tmp_path))
    plots.plot_all({"predictions": preds}, config, quick=True)
    assert len(figs) == 2 and all(f._suptitle.get_text().startswith("--quick smoke test, no science: ") for f in figs)
    assert "(4 maps x 1 footprint copy = 4 samples)" in figs[1]._suptitle.get_text()


def test_table_spells_sigma8_once_and_defines_it():
    rec = json.loads(sorted((Path(__file__).parents[1] / "docs" / "results").glob("cosmo_*.json"))[0].read_text())
    table = format_table(rec)
    head = table.splitlines()[0]
    assert "RMSE sig8" in head and "RMSE s8" not in head
    assert "sig8 = sigma_8, S8 = sigma_8 sqrt(Omega_m / 0.3)" in table
