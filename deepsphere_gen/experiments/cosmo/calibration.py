"""Variance recalibration of Gaussian posteriors, global or varying with the predicted parameters.

A network trained by Gaussian NLL reports a covariance ``cov`` (n, 2, 2) beside its mean; on
data it never trained on, the standardised squared errors ``z2_j = (truth_j - mean_j)^2 / cov_jj``
show how far off the reported variance of parameter j is.  :class:`VarianceCalibration` models
the correction as a variance factor ``v_j(mean) = exp(phi_d(u) . w_j)``, with ``u`` the predicted
mean standardised over the prior box and ``phi_d`` the monomials of degree <= d in u
(d = 0: one global factor, the "variance scaling" of regression calibration; 1: linear;
2: quadratic), fitted by maximum likelihood (the Gaussian NLL ``mean(z2 / v + log v) / 2``,
convex in w).  The degree of each parameter is chosen by grouped K-fold cross-validation of that
NLL over the calibration data (the samples of one cosmology stay in one fold: they share its
bias) with the one-standard-error rule: the lowest degree whose held-out NLL is within one
standard error (of its per-cosmology difference to the best degree) of the best, so a
location-dependent correction is used only where it predicts held-out cosmologies clearly better
than one factor.  The calibrated covariance is ``D cov D`` with
``D = diag(sqrt(v(mean)))`` (correlations kept).

Cost: a few BFGS fits of <= 6 parameters on n samples per degree and fold (milliseconds for n of
a few thousand).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["DEGREES", "features", "fit_log_variance", "VarianceCalibration"]

#: polynomial degrees of the log variance factor tried by the cross-validation
DEGREES = (0, 1, 2)


def features(u: np.ndarray, degree: int) -> np.ndarray:
    """Monomials of degree <= ``degree`` (0, 1 or 2) of standardised parameters u (n, 2): (n, 1 | 3 | 6)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != 2:
        raise ValueError(f"u must be (n, 2), got shape {u.shape}")
    if degree not in DEGREES:
        raise ValueError(f"degree must be one of {DEGREES}, got {degree!r}")
    cols = [np.ones(len(u))]
    if degree >= 1:
        cols += [u[:, 0], u[:, 1]]
    if degree >= 2:
        cols += [u[:, 0] ** 2, u[:, 1] ** 2, u[:, 0] * u[:, 1]]
    return np.column_stack(cols)


