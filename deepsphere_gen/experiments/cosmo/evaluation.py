"""Partial-sky cosmological inference on a survey footprint: DeepSphere vs the power spectrum.

The pipeline of Fluri et al. (2019, 2022) on generated data: tomographic log-normal
convergence maps over a Sobol design in (Omega_m, sigma_8)
(:mod:`deepsphere_gen.datasets.cosmo_grid`), seen through a ~1,000 deg^2 footprint with
shape noise per redshift bin, and three estimators of the parameters trained on the same
samples and judged on the same held-out cosmologies and fiducial realisations:

- ``graph``: :class:`~deepsphere_gen.models.DeepSphereRegressor` on the footprint pixels
  only (``indices=``: masked pixels never enter; partial-sky pooling keeps only parents
  whose children are all inside), channels = redshift bins, inputs divided by each bin's
  pixel std; a new noise realisation at every draw;
- ``power_spectrum``: an MLP on the MASTER band powers of every auto and cross spectrum
  (the power-spectrum analysis);
- ``handcrafted``: the same MLP on band powers + moments and quantiles at three
  resolutions (:mod:`.cosmo_summaries`): how much the maps carry beyond the spectra.

Every estimator outputs a 2-d Gaussian posterior over (Omega_m, S8), S8 = sigma_8
sqrt(Omega_m / 0.3), scaled to the prior box: a mean and a Cholesky factor
``L = [[exp(a), 0], [b, exp(c)]]`` of its covariance, trained with the Gaussian negative log
likelihood :func:`gaussian_nll` (S8 rather than sigma_8 because lensing constrains S8: the
posterior is close to Gaussian there, and banana-shaped in (Omega_m, sigma_8); sigma_8's
mean and variance follow by the delta method).  Outputs: RMSE on held-out cosmologies,
the constraint width at the fiducial cosmology (square root of the mean predicted variance,
and the scatter of the means over fiducial realisations), coverage of 68 % / 95 % intervals
(:func:`interval_coverage`), a predicted-vs-true figure and the fiducial constraint ellipses.

Validation and calibration: one training cosmology in 8 is held out of training (validation:
early stopping of the MLPs; the graph network keeps the weights of its epoch of lowest
validation loss, ``TrainConfig.keep_best``).  The posteriors of every
method are then recalibrated by a variance factor per parameter fitted on the calibration data
(:class:`~.cosmo_calibration.VarianceCalibration`: one global factor, :func:`calibration_scales`,
the "variance scaling" of regression calibration, or a factor linear or quadratic in the
predicted parameters where grouped cross-validation prefers it): the validation
samples pooled with the calibration split's cosmologies (never trained on), each of its maps with
``calib_noise_draws`` noise realisations.  A network trained by Gaussian NLL reaches a good mean
before its variance head settles, and the MLPs on fixed-noise features overfit their variance.
With the 16 validation cosmologies alone the fitted scale varied by ~5 % (bootstrap over
cosmologies) plus ~5 % from the one noise draw, the largest part of the seed-to-seed spread of
the width ratio; the pooled fit's bootstrap standard deviation is in the records
(:func:`calibration_scale_sd`).  The held-out test cosmologies and the fiducial maps never
enter the calibration, so their coverage checks it; raw (uncalibrated) metrics are kept in the
records.

Graph ensemble (``graph_members`` M > 1): M graph networks trained one after another on the same
data with training seeds :func:`member_seed` (member 0 is the single network, checkpoint
``cosmo-graph.pt``; member i: ``cosmo-graph-m<i>.pt``; every checkpoint carries a fingerprint of
:func:`member_fields`).  Each sample's M Gaussians in u-space become one by moment matching their
equal-weight mixture (:func:`mixture_moments`) before the variance calibration, which runs
unchanged; the summary likelihood uses the ensemble mean.  Each member alone is evaluated too
(``summary["members"]`` for M > 1) and its training recorded (``records[graph]["members"]``, M >= 1:
:func:`evaluate_all`).  Cost: M times the graph training, M prediction passes.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from ..._fingerprint import canonical, fingerprint, mask_hash
from ..._io import atomic_write_json
from ..._seeds import ensemble_seed
from ...datasets.cosmo_grid import SPLITS, CosmoGridConfig, CosmoMapDataset, generate_cosmo_grid, load_footprint, s8
from ...datasets.pseudo_cl import PseudoCl
from ...models import DeepSphereRegressor
from ...sampling import HealpixSampling
from ...training import (DistContext, TrainConfig, check_fingerprint, check_settings, distributed_context, fit,
                        load_checkpoint, save_checkpoint, seed_everything, trained_weights)
from .calibration import DEGREES, VarianceCalibration
from .config import CALIBRATIONS, GRAPH_WEIGHTS, METHODS, CosmoExperimentConfig
from .fisher import power_spectrum_forecast
from ..reporting import align_rows, save_png
from .summaries import summary_features

__all__ = ["METHODS", "GRAPH_WEIGHTS", "CALIBRATIONS", "CosmoExperimentConfig", "ParameterSpace", "gaussian_nll",
           "interval_coverage", "posterior_metrics", "mixture_moments", "member_seed", "member_fields",
           "calibration_scales", "calibration_scale_sd", "summary_widths", "bootstrap_ratios", "pooling_plan",
           "build_graph_model", "generate", "train", "evaluate_all", "format_table", "write_json", "plot_all"]

FEATURE_METHODS = ("power_spectrum", "handcrafted")
LEVELS = (0.68, 0.95)
#: one training cosmology in VALIDATION_EVERY (drawn at random: strided Sobol subsets cluster) validates
VALIDATION_EVERY = 8


class ParameterSpace:
    """Map (Omega_m, sigma_8) to standardised u = ((Omega_m - c_m) / h_m, (S8 - c_s) / h_s) over the prior box."""

    def __init__(self, grid: CosmoGridConfig):
        (om0, om1), (s0, s1) = grid.omega_m_range, grid.sigma8_range
        corners = s8(np.array([om0, om0, om1, om1]), np.array([s0, s1, s0, s1]))
        self.centre = np.array([(om0 + om1) / 2, (corners.min() + corners.max()) / 2])
        self.half = np.array([(om1 - om0) / 2, (corners.max() - corners.min()) / 2])

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        phys = np.stack([theta[..., 0], s8(theta[..., 0], theta[..., 1])], -1)
        return (phys - self.centre) / self.half

    def from_u(self, mean_u: np.ndarray, cov_u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean (n, 2), cov (n, 2, 2)) in (Omega_m, S8)."""
        return mean_u * self.half + self.centre, cov_u * np.outer(self.half, self.half)


class _Targets(Dataset):
    """(x, theta) items -> (x, u) with u the standardised (Omega_m, S8)."""

    def __init__(self, dataset: Dataset, space: ParameterSpace):
        self.dataset, self.space = dataset, space

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        x, theta = self.dataset[i]
        return x, torch.as_tensor(self.space.to_u(theta.numpy()), dtype=torch.float32)


