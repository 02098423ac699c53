"""Evaluation of every trained estimator: calibrated posteriors on the held-out cosmologies and the
fiducial realisations, the records and the summary (:func:`evaluate_all`).

Outputs: RMSE on held-out cosmologies, the constraint width at the fiducial cosmology (square
root of the mean predicted variance, and the scatter of the means over fiducial realisations),
coverage of 68 % / 95 % intervals (:mod:`.metrics`), a predicted-vs-true figure and the fiducial
constraint ellipses (:mod:`.plots`).

Validation and calibration: one training cosmology in 8 is held out of training (validation:
early stopping of the MLPs; the graph network keeps the weights of its epoch of lowest
validation loss, ``TrainConfig.keep_best``).  The posteriors of every
method are then recalibrated by a variance factor per parameter fitted on the calibration data
(:class:`~.calibration.VarianceCalibration`: one global factor, :func:`~.metrics.calibration_scales`,
the "variance scaling" of regression calibration, or a factor linear or quadratic in the
predicted parameters where grouped cross-validation prefers it): the validation
samples pooled with the calibration split's cosmologies (never trained on), each of its maps with
``calib_noise_draws`` noise realisations.  A network trained by Gaussian NLL reaches a good mean
before its variance head settles, and the MLPs on fixed-noise features overfit their variance.
With the 16 validation cosmologies alone the fitted scale varied by ~5 % (bootstrap over
cosmologies) plus ~5 % from the one noise draw, the largest part of the seed-to-seed spread of
the width ratio; the pooled fit's bootstrap standard deviation is in the records
(:func:`~.metrics.calibration_scale_sd`).  The held-out test cosmologies and the fiducial maps never
enter the calibration, so their coverage checks it; raw (uncalibrated) metrics are kept in the
records.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from torch.utils.data import TensorDataset

from ...datasets.cosmo_grid import s8
from ...training import DistContext, distributed_context
from .calibration import DEGREES, VarianceCalibration
from .comparison import bootstrap_ratios, s8_widths, summarise
from .config import CosmoExperimentConfig
from .data import generate, mlp_scaler, pseudo_cl_estimator, split_features, validation_mask
from .fisher import power_spectrum_forecast
from .members import graph_state, member_seed, mlp_member_seeds, mlp_state, untrained_method_message
from .metrics import calibration_scale_sd, calibration_scales, posterior_metrics, summary_widths
from .models import build_mlp
from .posterior import ParameterSpace, ensemble_moments
from .prediction import graph_outputs, predict_splits

__all__ = ["evaluate_all"]


def evaluate_all(config: CosmoExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
                 log=print) -> dict:
    """Posterior metrics of every trained method on the held-out cosmologies and the fiducial
    realisations (rank 0); returns {"records": [...], "summary": {...}, "predictions": {...}}.  A method with a
    member lacking its checkpoint is left out, with the line :func:`~.members.untrained_method_message` gives it.

    Every method is an ensemble (``graph_members`` graph networks, ``mlp_members`` MLPs per summary method):
    its members' Gaussians are combined by :func:`~.posterior.ensemble_moments` (one code for every method),
    then calibrated.  Training entries of a method's record: ``kept_epoch`` (the epoch whose weights are evaluated;
    records written before it was named so call it ``epochs``), ``epochs_run`` (the epochs trained: the config's
    ``epochs`` or fewer, for an MLP that stopped early), ``train_loss``/``val_loss`` (of the kept epoch): member 0's (the single network, as in a
    one-member run); ``train_seconds``: all its networks' training (every member's).  Each record also holds
    ``graph_members`` (graph) or ``mlp_members`` (MLPs) and ``members``, one entry per member (one with one
    member): member, seed (its training seed), its own kept_epoch, epochs_run, train_seconds, train_loss, val_loss
    and its S8 widths alone (posterior, summary, rmse_test, coverage_68, summary_coverage_68; with one member the
    record's own); graph members add ``best_epoch`` (lowest validation loss) and ``history`` (per epoch: epoch,
    train_loss, val_loss, best_epoch, seconds), MLP members ``init_seed`` (of their initial weights).  Records
    written before the per-member training entries hold graph ``members`` (widths and train_seconds only) only
    where ``graph_members`` > 1; those written before the MLP ensembles hold no MLP ``members``."""
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx, log=log)
    space = ParameterSpace(config.grid)
    records, preds = [], {}
    if not ctx.is_main:
        return {"records": [], "summary": {}, "predictions": {}}
    feats = {}
    val = validation_mask(path, config.seed)
    val_idx = np.flatnonzero(val)
    for method in config.methods:
        t0 = time.process_time()
        # every member's checkpoint, checked against config's settings (fingerprint)
        states = [graph_state(config, i, ctx.device) for i in range(config.graph_members)] if method == "graph" \
            else [mlp_state(config, method, ctx.device, member=i) for i in range(config.mlp_members)]
        if any(st is None for st in states):  # a member without a checkpoint: the method is left out
            if log:
                log(f"cosmo: {untrained_method_message(config, method)}; {method} not evaluated")
            continue
        if method == "graph":
            if config.graph_weights == "last":  # the evaluated weights in "best", where trained_weights reads them
                states = [{**st, "best": {"epoch": int(st["epoch"]), "model": st["model"]}} for st in states]
            outs = graph_outputs(config, path, states, val_idx, ctx.device)
        else:
            if not feats:
                est = pseudo_cl_estimator(config)
                feats["train"] = split_features(config, path, est, "train", config.ps_noise_draws)[0]
                feats["test"] = split_features(config, path, est, "test")[0]
                feats["fiducial"] = split_features(config, path, est, "fiducial")[0]
                feats["calibration"] = split_features(config, path, est, "calibration", config.calib_noise_draws)[0]
            train_x = feats["train"][method]
            scaler = mlp_scaler(config, train_x, val)
            model = build_mlp(train_x.shape[1], config.mlp_hidden, config.mlp_dropout).to(ctx.device)
            inputs = {"test": feats["test"][method], "fiducial": feats["fiducial"][method],
                      "validation": train_x[val_idx],  # noise draw 0 of the validation samples
                      "calibration": feats["calibration"][method]}
            outs = predict_splits(model, [st["model"] for st in states],
                                  {split: TensorDataset(scaler(x)) for split, x in inputs.items()}, ctx.device, 512)
        trained = [_training_record(st) for st in states]
        rec = {"method": method, **{k: trained[0][k] for k in ("kept_epoch", "epochs_run")},  # member 0's
               "train_seconds": sum(t["train_seconds"] for t in trained),  # every ensemble member's
               **{k: trained[0][k] for k in ("train_loss", "val_loss")}}
        per_member, moments = ensemble_moments(outs)  # the same combination for every method
        part, preds[method] = _posterior_record(config, path, space, val_idx, moments)
        rec.update(part)
        rec["members"] = []
        for i, (st, mom) in enumerate(zip(states, per_member)):
            # one member: the ensemble is that member (ensemble_moments of one member is the identity)
            one = part if len(outs) == 1 else _posterior_record(config, path, space, val_idx, mom)[0]
            if method == "graph":
                entry = {"member": i, "seed": member_seed(config.seed, i), **trained[i],
                         "best_epoch": st["history"][-1].get("best_epoch"),
                         "history": [{k: h[k] for k in _HISTORY_KEYS if k in h} for h in st["history"]]}
            else:
                init_seed, train_seed = mlp_member_seeds(config.seed, method, i)
                entry = {"member": i, "seed": train_seed, "init_seed": init_seed, **trained[i]}
            rec["members"].append({**entry, **s8_widths(one), "coverage_68": one["test"]["s8"]["coverage_68"],
                                   "summary_coverage_68": _summary_coverage(one)})
        rec["graph_members" if method == "graph" else "mlp_members"] = len(outs)
        rec["eval_cpu_seconds"] = time.process_time() - t0
        records.append(rec)
    summary = summarise(records)
    if "power_spectrum" in preds:
        summary["fisher_forecast"] = _forecast(config, path, records, feats.get("fiducial", {}).get("power_spectrum"))
    if "graph" in preds and "power_spectrum" in preds:
        summary["bootstrap_95"] = bootstrap_ratios(preds, path, seed=config.seed)
    return {"records": records, "summary": summary, "predictions": preds}


#: the entries of a training epoch's record (:func:`~deepsphere_gen.training.fit`) kept in a cosmo record's
#: ``members[i]["history"]`` (the per-step losses and the accuracies, meaningless for a regression, left out)
_HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "best_epoch", "seconds")


def _training_record(state: dict) -> dict:
    """One network's training from its checkpoint ``state``: kept_epoch (the epoch whose weights are evaluated:
    ``state["best"]``'s where present, else ``state["epoch"]``, an MLP's best), epochs_run, train_seconds
    (its epochs' wall seconds summed), train_loss and val_loss of that epoch."""
    kept = int(state["best"]["epoch"]) if "best" in state else int(state["epoch"])
    at = state["history"][kept - 1]
    return {"kept_epoch": kept, "epochs_run": len(state["history"]),
            "train_seconds": float(sum(h["seconds"] for h in state["history"])),
            "train_loss": float(at["train_loss"]), "val_loss": float(at.get("val_loss", math.nan))}


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
    except (ValueError, np.linalg.LinAlgError) as exc:  # too few samples (tiny runs): the reason is recorded
        rec["fiducial"]["summary_width"] = {"omega_m": None, "s8": None, "slope": None,
                                            "missing": str(exc) or type(exc).__name__}
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
    """The power spectrum's Fisher forecast (:mod:`.fisher`) beside the networks' S8 widths at the
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
