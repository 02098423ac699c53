"""Reporting of the mass-map experiment: 95 % intervals, the accuracy table and the figures.

Intervals: the Wilson score interval of a binomial proportion (k correct of n test samples).
It treats the test patches as independent; patches cut from one map share its large-scale
modes, so the true uncertainty is somewhat larger: the intervals are approximate (stated in
the table's footer, the JSON and the figures).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._io import atomic_write

__all__ = ["METHOD_NAMES", "wilson_interval", "align_rows", "format_table", "plot_examples", "plot_curves", "plot_accuracy", "save_png"]

#: readable method names for tables and figures
METHOD_NAMES = {
    "fcn": "DeepSphere FCN (graph CNN)",
    "cnn": "DeepSphere CNN (graph, FC head)",
    "harmonic": "harmonic CNN (Cobb et al.)",
    "hybrid": "graph/harmonic hybrid",
    "psd_svm": "power spectrum + SVM",
    "hist_svm": "histogram + SVM",
    "strong_svm": "PSD+hist+moments+peaks+MFs + SVM",
}
INTERVAL_NOTE = ("95 % Wilson intervals, binomial over test samples: approximate, since patches of one map "
                 "are correlated")


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval (lo, hi) of a proportion with ``k`` successes in ``n`` trials (95 % by default)."""
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if k == 0 else lo), (1.0 if k == n else hi)


def _order(records, key, preferred=()):
    seen = list(dict.fromkeys(r[key] for r in records))
    return [m for m in preferred if m in seen] + [m for m in seen if m not in preferred]


