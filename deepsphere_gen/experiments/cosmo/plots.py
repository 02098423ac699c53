"""The run's figures: predicted vs true (Omega_m, S8) on the held-out cosmologies and the mean
posterior ellipses at the fiducial.  matplotlib is imported inside the functions: only a run that
draws figures pays for it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from ...datasets.cosmo_grid import s8
from ..reporting import save_png
from .config import CosmoExperimentConfig
from .metrics import LEVELS

__all__ = ["plot_all"]

_LABELS = {"graph": "DeepSphere (maps)", "power_spectrum": "power spectrum", "handcrafted": "PS + moments/quantiles"}
_COLORS = {"graph": "C3", "power_spectrum": "C0", "handcrafted": "C2"}


def _ellipse(ax, mean, cov, level, **kw):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    r = np.sqrt(stats.chi2.ppf(level, 2) * vals)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    ax.add_patch(Ellipse(mean, 2 * r[1], 2 * r[0], angle=angle, fill=False, **kw))


#: what opens both figures' titles after a ``--quick`` run (the table and the JSON say it too): a copied PNG keeps it
QUICK_LABEL = "--quick smoke test, no science: "


def plot_all(result: dict, config: CosmoExperimentConfig, quick: bool = False) -> list[Path]:
    """predicted-vs-true (held-out cosmologies) and fiducial-ellipse PNGs in out_dir; ``quick``: a ``--quick``
    run, its titles opened by :data:`QUICK_LABEL`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds = result["predictions"]
    methods = list(preds)
    # one scale per row (shared axes) and the identity line across it
    fig, axes = plt.subplots(2, len(methods), figsize=(4 * len(methods), 7.8), squeeze=False, sharex="row",
                             sharey="row")
    span = [[np.inf, -np.inf], [np.inf, -np.inf]]
    for j, m in enumerate(methods):
        p = preds[m]["test"]
        truth = [p["theta"][:, 0], s8(p["theta"][:, 0], p["theta"][:, 1])]
        for i, name in enumerate((r"$\Omega_m$", r"$S_8$")):
            ax = axes[i, j]
            sd = np.sqrt(p["cov"][:, i, i])
            ax.errorbar(truth[i], p["mean"][:, i], yerr=sd, fmt=".", ms=3, alpha=0.4, color=_COLORS[m],
                        elinewidth=0.6, label=r"posterior mean $\pm 1\sigma$ (calibrated)")
            span[i] = [min(span[i][0], truth[i].min(), (p["mean"][:, i] - sd).min()),
                       max(span[i][1], truth[i].max(), (p["mean"][:, i] + sd).max())]
            ax.set_xlabel(f"true {name}")
            ax.set_ylabel(f"predicted {name}")
            ax.set_title(f"{_LABELS[m]}: {name}")
    for i, (lo, hi) in enumerate(span):
        pad = 0.03 * (hi - lo)
        for ax in axes[i]:
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="predicted = true")
        axes[i, 0].set_xlim(lo - pad, hi + pad)
        axes[i, 0].set_ylim(lo - pad, hi + pad)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    theta = preds[methods[0]]["test"]["theta"]
    label = QUICK_LABEL if quick else ""
    fig.suptitle(f"{label}{len(np.unique(theta, axis=0))} held-out cosmologies ({len(theta)} samples): calibrated posterior "
                 r"mean and its $1\sigma$ error bar")
    fig.tight_layout()
    paths = [out / "cosmo_predicted_vs_true.png"]
    save_png(fig, paths[0])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    fid = np.array(config.grid.fiducial)
    for m in methods:
        p = preds[m]["fiducial"]
        mean, cov = p["mean"].mean(0), p["cov"].mean(0)
        # (Omega_m, S8) -> (Omega_m, sigma_8): linearised at the mean
        jac = np.array([[1.0, 0.0], [-0.5 * mean[1] / math.sqrt(mean[0] / 0.3) / mean[0], 1 / math.sqrt(mean[0] / 0.3)]])
        planes = ((mean, cov), (np.array([mean[0], mean[1] / math.sqrt(mean[0] / 0.3)]), jac @ cov @ jac.T))
        for ax, (mu, c) in zip(axes[::-1], planes):
            for lv, ls in zip(LEVELS, ("-", "--")):
                _ellipse(ax, mu, c, lv, color=_COLORS[m], ls=ls, label=_LABELS[m] if lv == LEVELS[0] else None)
    axes[1].plot(fid[0], s8(*fid), "k+", ms=12)
    axes[0].plot(fid[0], fid[1], "k+", ms=12, label="fiducial")
    for ax, ylab in zip(axes, (r"$\sigma_8$", r"$S_8 = \sigma_8 \sqrt{\Omega_m / 0.3}$")):
        ax.set_xlabel(r"$\Omega_m$")
        ax.set_ylabel(ylab)
        ax.autoscale_view()
    axes[0].set_xlim(*config.grid.omega_m_range)
    axes[0].set_ylim(*config.grid.sigma8_range)
    axes[1].set_xlim(*config.grid.omega_m_range)
    axes[1].set_ylim(s8(fid[0], fid[1]) - 0.2, s8(fid[0], fid[1]) + 0.2)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels))  # below the panels: off the "+"
    n = len(preds[methods[0]]["fiducial"]["mean"])
    maps = config.grid.n_fiducial
    noise = ("no noise" if math.isinf(config.ngal) or config.sigma_e == 0
             else f"shape noise {config.ngal:g} gal/arcmin$^2$, $\\sigma_e$ {config.sigma_e:g}")
    copies = n // maps
    fig.suptitle(f"{label}mean posterior at the fiducial ({maps} maps x {copies} footprint "
                 f"{'copy' if copies == 1 else 'copies'} = {n} samples), "
                 f"68 % solid / 95 % dashed\n{config.grid.n_bins} bins, nside {config.grid.nside}, {noise}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    paths.append(out / "cosmo_fiducial_ellipses.png")
    save_png(fig, paths[1])
    return paths
