"""Classical baselines of DeepSphere's cosmology experiment: linear SVMs on summary statistics.

Both work on partial-sky samples given as ``values`` (n, pixels) with their NESTED pixel
``indices`` (n, pixels) (or one (pixels,) row shared by all), labels (n,) ints:

- :class:`PowerSpectrumSVM`: log of the band-averaged ``healpy.anafast`` spectrum of each
  sample (patch mean removed, zero outside the patch, divided by the sky fraction);
- :class:`HistogramSVM`: normalised pixel histogram on fixed bins from the training data.

Features are standardised, then a linear SVM (scikit-learn ``LinearSVC``) is fitted.
:class:`FeatureSVM` is the same classifier on precomputed features (e.g. the patch statistics
of :mod:`.features`), with C chosen on a validation set
as DeepSphere did.  ``anafast`` costs ~0.1 s CPU per nside-256 sample (0.6 s at nside 512);
for patches the experiment uses FFT band powers of the patch square instead
(:mod:`deepsphere_gen.datasets.patch_psd`, ~0.1 ms).
"""
from __future__ import annotations

import healpy as hp
import numpy as np

from ...datasets import bad_pixels, limit_threads
from ...sampling import check_nside

__all__ = ["PowerSpectrumSVM", "HistogramSVM", "FeatureSVM", "c_edge_note"]


def _as_samples(values, indices) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"values must be shaped (samples, pixels), got {values.shape}")
    if bad_pixels(values).any():
        raise ValueError("values hold NaN/inf/UNSEEN: pass only the pixels inside the footprint")
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim == 1 and indices.size == values.shape[1]:
        indices = np.broadcast_to(indices, values.shape)
    if indices.shape != values.shape:
        raise ValueError(f"indices shape {indices.shape} does not match values shape {values.shape}")
    return values, indices


def _svm(C: float, seed: int):
    # scikit-learn imported here: ~1 s, needed only where a baseline is fitted
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=C, max_iter=20000, random_state=seed, dual="auto"))


