"""What the estimators read: the simulations, the summary features, the validation split, the
input scales and the (x, u) data sets.

- :func:`generate`: the simulations (:mod:`deepsphere_gen.datasets.cosmo_grid`), made once (rank 0);
- :func:`pseudo_cl_estimator`, :func:`split_features`: the band powers and hand-crafted
  statistics of a split (:mod:`.summaries`), with further noise draws for training and calibration;
- :func:`validation_mask` (:func:`n_validation`, :func:`check_n_train`): the training cosmologies held out for
  validation, and the fewest training cosmologies that leave one to train on;
- :func:`graph_input_scale`, :class:`FeatureScaler`: the graph network's per-bin input scale, the
  MLPs' feature standardisation;
- :class:`Targets`, :func:`in_memory`: (x, theta) items as (x, u), a data set without randomness
  stacked once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..._fingerprint import mask_hash
from ...datasets.cosmo_grid import footprint_mask, generate_cosmo_grid
from ...datasets.pseudo_cl import PseudoCl
from ...training import DistContext, distributed_context
from .config import VALIDATION_EVERY, CosmoExperimentConfig, check_n_train, min_n_train, n_validation  # (the split's rule)
from .posterior import ParameterSpace
from .summaries import summary_features

__all__ = ["FEATURE_METHODS", "VALIDATION_EVERY", "generate", "pseudo_cl_estimator", "split_features",
           "n_validation", "min_n_train", "check_n_train", "validation_mask", "graph_input_scale", "FeatureScaler",
           "mlp_scaler", "Targets", "in_memory"]

#: the methods whose inputs are summary features (an MLP each)
FEATURE_METHODS = ("power_spectrum", "handcrafted")


def generate(config: CosmoExperimentConfig, ctx: DistContext | None = None, log=print) -> Path:
    """Generate (rank 0; other ranks reuse) or reuse the simulations; returns their directory.
    ``log``: where the "cosmo: ..." lines go (None: quiet; ``config.progress`` is the bar)."""
    ctx = ctx or distributed_context(config.device)
    if ctx.is_main:
        path = generate_cosmo_grid(config.grid, config.data_dir, progress=config.progress, log=log)
    ctx.barrier()
    if not ctx.is_main:
        path = generate_cosmo_grid(config.grid, config.data_dir, progress=False, verbose=False)
    return path


#: this process's pseudo-C_l estimators by (mask content, nside), the most recent last (two kept)
_ESTIMATORS: dict[tuple[str, int], PseudoCl] = {}


def pseudo_cl_estimator(config: CosmoExperimentConfig) -> PseudoCl:
    """The pseudo-C_l estimator of the run's footprint (:func:`~deepsphere_gen.datasets.cosmo_grid.footprint_mask`:
    the mask the run read once), built once per process and mask (its coupling matrix costs ~3 s CPU at nside 128;
    :func:`~.training.train` and :func:`~.evaluation.evaluate_all` of one run share it; the two most recent are
    kept).  Keyed by the mask's content (:func:`~deepsphere_gen._fingerprint.mask_hash`), so a FITS mask
    rewritten under the same name is a new estimator for the next config that reads it."""
    mask = footprint_mask(config.grid)
    key = (mask_hash(mask), config.grid.nside)
    est = _ESTIMATORS.pop(key, None)
    _ESTIMATORS[key] = est = PseudoCl(mask) if est is None else est
    while len(_ESTIMATORS) > 2:
        del _ESTIMATORS[next(iter(_ESTIMATORS))]
    return est


def split_features(config, path, est, split, draws=1):
    """Summary features of a split: {method: (n * draws, n_features)}, params (n * draws, 2); ``est``: the
    :func:`pseudo_cl_estimator`, draw r: noise realisation r of :func:`~.summaries.summary_features`."""
    params = np.load(Path(path) / f"params_{split}.npy")
    out = {m: [] for m in FEATURE_METHODS}
    for r in range(draws):
        f = summary_features(path, split, config.noise_std(), est, realisation=r, seed=config.seed,
                             progress=config.progress)
        for m in FEATURE_METHODS:
            out[m].append(f[m])
    return {m: np.concatenate(v) for m, v in out.items()}, np.tile(params, (draws, 1))


def validation_mask(path, seed: int = 0) -> np.ndarray:
    """(n_train_samples,) bool: samples of the validation cosmologies, :func:`n_validation` of the training
    cosmologies drawn at random with ``seed``."""
    ids = np.load(Path(path) / "ids_train.npy")
    n = int(ids[:, 0].max()) + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8111]))
    chosen = rng.permutation(n)[: n_validation(n)]
    return np.isin(ids[:, 0], chosen)


def graph_input_scale(config: CosmoExperimentConfig, path: Path) -> np.ndarray:
    """Per-bin pixel std of signal + noise over (at most 64) training samples: (n_bins,)."""
    maps = np.load(Path(path) / "maps_train.npy", mmap_mode="r")
    pick = np.linspace(0, len(maps) - 1, min(64, len(maps))).astype(int)
    sig = np.asarray(maps[pick], dtype=np.float64).std(axis=(0, 1))
    return np.sqrt(sig**2 + config.noise_std() ** 2)


class FeatureScaler:
    """Standardise features (n, n_features) by the mean and std of ``train`` (n_train, n_features): a
    float32 tensor."""

    def __init__(self, train: np.ndarray):
        self.mean, self.std = train.mean(0), train.std(0) + 1e-30

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - self.mean) / self.std, dtype=torch.float32)


def mlp_scaler(config, train_x: np.ndarray, val: np.ndarray) -> FeatureScaler:
    """The scaler of a summary MLP's features, the same in training and evaluation: mean and std over the
    training rows ``train_x`` ((n_train x ps_noise_draws, f): every noise draw of every training sample) without
    the validation cosmologies (``val``: (n_train,) bool, :func:`validation_mask`)."""
    return FeatureScaler(train_x[~np.tile(val, config.ps_noise_draws)])


class Targets(Dataset):
    """(x, theta) items -> (x, u) with u the standardised (Omega_m, S8)."""

    def __init__(self, dataset: Dataset, space: ParameterSpace):
        self.dataset, self.space = dataset, space

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        x, theta = self.dataset[i]
        return x, torch.as_tensor(self.space.to_u(theta.numpy()), dtype=torch.float32)


def in_memory(dataset: Dataset) -> TensorDataset:
    """The (x, u) items of a data set without randomness (fixed noise) stacked once into tensors: the
    validation set is read at every epoch, and each read of a map with its fixed noise costs ~0.3 ms
    (256 maps of 4,762 pixels x 3 bins: 15 MB held, 0.08 s CPU saved per epoch)."""
    xs, us = zip(*(dataset[i] for i in range(len(dataset))))
    return TensorDataset(torch.stack(xs), torch.stack(us))