def align_rows(rows: list[list[str]]) -> list[str]:
    """Right-aligned text columns of ``rows`` (the first is the header, underlined by dashes)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(records: list[dict], methods_order=()) -> str:
    """Accuracy table: one row per (sky, noise), one column per method, "acc [lo, hi]" in %."""
    methods = _order(records, "method", methods_order)
    keys = list(dict.fromkeys((r["sky"], r["noise"]) for r in records))
    acc = {(r["sky"], r["noise"], r["method"]): r for r in records}
    head = ["sky", "noise", "n_train", "n_test"] + methods
    rows = [head]
    for sky, noise in keys:
        any_rec = next(r for r in records if (r["sky"], r["noise"]) == (sky, noise))
        sky_text = sky if any_rec.get("nside") is None else f"{sky} @{any_rec['nside']}"
        row = [sky_text, any_rec.get("noise_label", str(noise)), str(any_rec["n_train"]), str(any_rec["n_test"])]
        for m in methods:
            r = acc.get((sky, noise, m))
            if r is None:
                row.append("-")
            else:
                lo, hi = r.get("ci95", (math.nan, math.nan))
                row.append(f"{100 * r['accuracy']:.1f} [{100 * lo:.0f},{100 * hi:.0f}]")
        rows.append(row)
    lines = align_rows(rows)
    legend = "; ".join(f"{m} = {METHOD_NAMES.get(m, m)}" for m in methods)
    return "\n".join(lines) + (f"\n(accuracy in % on the test maps [{INTERVAL_NOTE}]; '-': not run for this sky "
                               f"setting; sky @N: samples at HEALPix nside N)\n({legend})")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path) -> Path:
    """Write ``fig`` as a PNG (110 dpi, tight box) atomically to ``path`` and close it."""
    out = atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, bbox_inches="tight", format="png"))
    _plt().close(fig)
    return out


def plot_examples(full_sky: np.ndarray, patches: np.ndarray, noisy: np.ndarray, classes: list[dict],
                  noise_label: str, full_nside: int, patch_text: str, out, savefig) -> Path:
    """Example maps of both cosmologies on ONE convergence colour scale: the full sky (averaged
    down to ``full_nside``), one patch without and with noise (square images, nested face
    coordinates), and the one-point distributions of the patches.

    full_sky: (2, npix) NESTED; patches, noisy: (2, side, side); classes: metadata dicts with
    omega_m and sigma8; patch_text: e.g. "1/48 patch, nside 256".
    """
    import healpy as hp

    plt = _plt()
    names = [f"$\\Omega_m$ = {c['omega_m']:g}, $\\sigma_8$ = {c['sigma8']:g}" for c in classes]
    vmax = float(np.quantile(np.abs(noisy), 0.995))
    fig = plt.figure(figsize=(15, 7))
    kw = dict(vmin=-vmax, vmax=vmax, cmap="RdBu_r")
    im = None
    for c in range(2):
        hp.mollview(full_sky[c], nest=True, fig=fig.number, sub=(2, 4, 4 * c + 1), min=-vmax, max=vmax,
                    cmap="RdBu_r", title=f"{names[c]}\nfull sky, nside {full_nside}, no noise", cbar=False)
        for j, (img, what) in enumerate(((patches[c], "no noise"), (noisy[c], noise_label))):
            ax = fig.add_subplot(2, 4, 4 * c + 2 + j)
            im = ax.imshow(img, origin="lower", **kw)
            ax.set_title(f"{names[c]}, {patch_text}\n{what}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    cax = fig.add_axes([0.08, 0.04, 0.6, 0.02])
    fig.colorbar(im, cax=cax, orientation="horizontal", label="convergence $\\kappa$ (one scale for all maps)")
    ax = fig.add_subplot(1, 4, 4)
    bins = np.linspace(-vmax, 2 * vmax, 80)
    for c in range(2):
        ax.hist(patches[c].ravel(), bins=bins, histtype="step", density=True, log=True, label=f"{names[c]}, no noise")
        ax.hist(noisy[c].ravel(), bins=bins, histtype="step", density=True, log=True, ls="--",
                label=f"{names[c]}, with noise")
    ax.set_xlabel("convergence $\\kappa$ (the patches shown)")
    ax.set_ylabel("probability density")
    ax.set_title("one-point distribution", fontsize=9)
    ax.legend(fontsize=7)
    return savefig(fig, out)


def plot_curves(records: list[dict], out, savefig) -> Path:
    """Training loss and validation accuracy (validation maps, not the test maps) per epoch."""
    plt = _plt()
    nets = [r for r in records if r.get("history")]
    skies = list(dict.fromkeys(r["sky"] for r in nets)) or ["-"]
    fig, axes = plt.subplots(2, len(skies), figsize=(4.4 * len(skies), 6.5), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in nets))
    noises = list(dict.fromkeys(r["noise"] for r in nets))
    styles = ["-", "--", ":", "-."]
    for j, sky in enumerate(skies):
        for r in (r for r in nets if r["sky"] == sky):
            ep = [h["epoch"] for h in r["history"]]
            kw = dict(color=f"C{methods.index(r['method'])}", ls=styles[noises.index(r["noise"]) % 4],
                      label=f"{METHOD_NAMES.get(r['method'], r['method'])}, {r.get('noise_label', r['noise'])}")
            axes[0, j].plot(ep, [h["train_loss"] for h in r["history"]], **kw)
            axes[1, j].plot(ep, [100 * h.get("val_accuracy", np.nan) for h in r["history"]], **kw)
        axes[0, j].set_title(f"sky fraction {sky}")
        axes[0, j].set_ylabel("training loss (cross-entropy)")
        axes[1, j].set_ylabel("validation accuracy (%)")
        axes[1, j].set_xlabel("epoch")
        axes[1, j].set_ylim(40, 101)
        axes[1, j].axhline(50, color="gray", lw=0.8)
    _legend(fig, axes)
    return savefig(fig, out)


def plot_accuracy(records: list[dict], out, savefig, methods_order=()) -> Path:
    """Test accuracy with 95 % intervals per method and noise setting, one panel per sky setting."""
    plt = _plt()
    skies = list(dict.fromkeys(r["sky"] for r in records))
    noises = list(dict.fromkeys(r["noise"] for r in records))
    labels = {r["noise"]: r.get("noise_label", str(r["noise"])) for r in records}
    methods = _order(records, "method", methods_order)
    fig, axes = plt.subplots(1, len(skies), figsize=(4.6 * len(skies), 4.2), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for j, sky in enumerate(skies):
        ax = axes[0, j]
        for i, m in enumerate(methods):
            rs = [r for r in records if r["sky"] == sky and r["method"] == m]
            if not rs:
                continue
            x = np.array([noises.index(r["noise"]) for r in rs]) + (i - (len(methods) - 1) / 2) * width
            y = np.array([100 * r["accuracy"] for r in rs])
            lo = np.array([100 * r["ci95"][0] for r in rs])
            hi = np.array([100 * r["ci95"][1] for r in rs])
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o" if m in ("fcn", "cnn", "harmonic", "hybrid") else "s",
                        color=f"C{i}", capsize=3, label=METHOD_NAMES.get(m, m))
        ax.axhline(50, color="gray", lw=0.8, ls=":")
        nside = next((r.get("nside") for r in records if r["sky"] == sky), None)
        ax.set_title(f"sky fraction {sky}" + (f" (nside {nside})" if nside else ""))
        ax.set_xticks(range(len(noises)))
        ax.set_xticklabels([labels[n].replace(" (", "\n(") for n in noises], fontsize=7)
        ax.set_ylim(40, 101)
    axes[0, 0].set_ylabel("test accuracy (%), 95 % interval (approx.)")
    _legend(fig, axes)
    return savefig(fig, out)


def _legend(fig, axes) -> None:
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(handles.values()), list(handles.keys()), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