class FeatureSVM:
    """Standardised features -> linear SVM, C chosen on a validation set.

    ``fit(X, y, X_val, y_val)``: one LinearSVC per C of ``Cs`` on (X, y); the C with the best
    validation accuracy is kept (ties: the earlier C of ``Cs``, the smaller in the default ascending grid);
    without a validation set the first C.
    X: (n, features) finite floats; y: (n,) ints.  ``C``, ``val_accuracy`` after fitting;
    ``C_at_edge``: whether the chosen C is the smallest or largest of a grid of two or more values
    (None before fitting; False for a single C): a wider grid might choose another C there.
    """

    def __init__(self, Cs=(0.01, 0.1, 1.0, 10.0), seed: int = 0):
        self.Cs = tuple(float(c) for c in Cs)
        if not self.Cs or any(not c > 0 for c in self.Cs):
            raise ValueError(f"Cs must be positive, got {Cs!r}")
        self.seed, self.model, self.C, self.val_accuracy = int(seed), None, None, None

    @staticmethod
    def _check(X, y=None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not X.size:
            raise ValueError(f"features must be shaped (samples, features), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("features hold NaN/inf")
        if y is not None and np.shape(y) != (len(X),):
            raise ValueError(f"labels must be shaped ({len(X)},), got {np.shape(y)}")
        return X

    @property
    def C_at_edge(self) -> bool | None:
        if self.C is None:
            return None
        return len(self.Cs) > 1 and self.C in (min(self.Cs), max(self.Cs))

    def fit(self, X, y, X_val=None, y_val=None) -> "FeatureSVM":
        X = self._check(X, y)
        if len(np.unique(y)) < 2:
            raise ValueError("training labels hold a single class")
        best = None
        for C in self.Cs if X_val is not None else self.Cs[:1]:
            model = _svm(C, self.seed).fit(X, y)
            acc = float(np.mean(model.predict(self._check(X_val, y_val)) == y_val)) if X_val is not None else None
            if best is None or (acc is not None and acc > best[0]):
                best = (acc, C, model)
        self.val_accuracy, self.C, self.model = best
        return self

    def predict(self, X) -> np.ndarray:
        if self.model is None:
            raise ValueError("call fit before predict/score")
        return self.model.predict(self._check(X))

    def score(self, X, y) -> float:
        """Accuracy in [0, 1]."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


def c_edge_note(records: list[dict]) -> str:
    """The table footnote on the baselines' C: "" where no record has ``C_at_edge`` true, else one
    line (with a leading newline) counting per method the records (``method``, ``C``, ``C_grid``,
    ``C_at_edge``, as :func:`.baseline_records.baseline_records` writes them) whose C chosen on the
    validation maps lies at the smallest or largest value of its grid."""
    fits = [r for r in records if r.get("C_at_edge") is not None]
    edge = [r for r in fits if r["C_at_edge"]]
    if not edge:
        return ""
    methods = list(dict.fromkeys(r["method"] for r in fits))
    counts = ", ".join(f"{m} {sum(r['method'] == m for r in edge)}/{sum(r['method'] == m for r in fits)}"
                       for m in methods)
    grids = sorted({tuple(r["C_grid"]) for r in edge})
    grid_text = "; ".join("{" + ", ".join(f"{c:g}" for c in g) + "}" for g in grids)
    low = sum(r["C"] == min(r["C_grid"]) for r in edge)
    return (f"\n(SVM C at the edge of its grid {grid_text} in {len(edge)} of {len(fits)} baseline fits ({counts}; "
            f"{low} at the smallest C, which also takes validation ties): a wider grid may choose another C "
            "(README: Methods); JSON: C, C_grid, C_at_edge)")


class _Baseline:
    def __init__(self, C: float, seed: int):
        if not C > 0:
            raise ValueError(f"C must be positive, got {C}")
        self.C, self.seed, self.model = float(C), int(seed), None

    def prepare(self, values, indices) -> None:
        """Fit-time set-up from the training samples (the histogram's bins); nothing by default.
        ``fit`` calls it; call it directly to compute features without fitting an SVM."""

    def features(self, values, indices) -> np.ndarray:
        raise NotImplementedError

    def fit(self, values, indices, labels) -> "_Baseline":
        values, indices = _as_samples(values, indices)
        labels = np.asarray(labels)
        if labels.shape != (values.shape[0],):
            raise ValueError(f"labels must be shaped ({values.shape[0]},), got {labels.shape}")
        if np.unique(labels).size < 2:
            raise ValueError("training labels hold a single class")
        self.prepare(values, indices)
        self.model = _svm(self.C, self.seed).fit(self.features(values, indices), labels)
        return self

    def predict(self, values, indices) -> np.ndarray:
        if self.model is None:
            raise ValueError("call fit before predict/score")
        values, indices = _as_samples(values, indices)
        return self.model.predict(self.features(values, indices))

    def score(self, values, indices, labels) -> float:
        """Accuracy in [0, 1]."""
        return float(np.mean(self.predict(values, indices) == np.asarray(labels)))


class PowerSpectrumSVM(_Baseline):
    """Linear SVM on log band powers of each (masked) sample.

    nside: resolution of the samples; lmax: highest degree (default 3 nside - 1);
    n_bins: equal-width bands over [lmin, lmax]; lmin: lowest degree used (default 2;
    raise it for small patches, whose lowest degrees are dominated by the mask);
    iter: anafast iterations (use_pixel_weights always off); C: SVM regularisation;
    threads: OpenMP threads for healpy (1: fastest on a shared machine; None: default).
    """

    def __init__(self, nside: int, lmax: int | None = None, n_bins: int = 24, lmin: int = 2,
                 iter: int = 0, C: float = 1.0, seed: int = 0, threads: int | None = 1):
        super().__init__(C, seed)
        self.nside = check_nside(nside)
        self.lmax = 3 * self.nside - 1 if lmax is None else int(lmax)
        if not 0 <= lmin < self.lmax:
            raise ValueError(f"need 0 <= lmin < lmax={self.lmax}, got lmin={lmin}")
        if not 1 <= n_bins <= self.lmax - lmin + 1:
            raise ValueError(f"n_bins must lie in [1, {self.lmax - lmin + 1}], got {n_bins}")
        self.lmin, self.n_bins, self.iter, self.threads = int(lmin), int(n_bins), int(iter), threads
        self.edges = np.linspace(self.lmin, self.lmax + 1, self.n_bins + 1).round().astype(int)

    def spectra(self, values, indices) -> np.ndarray:
        """Pseudo-C_l / f_sky of each sample, shape (n, lmax+1)."""
        values, indices = _as_samples(values, indices)
        npix = 12 * self.nside**2
        if indices.min() < 0 or indices.max() >= npix:
            raise ValueError(f"pixel indices outside [0, {npix}) for nside {self.nside}")
        out = np.empty((values.shape[0], self.lmax + 1))
        full = np.zeros(npix)
        with limit_threads(self.threads):
            for k in range(values.shape[0]):
                full[:] = 0.0
                full[indices[k]] = values[k] - values[k].mean()
                ring = hp.reorder(full, n2r=True)
                out[k] = hp.anafast(ring, lmax=self.lmax, iter=self.iter, use_pixel_weights=False)
        out /= indices.shape[1] / npix
        return out

    def features(self, values, indices) -> np.ndarray:
        cl = self.spectra(values, indices)
        bands = np.stack([cl[:, a:b].mean(axis=1) for a, b in zip(self.edges[:-1], self.edges[1:])], axis=1)
        return np.log(np.clip(bands, 1e-300, None))


class HistogramSVM(_Baseline):
    """Linear SVM on the normalised pixel histogram of each sample.

    Bin edges: ``n_bins`` equal bins between the ``quantiles`` of all training pixel
    values (fixed at fit time); values outside fall into the end bins.
    """

    def __init__(self, n_bins: int = 40, quantiles=(0.001, 0.999), C: float = 1.0, seed: int = 0):
        super().__init__(C, seed)
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        lo, hi = quantiles
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"quantiles must satisfy 0 <= lo < hi <= 1, got {quantiles}")
        self.n_bins, self.quantiles, self.edges = int(n_bins), (float(lo), float(hi)), None

    def prepare(self, values, indices) -> None:
        """Bin edges from the training pixel values ``values`` (n, pixels) (``indices`` unused)."""
        lo, hi = np.quantile(values, self.quantiles)
        if not hi > lo:
            raise ValueError("training pixel values are constant: no histogram bins")
        self.edges = np.linspace(lo, hi, self.n_bins + 1)

    def features(self, values, indices) -> np.ndarray:
        if self.edges is None:
            raise ValueError("call fit before computing histogram features")
        values = np.asarray(values, dtype=np.float64)
        which = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, self.n_bins - 1)
        counts = np.stack([np.bincount(w, minlength=self.n_bins) for w in which])
        return counts / values.shape[1]
