"""DeepSphere's cosmology experiment: methods side by side on the same mass-map split.

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
- ``hybrid``: the graph/harmonic hybrid classifier (full sky only; when available);
- ``psd_svm`` / ``hist_svm``: linear SVMs on log power spectra / pixel histograms;
- ``strong_svm``: one linear SVM on PSD + histogram + moments + peak counts + Minkowski
  functionals at 4 smoothing scales (patches; :mod:`.massmaps_features`).
  Baselines choose C on the validation maps; on patches the PSD is the FFT band power of the
  patch square (:mod:`deepsphere_gen.datasets.patch_psd`), on the full sky ``anafast``.

Noise (:class:`NoiseSetting`): physical shape noise of a survey with ``n_gal`` galaxies per
arcmin^2 and ellipticity dispersion ``sigma_e`` (per-pixel std
``sigma_e / sqrt(n_gal A_pix)`` at the samples' resolution), given directly or as
DeepSphere's relative levels (:func:`~deepsphere_gen.datasets.shape_noise.deepsphere_level_to_ngal`:
level 2 = 22.5 galaxies/arcmin^2); the old noise relative to the run's own clean std only as
an explicit option.  Training samples get fresh noise at every draw (:class:`FreshNoise`),
the baselines ``baseline_noise_draws`` noise realisations per training patch; validation and
test samples keep the data set's fixed noise.

Partial sky: every patch of a level has the same nested pixel layout, so one network (its
graph built on an equatorial patch, base pixel 4) reads all patches, as in DeepSphere.
Networks see maps divided by one per-data-set constant, ``sqrt(clean_std^2 + noise_std^2)``
(the expected pixel std), which carries no class information.

Training (see :func:`train_config`): AdamW with a cosine-decaying learning rate (the budget's
version of DeepSphere's Adam 2e-4 x 0.999 per step over 80 epochs), BatchNorm statistics
recalibrated on the training set after every epoch, at least ``min_steps`` optimisation
steps per run, random square/grid symmetries (:class:`RandomSymmetry`), and per-epoch
validation on the validation maps (the test maps are used for the final table only).
The harmonic and hybrid models run without their per-sample ``DegreeNorm`` (it divides out
the amplitude, which is what separates the two cosmologies).

Ensembles (``fcn_members`` M > 1): every ``fcn`` (and ``cnn``) run is M networks trained on the
same samples with the training seeds :func:`~.massmaps_runs.member_seed` (member 0: the single
network and its checkpoint; member i: its own fingerprinted checkpoint ``...-m<i>-<fingerprint>.pt``);
the test prediction is the mean of their class probabilities (:func:`log_mean_probabilities`), and
each member's own accuracy is recorded too.

Checkpoints are named by a fingerprint of everything that determines them
(:mod:`.massmaps_runs`): other settings train afresh beside them, the same settings resume or
are found finished, whether trained in this process or in the workers of a :class:`ParallelRun`.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .._io import atomic_write
from .._validation import check_positive_int
from ..datasets import MassMapConfig, MassMapDataset, generate_massmaps, limit_threads, load_massmaps
from ..datasets.shape_noise import (
    DEFAULT_SIGMA_E,
    deepsphere_level_to_ngal,
    ngal_to_deepsphere_level,
    pixel_noise_std,
)
from ..training import (
    DistContext,
    TrainConfig,
    TrainingInterrupted,
    batch_outputs,
    check_fingerprint,
    distributed_context,
    fit,
    load_checkpoint,
    load_model_state,
    trained_weights,
)
from . import reporting
from .map_statistics import training_distribution
from .massmaps_config import (
    BASELINE_FEATURES,
    BASELINES,
    ENSEMBLE_METHODS,
    FULL_SKY_METHODS,
    METHODS,
    NETWORK_METHODS,
    PATCH_METHODS,
    ExperimentConfig,
    SkySetting,
    parse_sky_fraction,
)
from .massmaps_runs import checkpoint_file, member_name, member_seed, run_fields, run_meta, run_name
from .reporting import wilson_interval

__all__ = [
    "METHODS",
    "NETWORK_METHODS",
    "FULL_SKY_METHODS",
    "ExperimentConfig",
    "NoiseSetting",
    "noise_settings",
    "SkySetting",
    "parse_sky_fraction",
    "sky_settings",
    "build_model",
    "FreshNoise",
    "RandomSymmetry",
    "symmetry_permutations",
    "evaluation_symmetries",
    "SymmetryAverage",
    "log_mean_probabilities",
    "members_of",
    "NetworkRun",
    "warm_start",
    "train_config",
    "generate",
    "train",
    "evaluate_all",
    "ParallelRun",
    "train_one",
    "format_table",
    "margins",
    "format_margins",
    "write_json",
    "plot_all",
]

@dataclass(frozen=True)
class NoiseSetting:
    """One noise setting: ``kind`` "none", "ngal" (``value`` galaxies per arcmin^2) or
    "relative" (``value`` x the samples' clean std); ``sigma_e``: ellipticity dispersion."""

    kind: str
    value: float = 0.0
    sigma_e: float = DEFAULT_SIGMA_E

    @property
    def name(self) -> str:
        """Short stable name (checkpoints, JSON): "none", "ngal22.47", "rel2"."""
        if self.kind == "none":
            return "none"
        return f"ngal{self.value:.4g}" if self.kind == "ngal" else f"rel{self.value:g}"

    @property
    def deepsphere_level(self) -> float | None:
        """DeepSphere's relative level of the same per-pixel noise at nside 1024 (None: relative kind)."""
        if self.kind == "none":
            return 0.0
        return ngal_to_deepsphere_level(self.value, self.sigma_e) if self.kind == "ngal" else None

    @property
    def label(self) -> str:
        """For tables and figures: "no noise", "n_gal 22.5/arcmin^2 (DeepSphere level 2)", "relative 2"."""
        if self.kind == "none":
            return "no noise"
        if self.kind == "relative":
            return f"relative {self.value:g} x clean std"
        return f"n_gal {self.value:.3g}/arcmin^2 (DeepSphere level {self.deepsphere_level:.3g})"

    def pixel_std(self, nside: int, clean_std: float) -> float:
        """Per-pixel noise std at ``nside`` for samples of clean std ``clean_std``."""
        if self.kind == "none":
            return 0.0
        if self.kind == "relative":
            return self.value * clean_std
        return pixel_noise_std(nside, self.value, self.sigma_e)

    def record(self) -> dict:
        return {"noise": self.name, "noise_label": self.label, "noise_kind": self.kind,
                "ngal": None if self.kind != "ngal" else self.value, "sigma_e": self.sigma_e,
                "deepsphere_level": self.deepsphere_level, "relative_noise": self.value if self.kind == "relative" else None}


def noise_settings(config: ExperimentConfig) -> list[NoiseSetting]:
    """DeepSphere levels (as galaxy densities), then galaxy densities, then relative levels; 0 / inf
    mean no noise; duplicates removed."""
    out = []
    for level in config.deepsphere_levels:
        ngal = deepsphere_level_to_ngal(level, config.sigma_e)
        out.append(NoiseSetting("none") if math.isinf(ngal) else NoiseSetting("ngal", ngal, config.sigma_e))
    for ngal in config.ngal:
        out.append(NoiseSetting("none") if math.isinf(ngal) else NoiseSetting("ngal", ngal, config.sigma_e))
    for rel in config.relative_noise:
        out.append(NoiseSetting("none") if rel == 0 else NoiseSetting("relative", rel, config.sigma_e))
    return list(dict.fromkeys(out))


def sky_settings(config: ExperimentConfig) -> list[SkySetting]:
    return [parse_sky_fraction(s, config.nside, config.footprint, config.full_sky_nside)
            for s in config.sky_fractions]


def _methods_for(sky: SkySetting, methods) -> list[str]:
    """Methods run on ``sky``: full-sky-only models on the full sky, patch statistics on patches."""
    return [m for m in methods if (sky.full_sky or m not in FULL_SKY_METHODS)
            and (sky.level is not None or m not in PATCH_METHODS)]


# ----------------------------------------------------------------------------------- models


class Standardized(nn.Module):
    """``model(x / scale)``; ``scale`` (a buffer) is the expected pixel std of the data set."""

    def __init__(self, model: nn.Module, scale: float):
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x / self.scale)


