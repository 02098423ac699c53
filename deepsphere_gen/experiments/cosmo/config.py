"""Settings of the cosmological-inference experiment (:mod:`deepsphere_gen.experiments.cosmo`): methods,
:class:`CosmoExperimentConfig` and the simulation-grid defaults that the command names.

Importing this module costs no torch, numpy or data-set import (those are imported where a
config is built or used), so that ``deepsphere-gen cosmo --help`` can name every default in
a fraction of a second; the package imports it (and nothing else) on import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ...datasets.cosmo_grid import CosmoGridConfig

__all__ = ["METHODS", "GRAPH_WEIGHTS", "CALIBRATIONS", "GRID_DEFAULTS", "MLP_TRAINING", "VALIDATION_EVERY", "n_validation",
           "min_n_train", "check_n_train", "CosmoExperimentConfig"]

METHODS = ("graph", "power_spectrum", "handcrafted")
#: which weights of the graph network are evaluated: its epoch of lowest validation loss, or its last epoch
GRAPH_WEIGHTS = ("best", "last")
#: variance calibration: degree chosen by cross-validation on the calibration data, or one global factor
CALIBRATIONS = ("cv", "global")
#: the defaults of :class:`~deepsphere_gen.datasets.cosmo_grid.CosmoGridConfig` that the command
#: names (that module imports torch; a test keeps these equal to its fields)
GRID_DEFAULTS = {"nside": 128, "n_bins": 3, "n_train": 128, "n_test": 32, "n_real": 4, "n_fiducial": 24,
                 "n_calib": 64, "footprint": "stage3"}

#: fixed training settings of the summary-statistic MLPs (AdamW learning rate, batch size, early-stopping
#: patience in epochs): read by the training and fingerprinted into their checkpoints
MLP_TRAINING = {"lr": 1e-3, "batch_size": 128, "patience": 40}


#: one training cosmology in VALIDATION_EVERY (drawn at random: strided Sobol subsets cluster) validates
VALIDATION_EVERY = 8


def n_validation(n_train: int) -> int:
    """How many of ``n_train`` training cosmologies :func:`~.data.validation_mask` holds out: ``n_train //
    VALIDATION_EVERY``, at least 1."""
    return max(1, n_train // VALIDATION_EVERY)


def min_n_train() -> int:
    """The fewest training cosmologies that leave at least one to train on after :func:`n_validation`: 2 (one is
    held out whole; from 2 on, ``n // VALIDATION_EVERY <= n / 2 <= n - 1`` leaves one for VALIDATION_EVERY >= 2).
    ValueError for a VALIDATION_EVERY below 2, which holds out every cosmology."""
    if VALIDATION_EVERY < 2:
        raise ValueError(f"VALIDATION_EVERY = {VALIDATION_EVERY} holds out every training cosmology: none is left to "
                         "train on")
    return 2


def check_n_train(n_train, name: str = "n_train") -> int:
    """``n_train`` as an int of at least :func:`min_n_train`, else ValueError naming ``name`` (the ``cosmo``
    command passes ``--n-train``), the minimum and why; checked before any work (was: one cosmology was generated,
    all of it went to validation, and the training refused "training set is empty")."""
    from ..._validation import check_positive_int

    n = check_positive_int(n_train, name)
    low = min_n_train()
    if n < low:
        raise ValueError(f"{name} must be >= {low} (one training cosmology in {VALIDATION_EVERY}, at least one, is held "
                         f"out for validation: {n} would leave none to train on), got {n_train!r}")
    return n


def _default_grid() -> CosmoGridConfig:
    from ...datasets.cosmo_grid import CosmoGridConfig

    return CosmoGridConfig()


@dataclass
class CosmoExperimentConfig:
    """Settings of a run.  grid: the simulations; ngal: galaxies per arcmin^2 over all bins
    (split equally); sigma_e: ellipticity dispersion per component; methods: subset of METHODS;
    epochs: training epochs of the graph network; graph_weights: which of its weights are evaluated,
    "best" (the epoch of lowest validation loss) or "last" (both are in its checkpoint); mlp_epochs: at most this many MLP epochs
    (early stopping on the validation cosmologies, patience 40); channels, K, k: the graph
    network; mlp_hidden, mlp_dropout: hidden widths and dropout of the MLPs; ps_noise_draws: noise realisations per
    training sample for the summary-statistic MLPs (the graph net draws new noise every time); calib_noise_draws:
    noise realisations of every calibration-split sample in the variance calibration (all methods); calibration:
    "cv" (the variance factor of each parameter global, linear or quadratic in the predicted parameters, chosen by
    grouped cross-validation on the calibration data, :mod:`.calibration`) or "global" (one factor);
    graph_members: graph networks trained on the same data with different training seeds, their Gaussian
    posteriors combined by moment matching (member 0 is the single network: seed ``seed``, checkpoint
    ``cosmo-graph.pt``; member i >= 1: :func:`.members.member_seed`, ``cosmo-graph-m{i}.pt``); default 3:
    averaging networks removes much of one network's training scatter (5 seeds, docs/results, README: S8 width
    ratio to the three-MLP power-spectrum ensemble 0.916 +- 0.061 with one, 0.864 +- 0.043 with two, 0.836 +- 0.034
    with three) for M times the graph training (~4 min CPU each at nside 128); mlp_members: the same for each
    summary-statistic MLP (member 0: the single MLP, seeds :func:`.members.mlp_member_seeds`, checkpoint
    ``cosmo-<method>.pt``; member k >= 1: ``cosmo-<method>-m{k}.pt``), combined as the graph members are; default 3,
    as the graph's, so that the comparison sets an ensemble against an ensemble (against member 0 alone the three
    graph networks' ratio was 0.794 +- 0.015; ~9 s CPU per MLP at nside 128)."""

    grid: CosmoGridConfig = field(default_factory=_default_grid)
    ngal: float = 6.0
    sigma_e: float = 0.26  # datasets.shape_noise.DEFAULT_SIGMA_E (a test keeps them equal)
    methods: tuple = METHODS
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    channels: tuple = (16, 32, 64, 64)
    K: int = 5
    k: int = 8
    mlp_hidden: tuple = (256, 256)
    mlp_dropout: float = 0.3
    mlp_epochs: int = 300
    ps_noise_draws: int = 2
    calib_noise_draws: int = 2
    calibration: str = "cv"
    seed: int = 0
    data_dir: str | None = None
    out_dir: str = "cosmo-out"
    device: str | None = None
    progress: bool = True
    graph_weights: str = "best"
    graph_members: int = 3
    mlp_members: int = 3

    def __post_init__(self):
        from ..._validation import check_nonnegative_int, check_positive_int, check_positive_ints
        from ...datasets.shape_noise import pixel_noise_std
        from ...training import TrainConfig

        check_n_train(self.grid.n_train, "grid.n_train")  # validation takes one cosmology in 8, at least one
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods!r}")
        if not (self.ngal > 0 and math.isfinite(self.ngal) or self.ngal == math.inf):
            raise ValueError(f"ngal must be > 0 galaxies per arcmin^2 (inf: no noise), got {self.ngal!r}")
        pixel_noise_std(1, 1.0, self.sigma_e)  # validates sigma_e (finite, >= 0; 0: no shape noise)
        self.seed = check_nonnegative_int(self.seed, "seed")
        for name in ("epochs", "mlp_epochs", "ps_noise_draws", "calib_noise_draws", "batch_size", "graph_members",
                     "mlp_members"):
            setattr(self, name, check_positive_int(getattr(self, name), name))
        # every training setting here, before the data are generated (was: lr checked by the graph training's
        # TrainConfig, after minutes of generation); TrainConfig validates lr and weight_decay, as massmaps
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay)
        self.K, self.k = check_positive_int(self.K, "K"), check_positive_int(self.k, "k")
        self.channels = check_positive_ints("channels", self.channels)
        self.mlp_hidden = check_positive_ints("mlp_hidden", self.mlp_hidden)
        if not (isinstance(self.mlp_dropout, (int, float)) and 0 <= self.mlp_dropout < 1):
            raise ValueError(f"mlp_dropout must be a number in [0, 1), got {self.mlp_dropout!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.graph_weights not in GRAPH_WEIGHTS:
            raise ValueError(f"graph_weights must be one of {GRAPH_WEIGHTS}, got {self.graph_weights!r}")

    def noise_std(self) -> np.ndarray:
        """Per-bin pixel noise std (n_bins,): each bin holds ngal / n_bins galaxies per arcmin^2."""
        import numpy as np

        from ...datasets.shape_noise import pixel_noise_std

        per_bin = self.ngal / self.grid.n_bins
        return np.full(self.grid.n_bins, pixel_noise_std(self.grid.nside, per_bin, self.sigma_e))