def _cholesky(out: torch.Tensor):
    mu = out[:, :2]
    a, b, c = out[:, 2].clamp(-10, 5), out[:, 3], out[:, 4].clamp(-10, 5)
    return mu, a, b, c


def gaussian_nll(out: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log likelihood (up to log 2 pi) of ``target`` (B, 2) under N(mu, L L^T).

    out (B, 5): mu (2), a, b, c with ``L = [[exp(a), 0], [b, exp(c)]]``; the log-scales are
    clamped to [-10, 5].  reduction: "mean", "sum" or "none".
    """
    if out.dim() != 2 or out.shape[1] != 5 or target.shape != (out.shape[0], 2):
        raise ValueError(f"need outputs (B, 5) and targets (B, 2), got {tuple(out.shape)} and {tuple(target.shape)}")
    mu, a, b, c = _cholesky(out)
    d = target - mu
    z1 = d[:, 0] * torch.exp(-a)
    z2 = (d[:, 1] - b * z1) * torch.exp(-c)
    nll = 0.5 * (z1.square() + z2.square()) + a + c
    if reduction == "none":
        return nll
    return nll.sum() if reduction == "sum" else nll.mean()


def _mean_cov(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, a, b, c = (t.numpy() for t in _cholesky(torch.as_tensor(out, dtype=torch.float64)))
    L = np.zeros((len(mu), 2, 2))
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = np.exp(a), b, np.exp(c)
    return mu, L @ np.swapaxes(L, 1, 2)


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
    :func:`evaluate_all` passes the validation and calibration ones), C the covariance of
    ``mean_fid`` at the fiducial (with the Hartlap factor).  Fisher matrix F = J^T C^-1 J; marginal
    errors sqrt(diag(F^-1)).  With ``mean_test``/``theta_test``: each test sample's maximum-likelihood
    parameters F^-1 J^T C^-1 (t - b) and the coverage of their intervals +- 1 and +- 1.96 marginal
    errors (C is the fiducial one everywhere: the check of that approximation).
    Returns {"omega_m", "s8", "slope" (J as nested lists)[, "coverage": {"omega_m"|"s8": {"coverage_68",
    "coverage_95"}}]}.
    """
    jac, offset = _summary_response(mean_fit, theta_fit)
    fisher_inv, cov_inv, width = _summary_fisher(jac, mean_fid)
    out = {"omega_m": float(width[0]), "s8": float(width[1]), "slope": jac.tolist()}
    if mean_test is not None:
        est = (mean_test - offset) @ (fisher_inv @ jac.T @ cov_inv).T
        z = np.abs(est - np.stack([theta_test[:, 0], s8(theta_test[:, 0], theta_test[:, 1])], -1)) / width
        out["coverage"] = {name: {"coverage_68": float(np.mean(z[:, i] <= 1.0)),
                                  "coverage_95": float(np.mean(z[:, i] <= stats.norm.ppf(0.975)))}
                           for i, name in enumerate(("omega_m", "s8"))}
    return out


def _summary_response(mean_fit: np.ndarray, theta_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`summary_widths`' response J (2, 2) (d estimate_i / d truth_j) and offset b (2,): the
    least-squares fit of the estimates ``mean_fit`` (n, 2) on their true (Omega_m, S8)."""
    truth = np.stack([theta_fit[:, 0], s8(theta_fit[:, 0], theta_fit[:, 1])], -1)
    if len(np.unique(truth, axis=0)) < 3:
        raise ValueError(f"summary widths need >= 3 distinct fitting cosmologies, got {len(np.unique(truth, axis=0))}")
    coef = np.linalg.lstsq(np.column_stack([truth, np.ones(len(truth))]), mean_fit, rcond=None)[0]  # (3, 2)
    return coef[:2].T, coef[2]


def _summary_fisher(jac: np.ndarray, mean_fid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F^-1 (2, 2), C^-1 (2, 2), marginal errors (2,)) of :func:`summary_widths` for the response ``jac``
    and the fiducial estimates ``mean_fid`` (n, 2) (their covariance C with the Hartlap factor)."""
    n = len(mean_fid)
    if n < 6:
        raise ValueError(f"summary widths need >= 6 fiducial samples, got {n}")
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
    """RMSE, mean predicted std and coverage per parameter for (Omega_m, S8) posteriors
    (mean (n, 2), cov (n, 2, 2)) of true (Omega_m, sigma_8) ``theta`` (n, 2); plus the 2-d
    coverage of the 68 % / 95 % ellipses (chi^2 with 2 degrees of freedom)."""
    truth = {"omega_m": theta[:, 0], "s8": s8(theta[:, 0], theta[:, 1]), "sigma8": theta[:, 1]}
    s8_mean, s8_std = _sigma8(mean, cov)
    est = {"omega_m": (mean[:, 0], np.sqrt(cov[:, 0, 0])), "s8": (mean[:, 1], np.sqrt(cov[:, 1, 1])),
           "sigma8": (s8_mean, s8_std)}
    out = {}
    for name, (m, s) in est.items():
        cov_ = interval_coverage(m, s, truth[name])
        out[name] = {"rmse": float(np.sqrt(np.mean((m - truth[name]) ** 2))), "bias": float(np.mean(m - truth[name])),
                     "mean_std": float(np.sqrt(np.mean(s**2))), "scatter": float(np.std(m, ddof=1)) if len(m) > 1 else 0.0,
                     "mean": float(np.mean(m)), **{f"coverage_{int(lv * 100)}": v for lv, v in cov_.items()}}
    d = np.stack([truth["omega_m"], truth["s8"]], -1) - mean
    chi2 = np.einsum("ni,nij,nj->n", d, np.linalg.inv(cov), d)
    out["joint"] = {f"coverage_{int(lv * 100)}": float(np.mean(chi2 <= stats.chi2.ppf(lv, 2))) for lv in LEVELS}
    out["n"] = int(len(theta))
    return out


# ------------------------------------------------------------------------------ models


class _ScaledInput(nn.Module):
    """Divide every input channel by a fixed scale, then run ``model``; (B, P, C) -> model's output."""

    def __init__(self, model: nn.Module, scale):
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float32))

    def forward(self, x):
        return self.model(x / self.scale)


def pooling_plan(nside: int, indices: np.ndarray, n_blocks: int, min_pixels: int = 1) -> tuple[int, ...]:
    """Pool by 4 after each block while the footprint keeps at least ``min_pixels`` complete parents
    (then 0): a fragmented user mask stops pooling instead of failing.  One entry per block
    (the built-in footprint at nside 128: (1, 1, 1, 1), 6 pixels left at nside 8)."""
    sampling, plan = HealpixSampling(nside, indices=indices), []
    for _ in range(n_blocks):
        coarse = None
        if sampling.nside >= 2:
            try:
                coarse = sampling.coarsen(1)[0]
            except ValueError:  # no complete parent left
                coarse = None
        if coarse is None or coarse.npix < min_pixels:
            plan.append(0)
        else:
            plan.append(1)
            sampling = coarse
    return tuple(plan)


