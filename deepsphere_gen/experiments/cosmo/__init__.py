"""Partial-sky cosmological inference on a survey footprint: DeepSphere vs the power spectrum.

The pipeline of Fluri et al. (2019, 2022) on generated data: tomographic log-normal
convergence maps over a Sobol design in (Omega_m, sigma_8)
(:mod:`deepsphere_gen.datasets.cosmo_grid`), seen through a ~1,000 deg^2 footprint with
shape noise per redshift bin, and three estimators of the parameters trained on the same
samples and judged on the same held-out cosmologies and fiducial realisations:

- ``graph``: :class:`~deepsphere_gen.models.DeepSphereRegressor` on the footprint pixels
  only (``indices=``: masked pixels never enter; partial-sky pooling keeps only parents
  whose children are all inside), channels = redshift bins, inputs divided by each bin's
  pixel std; a new noise realisation at every draw; by default an ensemble of three;
- ``power_spectrum``: an MLP on the MASTER band powers of every auto and cross spectrum
  (the power-spectrum analysis);
- ``handcrafted``: the same MLP on band powers + moments and quantiles at three
  resolutions (:mod:`.summaries`): how much the maps carry beyond the spectra;
  each MLP by default an ensemble of three too, combined as the graph's.

Every estimator outputs a 2-d Gaussian posterior over (Omega_m, S8), recalibrated in variance
on cosmologies it never trained on, and compared with the power spectrum's.

| module | job |
| --- | --- |
| :mod:`.config` | settings (methods, ``CosmoExperimentConfig``, grid defaults), importable without torch |
| :mod:`.posterior` | the Gaussian posterior over (Omega_m, S8): parameter space, likelihood, ensemble merge |
| :mod:`.metrics` | coverage, RMSE and widths of posteriors, global variance scales, summary-statistic widths |
| :mod:`.summaries` | band powers and hand-crafted statistics of the footprint maps, cached on disk |
| :mod:`.data` | simulations, summary features per split, validation split, input scales, (x, u) data sets |
| :mod:`.models` | the DeepSphere regressor on the footprint and the summary-statistic MLP |
| :mod:`.members` | ensemble members (graph, MLPs): seeds, checkpoint paths, fingerprints, checked checkpoint loading |
| :mod:`.training` | training of every method (graph members through ``training.fit``, MLPs with early stopping) |
| :mod:`.prediction` | trained networks run over the evaluated splits |
| :mod:`.calibration` | variance recalibration (global or location-dependent, chosen by grouped cross-validation) |
| :mod:`.evaluation` | calibrated posteriors, records and summary of every method (``evaluate_all``) |
| :mod:`.comparison` | S8 width ratios to the power spectrum, the targets, bootstrap intervals |
| :mod:`.fisher` | Fisher forecast of the tomographic power-spectrum analysis |
| :mod:`.report` | the text table and the JSON record |
| :mod:`.plots` | predicted-vs-true and fiducial-ellipse figures |

The settings are imported with the package; every other public name on first use
(:func:`deepsphere_gen._lazy.lazy_exports`, PEP 562): those modules import torch (~3 s), which ``deepsphere-gen cosmo --help`` and its argument
errors, importing :mod:`.config` through this package, do without.
"""
from __future__ import annotations

from ..._lazy import lazy_exports
from .config import CALIBRATIONS, GRAPH_WEIGHTS, GRID_DEFAULTS, METHODS, CosmoExperimentConfig

#: the public names loaded at first use, by the module that defines them
_LAZY = {
    "posterior": ("ParameterSpace", "gaussian_nll", "mixture_moments", "ensemble_moments"),
    "metrics": ("interval_coverage", "posterior_metrics", "calibration_scales", "calibration_scale_sd",
                "summary_widths"),
    "summaries": ("summary_features",),
    "data": ("generate", "validation_mask"),
    "models": ("pooling_plan", "pooling_steps", "build_graph_model"),
    "members": ("member_seed", "member_fields"),
    "training": ("train", "check_checkpoints"),
    "calibration": ("VarianceCalibration",),
    "evaluation": ("evaluate_all",),
    "comparison": ("bootstrap_ratios",),
    "fisher": ("power_spectrum_forecast",),
    "report": ("format_table", "write_json"),
    "plots": ("plot_all",),
}
__getattr__, __dir__, _lazy_names = lazy_exports(__name__, _LAZY)
__all__ = ["METHODS", "GRAPH_WEIGHTS", "CALIBRATIONS", "GRID_DEFAULTS", "CosmoExperimentConfig", *_lazy_names]
