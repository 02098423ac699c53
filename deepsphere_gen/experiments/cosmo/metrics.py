"""How good a method's posteriors are: interval coverage, per-parameter metrics, global variance
scales and the widths of the point estimates used as summary statistics.

- :func:`posterior_metrics`: RMSE, bias, root mean predicted variance, 68 % / 95 % coverage
  (:func:`interval_coverage`) of Omega_m, S8 and sigma_8 (by the delta method) and, at one cosmology (the
  fiducial), the scatter of the point estimates; the coverage of the 2-d ellipses;
- :func:`calibration_scales`, :func:`calibration_scale_sd`: the global variance factors that
  calibrate posteriors on average, and their bootstrap spread over cosmologies;
- :func:`summary_widths` (:func:`summary_response`, :func:`summary_fisher`): the constraints
  from the point estimates used as summaries in a Gaussian likelihood (Fluri et al.).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from ...datasets.cosmo_grid import s8

__all__ = ["LEVELS", "interval_coverage", "posterior_metrics", "calibration_scales", "calibration_scale_sd",
           "summary_widths", "summary_response", "summary_fisher"]

#: levels of the central intervals whose coverage is measured
LEVELS = (0.68, 0.95)


def interval_coverage(mean, std, truth, levels=LEVELS) -> dict[float, float]:
    """Fraction of central Gaussian intervals ``mean +- z_level std`` that contain ``truth`` (arrays (n,))."""
    mean, std, truth = (np.asarray(v, dtype=np.float64) for v in (mean, std, truth))
    if not (mean.shape == std.shape == truth.shape) or mean.size == 0:
        raise ValueError(f"mean, std and truth must be equal non-empty shapes, got {mean.shape}, {std.shape}, {truth.shape}")
    if np.any(~(std > 0)):
        raise ValueError("standard deviations must be positive")
    return {lv: float(np.mean(np.abs(truth - mean) <= stats.norm.ppf(0.5 + lv / 2) * std)) for lv in levels}


def calibration_scales(mean: np.ndarray, cov: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Per-parameter factors s (2,) for (Omega_m, S8) that make posteriors (mean (n, 2), cov (n, 2, 2))
    of true (Omega_m, sigma_8) ``theta`` calibrated on average: ``s_i^2 = mean((truth_i - mean_i)^2 / cov_ii)``.
    The covariance becomes ``D cov D`` with D = diag(s) (correlations kept)."""
    truth = np.stack([theta[:, 0], s8(theta[:, 0], theta[:, 1])], -1)
    return np.sqrt(np.mean((truth - mean) ** 2 / np.diagonal(cov, axis1=1, axis2=2), axis=0))


def calibration_scale_sd(mean: np.ndarray, cov: np.ndarray, theta: np.ndarray, groups: np.ndarray,
                         n_boot: int = 500, seed: int = 0) -> np.ndarray:
    """Bootstrap standard deviation (2,) of :func:`calibration_scales`, resampling ``groups`` (n,) (the
    samples of one cosmology together: they share its bias) with replacement."""
    groups = np.asarray(groups)
    if groups.shape != (len(mean),):
        raise ValueError(f"groups must be one label per prediction ({len(mean)}), got shape {groups.shape}")
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    if len(members) < 2:
        raise ValueError("the bootstrap of the calibration scales needs at least 2 groups")
    rng = np.random.default_rng(seed)
    boot = [calibration_scales(mean[i], cov[i], theta[i])
            for i in (np.concatenate([members[k] for k in rng.integers(len(members), size=len(members))])
                      for _ in range(n_boot))]
    return np.std(boot, axis=0, ddof=1)


def summary_widths(mean_fit: np.ndarray, theta_fit: np.ndarray, mean_fid: np.ndarray,
                   mean_test: np.ndarray | None = None, theta_test: np.ndarray | None = None) -> dict:
    """Constraints from a method's point estimates used as summary statistics (as in Fluri et al.).

    The estimates t (n, 2) get a Gaussian likelihood N(t; b + J theta, C) in theta = (Omega_m, S8):
    the response J (2 x 2) and offset b are the least-squares fit of ``mean_fit`` on its true
    parameters ``theta_fit`` (n, 2) = (Omega_m, sigma_8) (cosmologies the method was not trained on:
    :func:`~.evaluation.evaluate_all` passes the validation and calibration ones), C the covariance of
    ``mean_fid`` at the fiducial (with the Hartlap factor).  Fisher matrix F = J^T C^-1 J; marginal
    errors sqrt(diag(F^-1)).  With ``mean_test``/``theta_test``: each test sample's maximum-likelihood
    parameters F^-1 J^T C^-1 (t - b) and the coverage of their intervals +- 1 and +- 1.96 marginal
    errors (C is the fiducial one everywhere: the check of that approximation).
    Returns {"omega_m", "s8", "slope" (J as nested lists)[, "coverage": {"omega_m"|"s8": {"coverage_68",
    "coverage_95"}}]}.
    """
    jac, offset = summary_response(mean_fit, theta_fit)
    fisher_inv, cov_inv, width = summary_fisher(jac, mean_fid)
    out = {"omega_m": float(width[0]), "s8": float(width[1]), "slope": jac.tolist()}
    if mean_test is not None:
        est = (mean_test - offset) @ (fisher_inv @ jac.T @ cov_inv).T
        z = np.abs(est - np.stack([theta_test[:, 0], s8(theta_test[:, 0], theta_test[:, 1])], -1)) / width
        out["coverage"] = {name: {"coverage_68": float(np.mean(z[:, i] <= 1.0)),
                                  "coverage_95": float(np.mean(z[:, i] <= stats.norm.ppf(0.975)))}
                           for i, name in enumerate(("omega_m", "s8"))}
    return out