def build_graph_model(config: CosmoExperimentConfig, indices: np.ndarray, scale) -> nn.Module:
    """DeepSphere regressor on the footprint pixels ``indices``: (B, pixels, n_bins) -> (B, 5); pooling by
    :func:`pooling_plan`."""
    pools = pooling_plan(config.grid.nside, indices, len(config.channels))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="partial-sky pooling")  # edge pixels of incomplete parents
        net = DeepSphereRegressor(config.grid.nside, config.grid.n_bins, channels=config.channels, n_outputs=5,
                                  K=config.K, k=config.k, pool_levels=pools, head="stats", stats=("mean", "std"),
                                  indices=indices)
    return _ScaledInput(net, scale)


def _mlp(n_in: int, hidden, dropout: float = 0.0) -> nn.Module:
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        width = h
    layers.append(nn.Linear(width, 5))
    return nn.Sequential(*layers)


def generate(config: CosmoExperimentConfig, ctx: DistContext | None = None) -> Path:
    """Generate (rank 0; other ranks reuse) or reuse the simulations; returns their directory."""
    ctx = ctx or distributed_context(config.device)
    if ctx.is_main:
        path = generate_cosmo_grid(config.grid, config.data_dir, progress=config.progress)
    ctx.barrier()
    if not ctx.is_main:
        path = generate_cosmo_grid(config.grid, config.data_dir, progress=False, verbose=False)
    return path


def _estimator(config: CosmoExperimentConfig) -> PseudoCl:
    """The pseudo-C_l estimator of the run's footprint, built once per process and mask (its
    coupling matrix costs ~3 s CPU at nside 128; :func:`train` and :func:`evaluate_all` of one run
    share it).  Keyed by the mask's content (:func:`~deepsphere_gen._fingerprint.mask_hash`), so a FITS mask
    rewritten under the same name is a new estimator."""
    grid = config.grid
    return _pseudo_cl(mask_hash(load_footprint(grid.footprint, grid.nside)), grid.footprint, grid.nside)


@lru_cache(maxsize=2)
def _pseudo_cl(digest: str, footprint: str, nside: int) -> PseudoCl:
    """:class:`PseudoCl` of footprint ``footprint`` at ``nside`` whose mask has content ``digest``
    (the two most recent of this process)."""
    return PseudoCl(np.ascontiguousarray(load_footprint(footprint, nside)))


def _features(config, path, est, split, draws=1):
    """Summary features of a split: {method: (n * draws, n_features)}, params (n * draws, 2)."""
    params = np.load(Path(path) / f"params_{split}.npy")
    out = {m: [] for m in FEATURE_METHODS}
    for r in range(draws):
        f = summary_features(path, split, config.noise_std(), est, realisation=r, seed=config.seed,
                             progress=config.progress)
        for m in FEATURE_METHODS:
            out[m].append(f[m])
    return {m: np.concatenate(v) for m, v in out.items()}, np.tile(params, (draws, 1))


def _checkpoint(config: CosmoExperimentConfig, method: str, member: int = 0) -> Path:
    """``checkpoints/cosmo-<method>.pt``; graph ensemble member i >= 1: ``cosmo-graph-m<i>.pt``."""
    return Path(config.out_dir) / "checkpoints" / (f"cosmo-{method}.pt" if member == 0 else f"cosmo-{method}-m{member}.pt")


def member_seed(seed: int, member: int) -> int:
    """Training seed of graph ensemble member ``member`` of a run with ``seed``: ``seed`` itself for
    member 0 (the single network), else 31 bits of ``SeedSequence([seed, 7477, member])`` (weights,
    data order and training noise differ; the data, validation split and noise of the evaluation
    stay those of ``seed``); :func:`~deepsphere_gen._seeds.ensemble_seed` with stream 7477."""
    return ensemble_seed(seed, member, 7477)


def member_fields(config: CosmoExperimentConfig, member: int) -> dict:
    """What determines the checkpoint of graph member ``member`` (fingerprinted into it, so a checkpoint
    of another configuration is neither resumed nor evaluated): the simulations' settings, noise,
    network, training settings, the run's seed and the member."""
    return canonical({"grid": asdict(config.grid), "ngal": config.ngal, "sigma_e": config.sigma_e,
                      "network": {"channels": config.channels, "K": config.K, "k": config.k},
                      "train": {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                                "weight_decay": config.weight_decay},
                      "seed": config.seed, "member": member, "member_seed": member_seed(config.seed, member)})


def _member_meta(config: CosmoExperimentConfig, member: int) -> dict:
    """``fit``'s meta of a member: the fingerprint of :func:`member_fields` and the fields."""
    fields_ = member_fields(config, member)
    return {"fingerprint": fingerprint(fields_), "fields": fields_}


def _legacy(member: int, state: dict | None) -> bool:
    """A checkpoint of member 0 written before the fingerprints (no ``meta["fingerprint"]``): still
    resumed and evaluated (only its training settings are checked), so earlier single-network runs
    stay usable; members >= 1 always carry one."""
    return member == 0 and state is not None and "fingerprint" not in (state.get("meta") or {})


def _train_config(config: CosmoExperimentConfig, n_train: int, world: int, member: int = 0) -> TrainConfig:
    batch = max(world, min(config.batch_size, n_train) - min(config.batch_size, n_train) % world)
    return TrainConfig(epochs=config.epochs, batch_size=batch, lr=config.lr, weight_decay=config.weight_decay,
                       seed=member_seed(config.seed, member), device=config.device, progress=config.progress,
                       lr_schedule="cosine", warmup=0.05, recalibrate_samples=512,
                       checkpoint=_checkpoint(config, "graph", member),
                       desc="cosmo graph" if member == 0 else f"cosmo graph m{member}", keep_best="val_loss")


def _graph_state(config: CosmoExperimentConfig, member: int, device) -> dict | None:
    """The checkpoint of graph member ``member`` (None if absent), checked against ``config``: its
    fingerprint (:func:`member_fields`, :func:`~deepsphere_gen.training.check_fingerprint`) must match;
    a member-0 checkpoint without one (:func:`_legacy`) is checked on its stored training settings, as a
    resumed run checks them (:func:`~deepsphere_gen.training.check_settings`; a setting it does not store
    counts as differing; the batch size is not compared: the effective one depends on the number of
    processes that trained it); else :class:`~deepsphere_gen.training.CheckpointMismatch`."""
    ckpt = _checkpoint(config, "graph", member)
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt, map_location=device)
    remedy = "not evaluated: train again in another --out-dir or remove it"
    if _legacy(member, state):
        check_settings(state, _train_config(config, 1, 1, member), ckpt, remedy, ignore=("batch_size",),
                       absent_differs=True)
    else:
        check_fingerprint(state, _member_meta(config, member), ckpt, remedy)
    return state


