"""DeepSphere's cosmology experiment: methods side by side on the same mass-map split.

| module | job |
| --- | --- |
| :mod:`.config` | the settings: methods, ``ExperimentConfig``, sky fractions and the sky settings a config runs (``sky_settings``; importable without torch) |
| :mod:`.settings` | the noise settings (``NoiseSetting``) a config runs; which methods run on which sky |
| :mod:`.models` | the networks of each method (``build_model``), their inputs standardised (``Standardized``) |
| :mod:`.symmetry` | grid and square symmetries: training augmentation, test-time view averages, probability averages |
| :mod:`.data` | the data set, its splits per (sky, noise), training samples with fresh noise (:class:`deepsphere_gen.datasets.FreshNoise`) |
| :mod:`.runs` | what determines a network run (its fingerprint) and where its checkpoint is kept |
| :mod:`.map_statistics` | statistics of the training inputs, stored with a checkpoint; out-of-distribution checks |
| :mod:`.training` | the network runs (``NetworkRun``), their schedule (``train_config``), ``train_one``, ``train`` |
| :mod:`.baselines` | the SVMs: on power spectra, histograms and precomputed features (``FeatureSVM``) |
| :mod:`.features` | hand-crafted patch statistics (PSD, histogram, moments, peaks, Minkowski functionals) |
| :mod:`.records` | the fields every record carries: its data's and its test accuracy's (intervals, per sample) |
| :mod:`.baseline_records` | the baselines fitted and scored for one (sky, noise) |
| :mod:`.parallel` | the run step on several CPU processes (``ParallelRun``) |
| :mod:`.evaluation` | every method on the test maps, one record each (``evaluate_all``) |
| :mod:`.output` | the accuracy and margins tables, the JSON, the figures |
| :mod:`.classify` | ``massmaps classify``: trained networks applied to user HEALPix maps |

The names below (``__all__``) are this package's interface; each module loads at the first use of
one of its names (:func:`deepsphere_gen._lazy.lazy_exports`), so that :mod:`.config` (the command's ``--help`` and argument
errors) imports no torch.

For every sky setting (full sky averaged down to ``full_sky_nside``, nested base patches of
sky fraction 1/12, 1/48, 1/192 at the run's nside, or a footprint) and every noise setting, all
methods see the same maps (:class:`deepsphere_gen.datasets.MassMapDataset`, split by map: the
last maps of each class are the test maps, the ones before them the validation maps, so
patches of one map never straddle a split):

- ``fcn``: DeepSphere graph CNN, conv blocks + global average pooling (rotation invariant;
  DeepSphere's architecture for this task by default: K=5, channels 16-32-64-64-64, batch
  norm, max pooling by 4 after every block, global mean, linear head);
- ``cnn``: the same blocks with a fully connected head (DeepSphere's CNN variant);
- ``harmonic``: :class:`~deepsphere_gen.models.HarmonicClassifier` (full sky only);
- ``hybrid``: the graph/harmonic hybrid classifier (full sky only);
- ``psd_svm`` / ``hist_svm``: linear SVMs on log power spectra / pixel histograms;
- ``strong_svm``: one linear SVM on PSD + histogram + moments + peak counts + Minkowski
  functionals at 4 smoothing scales (patches; :mod:`.features`).
  Baselines choose C on the validation maps; on patches the PSD is the FFT band power of the
  patch square (:mod:`deepsphere_gen.datasets.patch_psd`), on the full sky ``anafast``.

A new baseline: see "Adding a massmaps baseline" in docs/architecture.md (its feature groups decide its
skies: :func:`.config.patch_only`).

Noise: :mod:`.settings`; networks and partial sky: :mod:`.models`; training, ensembles and
checkpoints: :mod:`.training` and :mod:`.runs`.  Training samples get fresh noise at every draw
(:class:`deepsphere_gen.datasets.FreshNoise`), the baselines ``baseline_noise_draws`` noise realisations per
training patch; validation and test samples keep the data set's fixed noise.
"""
from __future__ import annotations

from ..._lazy import lazy_exports

#: the public names of the experiment, by the module that defines them
_PUBLIC = {
    "config": ("METHODS", "NETWORK_METHODS", "FULL_SKY_METHODS", "PATCH_METHODS", "BASELINES", "BASELINE_FEATURES",
               "SKY_FEATURE_GROUPS", "patch_only", "DEFAULT_METHODS", "ENSEMBLE_METHODS", "ExperimentConfig",
               "SkySetting", "parse_sky_fraction", "sky_settings", "check_sigma_e"),
    "settings": ("NoiseSetting", "noise_settings", "methods_for"),
    "models": ("Standardized", "build_model", "input_pixels", "pool_levels", "footprint_pooling_steps"),
    "symmetry": ("RandomSymmetry", "symmetry_permutations", "evaluation_symmetries", "SymmetryAverage",
                 "log_mean_probabilities"),
    "data": ("generate",),
    "training": ("members_of", "NetworkRun", "warm_start", "train_config", "train", "train_one"),
    "parallel": ("ParallelRun",),
    "evaluation": ("evaluate_all",),
    "output": ("format_table", "margins", "format_margins", "write_json", "plot_all"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _PUBLIC)
