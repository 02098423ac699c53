"""Reporting of the mass-map experiment: 95 % intervals, paired margins, the tables and the figures.

Intervals: the Wilson score interval of a binomial proportion (k correct of n test samples).
It treats the test patches as independent; patches cut from one map share its large-scale
modes, so the true uncertainty is somewhat larger: the intervals are approximate (stated in
the table's footer, the JSON and the figures).

Map-level intervals (:func:`cluster_bootstrap`): the test maps (not the patches) are resampled
with replacement within each class, every patch of a drawn map going with it, so the
correlation of patches of one map is kept.  :func:`map_interval_fields` gives an accuracy's interval,
:func:`paired_margin` the difference of two methods' accuracies on the same test samples
(paired: both methods are scored on the same resampled maps, so the errors they share cancel).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .._io import atomic_savefig
from .._validation import check_positive_int

__all__ = ["METHOD_NAMES", "METHOD_COLORS", "wilson_interval", "cluster_bootstrap",
           "map_interval_fields", "paired_margin", "encode_correct",
           "decode_correct", "map_runs", "expand_runs", "margin_records", "format_margins", "align_rows", "format_table",
           "plot_examples", "plot_curves", "plot_accuracy", "save_png",
           "footprint_text"]

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
#: One colour per method in every figure, so figures of different runs can be compared.
METHOD_COLORS = {m: f"C{i}" for i, m in enumerate(METHOD_NAMES)}
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


#: resamples of the map-level bootstrap (and its seed): ~1 ms for 24 maps, the percentiles to ~0.1 point
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
MARGIN_NOTE = ("margins in accuracy points, network minus baseline on the same test samples; 95 % interval: "
               "percentiles of a cluster bootstrap over test maps (maps drawn with replacement within each class, "
               "all patches of a map together); with G test maps per class (the 'test maps' column counts both "
               "classes) it is narrower than it should be by about sqrt((G - 1) / G) (G = 12: 4 %, G = 6: 9 %, "
               "G = 5: 11 %); it covers the choice of test maps, not the training seed of the network")

#: the marks of :func:`_margin_cell`, explained under the margins table
MARGIN_MARKS = ("'*': one-sided, a method right on every test sample pins the bound on its side; 'undefined': "
                "both right (or both wrong) on every test sample; 'no spread': every resample gives the same margin")


def _sample_arrays(correct, maps, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(correct (k, n) bool, maps (n,), classes (n,))``; ``correct`` (n,) or (k, n)."""
    c = np.asarray(correct)
    c = c[None] if c.ndim == 1 else c
    maps, classes = np.asarray(maps), np.asarray(classes)
    if c.ndim != 2 or maps.ndim != 1 or classes.ndim != 1:
        raise ValueError(f"need correct (n,) or (k, n), maps (n,) and classes (n,), got shapes {np.shape(correct)}, "
                         f"{maps.shape}, {classes.shape}")
    if c.shape[1] == 0 or c.shape[0] == 0:
        raise ValueError("no test samples: the bootstrap needs at least one")
    if not (c.shape[1] == len(maps) == len(classes)):
        raise ValueError(f"mismatched lengths: {c.shape[1]} correctness values, {len(maps)} map numbers, "
                         f"{len(classes)} classes (one of each per test sample)")
    if c.dtype != bool:
        if not np.all((c == 0) | (c == 1)):
            raise ValueError("correct must hold booleans (or 0/1) per test sample")
        c = c.astype(bool)
    return c, maps, classes