def _reference_indices(sky: SkySetting, nside: int) -> np.ndarray | None:
    """Pixels the network is built on: None (full sky), a footprint, or an equatorial patch."""
    if sky.footprint is not None:
        return np.flatnonzero(sky.footprint)
    if sky.level is None:
        return None
    n = 12 * nside**2 // (12 * 4**sky.level)
    p = 4 * 4**sky.level  # first patch of base pixel 4 (equatorial)
    return np.arange(p * n, (p + 1) * n)


def _hybrid_classifier(nside: int, config: ExperimentConfig) -> nn.Module:
    try:
        from ..models.hybrid import HybridClassifier
    except ImportError as exc:
        raise ValueError(f"the hybrid model is not available in this build ({exc})") from None
    L0 = max(1, min(8, 2 * (nside // 4)))  # two poolings by 4: the bridge stays below 2 nside_low
    return HybridClassifier(nside=nside, n_classes=2, bandlimits=(L0, min(6, L0), min(4, L0)), normalize=False)


def build_model(method: str, sky: SkySetting, config: ExperimentConfig, scale: float,
                seed: int | None = None) -> nn.Module:
    """The network of ``method`` for ``sky``, wrapped in :class:`Standardized`; its initial weights
    seeded by ``seed`` (None: ``config.seed``)."""
    from ..models import DeepSphereClassifier, HarmonicClassifier
    from ..sampling import HealpixSampling

    torch.manual_seed(config.seed if seed is None else seed)
    nside = sky.nside or config.nside
    if method in ("fcn", "cnn"):
        indices = _reference_indices(sky, nside)
        npix = 12 * nside**2 if indices is None else len(indices)
        # pool by 4 per block while at least 4 pixels remain
        pools, n = [], npix
        for _ in config.channels:
            p = 1 if n >= 16 and (nside >> (len(pools) + 1)) >= 1 else 0
            pools.append(p)
            n //= 4**p
        if method == "cnn" and indices is None:
            # full sky: pool down to the 12 base pixels, so that the fully connected head has
            # 12 x channels inputs (not 192 x channels: 60 training maps, and Adam's steps on
            # thousands of inputs moved the logits by ~10 per step)
            levels, nb = nside.bit_length() - 1, len(config.channels)
            pools = [levels // nb + (1 if i < levels % nb else 0) for i in range(nb)]
        head = "gap" if method == "fcn" else "fc"
        model = DeepSphereClassifier(nside, 1, channels=config.channels, n_classes=2, K=config.K, k=config.k,
                                     pool_levels=pools, head=head, indices=indices)
    elif method == "harmonic":
        model = HarmonicClassifier(2, bandlimits=config.harmonic_bandlimits, channels=config.harmonic_channels,
                                   sampling=HealpixSampling(nside), normalize=False)
    elif method == "hybrid":
        model = _hybrid_classifier(nside, config)
    else:
        raise ValueError(f"{method!r} is not a network method ({', '.join(NETWORK_METHODS)})")
    return Standardized(model, scale)


# ------------------------------------------------------------------------------------- data


def generate(config: ExperimentConfig, ctx: DistContext | None = None) -> Path:
    """Generate (rank 0; other ranks then reuse) or reuse the data set; returns its directory."""
    ctx = ctx or distributed_context(config.device)
    mc = MassMapConfig(nside=config.nside, n_maps=config.n_maps, seed=config.seed)
    if ctx.is_main:
        path = generate_massmaps(mc, config.data_dir, progress=config.progress)
    ctx.barrier()
    if not ctx.is_main:
        path = generate_massmaps(mc, config.data_dir, progress=False, verbose=False)
    return path


def _dataset(path: Path, sky: SkySetting, noise: NoiseSetting | None, config: ExperimentConfig,
             split: str) -> MassMapDataset:
    """The samples of one split for (sky, noise); ``noise`` None: clean samples."""
    kw = dict(level=sky.level, footprint=sky.footprint, split=split, test_fraction=config.test_fraction,
              val_fraction=config.val_fraction, nside_out=sky.nside if sky.full_sky else None)
    clean = MassMapDataset(path, **kw)
    if noise is None or noise.kind == "none":
        return clean
    return MassMapDataset(path, noise_std=noise.pixel_std(clean.nside, clean.clean_std), **kw)


def _datasets(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig):
    """(train, validation, test) samples for (sky, noise), each with the data set's fixed noise."""
    return tuple(_dataset(path, sky, noise, config, split) for split in ("train", "val", "test"))


class FreshNoise(Dataset):
    """Training samples of ``clean`` (a noise-free :class:`MassMapDataset`) with a new white-noise
    realisation of per-pixel std ``noise_std`` at every draw, from torch's global RNG (which
    :func:`~deepsphere_gen.training.fit` re-seeds every epoch: reproducible, resumable).

    The noise model is known, so a network need not see the same noise twice: with fixed
    noise the full-sky networks memorise the 60 noise realisations (training accuracy 100 %,
    test 75 % at noise 2).  Items as in :class:`MassMapDataset`.
    """

    def __init__(self, clean: MassMapDataset, noise_std: float):
        if clean.noise_std != 0:
            raise ValueError("FreshNoise needs a noise-free dataset")
        std = float(noise_std)
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        self.clean, self.sigma = clean, std

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        x, label, idx = self.clean[i]
        if self.sigma > 0:
            x = x + self.sigma * torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
        return x, label, idx


def _scale(dataset: MassMapDataset) -> float:
    """Expected pixel std of the samples (clean and noise; one number for both classes)."""
    return math.sqrt(dataset.clean_std**2 + dataset.noise_std**2)


@dataclass
class NetworkRun:
    """One network run: its model (initial weights), TrainConfig (with the fingerprinted checkpoint),
    checkpoint meta, and the noise-free run it starts from (``source``; None: random initialisation)."""

    model: nn.Module
    train_config: TrainConfig
    meta: dict
    source: "NetworkRun | None" = None


def _warm_start_source(config: ExperimentConfig, noise: NoiseSetting) -> NoiseSetting | None:
    """The noise setting a run starts from: the noise-free one for runs with noise (``config.warm_start``)."""
    return NoiseSetting("none") if config.warm_start and noise.kind != "none" else None


def members_of(config: ExperimentConfig, method: str) -> int:
    """Networks per run of ``method``: ``config.fcn_members`` for :data:`ENSEMBLE_METHODS`, else 1."""
    return config.fcn_members if method in ENSEMBLE_METHODS else 1


def _network_run(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                 train_set: MassMapDataset, world_size: int = 1, member: int = 0) -> NetworkRun:
    """The :class:`NetworkRun` of (method, sky, noise) and ensemble ``member``; the checkpoint file
    name carries the run's fingerprint (:mod:`.massmaps_runs`), which for a warm-started run includes
    the fingerprint of the noise-free run (of the same member) it starts from (field ``init``), for a
    member i >= 1 the member and its seed (initial weights and training: :func:`member_seed`)."""
    seed = member_seed(config.seed, member)
    model = build_model(method, sky, config, _scale(train_set), seed)
    name = member_name(run_name(method, sky.name, noise), member)
    tc = replace(train_config(method, len(train_set), config, world_size, desc=name), seed=seed)
    source, init = None, None
    src_noise = _warm_start_source(config, noise)
    if src_noise is not None:
        source = _network_run(config, path, method, sky, src_noise, _dataset(path, sky, None, config, "train"),
                              world_size, member)
        init = {"warm_start": member_name(run_name(method, sky.name, src_noise), member),
                "fingerprint": source.meta["fingerprint"]}
    _, data_meta = load_massmaps(path)
    meta = run_meta(run_fields(config, data_meta.get("generation", data_meta), method, sky, noise, model, tc, init,
                               member),
                    footprint=config.footprint if config.footprint in (None, "builtin")
                    else str(Path(config.footprint).resolve()))
    tc = replace(tc, checkpoint=checkpoint_file(config.out_dir, name, meta["fingerprint"]))
    return NetworkRun(model, tc, meta, source)


# ---------------------------------------------------------------------------- train / eval


def _network_runs(config: ExperimentConfig):
    """(sky, noise, method, member) of every network run; per sky and method the noise-free run
    first (the runs with noise start from it: :func:`train_one`), member 0 of every run before the
    other members."""
    noises = sorted(noise_settings(config), key=lambda n: n.kind != "none")
    for sky in sky_settings(config):
        for method in _methods_for(sky, config.methods):
            if method in NETWORK_METHODS:
                for member in range(members_of(config, method)):
                    for noise in noises:
                        yield sky, noise, method, member


#: per method: (learning-rate factor, minimum-steps factor); the harmonic model (no
#: BatchNorm, quadratic activations of a unit-std input) starts slowly and is cheap
_METHOD_TRAINING = {"fcn": (1.0, 1), "cnn": (1.0, 1), "hybrid": (1.0, 1), "harmonic": (3.0, 3)}


def train_config(method: str, n_train: int, config: ExperimentConfig, world_size: int = 1, **kw) -> TrainConfig:
    """The :class:`TrainConfig` of one network run on ``n_train`` training samples.

    batch: ``config.batch_size``, reduced for small data sets to ``max(8, n_train // 8)``
    (rounded to a multiple of ``world_size``), so that an epoch has about 8 steps or more;
    epochs: at least ``config.epochs`` and enough for ``min_steps`` (x the method's factor)
    optimisation steps; lr: ``config.lr`` x the method's factor, cosine schedule with 10 %
    warm-up; BatchNorm recalibrated after every epoch on at most 512 training samples.
    ``kw``: further TrainConfig fields (checkpoint, desc, ...).
    """
    lr_factor, steps_factor = _METHOD_TRAINING.get(method, (1.0, 1))
    batch = min(config.batch_size, max(8, n_train // 8))
    batch = max(world_size, batch - batch % world_size)
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = max(config.epochs, math.ceil(config.min_steps * steps_factor / steps_per_epoch))
    return TrainConfig(epochs=epochs, batch_size=batch, lr=config.lr * lr_factor, seed=config.seed,
                       device=config.device, progress=config.progress, lr_schedule="cosine", warmup=0.1,
                       recalibrate_samples=512, **kw)


def _training_set(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig,
                  train_set: MassMapDataset):
    """Training samples: fresh noise and random grid symmetries (``config.augment``)."""
    if not config.augment:
        return train_set
    samples = train_set
    if train_set.noise_std > 0:
        samples = FreshNoise(_dataset(path, sky, None, config, "train"), train_set.noise_std)
    if sky.footprint is None:
        samples = RandomSymmetry(samples, symmetry_permutations(train_set.nside, sky.level))
    return samples


def symmetry_permutations(nside: int, level: int | None = None) -> np.ndarray:
    """Pixel permutations ``(n_ops, pixels)`` of the symmetries used to augment training maps.

    Full sky (``level`` None): the 16 exact symmetries of the HEALPix grid (rotations by
    multiples of 90 degrees about the polar axis, times the reflections z -> -z and
    phi -> -phi), as NESTED permutations: ``x[perm]`` is the transformed map.  Nested patches
    of ``level``: the 8 symmetries of the square on the patch's (x, y) pixel coordinates
    (exact for the transposition on equatorial patches, approximate otherwise: the networks
    already read every patch with the geometry of one equatorial patch).  The fields are
    statistically isotropic and parity-even, so these are legitimate augmentations.
    """
    import healpy as hp

    if level is None:
        npix = 12 * nside**2
        x, y, z = hp.pix2vec(nside, np.arange(npix), nest=True)
        perms = []
        for k in range(4):
            c, s_ = round(math.cos(k * math.pi / 2)), round(math.sin(k * math.pi / 2))
            for fz in (1, -1):
                for fy in (1, -1):
                    # (R f)(w) = f(R^-1 w): the new pixel w takes the value at R^-1 w
                    xr, yr = c * x + s_ * (fy * y), -s_ * x + c * (fy * y)
                    perms.append(hp.vec2pix(nside, xr, yr, fz * z, nest=True))
        return np.stack(perms).astype(np.int64)
    side = nside >> level
    n = side * side
    i = np.arange(n)
    px = sum(((i >> (2 * b)) & 1) << b for b in range(side.bit_length()))
    py = sum(((i >> (2 * b + 1)) & 1) << b for b in range(side.bit_length()))
    perms = []
    for sx, sy in ((px, py), (py, px)):
        for fx in (False, True):
            for fy in (False, True):
                u = side - 1 - sx if fx else sx
                v = side - 1 - sy if fy else sy
                perms.append(sum(((u >> b) & 1) << (2 * b) | ((v >> b) & 1) << (2 * b + 1)
                                 for b in range(side.bit_length())))
    return np.stack(perms).astype(np.int64)


class RandomSymmetry(Dataset):
    """Items of ``dataset`` with their pixels permuted by one of ``permutations`` (n_ops,
    pixels), drawn uniformly from torch's global RNG at every draw; labels and pixel indices
    unchanged."""

    def __init__(self, dataset: Dataset, permutations: np.ndarray):
        perms = np.asarray(permutations)
        if perms.ndim != 2 or np.any(np.sort(perms, axis=1) != np.arange(perms.shape[1])):
            raise ValueError("permutations must be an (n_ops, pixels) array of permutations of range(pixels)")
        self.dataset, self.permutations = dataset, torch.from_numpy(perms.astype(np.int64))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, label, idx = self.dataset[i]
        if x.shape[0] != self.permutations.shape[1]:
            raise ValueError(f"sample has {x.shape[0]} pixels, permutations act on {self.permutations.shape[1]}")
        k = int(torch.randint(len(self.permutations), ()))
        return x[self.permutations[k]], label, idx


def evaluation_symmetries(nside: int, level: int | None) -> np.ndarray | None:
    """Pixel permutations whose predictions are averaged at test time (:class:`SymmetryAverage`), or None.

    Nested patches: the identity and the three reflections of the square (the first four of
    :func:`symmetry_permutations`, the training augmentation).  Every patch is read with the graph
    of one reference patch, on which these are only approximate symmetries (the views give
    different logits); the other four, the same composed with the transposition, are
    automorphisms of the reference patch's graph (base pixel 4 is symmetric about its meridian)
    and would repeat the same views.  Full sky (``level`` None): None (its 16 grid symmetries map
    the full-sky graph onto itself).
    """
    return None if level is None else symmetry_permutations(nside, level)[:4]


def log_mean_probabilities(outputs) -> torch.Tensor:
    """``log(mean_m softmax(outputs[m]))``: the class probabilities of several predictions of the same
    samples averaged (views of one input, members of an ensemble); ``outputs``: sequence of (B, classes)
    logits (log probabilities give their probabilities back); returns (B, classes)."""
    logp = torch.stack([torch.log_softmax(o, -1) for o in outputs])
    return torch.logsumexp(logp, 0) - math.log(len(logp))


class SymmetryAverage(nn.Module):
    """``log(mean_g softmax(model(x[:, g])))`` over the pixel permutations ``permutations`` (n_views,
    pixels): a prediction averaged over symmetric views of each input (B, pixels, channels).
    Cost: ``n_views`` forward passes."""

    def __init__(self, model: nn.Module, permutations: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("permutations", torch.as_tensor(np.asarray(permutations), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_mean_probabilities([self.model(x[:, p]) for p in self.permutations])


def _finished(tc: TrainConfig) -> bool:
    """Whether ``tc.checkpoint`` holds a run trained to its last epoch."""
    ckpt = Path(tc.checkpoint)
    return ckpt.is_file() and int(load_checkpoint(ckpt).get("epoch", 0)) >= tc.epochs


def warm_start(model: nn.Module, checkpoint) -> nn.Module:
    """Load the weights of a (noise-free) run's ``checkpoint`` into ``model`` (a :class:`Standardized`
    network of the same method and sky), keeping the model's own input ``scale`` (the expected
    pixel std of its noisy samples).  BatchNorm statistics come along; :func:`~deepsphere_gen.training.fit`
    recomputes them on the noisy training samples after every epoch."""
    weights = dict(trained_weights(load_checkpoint(checkpoint)))
    if "scale" in weights:
        weights["scale"] = model.state_dict()["scale"]
    return load_model_state(model, {"model": weights}, checkpoint)


def train_one(config: ExperimentConfig, path: Path, sky: SkySetting, noise: NoiseSetting, method: str,
              ctx: DistContext | None = None, log=print, restart: bool = False, member: int = 0) -> list[dict] | None:
    """Train one network, ensemble member ``member`` of its run (checkpointed, resumable; ``restart``:
    from scratch even if a checkpoint of the same settings exists); its history, or None for an
    unavailable hybrid.

    The checkpoint name carries the run's fingerprint (:func:`_network_run`); the checkpoint
    also stores the statistics of the training inputs (``classify``'s out-of-distribution check).

    Warm start (``config.warm_start``, runs with noise): the run starts from the weights of the
    finished noise-free run of the same method and sky (trained here first if its checkpoint is
    missing or unfinished; never retrained when finished), then trains its full schedule on the
    noisy samples: a curriculum from clean to noisy maps.  A resumed run continues from its own
    checkpoint (the warm start is only its initialisation, recorded in its fingerprint).
    Measured at nside 256, 1/48, DeepSphere level 2, 6 epochs: 86.1 vs 85.6 % (seed 0) and
    85.2 vs 85.8 % (seed 1) against a random initialisation, 1152 test patches each: no
    reliable gain, hence off by default.
    """
    ctx = ctx or distributed_context(config.device)
    train_set, val_set, _ = _datasets(path, sky, noise, config)
    try:
        run = _network_run(config, path, method, sky, noise, train_set, ctx.world_size, member)
    except ValueError as exc:
        if method == "hybrid":
            if ctx.is_main and log:
                log(f"massmaps: skipping hybrid: {exc}")
            return None
        raise
    tc, meta = run.train_config, run.meta
    fresh = restart or not Path(tc.checkpoint).is_file()
    if run.source is not None and fresh:
        if not _finished(run.source.train_config):
            train_one(config, path, sky, _warm_start_source(config, noise), method, ctx, log, member=member)
        warm_start(run.model, run.source.train_config.checkpoint)
        if ctx.is_main and log:
            log(f"{tc.desc}: starts from {run.source.train_config.checkpoint}")
    meta["distribution"] = training_distribution(train_set, per_map=train_set.n_patches)
    samples = _training_set(path, sky, noise, config, train_set)
    return fit(run.model, samples, replace(tc, resume=not restart), val_set=val_set, log=log, ctx=ctx, meta=meta)


def train(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
          log=print, restart: bool = False) -> dict:
    """Train every network (method, sky, noise); checkpoints under ``out_dir/checkpoints``.

    Per-epoch validation on the validation maps (never the test maps).  A finished run
    (checkpoint at the last epoch) is skipped, an interrupted one resumed; checkpoint names
    carry the run's fingerprint, so other settings train afresh beside them (``restart``:
    retrain even runs with a checkpoint).  Every checkpoint also stores the statistics of
    its training inputs (for ``classify``'s out-of-distribution check).  Returns
    ``{run name: history}`` (ensemble members i >= 1: ``<run name>-m<i>``).  A hybrid model that is
    not available is skipped with a message.
    """
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    histories = {}
    for sky, noise, method, member in _network_runs(config):
        history = train_one(config, path, sky, noise, method, ctx, log, restart, member)
        if history is not None:
            histories[member_name(run_name(method, sky.name, noise), member)] = history
    return histories


# ------------------------------------------------------------------------------- baselines


def _map_blocks(dataset: MassMapDataset):
    """Consecutive sample ranges of one map each: ``range``s of ``dataset.n_patches`` samples."""
    n = dataset.n_patches
    for start in range(0, len(dataset), n):
        yield range(start, start + n)


def _features(dataset: MassMapDataset, featurize, draws: int = 0, noise_std: float = 0.0, seed: int = 0):
    """(features dict of stacked groups, labels) over ``dataset``, one map at a time.

    ``draws`` > 0 (training): ``draws`` fresh white-noise realisations of std ``noise_std``
    per sample of the (clean) ``dataset``, seeded by (seed, draw, sample); else the samples
    as they are (validation and test: the data set's fixed noise, as the networks see it).
    """
    parts, labels = [], []
    for block in _map_blocks(dataset):
        x = np.stack([dataset.values(i)[0] for i in block])
        y = [dataset.sample_map(i)[0] for i in block]
        for d in range(max(draws, 1)):
            xd = x
            if draws and noise_std > 0:
                rng = np.random.default_rng(np.random.SeedSequence([seed, 104729, d, block.start]))
                xd = x + noise_std * rng.standard_normal(x.shape)
            parts.append(featurize(xd))
            labels.extend(y)
            if not (draws and noise_std > 0):
                break
    groups = {g: np.concatenate([p[g] for p in parts]) for g in parts[0]}
    return groups, np.asarray(labels, dtype=np.int64)


class _FullSkyFeatures:
    """``psd`` (log anafast band powers) and ``hist`` features of full-sky samples."""

    def __init__(self, nside: int, seed: int):
        from .baselines import HistogramSVM, PowerSpectrumSVM

        n_bins = min(24, 3 * nside - 2)
        self.psd = PowerSpectrumSVM(nside, lmin=2, n_bins=n_bins, seed=seed)
        self.hist = HistogramSVM(seed=seed)
        self.nside = nside

    def fit(self, values):
        self.hist._prepare(values, None)
        return self

    def transform(self, values, groups=("psd", "hist")) -> dict:
        idx = np.arange(12 * self.nside**2)
        out = {}
        if "psd" in groups:
            out["psd"] = self.psd.features(values, idx)
        if "hist" in groups:
            out["hist"] = self.hist.features(values, idx)
        return out


def _base_record(sky: SkySetting, noise: NoiseSetting, sets) -> dict:
    train_set, val_set, test_set = sets
    return {"sky_fraction": train_set.sky_fraction, "sky": sky.name, "nside": train_set.nside,
            **noise.record(), "noise_std": train_set.noise_std, "clean_std": train_set.clean_std,
            "n_train": len(train_set), "n_val": len(val_set), "n_test": len(test_set)}


def _baseline_records(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig,
                      methods) -> list[dict]:
    """Fit the baselines ``methods`` on the training maps (C chosen on the validation maps) and
    score them on the test maps; one record each."""
    from .baselines import FeatureSVM
    from .massmaps_features import PatchFeatures

    t0, c0 = time.perf_counter(), time.process_time()
    train_clean = _dataset(path, sky, None, config, "train")
    train_set, val_set, test_set = _datasets(path, sky, noise, config)
    base = _base_record(sky, noise, (train_set, val_set, test_set))
    groups = sorted({g for m in methods for g in BASELINE_FEATURES[m]})
    if sky.level is not None:
        side = int(round(math.sqrt(train_set.indices.shape[1])))
        feats = PatchFeatures(train_set.nside, side)
    else:
        groups = [g for g in groups if g in ("psd", "hist")]
        feats = _FullSkyFeatures(train_set.nside, config.seed)
    # histogram bins and thresholds from (noisy) training pixels of both classes, 4 maps per class
    sub = [i for b in list(_map_blocks(train_set))[::max(1, len(train_set) // train_set.n_patches // 8)]
           for i in b]
    feats.fit(np.stack([train_set.values(i)[0] for i in sub]))
    featurize = lambda x: feats.transform(x, groups)  # noqa: E731
    draws = config.baseline_noise_draws if train_set.noise_std > 0 and config.augment else 0
    Xtr, ytr = (_features(train_clean, featurize, draws, train_set.noise_std, config.seed) if draws
                else _features(train_set, featurize))
    Xva, yva = _features(val_set, featurize)
    Xte, yte = _features(test_set, featurize)
    t_feat = time.perf_counter() - t0
    records = []
    for m in methods:
        t1 = time.perf_counter()
        cols = [g for g in BASELINE_FEATURES[m] if g in Xtr]
        pick = lambda X: np.concatenate([X[g] for g in cols], axis=1)  # noqa: E731
        clf = FeatureSVM(seed=config.seed).fit(pick(Xtr), ytr, pick(Xva), yva)
        records.append({**base, "method": m, **_accuracy_fields(clf.predict(pick(Xte)) == yte, test_set),
                        "C": clf.C, "val_accuracy": clf.val_accuracy, "features": cols,
                        "n_features": int(pick(Xtr).shape[1]), "noise_draws": max(draws, 1),
                        "seconds": t_feat + time.perf_counter() - t1})
    cpu = time.process_time() - c0
    for r in records:
        r["cpu_seconds_all_baselines"] = cpu
    return records


def _worker_setup(pids) -> None:
    """A worker process: one torch thread; Ctrl-C ignored while idle (jobs take it, see :func:`_interruptible`);
    announces its process id on the queue ``pids`` (how :class:`ParallelRun` reaches its workers)."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids.put(os.getpid())


@contextmanager
def _interruptible():
    """Ctrl-C raises KeyboardInterrupt inside a job (and only there: an idle worker ignores it)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _baseline_job(path, sky_name: str, noise: NoiseSetting, config: ExperimentConfig, methods) -> list[dict]:
    sky = parse_sky_fraction(sky_name, config.nside, config.footprint, config.full_sky_nside)
    with _interruptible(), limit_threads(1):
        return _baseline_records(Path(path), sky, noise, config, methods)


def _train_job(path, sky_name: str, noises, config: ExperimentConfig, method: str,
               restart: bool = False, member: int = 0) -> tuple | None:
    """Network runs of one method, sky and ensemble member, one per noise setting of ``noises`` in that
    order, in a worker; ``(desc, epoch, epochs)`` if one was interrupted (Ctrl-C), else None (plain
    data: :class:`~deepsphere_gen.training.TrainingInterrupted` does not survive pickling)."""
    sky = parse_sky_fraction(sky_name, config.nside, config.footprint, config.full_sky_nside)
    try:
        with _interruptible(), limit_threads(1):
            for noise in noises:
                train_one(config, Path(path), sky, noise, method, distributed_context("cpu"), restart=restart,
                          member=member)
    except TrainingInterrupted as exc:
        return exc.desc, exc.epoch, exc.epochs
    return None


class ParallelRun:
    """The run step on ``workers`` CPU processes: network trainings and baseline fits side by side.

    One job per network method, sky and ensemble member (its runs one after the other, the
    noise-free one first: the runs with noise start from it, see :func:`train_one`; without
    ``config.warm_start`` one job per run and member) or per (sky, noise) baseline fit, one thread each, in spawned processes (no
    state shared with the parent's torch); jobs go largest first (estimated from samples x
    pixels x epochs).  Results are those of the sequential run: every job is
    seeded by itself; networks write their usual checkpoints, which :func:`evaluate_all` then
    reads (the same fingerprinted files as the sequential run: ``workers`` is not part of a run's
    fingerprint, so either run resumes or reuses the other's checkpoints; ``restart``: retrain
    even runs with a checkpoint); baseline records come back through ``baselines``
    ((sky, noise) -> future).
    ``with ParallelRun(config, path, 2) as run: run.wait_training(); evaluate_all(..., baselines=run.baselines)``.

    Ctrl-C: every worker stops its job (each network keeps its checkpoint of the last finished
    epoch), and :meth:`wait_training` raises :class:`~deepsphere_gen.training.TrainingInterrupted`
    of an interrupted run; any other error also stops the running jobs before it propagates.
    """

    def __init__(self, config: ExperimentConfig, path: Path, workers: int = 2, restart: bool = False):
        self.config, self.path, self.restart = config, Path(path), bool(restart)
        self.workers = check_positive_int(workers, "workers")
        self.baselines, self.training, self._pool, self._pid_queue = {}, [], None, None

    def _jobs(self):
        """``(size, "train", sky, [noise, ...], method, member)`` and ``(size, "baselines", sky, noise,
        [method, ...])``, largest first."""
        cfg, jobs, chains = self.config, [], {}
        for sky, noise, method, member in _network_runs(cfg):
            train_set = _dataset(self.path, sky, noise, cfg, "train")
            size = len(train_set) * train_set.indices.shape[1] * train_config(method, len(train_set), cfg).epochs
            key = (sky.name, method, member) if cfg.warm_start else (sky.name, method, member, noise.name)
            chain = chains.setdefault(key, [0.0, sky, [], method, member])
            chain[0] += size * (0.3 if method == "harmonic" else 1.0)
            chain[2].append(noise)
        jobs.extend((size, "train", sky, noises, method, member)
                    for size, sky, noises, method, member in chains.values())
        for sky in sky_settings(cfg):
            methods = [m for m in _methods_for(sky, cfg.methods) if m in BASELINES]
            for noise in noise_settings(cfg) if methods else ():
                train_set = _dataset(self.path, sky, noise, cfg, "train")
                draws = cfg.baseline_noise_draws if noise.kind != "none" else 1
                jobs.append((len(train_set) * train_set.indices.shape[1] * (draws + 0.5), "baselines", sky, noise,
                             methods))
        return sorted(jobs, key=lambda j: -j[0])

    def __enter__(self) -> "ParallelRun":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        self._pid_queue = context.SimpleQueue()
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_worker_setup,
                                         initargs=(self._pid_queue,))
        for _, kind, sky, noise, what, *member in self._jobs():
            if kind == "train":
                self.training.append(self._pool.submit(_train_job, str(self.path), sky.name, noise, self.config, what,
                                                       self.restart, *member))
            else:
                self.baselines[sky.name, noise.name] = self._pool.submit(_baseline_job, str(self.path), sky.name,
                                                                         noise, self.config, what)
        return self

    def wait_training(self) -> None:
        """Wait for every network run; re-raises the first error, or TrainingInterrupted after Ctrl-C."""
        try:
            stopped = [s for s in (f.result() for f in self.training) if s is not None]
        except KeyboardInterrupt:
            self._stop()
            stopped = [f.result() for f in self.training if not f.cancelled() and f.exception() is None]
            stopped = [s for s in stopped if s is not None]
            if not stopped:
                raise
        if stopped:  # a worker interrupted on its own (Ctrl-C reached it first)
            self._stop()
            raise TrainingInterrupted(*stopped[0], checkpoint=None)

    def _stop(self) -> None:
        """Cancel the jobs not started, interrupt the running ones (an idle worker ignores it), wait for them."""
        for f in [*self.training, *self.baselines.values()]:
            f.cancel()
        pids = set()
        while not self._pid_queue.empty():  # the workers started so far announced their ids
            pids.add(self._pid_queue.get())
        for pid in sorted(pids):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:  # already gone
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True)
        else:
            self._stop()


def _trained_member(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                    train_set: MassMapDataset, ctx: DistContext, log, member: int):
    """(model with the trained weights of ensemble ``member``, its checkpoint state), or None (reported)
    where its checkpoint is missing or unfinished; ValueError for an unavailable hybrid,
    :class:`~deepsphere_gen.training.CheckpointMismatch` for a file of another run's fingerprint."""
    run = _network_run(config, path, method, sky, noise, train_set, ctx.world_size, member)
    model, tc = run.model, run.train_config
    ckpt = tc.checkpoint
    if not ckpt.is_file():
        if ctx.is_main and log and method != "hybrid":
            log(f"massmaps: no checkpoint {ckpt} for these settings: "
                "run `deepsphere-gen massmaps train` with the same options first")
        return None
    state = load_checkpoint(ckpt, map_location=ctx.device)
    if int(state.get("epoch", 0)) < tc.epochs:
        if ctx.is_main and log:
            log(f"massmaps: {ckpt} stopped after epoch {state.get('epoch', 0)} of {tc.epochs}; "
                "not evaluated: run `deepsphere-gen massmaps train` with the same options to finish it")
        return None
    check_fingerprint(state, run.meta, ckpt, "not evaluated: remove it, or rerun `deepsphere-gen massmaps train` "
                      "with --restart")
    load_model_state(model, state, ckpt)
    return model.to(ctx.device), state


def _gather_correct(local, n: int, ctx: DistContext) -> np.ndarray:
    """(n,) booleans of the whole test set from this process's per-batch correctness ``local`` (its
    shard: samples rank, rank + world_size, ...), summed over the processes."""
    mine = torch.cat(local) if local else torch.zeros(0, dtype=torch.bool, device=ctx.device)
    if not ctx.distributed:
        return mine.cpu().numpy().astype(bool)
    full = torch.zeros(n, dtype=torch.int64, device=ctx.device)
    full[ctx.rank::ctx.world_size] = mine.to(torch.int64)
    torch.distributed.all_reduce(full)
    return full.cpu().numpy().astype(bool)


def _sample_maps(test_set: MassMapDataset) -> tuple[np.ndarray, np.ndarray]:
    """(classes (n,), map numbers (n,)) of the test samples in order."""
    cm = np.array([test_set.sample_map(i) for i in range(len(test_set))], dtype=np.int64).reshape(-1, 2)
    return cm[:, 0], cm[:, 1]


def _accuracy_fields(correct: np.ndarray, test_set: MassMapDataset | None = None) -> dict:
    """accuracy, n_correct, ci95 (Wilson) of the per-sample ``correct`` (n,); with ``test_set`` (the
    samples ``correct`` is about, in order) also ``correct`` (a "0"/"1" string, one per sample),
    ``test_maps`` (the (class, map) of every sample, :func:`.reporting.map_runs`) and ``ci95_maps``
    (:func:`.reporting.map_interval`)."""
    k, n = int(np.sum(correct)), len(correct)
    if n == 0:
        raise ValueError("cannot score an empty test set")
    out = {"accuracy": k / n, "n_correct": k, "ci95": list(wilson_interval(k, n))}
    if test_set is not None:
        if len(test_set) != n:
            raise ValueError(f"{n} correctness values for {len(test_set)} test samples")
        classes, maps = _sample_maps(test_set)
        out.update(ci95_maps=list(reporting.map_interval(correct, maps, classes)),
                   correct=reporting.encode_correct(correct), test_maps=reporting.map_runs(classes, maps))
    return out


def _network_record(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                    sets, ctx: DistContext, log) -> dict | None:
    """The record of one network run (see :func:`evaluate_all`), or None where a member's checkpoint
    is missing or unfinished (reported) or the hybrid is unavailable."""
    train_set, test_set = sets
    t0 = time.perf_counter()
    members = []
    for member in range(members_of(config, method)):
        try:
            found = _trained_member(config, path, method, sky, noise, train_set, ctx, log, member)
        except ValueError:
            if method == "hybrid":
                return None  # not available in this build (train said so)
            raise
        if found is None:
            return None
        members.append(found)
    perms = evaluation_symmetries(test_set.nside, sky.level) if config.average_views else None
    models = [m for m, _ in members]
    # every member's outputs once per view setting (one forward pass per member, batch and view); the
    # members' and the ensemble's predictions all come from them
    one = [list(batch_outputs(m, test_set, config.batch_size, ctx)) for m in models]
    views = one if perms is None else [
        list(batch_outputs(SymmetryAverage(m, perms).to(ctx.device), test_set, config.batch_size, ctx))
        for m in models]
    labels = [y for _, y in one[0]]

    def correct(outputs) -> np.ndarray:
        """(n,) correctness over the whole test set of the members ``outputs`` (one member: its own
        prediction, several: :func:`log_mean_probabilities`, batch by batch)."""
        local = [(out[0][0] if len(out) == 1 else log_mean_probabilities([o for o, _ in out])).argmax(-1) == y
                 for out, y in zip(zip(*outputs), labels)]
        return _gather_correct(local, len(test_set), ctx)

    def scores(outputs_one, outputs_views, with_samples: bool) -> dict:
        c_one = correct(outputs_one)
        out = _accuracy_fields(correct(outputs_views), test_set if with_samples else None)
        out["accuracy_one_view"] = _accuracy_fields(c_one)["accuracy"]
        return out

    state = members[0][1]
    rec = {"method": method, **scores(one, views, True), "views": 1 if perms is None else len(perms),
           "epochs": int(state["epoch"]), "warm_start": ((state.get("meta") or {}).get("fields") or {}).get("init")}
    rec.update({k_: state["config"][k_] for k_ in ("batch_size", "lr") if k_ in state.get("config", {})})
    if len(members) > 1:
        rec["members"] = [{"member": i, "seed": int(st["config"]["seed"]), **scores([one[i]], [views[i]], False),
                           "fingerprint": (st.get("meta") or {}).get("fingerprint"),
                           "train_seconds": sum(h["seconds"] for h in st["history"])}
                          for i, (_, st) in enumerate(members)]
    rec["seconds"] = sum(h["seconds"] for _, st in members for h in st["history"]) + time.perf_counter() - t0
    rec["history"] = [{k_: v for k_, v in h.items() if k_ != "step_losses"} for h in state["history"]]
    return rec


def evaluate_all(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
                 log=print, baselines: dict | None = None) -> list[dict]:
    """Accuracy of every method on the test maps: one record per (method, sky, noise).

    Networks are read from their checkpoints (missing ones are reported and skipped);
    baselines are fitted here (training maps, C chosen on the validation maps).  Record keys:
    method, sky_fraction (float), sky (name), nside (of the samples), noise (setting name),
    noise_label, ngal, deepsphere_level, noise_std (per pixel), accuracy, n_correct, ci95
    ([lo, hi], Wilson, approximate), ci95_maps ([lo, hi], percentiles of a bootstrap over the
    test maps, :func:`.reporting.map_interval`), correct (per test sample in test-sample order,
    "1" correct / "0" wrong), test_maps ([[class, map number, consecutive samples], ...]: the map
    of every test sample, run-length encoded; every method of one (sky, noise) is scored on the
    same test samples in the same order, with the data set's fixed noise), n_train, n_val,
    n_test, seconds (training + test for networks, features + fit + test for baselines), epochs,
    batch_size, lr, history (networks), views, accuracy_one_view (networks: with
    ``config.average_views`` the test accuracy is that of the class probabilities averaged over
    ``views`` symmetries of the input, :func:`evaluation_symmetries`; accuracy_one_view that of the
    input as it is), warm_start (networks: the run it started from and its fingerprint, or None),
    members (networks with ``config.fcn_members`` > 1: per ensemble member its seed, fingerprint,
    train_seconds and own accuracy, n_correct, ci95, accuracy_one_view; the record's accuracy is
    then the ensemble's, its class probabilities averaged over the members,
    :func:`log_mean_probabilities`; seconds count every member's training, history and epochs are
    member 0's), C, val_accuracy, features (baselines).  ``baselines``: the futures of a
    :class:`ParallelRun` (records computed in worker processes), else fitted here.
    """
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    records = []
    for sky in sky_settings(config):
        for noise in noise_settings(config):
            train_set, val_set, test_set = _datasets(path, sky, noise, config)
            base = _base_record(sky, noise, (train_set, val_set, test_set))
            methods = _methods_for(sky, config.methods)
            baseline_methods = [m for m in methods if m in BASELINES]
            for method in methods:
                if method in BASELINES:
                    continue
                rec = _network_record(config, path, method, sky, noise, (train_set, test_set), ctx, log)
                if rec is not None:
                    records.append({**base, **rec})
            if baseline_methods and ctx.is_main:
                job = (baselines or {}).get((sky.name, noise.name))
                records.extend(job.result() if job is not None
                               else _baseline_records(path, sky, noise, config, baseline_methods))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(records, key=lambda r: (config.sky_fractions.index(r["sky"]),
                                          [n.name for n in noise_settings(config)].index(r["noise"]),
                                          order[r["method"]]))


# ---------------------------------------------------------------------------------- outputs


def format_table(records: list[dict]) -> str:
    """Accuracy (%) table with 95 % intervals: one row per (sky, noise), one column per method."""
    return reporting.format_table(records, METHODS)


def margins(records: list[dict]) -> list[dict]:
    """Paired margins of every network method over every baseline on the same test samples, per (sky,
    noise), with 95 % intervals from a bootstrap over test maps (:func:`.reporting.margin_records`)."""
    return reporting.margin_records(records, NETWORK_METHODS, BASELINES)


def format_margins(pairs: list[dict]) -> str:
    """Margins table of the paired margins ``pairs`` (:func:`margins`; points, 95 % map-bootstrap intervals):
    per (sky, noise) the fcn (else the first network run) minus the better of the PSD and histogram SVMs,
    and minus the strong SVM."""
    return reporting.format_margins(pairs, NETWORK_METHODS, ("psd_svm", "hist_svm"))


def write_json(path, records: list[dict], config: ExperimentConfig, pairs: list[dict] | None = None,
               extra: dict | None = None) -> Path:
    """JSON: {"config", "noise_settings", "interval_note", "margin_note", "margins": ``pairs`` (None:
    :func:`margins` of ``records``), "records": [one per method, sky, noise], **extra}, written atomically."""
    payload = {"config": asdict(config), "noise_settings": [n.record() for n in noise_settings(config)],
               "interval_note": reporting.INTERVAL_NOTE, "method_names": reporting.METHOD_NAMES,
               "margin_note": reporting.MARGIN_NOTE, "margins": margins(records) if pairs is None else pairs,
               **(extra or {}), "records": records}
    text = json.dumps(payload, indent=1, default=str)
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def plot_examples(path: Path, config: ExperimentConfig, out: Path) -> Path:
    """Example maps of both cosmologies: full sky (averaged down to ``full_sky_nside``) and one
    equatorial patch of the largest patch level run (else 1/12), clean and with the strongest
    noise setting, on one colour scale; and one-point distributions."""
    from ..datasets.patch_psd import to_square

    maps, meta = load_massmaps(path)
    full = parse_sky_fraction("1", config.nside, None, config.full_sky_nside)
    group = (config.nside // full.nside) ** 2
    full_sky = np.asarray(maps[:, 0], dtype=np.float64).reshape(2, -1, group).mean(-1)
    levels = [s.level for s in sky_settings(config) if s.level is not None]
    sky = parse_sky_fraction(f"1/{12 * 4 ** (min(levels) if levels else 0)}", config.nside)
    noises = noise_settings(config)
    noise = max(noises, key=lambda n: n.pixel_std(config.nside, 1.0))
    clean, noisy = _dataset(path, sky, None, config, "all"), _dataset(path, sky, noise, config, "all")
    p = 4 * 4**sky.level  # an equatorial patch (base pixel 4)
    first = [c * clean.maps.shape[1] * clean.n_patches + p for c in range(2)]
    patches = np.stack([to_square(clean.values(i)[0]) for i in first])
    noisy_p = np.stack([to_square(noisy.values(i)[0]) for i in first])
    return reporting.plot_examples(full_sky, patches, noisy_p, meta["classes"], noise.label, full.nside,
                                   f"{sky.name} patch, nside {config.nside}", out, reporting.save_png)


def plot_all(records: list[dict], config: ExperimentConfig, path: Path) -> list[Path]:
    """The three figures under ``out_dir``: examples.png, training_curves.png, accuracy_vs_noise.png."""
    out = Path(config.out_dir)
    return [plot_examples(path, config, out / "examples.png"),
            reporting.plot_curves(records, out / "training_curves.png", reporting.save_png),
            reporting.plot_accuracy(records, out / "accuracy_vs_noise.png", reporting.save_png, METHODS)]