def summary_response(mean_fit: np.ndarray, theta_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`summary_widths`' response J (2, 2) (d estimate_i / d truth_j) and offset b (2,): the
    least-squares fit of the estimates ``mean_fit`` (n, 2) on their true (Omega_m, S8)."""
    truth = np.stack([theta_fit[:, 0], s8(theta_fit[:, 0], theta_fit[:, 1])], -1)
    if len(np.unique(truth, axis=0)) < 3:
        raise ValueError(f"summary widths need >= 3 distinct fitting cosmologies, got {len(np.unique(truth, axis=0))}: "
                         "raise --n-calib")
    coef = np.linalg.lstsq(np.column_stack([truth, np.ones(len(truth))]), mean_fit, rcond=None)[0]  # (3, 2)
    return coef[:2].T, coef[2]


def summary_fisher(jac: np.ndarray, mean_fid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F^-1 (2, 2), C^-1 (2, 2), marginal errors (2,)) of :func:`summary_widths` for the response ``jac``
    and the fiducial estimates ``mean_fid`` (n, 2) (their covariance C with the Hartlap factor)."""
    n = len(mean_fid)
    if n < 6:
        raise ValueError(f"summary widths need >= 6 fiducial samples, got {n} (fiducial maps x footprint copies): "
                         "raise --n-fiducial")
    cov_inv = np.linalg.inv(np.cov(mean_fid, rowvar=False) / ((n - 2 - 2) / (n - 1)))
    fisher_inv = np.linalg.inv(jac.T @ cov_inv @ jac)
    return fisher_inv, cov_inv, np.sqrt(np.diag(fisher_inv))


def _sigma8(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method mean and std of sigma_8 = S8 / sqrt(Omega_m / 0.3) from (Omega_m, S8) Gaussians."""
    om = np.clip(mean[:, 0], 1e-3, None)
    val = mean[:, 1] / np.sqrt(om / 0.3)
    jac = np.stack([-0.5 * val / om, 1.0 / np.sqrt(om / 0.3)], -1)
    return val, np.sqrt(np.einsum("ni,nij,nj->n", jac, cov, jac))


def posterior_metrics(mean: np.ndarray, cov: np.ndarray, theta: np.ndarray) -> dict:
    """Metrics of (Omega_m, S8) posteriors (mean (n, 2), cov (n, 2, 2)) of true (Omega_m, sigma_8) ``theta`` (n, 2):
    {"omega_m"|"s8"|"sigma8": block, "joint": {"coverage_68", "coverage_95"}, "n": n}; sigma_8 by the delta method.

    Each parameter's block: ``rmse`` sqrt(mean((m - truth)^2)) of the posterior means m; ``bias`` mean(m - truth);
    ``mean_std`` sqrt(mean(s^2)), the root of the mean predicted variance (an RMS of the posterior stds s: the
    width at the fiducial); ``mean`` mean(m); ``coverage_68``/``coverage_95`` the fraction of central intervals
    m +- z s holding the truth (:func:`interval_coverage`); ``scatter`` std(m) (ddof 1) only where every sample
    has the same truth (the fiducial: the scatter of the point estimate over realisations), left out over
    several cosmologies (held-out, was: there it was the spread of the true values plus the errors, larger than the
    RMSE, not an error scatter).  ``joint``: the coverage of the 2-d 68 % / 95 % ellipses (chi^2, 2 degrees of
    freedom)."""
    truth = {"omega_m": theta[:, 0], "s8": s8(theta[:, 0], theta[:, 1]), "sigma8": theta[:, 1]}
    s8_mean, s8_std = _sigma8(mean, cov)
    est = {"omega_m": (mean[:, 0], np.sqrt(cov[:, 0, 0])), "s8": (mean[:, 1], np.sqrt(cov[:, 1, 1])),
           "sigma8": (s8_mean, s8_std)}
    one_truth = bool(np.all(theta == theta[:1]))
    out = {}
    for name, (m, s) in est.items():
        cov_ = interval_coverage(m, s, truth[name])
        out[name] = {"rmse": float(np.sqrt(np.mean((m - truth[name]) ** 2))), "bias": float(np.mean(m - truth[name])),
                     "mean_std": float(np.sqrt(np.mean(s**2))),
                     **({"scatter": float(np.std(m, ddof=1)) if len(m) > 1 else 0.0} if one_truth else {}),
                     "mean": float(np.mean(m)), **{f"coverage_{int(lv * 100)}": v for lv, v in cov_.items()}}
    d = np.stack([truth["omega_m"], truth["s8"]], -1) - mean
    chi2 = np.einsum("ni,nij,nj->n", d, np.linalg.inv(cov), d)
    out["joint"] = {f"coverage_{int(lv * 100)}": float(np.mean(chi2 <= stats.chi2.ppf(lv, 2))) for lv in LEVELS}
    out["n"] = int(len(theta))
    return out