def cluster_bootstrap(correct, maps, classes, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Accuracies of ``k`` methods on ``resamples`` bootstrap replicates of the test maps: ``(resamples, k)``.

    correct: (n,) or (k, n) booleans, sample i correctly classified by method j; maps, classes:
    (n,) the map number and class of every test sample (a map is the pair (class, map number),
    so map numbers may repeat across classes).  One replicate draws, in every class, as many
    maps as the class has, uniformly with replacement (``rng.multinomial``, ``numpy`` seeded by
    ``seed``), and takes every sample of every drawn map (as often as it was drawn); the
    accuracy of a replicate is its correct samples over its samples.  All methods share the
    draws (paired).  Cost: O(n) to sum per map, then O(resamples x maps x k).
    """
    c, maps, classes = _sample_arrays(correct, maps, classes)
    resamples = check_positive_int(resamples, "resamples")
    keys, cluster = np.unique(np.stack([classes, maps], axis=1), axis=0, return_inverse=True)
    cluster = cluster.ravel()
    size = np.bincount(cluster, minlength=len(keys)).astype(np.float64)  # (K,) samples per map
    hits = np.stack([np.bincount(cluster, weights=cj, minlength=len(keys)) for cj in c], axis=1)  # (K, k)
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, len(keys)))
    for cls in np.unique(keys[:, 0]):
        members = np.flatnonzero(keys[:, 0] == cls)
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=resamples)
    return (weights @ hits) / (weights @ size)[:, None]


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def _no_spread(values: np.ndarray) -> bool:
    """Every bootstrap replicate gave the same value (to rounding): a percentile interval would have zero width."""
    return bool(np.ptp(values) <= 1e-9 * max(1.0, float(np.max(np.abs(values)))))


def map_interval_fields(correct, maps, classes, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> dict:
    """The map-level 95 % interval of one method's accuracy: ``{"ci95_maps": [lo, hi] (fractions) or None}``,
    with ``"ci95_maps_note"`` (why) where it is not the bootstrap's; correct, maps, classes: (n,).

    Where the replicates of :func:`cluster_bootstrap` differ: their 2.5 and 97.5 % percentiles.  Where every
    replicate gives the same accuracy, the percentile interval would be [p, p], which no finite test set can
    claim: with no error on any test map (or no correct sample) it is the Wilson interval of G of G (0 of G)
    test maps, G the test maps of both classes, as independent trials (24 of 24: [0.862, 1]); any other such
    accuracy (every test map of a class alike, e.g. a network answering one class) gets None.
    """
    c, maps, classes = _sample_arrays(correct, maps, classes)
    acc = cluster_bootstrap(c[:1], maps, classes, resamples, seed)[:, 0]
    if not _no_spread(acc):
        return {"ci95_maps": list(_percentiles(acc))}
    n_maps, n = len(np.unique(np.stack([classes, maps], axis=1), axis=0)), c.shape[1]
    if c[0].all() or not c[0].any():
        k = n_maps if c[0].all() else 0
        return {"ci95_maps": list(wilson_interval(k, n_maps)),
                "ci95_maps_note": f"{'no error' if k else 'no correct sample'} on any of the {n} test samples: every "
                                  f"bootstrap resample gives {100 * k // n_maps} %, so this is the 95 % Wilson "
                                  f"interval of {k} of {n_maps} test maps (maps as independent trials)"}
    return {"ci95_maps": None,
            "ci95_maps_note": f"every bootstrap resample gives {100 * float(acc[0]):.1f} % (each class's test maps "
                              "alike, e.g. a network answering one class): no map-level interval"}


def paired_margin(correct_a, correct_b, maps, classes, resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = BOOTSTRAP_SEED) -> dict:
    """Margin of method a over method b on the same test samples, in accuracy points.

    correct_a, correct_b, maps, classes: (n,), sample i being the same test sample for both
    methods.  Returns ``{"margin": 100 (acc_a - acc_b), "ci95": [lo, hi] (points, 95 %
    percentile interval of the paired :func:`cluster_bootstrap`), "n_test", "n_test_maps" (both classes),
    "n_test_maps_per_class" (G of :data:`MARGIN_NOTE`: the fewest of a class), "resamples", "seed"}``.

    Never a zero-width interval: where every replicate gives the same margin, "ci95" is None with a "note":
    both methods right on every test sample (or both wrong on every one): the margin is undefined (None too:
    the test set cannot separate them); otherwise (e.g. identical predictions) the margin stays and the
    bootstrap has no spread to give an interval.  Where one method is right on every test sample and the
    other is not, no replicate can move the margin past that ceiling: "one_sided" is "lower" (the baseline
    b is perfect: the upper bound, at most 0, is the ceiling, only the lower bound is an estimate) or "upper"
    (a is perfect: only the upper bound is), with a "note".
    """
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-d (one value per test sample), got shapes {a.shape}, "
                         f"{b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"mismatched lengths: {len(a)} and {len(b)} correctness values (one per test sample each)")
    c, maps, classes = _sample_arrays(np.stack([a, b]), maps, classes)
    acc = cluster_bootstrap(c, maps, classes, resamples, seed)
    diff = 100 * (acc[:, 0] - acc[:, 1])
    keys = np.unique(np.stack([classes, maps], axis=1), axis=0)
    out = {"margin": float(100 * (c[0].mean() - c[1].mean())), "ci95": list(_percentiles(diff)),
           "n_test": int(c.shape[1]), "n_test_maps": len(keys),
           "n_test_maps_per_class": int(np.unique(keys[:, 0], return_counts=True)[1].min()),
           "resamples": int(resamples), "seed": int(seed)}
    perfect = c.all(axis=1)
    if _no_spread(diff):
        out["ci95"] = None
        if perfect.all() or not c.any():
            out["margin"] = None
            out["note"] = (f"both methods {'right' if perfect.all() else 'wrong'} on every one of the "
                           f"{out['n_test']} test samples: the test set cannot separate them, margin undefined")
        elif perfect.any():  # one right everywhere, the other's accuracy the same in every resample
            out["note"] = (f"the {'baseline' if perfect[1] else 'network'} is right on every test sample and "
                           "every bootstrap resample gives the same margin: no spread, no interval")
        else:
            out["note"] = ("every bootstrap resample gives the same margin (e.g. identical predictions): "
                           "no spread, no interval")
    elif perfect.any():
        out["one_sided"] = "lower" if perfect[1] else "upper"
        out["note"] = (f"the {'baseline' if perfect[1] else 'network'} is right on every test sample, so no "
                       f"resample {'gives a positive margin' if perfect[1] else 'charges it an error'}: one-sided, "
                       f"only the {out['one_sided']} bound is an estimate")
    return out


def encode_correct(correct) -> str:
    """Per-sample correctness (n,) as a string of "0"/"1" (the JSON field ``correct``)."""
    return "".join("1" if v else "0" for v in np.asarray(correct, dtype=bool))


def decode_correct(text: str) -> np.ndarray:
    """Inverse of :func:`encode_correct`: (n,) booleans."""
    if set(text) - {"0", "1"}:
        raise ValueError("a correctness string holds only the characters 0 and 1")
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def map_runs(classes, maps) -> list[list[int]]:
    """(class, map) of consecutive samples, run-length encoded: ``[[class, map, count], ...]`` (the JSON
    field ``test_maps``); classes, maps: (n,)."""
    runs = []
    for c, m in zip(np.asarray(classes).tolist(), np.asarray(maps).tolist()):
        if runs and runs[-1][0] == c and runs[-1][1] == m:
            runs[-1][2] += 1
        else:
            runs.append([int(c), int(m), 1])
    return runs


def expand_runs(runs) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`map_runs`: (classes (n,), maps (n,)) int64."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
    return np.repeat(runs[:, 0], runs[:, 2]), np.repeat(runs[:, 1], runs[:, 2])


def margin_records(records: list[dict], networks, baselines, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> list[dict]:
    """Paired margins (:func:`paired_margin`) of every network method over every baseline, per (sky, noise).

    ``records``: accuracy records with ``correct`` (:func:`encode_correct`) and ``test_maps``
    (:func:`map_runs`); records without them (older JSON) are left out.  ValueError where two
    records of one (sky, noise) differ in their samples' (class, map) sequence or count; that the
    samples within a map come in the same order with the same noise is the caller's to ensure
    (the mass-map evaluation scores every method of a setting on one data set).  One dict per pair:
    sky, noise, noise_label, method, baseline, accuracy, baseline_accuracy and the fields of
    :func:`paired_margin`.
    """
    by_key = {}
    for r in records:
        if "correct" in r and "test_maps" in r:
            by_key.setdefault((r["sky"], r["noise"]), {})[r["method"]] = r
    out = []
    for (sky, noise), recs in by_key.items():
        for net in (m for m in networks if m in recs):
            for base in (m for m in baselines if m in recs):
                a, b = recs[net], recs[base]
                if a["test_maps"] != b["test_maps"] or len(a["correct"]) != len(b["correct"]):
                    raise ValueError(f"{net} and {base} at sky {sky}, noise {noise} were scored on different test "
                                     "samples: no paired margin")
                classes, maps = expand_runs(a["test_maps"])
                m = paired_margin(decode_correct(a["correct"]), decode_correct(b["correct"]), maps, classes,
                                  resamples, seed)
                out.append({"sky": sky, "noise": noise, "noise_label": a.get("noise_label", noise), "method": net,
                            "baseline": base, "accuracy": a["accuracy"], "baseline_accuracy": b["accuracy"], **m})
    return out


def format_margins(margins: list[dict], networks=(), baselines=("psd_svm", "hist_svm")) -> str:
    """Margins table: per (sky, noise) the first of ``networks`` present minus the better (higher accuracy)
    of ``baselines``, and minus ``strong_svm``; "margin [lo, hi]" in points."""
    keys = list(dict.fromkeys((m["sky"], m["noise"]) for m in margins))
    rows = [["sky", "noise", "network", "minus better of PSD/hist SVM", "minus strong SVM", "test maps"]]
    for sky, noise in keys:
        ms = [m for m in margins if (m["sky"], m["noise"]) == (sky, noise)]
        net = _order(ms, "method", networks)[0]
        ms = {m["baseline"]: m for m in ms if m["method"] == net}
        simple = [ms[b] for b in baselines if b in ms]
        cells = []
        for m in (max(simple, key=lambda m: m["baseline_accuracy"]) if simple else None, ms.get("strong_svm")):
            cells.append("-" if m is None
                         else _margin_cell(m) + (f" vs {m['baseline']}" if m["baseline"] != "strong_svm" else ""))
        any_m = next(iter(ms.values()))
        rows.append([sky, any_m["noise_label"], net, *cells, str(any_m["n_test_maps"])])
    if len(rows) == 1:
        return "(no paired margins: no network and baseline of one setting with per-sample results)"
    names = "; ".join(f"{m} = {METHOD_NAMES.get(m, m)}"
                      for m in dict.fromkeys([r[2] for r in rows[1:]] + [*baselines, "strong_svm"]))
    resamples = margins[0]["resamples"]
    per_class = {m["n_test_maps_per_class"] for m in margins if "n_test_maps_per_class" in m}
    here = ""
    if len(per_class) == 1:  # the run's own G and correction (older records lack the field)
        (g,) = per_class
        here = f"; here G = {g}: {100 * (1 - math.sqrt((g - 1) / g)):.0f} %"
    return "\n".join(align_rows(rows)) + (f"\n({MARGIN_NOTE}{here}; {resamples} resamples; '-': baseline not run; "
                                          f"{MARGIN_MARKS})\n({names})")



def _margin_cell(m: dict) -> str:
    """"margin [lo,hi]" in points, marked where :func:`paired_margin` gave no two-sided interval."""
    if m["margin"] is None:
        return "undefined"
    if m["ci95"] is None:
        return f"{m['margin']:+.1f} [no spread]"
    return f"{m['margin']:+.1f} [{m['ci95'][0]:+.1f},{m['ci95'][1]:+.1f}]" + ("*" if m.get("one_sided") else "")


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
    out = atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return out


def plot_examples(full_sky: np.ndarray, patches: np.ndarray, noisy: np.ndarray, classes: list[dict],
                  noise_label: str, full_nside: int, patch_text: str, out, savefig, footprint=None) -> Path:
    """Example maps of both cosmologies on ONE convergence colour scale: the full sky (averaged
    down to ``full_nside``), one patch without and with noise (square images, nested face
    coordinates), and the one-point distributions of the patches.

    full_sky: (2, npix) NESTED; patches, noisy: (2, side, side), or with ``footprint`` (a NESTED bool mask
    (12 nside^2,)) the analysed footprint instead: (2, 12 nside^2) NESTED maps, drawn with the pixels outside
    it grey (gnomonic around the footprint where it lies within 60 degrees of its centre, else Mollweide);
    classes: metadata dicts with omega_m and sigma8; patch_text: e.g. "1/48 patch, nside 256".
    """
    import healpy as hp

    plt = _plt()
    names = [f"$\\Omega_m$ = {c['omega_m']:g}, $\\sigma_8$ = {c['sigma8']:g}" for c in classes]
    if footprint is not None:
        footprint = np.asarray(footprint, dtype=bool)
        patches, noisy = (np.where(footprint, m, hp.UNSEEN) for m in (patches, noisy))
    inside = (lambda m: m[..., footprint]) if footprint is not None else np.asarray  # noqa: E731
    vmax = float(np.quantile(np.abs(inside(noisy)), 0.995))
    fig = plt.figure(figsize=(15, 7.5))
    fig.subplots_adjust(hspace=0.4)  # room for the three-line patch titles
    kw = dict(vmin=-vmax, vmax=vmax, cmap="RdBu_r")
    im = None
    for c in range(2):
        hp.mollview(full_sky[c], nest=True, fig=fig.number, sub=(2, 4, 4 * c + 1), min=-vmax, max=vmax,
                    cmap="RdBu_r", title=f"{names[c]}\nfull sky, nside {full_nside}, no noise", cbar=False)
        for j, (img, what) in enumerate(((patches[c], "no noise"), (noisy[c], noise_label))):
            if footprint is not None:
                _footprint_view(hp, img, footprint, fig, (2, 4, 4 * c + 2 + j), vmax, f"{names[c]}\n{patch_text}\n{what}")
                continue
            ax = fig.add_subplot(2, 4, 4 * c + 2 + j)
            im = ax.imshow(img, origin="lower", **kw)
            ax.set_title(f"{names[c]}\n{patch_text}\n{what}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if im is None:  # healpy panels only: a mappable of the same scale for the colour bar
        import matplotlib as mpl

        im = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(-vmax, vmax), cmap="RdBu_r")
    cax = fig.add_axes([0.08, 0.04, 0.6, 0.02])
    fig.colorbar(im, cax=cax, orientation="horizontal", label="convergence $\\kappa$ (one scale for all maps)")
    ax = fig.add_subplot(1, 4, 4)
    bins = np.linspace(-vmax, 2 * vmax, 80)
    heights = []
    for c in range(2):
        heights.append(ax.hist(inside(patches[c]).ravel(), bins=bins, histtype="step", density=True, log=True,
                               label=f"{names[c]}, no noise")[0])
        heights.append(ax.hist(inside(noisy[c]).ravel(), bins=bins, histtype="step", density=True, log=True, ls="--",
                               label=f"{names[c]}, with noise")[0])
    xlim, ylim = _histogram_limits(heights, bins)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("convergence $\\kappa$ (the " + ("footprints" if footprint is not None else "patches") + " shown)")
    ax.set_ylabel("probability density")
    ax.yaxis.set_label_position("right")  # on the left it would overlap the patch images
    ax.yaxis.tick_right()
    ax.set_title("one-point distribution", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return savefig(fig, out)


def _histogram_limits(heights, edges, legend: float = 0.25, margin: float = 0.05) -> tuple[tuple, tuple]:
    """``(xlim, ylim)`` of step histograms on a log y axis that follow the data: x from the first to the last bin
    that any histogram fills, y from the smallest non-zero bin to the largest, with ``margin`` of the axis (its
    width; its height in decades) outside the data and a band of ``legend`` of the height above the peak for the
    legend.  ``heights``: the histograms (n, bins), densities on the bins ``edges`` (bins + 1,), some bin non-zero.
    (matplotlib's autoscale kept the empty bins' x range, and a top at 30x the peak left half of the --quick panel,
    1.3 decades of data, empty.)"""
    h = np.asarray(heights, dtype=np.float64)
    filled = np.flatnonzero(h.max(axis=0) > 0)
    left, right = edges[filled[0]], edges[filled[-1] + 1]
    lo, hi = h[h > 0].min(), h.max()
    decades = max(np.log10(hi / lo), 0.5) / (1 - margin - legend)  # the axis height (half a decade of data at least)
    pad = margin * (right - left)
    return (left - pad, right + pad), (lo / 10 ** (margin * decades), hi * 10 ** (legend * decades))


def _footprint_view(hp, m: np.ndarray, footprint: np.ndarray, fig, sub, vmax: float, title: str) -> None:
    """Draw NESTED map ``m`` (UNSEEN outside ``footprint``) in panel ``sub`` of ``fig``: gnomonic, centred on the
    footprint and wide enough for it, where it lies within 60 degrees of its mean direction; else Mollweide."""
    nside = hp.npix2nside(m.size)
    vec = np.array(hp.pix2vec(nside, np.flatnonzero(footprint), nest=True))  # (3, pixels)
    centre = vec.mean(axis=1)
    centre /= np.linalg.norm(centre)
    radius = float(np.degrees(np.arccos(np.clip((centre @ vec).min(), -1, 1)))) + hp.nside2resol(nside, arcmin=True) / 60
    kw = dict(nest=True, fig=fig.number, sub=sub, min=-vmax, max=vmax, cmap="RdBu_r", title=title, cbar=False)
    if radius < 60:
        lon, lat = hp.vec2ang(centre, lonlat=True)
        hp.gnomview(m, rot=(float(lon[0]), float(lat[0])), xsize=200, reso=2.2 * radius * 60 / 200, notext=True,
                    margins=(0.01, 0.08, 0.01, 0.1), **kw)  # room for the three-line titles
    else:
        hp.mollview(m, **kw)
    fig.axes[-1].title.set_fontsize(8)


def _sky_title(records: list[dict], sky: str) -> str:
    """"sky fraction F", for a footprint with its area and f_sky (the records' ``sky_fraction``)."""
    frac = next((r.get("sky_fraction") for r in records if r["sky"] == sky), None)
    if sky != "footprint" or frac is None:
        return f"sky fraction {sky}"
    return footprint_text(frac)


def footprint_text(fraction: float) -> str:
    """"footprint, A deg^2 (f_sky F)" for a footprint covering ``fraction`` of the sky (figure titles)."""
    return f"footprint, {fraction * 4 * math.pi * (180 / math.pi) ** 2:.0f} deg$^2$ (f_sky {fraction:.4f})"


def plot_curves(records: list[dict], out, savefig) -> Path:
    """Training loss and validation accuracy (validation maps, not the test maps) per epoch."""
    plt = _plt()
    nets = [r for r in records if r.get("history")]
    skies = list(dict.fromkeys(r["sky"] for r in nets)) or ["-"]
    fig, axes = plt.subplots(2, len(skies), figsize=(4.4 * len(skies), 6.5), squeeze=False)
    noises = list(dict.fromkeys(r["noise"] for r in nets))
    styles = ["-", "--", ":", "-."]
    for j, sky in enumerate(skies):
        for r in (r for r in nets if r["sky"] == sky):
            ep = [h["epoch"] for h in r["history"]]
            kw = dict(color=_color(r["method"]), ls=styles[noises.index(r["noise"]) % 4],
                      label=f"{METHOD_NAMES.get(r['method'], r['method'])}, {r.get('noise_label', r['noise'])}")
            axes[0, j].plot(ep, [h["train_loss"] for h in r["history"]], **kw)
            axes[1, j].plot(ep, [100 * h.get("val_accuracy", np.nan) for h in r["history"]], **kw)
        axes[0, j].set_title(_sky_title(nets, sky))
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
    # 40 % unless an interval reaches lower: a cut-off error bar would hide how uncertain it is
    bottom = min(40.0, 10 * np.floor(min(100 * r["ci95"][0] for r in records) / 10))
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
                        color=_color(m), capsize=3, label=METHOD_NAMES.get(m, m))
        ax.axhline(50, color="gray", lw=0.8, ls=":")
        nside = next((r.get("nside") for r in records if r["sky"] == sky), None)
        ax.set_title(_sky_title(records, sky) + (f" (nside {nside})" if nside else ""))
        ax.set_xticks(range(len(noises)))
        ax.set_xticklabels([labels[n].replace(" (", "\n(") for n in noises], fontsize=7)
        ax.set_ylim(bottom, 101)
    axes[0, 0].set_ylabel("test accuracy (%), 95 % interval (approx.)")
    _legend(fig, axes)
    return savefig(fig, out)


def _color(method: str) -> str:
    """The method's colour (:data:`METHOD_COLORS`); methods not listed there get gray."""
    return METHOD_COLORS.get(method, "0.4")


def _legend(fig, axes) -> None:
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(handles.values()), list(handles.keys()), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