def _nll(z2: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Per-sample Gaussian NLL (up to constants) of standardised squared errors z2 under variance factor exp(eta)."""
    return 0.5 * (z2 * np.exp(-eta) + eta)


def fit_log_variance(z2: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Weights w (k,) of the log variance factor ``phi @ w`` that maximise the likelihood of z2 (n,);
    phi (n, k) with a constant first column.  Degree 0 gives exactly ``log(mean(z2))``."""
    z2, phi = np.asarray(z2, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    if z2.ndim != 1 or phi.shape[0] != z2.size or z2.size == 0:
        raise ValueError(f"need z2 (n,) and phi (n, k), got {z2.shape} and {phi.shape}")
    if not np.all(np.isfinite(z2)) or np.any(z2 < 0):
        raise ValueError("standardised squared errors must be finite and >= 0")
    w0 = np.zeros(phi.shape[1])
    w0[0] = np.log(max(z2.mean(), 1e-300))
    if phi.shape[1] == 1:
        return w0

    def f(w):
        eta = np.clip(phi @ w, -50, 50)
        return np.mean(_nll(z2, eta)), phi.T @ (0.5 * (1 - z2 * np.exp(-eta))) / z2.size

    return minimize(f, w0, jac=True, method="BFGS").x


class VarianceCalibration:
    """Per-parameter variance factor of (n, 2) Gaussian posteriors, its degree chosen by grouped CV.

    centre, half (2,): the standardisation ``u = (mean - centre) / half`` (the prior box);
    degrees: candidate polynomial degrees (``(0,)``: one global factor per parameter); folds:
    K of the grouped K-fold cross-validation; seed: the assignment of groups to folds.
    After :meth:`fit`: ``degree`` (2,), ``weights`` (list of 2 arrays), ``cv_nll``
    {degree: [parameter 0, parameter 1]} (mean held-out NLL per sample; None with one degree) and
    ``cv_se`` (the same layout: standard error of the difference to the best degree over groups).
    """

    def __init__(self, centre, half, degrees=DEGREES, folds: int = 5, seed: int = 0):
        self.centre, self.half = np.asarray(centre, dtype=np.float64), np.asarray(half, dtype=np.float64)
        self.degrees = tuple(int(d) for d in degrees)
        if not self.degrees or any(d not in DEGREES for d in self.degrees):
            raise ValueError(f"degrees must be a non-empty subset of {DEGREES}, got {degrees!r}")
        if int(folds) < 2:
            raise ValueError(f"folds must be >= 2, got {folds!r}")
        self.folds, self.seed = int(folds), int(seed)
        self.degree, self.weights, self.cv_nll, self.cv_se = None, None, None, None

    def _u(self, mean: np.ndarray) -> np.ndarray:
        return (np.asarray(mean, dtype=np.float64) - self.centre) / self.half

    def fit(self, mean: np.ndarray, cov: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> "VarianceCalibration":
        """Fit on predictions mean (n, 2), cov (n, 2, 2) of ``truth`` (n, 2) (same parameters as mean),
        ``groups`` (n,) cosmology labels (kept together in the cross-validation)."""
        mean, truth, groups = np.asarray(mean, np.float64), np.asarray(truth, np.float64), np.asarray(groups)
        if mean.shape != truth.shape or mean.ndim != 2 or mean.shape[1] != 2 or cov.shape != (len(mean), 2, 2) \
                or groups.shape != (len(mean),):
            raise ValueError(f"need mean (n, 2), cov (n, 2, 2), truth (n, 2), groups (n,), got {mean.shape}, "
                             f"{cov.shape}, {truth.shape}, {groups.shape}")
        z2 = (truth - mean) ** 2 / np.diagonal(cov, axis1=1, axis2=2)
        u = self._u(mean)
        labels = np.unique(groups)
        if len(self.degrees) > 1:
            if len(labels) < self.folds:
                raise ValueError(f"cross-validation over {self.folds} folds needs >= {self.folds} groups, "
                                 f"got {len(labels)}")
            fold_of = dict(zip(labels, np.random.default_rng(self.seed).permutation(len(labels)) % self.folds))
            fold = np.array([fold_of[g] for g in groups])
            index = np.searchsorted(labels, groups)
            per_group = {}  # degree -> (n_groups, 2) summed held-out NLL
            for d in self.degrees:
                phi = features(u, d)
                held = np.zeros((len(mean), 2))
                for k in range(self.folds):
                    tr, te = fold != k, fold == k
                    for j in range(2):
                        held[te, j] = _nll(z2[te, j], phi[te] @ fit_log_variance(z2[tr, j], phi[tr]))
                per_group[d] = np.stack([np.bincount(index, held[:, j], len(labels)) for j in range(2)], 1)
            n = len(mean)
            self.cv_nll = {d: (v.sum(0) / n).tolist() for d, v in per_group.items()}
            self.degree, self.cv_se = [], {d: [0.0, 0.0] for d in self.degrees}
            for j in range(2):
                best = min(self.degrees, key=lambda d: self.cv_nll[d][j])
                for d in self.degrees:
                    diff = (per_group[d][:, j] - per_group[best][:, j]) * len(labels) / n
                    self.cv_se[d][j] = float(diff.std(ddof=1) / np.sqrt(len(labels)))
                self.degree.append(min(d for d in self.degrees
                                       if self.cv_nll[d][j] <= self.cv_nll[best][j] + self.cv_se[d][j]))
        else:
            self.degree = [self.degrees[0]] * 2
        self.weights = [fit_log_variance(z2[:, j], features(u, self.degree[j])) for j in range(2)]
        return self

    def scales(self, mean: np.ndarray) -> np.ndarray:
        """Standard-deviation factors sqrt(v(mean)) (n, 2) at predicted means (n, 2)."""
        if self.weights is None:
            raise ValueError("VarianceCalibration is not fitted")
        u = self._u(mean)
        eta = np.column_stack([features(u, self.degree[j]) @ self.weights[j] for j in range(2)])
        return np.exp(0.5 * np.clip(eta, -50, 50))

    def apply(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Calibrated covariances D cov D (n, 2, 2), D = diag(:meth:`scales`)."""
        s = self.scales(mean)
        return np.asarray(cov) * s[:, :, None] * s[:, None, :]

    def to_dict(self) -> dict:
        """JSON-ready {"degree", "weights", "cv_nll", "cv_se"}."""
        return {"degree": list(self.degree), "weights": [w.tolist() for w in self.weights],
                "cv_nll": None if self.cv_nll is None else {str(k): v for k, v in self.cv_nll.items()},
                "cv_se": None if self.cv_se is None else {str(k): v for k, v in self.cv_se.items()}}