def validation_mask(path, seed: int = 0) -> np.ndarray:
    """(n_train_samples,) bool: samples of the validation cosmologies, ``n_train // VALIDATION_EVERY``
    (at least 1) training cosmologies drawn at random with ``seed``."""
    ids = np.load(Path(path) / "ids_train.npy")
    n = int(ids[:, 0].max()) + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8111]))
    chosen = rng.permutation(n)[: max(1, n // VALIDATION_EVERY)]
    return np.isin(ids[:, 0], chosen)


def _graph_scale(config: CosmoExperimentConfig, path: Path) -> np.ndarray:
    """Per-bin pixel std of signal + noise over (at most 64) training samples: (n_bins,)."""
    maps = np.load(Path(path) / "maps_train.npy", mmap_mode="r")
    pick = np.linspace(0, len(maps) - 1, min(64, len(maps))).astype(int)
    sig = np.asarray(maps[pick], dtype=np.float64).std(axis=(0, 1))
    return np.sqrt(sig**2 + config.noise_std() ** 2)


def _in_memory(dataset: Dataset) -> TensorDataset:
    """The (x, u) items of a data set without randomness (fixed noise) stacked once into tensors: the
    validation set is read at every epoch, and each read of a map with its fixed noise costs ~0.3 ms
    (256 maps of 4,762 pixels x 3 bins: 15 MB held, 0.08 s CPU saved per epoch)."""
    xs, us = zip(*(dataset[i] for i in range(len(dataset))))
    return TensorDataset(torch.stack(xs), torch.stack(us))


class _FeatureScaler:
    def __init__(self, train: np.ndarray):
        self.mean, self.std = train.mean(0), train.std(0) + 1e-30

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - self.mean) / self.std, dtype=torch.float32)


def _fit_mlp(model: nn.Module, x: torch.Tensor, u: torch.Tensor, xv: torch.Tensor, uv: torch.Tensor,
             config: CosmoExperimentConfig, patience: int = 40) -> tuple[dict, list[dict]]:
    """AdamW on the Gaussian NLL with early stopping on the validation NLL; returns (best state, history)."""
    seed_everything(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    best, best_state, history, since = math.inf, None, [], 0
    for epoch in range(config.mlp_epochs):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(128):
            loss = gaussian_nll(model(x[idx]), u[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(gaussian_nll(model(xv), uv))
        history.append({"epoch": epoch + 1, "train_loss": total / len(x), "val_loss": val,
                        "seconds": time.perf_counter() - t0})
        if val < best:
            best, since = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    return best_state, history


def train(config: CosmoExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
          log=print) -> dict:
    """Train every method of ``config.methods`` on the training cosmologies minus the validation
    ones (checkpointed; the graph network resumes, a finished MLP is kept); returns the histories.
    Order: graph member 0, the MLPs, graph members >= 1 (so the MLPs do not depend on
    ``graph_members``); every graph member's initial weights are seeded by :func:`member_seed`."""
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    space = ParameterSpace(config.grid)
    val = validation_mask(path, config.seed)
    tr_idx, val_idx = np.flatnonzero(~val).tolist(), np.flatnonzero(val).tolist()
    histories = {}

    if "graph" in config.methods:  # shared by the ensemble members: only the weights differ
        train_set = Subset(_Targets(CosmoMapDataset(path, "train", config.noise_std(), fresh_noise=True,
                                                    seed=config.seed), space), tr_idx)
        val_set = _in_memory(Subset(_Targets(CosmoMapDataset(path, "train", config.noise_std(), seed=config.seed),
                                             space), val_idx))
        footprint, scale = np.load(path / "footprint.npy"), _graph_scale(config, path)

    def train_graph(member: int) -> None:
        ckpt = _checkpoint(config, "graph", member)
        legacy = member == 0 and ckpt.is_file() and _legacy(0, load_checkpoint(ckpt))  # members >= 1 never are
        if legacy and log and ctx.is_main:
            log(f"cosmo graph: {ckpt} predates checkpoint fingerprints: only its training settings are checked")
        seed_everything(member_seed(config.seed, member))  # the initial weights
        model = build_graph_model(config, footprint, scale)
        t0 = time.process_time()
        key = "graph" if member == 0 else f"graph-m{member}"
        histories[key] = fit(model, train_set, _train_config(config, len(tr_idx), ctx.world_size, member),
                             val_set=val_set, loss_fn=gaussian_nll, log=log,
                             ctx=ctx, meta=None if legacy else _member_meta(config, member))
        if log and ctx.is_main:
            log(f"cosmo {key}: trained, {time.process_time() - t0:.0f} s process CPU")

    if "graph" in config.methods:
        train_graph(0)
    feats = [m for m in FEATURE_METHODS if m in config.methods]
    if feats and ctx.is_main:
        est = _estimator(config)
        x, theta = _features(config, path, est, "train", config.ps_noise_draws)
        u = torch.as_tensor(space.to_u(theta), dtype=torch.float32)
        val_draws = np.tile(val, config.ps_noise_draws)
        for m in feats:
            ckpt = _checkpoint(config, m)
            if ckpt.is_file():
                histories[m] = load_checkpoint(ckpt)["history"]
                continue
            t0 = time.process_time()
            scaler = _FeatureScaler(x[m][~val_draws])
            xs = scaler(x[m])
            model = _mlp(x[m].shape[1], config.mlp_hidden, config.mlp_dropout)
            state, hist = _fit_mlp(model, xs[~val_draws], u[~val_draws], xs[val_draws], u[val_draws], config)
            best = int(np.argmin([h["val_loss"] for h in hist]))
            save_checkpoint(ckpt, {"model": state, "epoch": best + 1, "history": hist})
            histories[m] = hist
            if log:
                log(f"cosmo {m}: best epoch {best + 1} of {len(hist)}, val loss {hist[best]['val_loss']:.3f} "
                    f"(train {hist[best]['train_loss']:.3f}), {time.process_time() - t0:.0f} s process CPU")
    ctx.barrier()
    if "graph" in config.methods:  # after the MLPs, whose initial weights follow member 0's training
        for member in range(1, config.graph_members):  # one after another (under torchrun: all ranks each)
            train_graph(member)
        ctx.barrier()
    return histories


@torch.no_grad()
def _predict(model: nn.Module, dataset: Dataset, device, batch: int = 64) -> np.ndarray:
    model.eval()
    outs = [model(b[0].to(device)).double().cpu() for b in DataLoader(dataset, batch_size=batch)]
    return torch.cat(outs).numpy()


def evaluate_all(config: CosmoExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
                 log=print) -> dict:
    """Posterior metrics of every trained method on the held-out cosmologies and the fiducial
    realisations (rank 0); returns {"records": [...], "summary": {...}, "predictions": {...}}.

    Training entries of a method's record: ``epochs`` (the epoch whose weights are evaluated), ``epochs_run``,
    ``train_loss``/``val_loss`` (of that epoch): the MLP's own, for the graph method member 0's (the
    single network, as in a ``graph_members=1`` run); ``train_seconds``: all its networks' training (every
    graph member's).  The graph record also holds ``graph_members`` and ``members``, one entry per member
    (one with ``graph_members=1``): member, seed, its own epochs, epochs_run, train_seconds, train_loss,
    val_loss, ``best_epoch`` (lowest validation loss), ``history`` (per epoch: epoch, train_loss, val_loss,
    best_epoch, seconds) and its S8 widths alone (posterior, summary, rmse_test, coverage_68,
    summary_coverage_68; with one member the record's own).  Records written before the per-member
    training entries hold ``members`` (widths and train_seconds only) only where ``graph_members`` > 1."""
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    space = ParameterSpace(config.grid)
    records, preds = [], {}
    if not ctx.is_main:
        return {"records": [], "summary": {}, "predictions": {}}
    feats = {}
    val_idx = np.flatnonzero(validation_mask(path, config.seed))
    for method in config.methods:
        t0 = time.process_time()
        if method == "graph":
            states = [_graph_state(config, i, ctx.device) for i in range(config.graph_members)]
            missing = [str(_checkpoint(config, method, i)) for i, st in enumerate(states) if st is None]
            if missing:
                if log:
                    log(f"cosmo: no checkpoint {', '.join(missing)}: run `deepsphere-gen cosmo train` first")
                continue
            if config.graph_weights == "last":  # the evaluated weights in "best", where trained_weights reads them
                states = [{**st, "best": {"epoch": int(st["epoch"]), "model": st["model"]}} for st in states]
            outs = _graph_outputs(config, path, states, val_idx, ctx.device)
        else:
            ckpt = _checkpoint(config, method)
            if not ckpt.is_file():
                if log:
                    log(f"cosmo: no checkpoint {ckpt}: run `deepsphere-gen cosmo train` first")
                continue
            state = load_checkpoint(ckpt, map_location=ctx.device)
            states = [state]
            if not feats:
                est = _estimator(config)
                feats["train"] = _features(config, path, est, "train", config.ps_noise_draws)[0]
                feats["test"] = _features(config, path, est, "test")[0]
                feats["fiducial"] = _features(config, path, est, "fiducial")[0]
                feats["calibration"] = _features(config, path, est, "calibration", config.calib_noise_draws)[0]
            train_x = feats["train"][method]
            scaler = _FeatureScaler(train_x[~np.tile(validation_mask(path, config.seed), config.ps_noise_draws)])
            model = _mlp(train_x.shape[1], config.mlp_hidden, config.mlp_dropout)
            model.load_state_dict(state["model"])
            model.to(ctx.device)
            inputs = {"test": feats["test"][method], "fiducial": feats["fiducial"][method],
                      "validation": train_x[val_idx],  # noise draw 0 of the validation samples
                      "calibration": feats["calibration"][method]}
            outs = [{split: _predict(model, TensorDataset(scaler(x)), ctx.device, 512) for split, x in inputs.items()}]
        trained = [_training_record(st) for st in states]
        rec = {"method": method, **{k: trained[0][k] for k in ("epochs", "epochs_run")},  # member 0's (MLP: its own)
               "train_seconds": sum(t["train_seconds"] for t in trained),  # every ensemble member's
               **{k: trained[0][k] for k in ("train_loss", "val_loss")}}
        per_member = [{split: _mean_cov(o) for split, o in out.items()} for out in outs]
        moments = {split: mixture_moments(np.stack([m[split][0] for m in per_member]),
                                          np.stack([m[split][1] for m in per_member])) for split in per_member[0]}
        part, preds[method] = _posterior_record(config, path, space, val_idx, moments)
        rec.update(part)
        if method == "graph":
            rec["members"] = []
            for i, (st, mom) in enumerate(zip(states, per_member)):
                # one member: the ensemble is that member (mixture_moments of one Gaussian is the identity)
                one = part if len(outs) == 1 else _posterior_record(config, path, space, val_idx, mom)[0]
                rec["members"].append({"member": i, "seed": member_seed(config.seed, i), **trained[i],
                                       "best_epoch": st["history"][-1].get("best_epoch"),
                                       "history": [{k: h[k] for k in _HISTORY_KEYS if k in h} for h in st["history"]],
                                       **_widths(one), "coverage_68": one["test"]["s8"]["coverage_68"],
                                       "summary_coverage_68": _summary_coverage(one)})
            rec["graph_members"] = len(outs)
        rec["eval_cpu_seconds"] = time.process_time() - t0
        records.append(rec)
    summary = _summary(records)
    if "power_spectrum" in preds:
        summary["fisher_forecast"] = _forecast(config, path, records, feats.get("fiducial", {}).get("power_spectrum"))
    if "graph" in preds and "power_spectrum" in preds:
        summary["bootstrap_95"] = bootstrap_ratios(preds, path, seed=config.seed)
    return {"records": records, "summary": summary, "predictions": preds}


#: the entries of a training epoch's record (:func:`~deepsphere_gen.training.fit`) kept in a cosmo record's
#: ``members[i]["history"]`` (the per-step losses and the accuracies, meaningless for a regression, left out)
_HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "best_epoch", "seconds")


def _training_record(state: dict) -> dict:
    """One network's training from its checkpoint ``state``: epochs (the epoch whose weights are evaluated:
    ``state["best"]``'s where present, else ``state["epoch"]``, an MLP's best), epochs_run, train_seconds
    (its epochs' wall seconds summed), train_loss and val_loss of that epoch."""
    kept = int(state["best"]["epoch"]) if "best" in state else int(state["epoch"])
    at = state["history"][kept - 1]
    return {"epochs": kept, "epochs_run": len(state["history"]),
            "train_seconds": float(sum(h["seconds"] for h in state["history"])),
            "train_loss": float(at["train_loss"]), "val_loss": float(at.get("val_loss", math.nan))}


def mixture_moments(means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (n, d) and covariance (n, d, d) of the equal-weight mixture of M Gaussians per sample,
    means (M, n, d), covs (M, n, d, d): ``mean = avg_i mu_i``, ``cov = avg_i C_i + avg_i (mu_i - mean)(mu_i - mean)^T``
    (the moment-matched Gaussian of a deep ensemble; M = 1 returns the inputs unchanged)."""
    means, covs = np.asarray(means, dtype=np.float64), np.asarray(covs, dtype=np.float64)
    if means.ndim != 3 or covs.shape != means.shape + means.shape[-1:] or len(means) == 0:
        raise ValueError(f"need means (M, n, d) and covs (M, n, d, d), got {means.shape} and {covs.shape}")
    if len(means) == 1:
        return means[0], covs[0]
    mean = means.mean(0)
    d = means - mean
    return mean, covs.mean(0) + np.einsum("mni,mnj->nij", d, d) / len(means)


def _graph_outputs(config: CosmoExperimentConfig, path: Path, states: list[dict], val_idx: np.ndarray,
                   device) -> list[dict]:
    """Raw outputs (n, 5) on every evaluated split of each graph network (checkpoints ``states``, one
    per ensemble member, each evaluated with its ``best`` weights: :func:`evaluate_all` puts the
    last epoch's there for ``graph_weights="last"``): the model and the data sets are built once and
    every batch is read once, only the weights change (:func:`_predict_members`)."""
    model = build_graph_model(config, np.load(path / "footprint.npy"), _graph_scale(config, path)).to(device)
    data = {split: CosmoMapDataset(path, split, config.noise_std(), seed=config.seed) for split in SPLITS}
    data["validation"] = Subset(data.pop("train"), val_idx.tolist())
    data["calibration"] = ConcatDataset([data["calibration"]] + [  # the noise draws of summary_features
        CosmoMapDataset(path, "calibration", config.noise_std(), seed=config.seed + 7919 * r)
        for r in range(1, config.calib_noise_draws)])
    weights = [trained_weights(state) for state in states]
    per_split = {split: _predict_members(model, weights, ds, device) for split, ds in data.items()}
    return [{split: out[i] for split, out in per_split.items()} for i in range(len(states))]


@torch.no_grad()
def _predict_members(model: nn.Module, weights: list[dict], dataset: Dataset, device, batch: int = 64) -> list[np.ndarray]:
    """Outputs (n, 5) of ``model`` with each state dict of ``weights`` (ensemble members) on ``dataset``:
    each batch is read, its noise drawn, once and run by every member in turn (a ``load_state_dict``
    per batch and member, ~1 ms; reading a batch of 64 maps with their fixed noise costs ~20 ms)."""
    model.eval()
    if len(weights) == 1:
        model.load_state_dict(weights[0])
    outs = [[] for _ in weights]
    for b in DataLoader(dataset, batch_size=batch):
        x = b[0].to(device)
        for w, out in zip(weights, outs):
            if len(weights) > 1:
                model.load_state_dict(w)
            out.append(model(x).double().cpu())
    return [torch.cat(out).numpy() for out in outs]


def _posterior_record(config: CosmoExperimentConfig, path: Path, space: ParameterSpace, val_idx: np.ndarray,
                      moments: dict) -> tuple[dict, dict]:
    """Calibration, posterior metrics and summary widths of one method from its Gaussians in u-space
    ``moments`` {split: (mean (n, 2), cov (n, 2, 2))}; returns (record entries, predictions)."""
    rec, preds = {}, {}
    mean_c, cov_c, theta_c, groups = _calibration_set(config, path, space, val_idx, moments)
    cv = config.calibration == "cv" and len(np.unique(groups)) >= 5
    cal = VarianceCalibration(space.centre, space.half, DEGREES if cv else (0,), seed=config.seed).fit(
        mean_c, cov_c, np.stack([theta_c[:, 0], s8(theta_c[:, 0], theta_c[:, 1])], -1), groups)
    scale = calibration_scales(mean_c, cov_c, theta_c)
    rec["calibration_scales"] = scale.tolist()
    n_val = len(val_idx)
    rec["calibration"] = {
        "scales": scale.tolist(), "n_samples": int(len(theta_c)), "n_cosmologies": int(len(np.unique(groups))),
        "scales_bootstrap_sd": _maybe(calibration_scale_sd, mean_c, cov_c, theta_c, groups, seed=config.seed),
        "validation_only_scales": calibration_scales(mean_c[:n_val], cov_c[:n_val], theta_c[:n_val]).tolist(),
        "validation_only_bootstrap_sd": _maybe(calibration_scale_sd, mean_c[:n_val], cov_c[:n_val],
                                               theta_c[:n_val], groups[:n_val], seed=config.seed),
        "model": cal.to_dict()}
    rec["uncalibrated"] = {}
    for split in ("test", "fiducial"):
        theta = np.load(path / f"params_{split}.npy")
        mean, cov = space.from_u(*moments[split])
        raw = posterior_metrics(mean, cov, theta)
        rec["uncalibrated"][split] = {k: raw[k] for k in ("omega_m", "s8", "joint")}
        cov = cal.apply(mean, cov)
        rec[split] = posterior_metrics(mean, cov, theta)
        preds[split] = {"mean": mean, "cov": cov, "theta": theta}
    rec["fiducial"]["mean_cov"] = np.mean(preds["fiducial"]["cov"], 0).tolist()
    rec["calibration"]["scales_at_fiducial"] = np.mean(cal.scales(preds["fiducial"]["mean"]), 0).tolist()
    preds["calibration"] = {"mean": mean_c, "theta": theta_c}
    try:
        rec["fiducial"]["summary_width"] = summary_widths(mean_c, theta_c, preds["fiducial"]["mean"],
                                                          preds["test"]["mean"], preds["test"]["theta"])
    except (ValueError, np.linalg.LinAlgError):  # too few calibration cosmologies (tiny runs)
        rec["fiducial"]["summary_width"] = {"omega_m": None, "s8": None, "slope": None}
    return rec, preds


def _summary_coverage(rec: dict) -> float | None:
    """Held-out 68 % coverage of S8 with the estimates as summaries (None where not computed)."""
    c = rec["fiducial"]["summary_width"].get("coverage")
    return None if c is None else c["s8"]["coverage_68"]


def _calibration_set(config: CosmoExperimentConfig, path: Path, space: ParameterSpace, val_idx: np.ndarray,
                     moments: dict) -> tuple:
    """The pooled calibration data of one method: (mean (n, 2), cov (n, 2, 2), theta (n, 2), cosmology label (n,)),
    validation samples first, then the calibration split's noise draws (in the order of ``moments``, the
    u-space Gaussians {split: (mean, cov)})."""
    theta_c = np.load(path / "params_calibration.npy")
    cosmo_c = np.load(path / "ids_calibration.npy")[:, 0]
    draws = len(moments["calibration"][0]) // len(theta_c)
    mean_v, cov_v = space.from_u(*moments["validation"])
    mean_c, cov_c = space.from_u(*moments["calibration"])
    theta = np.concatenate([np.load(path / "params_train.npy")[val_idx], np.tile(theta_c, (draws, 1))])
    groups = np.concatenate([np.load(path / "ids_train.npy")[val_idx, 0], -1 - np.tile(cosmo_c, draws)])
    return np.concatenate([mean_v, mean_c]), np.concatenate([cov_v, cov_c]), theta, groups


def _maybe(fn, *args, **kw):
    """fn(...) as a list, None where a tiny run lacks the groups for it."""
    try:
        return fn(*args, **kw).tolist()
    except ValueError:
        return None


def _forecast(config: CosmoExperimentConfig, path: Path, records: list[dict], fid_ps: np.ndarray | None) -> dict:
    """The power spectrum's Fisher forecast (:mod:`.cosmo_fisher`) beside the networks' S8 widths at the
    fiducial, and the band powers' simulated variance at the fiducial over the Gaussian (Knox) one."""
    mask = np.zeros(12 * config.grid.nside**2, dtype=bool)
    mask[np.load(Path(path) / "footprint.npy")] = True
    f = power_spectrum_forecast(config.grid, config.noise_std(), mask=mask)
    knox = np.asarray(f.pop("knox_std"))
    for r in records:
        f[f"s8_width_{r['method']}_over_forecast"] = r["fiducial"]["s8"]["mean_std"] / f["s8"]
    if fid_ps is not None and fid_ps.shape[1] == knox.size and len(fid_ps) > 2:
        ratio = np.var(fid_ps, axis=0, ddof=1) / knox**2
        f["simulated_over_knox_variance"] = {"median": float(np.median(ratio)), "min": float(ratio.min()),
                                             "max": float(ratio.max())}
    return f


def bootstrap_ratios(preds: dict, path, other: str = "graph", n_boot: int = 1000, seed: int = 0) -> dict:
    """95 % bootstrap intervals of the S8 width ratios ``other`` / power spectrum: held-out
    cosmologies and fiducial realisations (all footprint copies of a map together) are resampled
    with replacement (the summary widths' response stays the one fitted on the calibration data).
    Returns {"posterior": [lo, hi], "summary": [lo, hi], "rmse_test": [lo, hi]}."""
    cosmo = np.load(Path(path) / "ids_test.npy")[:, 0]
    real = np.load(Path(path) / "ids_fiducial.npy")[:, 1]
    groups_t = [np.flatnonzero(cosmo == c) for c in np.unique(cosmo)]
    groups_f = [np.flatnonzero(real == r) for r in np.unique(real)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 6007]))
    out = {"posterior": [], "summary": [], "rmse_test": []}
    response = {}  # fitted once per method: the calibration data are not resampled
    for m in (other, "power_spectrum"):
        try:
            response[m] = _summary_response(preds[m]["calibration"]["mean"], preds[m]["calibration"]["theta"])[0]
        except (ValueError, np.linalg.LinAlgError):
            response[m] = None
    for _ in range(n_boot):
        it = np.concatenate([groups_t[i] for i in rng.integers(len(groups_t), size=len(groups_t))])
        jf = np.concatenate([groups_f[i] for i in rng.integers(len(groups_f), size=len(groups_f))])
        w = {}
        for m in (other, "power_spectrum"):
            t, f = preds[m]["test"], preds[m]["fiducial"]
            s8_true = s8(t["theta"][it, 0], t["theta"][it, 1])
            try:
                fisher = math.nan if response[m] is None else _summary_fisher(response[m], f["mean"][jf])[2][1]
            except (ValueError, np.linalg.LinAlgError):
                fisher = math.nan
            w[m] = (np.sqrt(np.mean(f["cov"][jf, 1, 1])), fisher, np.sqrt(np.mean((t["mean"][it, 1] - s8_true) ** 2)))
        for k, key in enumerate(out):
            out[key].append(w[other][k] / w["power_spectrum"][k])
    return {k: (np.nanpercentile(v, [2.5, 97.5]).tolist() if np.isfinite(v).sum() >= 100 else None)
            for k, v in out.items()}


def _widths(rec: dict) -> dict:
    f = rec["fiducial"]
    return {"posterior": f["s8"]["mean_std"], "summary": f["summary_width"]["s8"], "rmse_test": rec["test"]["s8"]["rmse"]}


def _ratio(a, b):
    return None if a is None or b is None else a / b


def _summary(records: list[dict]) -> dict:
    """S8 width ratios graph / power spectrum (and hand-crafted / power spectrum) for three
    width measures: the calibrated posterior std at the fiducial ("posterior"), the Fisher width
    of the point estimates used as summaries ("summary") and the held-out RMSE ("rmse_test")."""
    by = {r["method"]: _widths(r) for r in records}
    out = {}
    for other in ("graph", "handcrafted"):
        if other in by and "power_spectrum" in by:
            for key, v in by[other].items():
                out[f"s8_{key}_ratio_{other}_over_ps"] = _ratio(v, by["power_spectrum"][key])
    if "s8_posterior_ratio_graph_over_ps" in out:
        cov68 = next(r for r in records if r["method"] == "graph")["test"]["s8"]["coverage_68"]
        out["target_gain"] = 0.16
        out["graph_s8_coverage_68"] = cov68
        out["target_reached"] = bool(out["s8_posterior_ratio_graph_over_ps"] <= 0.84 and 0.60 <= cov68 <= 0.76)
    graph = next((r for r in records if r["method"] == "graph"), None)
    if graph is not None and len(graph.get("members", ())) > 1 and "power_spectrum" in by:
        out["graph_members"] = graph["graph_members"]
        out["members"] = [{"member": m["member"], "seed": m["seed"],
                           **{f"s8_{key}_ratio_graph_over_ps": _ratio(m[key], by["power_spectrum"][key])
                              for key in ("posterior", "summary", "rmse_test")},
                           "graph_s8_coverage_68": m["coverage_68"],
                           "graph_s8_summary_coverage_68": m["summary_coverage_68"]} for m in graph["members"]]
    if out.get("s8_summary_ratio_graph_over_ps") is not None and "coverage" in graph["fiducial"]["summary_width"]:
        cov68 = graph["fiducial"]["summary_width"]["coverage"]["s8"]["coverage_68"]
        out["graph_s8_summary_coverage_68"] = cov68
        out["summary_target_reached"] = bool(out["s8_summary_ratio_graph_over_ps"] <= 0.84 and 0.60 <= cov68 <= 0.76)
    return out


# ------------------------------------------------------------------------------ outputs


def format_table(result: dict) -> str:
    """One row per method: held-out RMSE and coverage, fiducial constraint widths."""
    head = ["method", "RMSE Om", "RMSE S8", "RMSE s8", "cov68 S8", "cov95 S8", "cov68 Om", "cov68 2d",
            "fid sd(S8)", "fid F(S8)", "fid sd(Om)", "calib Om,S8", "deg, at fid"]
    rows = [head]
    for r in result["records"]:
        t, f = r["test"], r["fiducial"]
        rows.append([r["method"], f"{t['omega_m']['rmse']:.4f}", f"{t['s8']['rmse']:.4f}", f"{t['sigma8']['rmse']:.4f}",
                     f"{100 * t['s8']['coverage_68']:.0f}%", f"{100 * t['s8']['coverage_95']:.0f}%",
                     f"{100 * t['omega_m']['coverage_68']:.0f}%", f"{100 * t['joint']['coverage_68']:.0f}%",
                     f"{f['s8']['mean_std']:.4f}",
                     "-" if f["summary_width"]["s8"] is None else f"{f['summary_width']['s8']:.4f}",
                     f"{f['omega_m']['mean_std']:.4f}",
                     "{:.2f},{:.2f}".format(*r["calibration_scales"])
                     + ("" if not (r.get("calibration") or {}).get("scales_bootstrap_sd")
                        else " (sd {:.2f},{:.2f})".format(*r["calibration"]["scales_bootstrap_sd"])),
                     _degree_cell(r)])
    lines = align_rows(rows)
    lines.append("(RMSE and coverage of the calibrated intervals on the held-out cosmologies; at the fiducial: fid sd = "
                 "mean calibrated posterior std, fid F = Fisher width of the point estimates used as summaries (response "
                 "fitted on the validation and calibration cosmologies); "
                 "calib = global variance scales fitted on the validation and calibration cosmologies, bootstrap sd over them; "
                 "deg = degree of each parameter's variance factor chosen by cross-validation, at fid = its mean at the "
                 "fiducial predictions: the one applied)")
    s = result["summary"]
    for other in ("graph", "handcrafted"):
        if f"s8_posterior_ratio_{other}_over_ps" in s:
            r = {k: s[f"s8_{k}_ratio_{other}_over_ps"] for k in ("posterior", "summary", "rmse_test")}
            r = {k: "-" if v is None else f"{v:.3f}" for k, v in r.items()}
            lines.append(f"S8 width {other} / power spectrum: calibrated posterior at the fiducial {r['posterior']}, "
                         f"summary Fisher width {r['summary']}, held-out RMSE {r['rmse_test']}")
    for m in s.get("members", []):
        r = {k: m[f"s8_{k}_ratio_graph_over_ps"] for k in ("posterior", "summary", "rmse_test")}
        r = {k: "-" if v is None else f"{v:.3f}" for k, v in r.items()}
        cov = [m["graph_s8_coverage_68"], m["graph_s8_summary_coverage_68"]]
        cov = ["-" if v is None else f"{100 * v:.0f} %" for v in cov]
        lines.append(f"  graph member {m['member']} of {s['graph_members']} alone (training seed {m['seed']}): "
                     f"posterior {r['posterior']}, summary {r['summary']}, held-out RMSE {r['rmse_test']}; "
                     f"held-out 68 % coverage {cov[0]} (posterior), {cov[1]} (summary)")
    if "bootstrap_95" in s:
        b = s["bootstrap_95"]
        lines.append("  95 % bootstrap over held-out cosmologies and fiducial maps: " + ", ".join(
            f"{k} [{v[0]:.3f}, {v[1]:.3f}]" if v else f"{k} -" for k, v in b.items()))
    if "fisher_forecast" in s:
        f = s["fisher_forecast"]
        ratios = ", ".join(f"{m} {f[f's8_width_{m}_over_forecast']:.2f}" for m in METHODS
                           if f"s8_width_{m}_over_forecast" in f)
        lines.append(f"power-spectrum Fisher forecast (Gaussian covariance, f_sky {f['fsky']:.4f}): sd(S8) {f['s8']:.4f} "
                     f"({f['s8_with_box_prior']:.4f} with the prior box), sd(Om) {f['omega_m']:.4f}; "
                     f"posterior sd(S8) / forecast: {ratios}")
        if "simulated_over_knox_variance" in f:
            v = f["simulated_over_knox_variance"]
            lines.append(f"  band powers at the fiducial: simulated / Gaussian variance median {v['median']:.2f} "
                         f"[{v['min']:.2f}, {v['max']:.2f}]")
    if "target_reached" in s:
        lines.append(f"target (graph S8 posterior >= 16 % tighter, 68 % coverage in [60, 76] %): "
                     f"{'reached' if s['target_reached'] else 'NOT reached'}")
    if "summary_target_reached" in s:
        lines.append(f"  the same with the estimates as summaries (Fluri et al.'s likelihood; held-out 68 % coverage "
                     f"{100 * s['graph_s8_summary_coverage_68']:.0f} %): "
                     f"{'reached' if s['summary_target_reached'] else 'NOT reached'}")
    return "\n".join(lines)


def _degree_cell(rec: dict) -> str:
    c = rec.get("calibration") or {}
    if "model" not in c:
        return "-"
    return "{},{} / {:.2f},{:.2f}".format(*c["model"]["degree"], *c["scales_at_fiducial"])


def write_json(path, result: dict, config: CosmoExperimentConfig, extra: dict | None = None) -> Path:
    """JSON {"config", "records", "summary", **extra} (predictions left out), written atomically."""
    payload = {"config": json.loads(json.dumps(asdict(config), default=str)), "records": result["records"],
               "summary": result["summary"], **(extra or {})}
    return atomic_write_json(path, payload)


def _ellipse(ax, mean, cov, level, **kw):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    r = np.sqrt(stats.chi2.ppf(level, 2) * vals)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    ax.add_patch(Ellipse(mean, 2 * r[1], 2 * r[0], angle=angle, fill=False, **kw))


_LABELS = {"graph": "DeepSphere (maps)", "power_spectrum": "power spectrum", "handcrafted": "PS + moments/quantiles"}
_COLORS = {"graph": "C3", "power_spectrum": "C0", "handcrafted": "C2"}


def plot_all(result: dict, config: CosmoExperimentConfig) -> list[Path]:
    """predicted-vs-true (held-out cosmologies) and fiducial-ellipse PNGs in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds = result["predictions"]
    methods = list(preds)
    fig, axes = plt.subplots(2, len(methods), figsize=(4 * len(methods), 7.5), squeeze=False)
    for j, m in enumerate(methods):
        p = preds[m]["test"]
        truth = [p["theta"][:, 0], s8(p["theta"][:, 0], p["theta"][:, 1])]
        for i, name in enumerate((r"$\Omega_m$", r"$S_8$")):
            ax = axes[i, j]
            ax.errorbar(truth[i], p["mean"][:, i], yerr=np.sqrt(p["cov"][:, i, i]), fmt=".", ms=3, alpha=0.4,
                        color=_COLORS[m], elinewidth=0.6)
            lo, hi = min(truth[i].min(), p["mean"][:, i].min()), max(truth[i].max(), p["mean"][:, i].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set_xlabel(f"true {name}")
            ax.set_ylabel(f"predicted {name}")
            ax.set_title(f"{_LABELS[m]}: {name}")
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
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mean posterior at the fiducial ({len(preds[methods[0]]['fiducial']['mean'])} noisy realisations), "
                 f"68 % solid / 95 % dashed; {config.grid.n_bins} bins, nside {config.grid.nside}, "
                 f"{config.ngal:g} gal/arcmin$^2$")
    fig.tight_layout()
    paths.append(out / "cosmo_fiducial_ellipses.png")
    save_png(fig, paths[1])
    return paths
