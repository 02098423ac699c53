"""DeepSphere's cosmology experiment: methods side by side on the same mass-map split.

For every sky setting (full sky, nested base patches of sky fraction 1/12, 1/48, 1/192,
or a footprint) and every relative noise level, all methods see the same train/test maps
(:class:`deepsphere_gen.datasets.MassMapDataset`: the last maps of each class are the test
maps, so patches of one map never straddle the split):

- ``fcn``: DeepSphere graph CNN, conv blocks + global average pooling (rotation invariant);
- ``cnn``: the same blocks with a fully connected head on the pooled pixels (DeepSphere's
  CNN variant, not invariant);
- ``harmonic``: :class:`~deepsphere_gen.models.HarmonicClassifier` (full sky only);
- ``hybrid``: the graph/harmonic hybrid classifier (full sky only; when available);
- ``psd_svm`` / ``hist_svm``: linear SVMs on log power spectra / pixel histograms
  (:mod:`deepsphere_gen.experiments.baselines`).

Partial sky: every patch of a level has the same nested pixel layout, so one network (its
graph built on an equatorial patch, base pixel 4) reads all patches, as in DeepSphere.
Networks see maps divided by one per-data-set constant, ``clean_std * sqrt(1 + noise^2)``
(the expected pixel std), which carries no class information.

Training (see :func:`train_config`): AdamW with a cosine learning-rate schedule, BatchNorm
statistics recalibrated on the training set after every epoch (the exponential running
averages lagged behind the weights and made every full-sky graph network predict one
class: exactly 50 %), at least ``min_steps`` optimisation steps per run (60 full-sky maps
are a few steps per epoch; small data sets get a smaller batch and more epochs), and a new
noise realisation at every draw of a training sample (:class:`FreshNoise`; test samples
keep their fixed noise).  The harmonic and hybrid models run without their per-sample
``DegreeNorm``: it divides every degree by the sample's own amplitude, and the amplitude
(sigma_8) is what separates the two cosmologies.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .._io import atomic_write
from .._cache_dirs import default_data_dir
from ..datasets import MassMapConfig, MassMapDataset, generate_massmaps, load_massmaps
from ..datasets import builtin_footprint, read_footprint
from ..datasets.massmaps import _check_noise
from ..training import (
    DistContext,
    TrainConfig,
    distributed_context,
    evaluate,
    fit,
    load_checkpoint,
    load_model_state,
)
from .map_statistics import training_distribution
from .massmaps_runs import checkpoint_file, run_fields, run_meta, run_name

__all__ = [
    "METHODS",
    "NETWORK_METHODS",
    "FULL_SKY_METHODS",
    "ExperimentConfig",
    "SkySetting",
    "parse_sky_fraction",
    "sky_settings",
    "build_model",
    "FreshNoise",
    "RandomSymmetry",
    "symmetry_permutations",
    "train_config",
    "generate",
    "train",
    "evaluate_all",
    "format_table",
    "write_json",
    "plot_all",
]

METHODS = ("fcn", "cnn", "harmonic", "hybrid", "psd_svm", "hist_svm")
NETWORK_METHODS = ("fcn", "cnn", "harmonic", "hybrid")
FULL_SKY_METHODS = ("harmonic", "hybrid")
BASELINES = ("psd_svm", "hist_svm")


@dataclass
class ExperimentConfig:
    """Settings of the experiment (CLI flags map 1:1).

    nside, n_maps (per class), seed: the generated data set; sky_fractions: "1", "1/12",
    "1/48", "1/192" (nested patches) or "footprint" (needs ``footprint``: "builtin" or a
    HEALPix FITS mask); noise_levels: relative noise (std = level x clean map std);
    methods: subset of METHODS; epochs, batch_size, lr: training of the networks (at
    least ``min_steps`` steps per run: see :func:`train_config`); augment: fresh noise at
    every draw of a training sample (False: the fixed noise of the data set);
    channels, K: graph conv blocks; harmonic_bandlimits, harmonic_channels: harmonic
    model; data_dir: generated data cache; out_dir: checkpoints, JSON, plots.
    """

    nside: int = 32
    n_maps: int = 40
    seed: int = 0
    sky_fractions: tuple = ("1", "1/12", "1/48")
    noise_levels: tuple = (0.0, 1.0, 2.0)
    methods: tuple = METHODS
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    min_steps: int = 80
    augment: bool = True
    test_fraction: float = 0.25
    channels: tuple = (16, 32, 64)
    K: int = 5
    harmonic_bandlimits: tuple = (12, 6, 3)
    harmonic_channels: tuple = (8, 8, 8)
    footprint: str | None = None
    data_dir: str = field(default_factory=lambda: str(default_data_dir()))  # XDG cache, see deepsphere_gen._cache_dirs
    out_dir: str = "massmaps-out"
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        MassMapConfig(nside=self.nside, n_maps=self.n_maps, seed=self.seed)  # validates nside, n_maps, seed
        self.noise_levels = tuple(_check_noise(v) for v in self.noise_levels)
        if not self.noise_levels:
            raise ValueError("give at least one noise level")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
        self.methods = tuple(dict.fromkeys(self.methods))
        if not self.sky_fractions:
            raise ValueError("give at least one sky fraction")
        for s in self.sky_fractions:
            parse_sky_fraction(s, self.nside, self.footprint)
        if "footprint" in self.sky_fractions and self.footprint is None:
            raise ValueError("sky fraction 'footprint' needs --footprint builtin|PATH")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)  # validates
        if int(self.min_steps) != self.min_steps or self.min_steps < 0:
            raise ValueError(f"min_steps must be a non-negative integer, got {self.min_steps!r}")


@dataclass
class SkySetting:
    """One way of cutting the sky: name ("1/12"), patch level (None: full sky or
    footprint), footprint mask (NESTED bool) or None, and the sky fraction of a sample."""

    name: str
    level: int | None
    footprint: np.ndarray | None = field(default=None, repr=False)
    fraction: float = 1.0

    @property
    def full_sky(self) -> bool:
        return self.level is None and self.footprint is None


def parse_sky_fraction(text: str, nside: int, footprint=None) -> SkySetting:
    """"1" -> full sky; "1/12", "1/48", "1/192", ... -> patch level; "footprint" -> mask.

    The footprint is only read (and checked) when ``footprint`` is given.
    """
    text = str(text).strip()
    if text == "footprint":
        if footprint is None:
            return SkySetting("footprint", None, None, float("nan"))
        mask = builtin_footprint(nside) if footprint == "builtin" else read_footprint(footprint, nside)
        return SkySetting("footprint", None, mask, float(mask.mean()))
    try:
        frac = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"sky fraction must be 1, 1/12, 1/48, 1/192, ... or 'footprint', got {text!r}") from None
    if frac == 1:
        return SkySetting("1", None, None, 1.0)
    if frac.numerator == 1 and frac.denominator % 12 == 0:
        q = frac.denominator // 12
        level = int(round(math.log(q, 4))) if q >= 1 else -1
        if level >= 0 and 4**level == q:
            if 2**level > nside:
                raise ValueError(f"sky fraction {text} needs nside >= {2**level}, got nside {nside}")
            return SkySetting(text, level, None, float(frac))
    raise ValueError(f"sky fraction {text!r} is not a nested base-patch fraction 1/(12*4^k) nor 1")


def sky_settings(config: ExperimentConfig) -> list[SkySetting]:
    return [parse_sky_fraction(s, config.nside, config.footprint) for s in config.sky_fractions]


def _methods_for(sky: SkySetting, methods) -> list[str]:
    return [m for m in methods if sky.full_sky or m not in FULL_SKY_METHODS]


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


def build_model(method: str, sky: SkySetting, config: ExperimentConfig, scale: float) -> nn.Module:
    """The network of ``method`` for ``sky``, wrapped in :class:`Standardized`."""
    from ..models import DeepSphereClassifier, HarmonicClassifier
    from ..sampling import HealpixSampling

    torch.manual_seed(config.seed)
    nside = config.nside
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
        model = DeepSphereClassifier(nside, 1, channels=config.channels, n_classes=2, K=config.K, k=20,
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
    mc = MassMapConfig(nside=config.nside, n_maps=config.n_maps, seed=config.seed,
                       noise_levels=config.noise_levels)
    if ctx.is_main:
        path = generate_massmaps(mc, config.data_dir, progress=config.progress)
    ctx.barrier()
    if not ctx.is_main:
        path = generate_massmaps(mc, config.data_dir, progress=False, verbose=False)
    return path


def _datasets(path: Path, sky: SkySetting, noise: float, config: ExperimentConfig):
    kw = dict(level=sky.level, footprint=sky.footprint, noise=noise, test_fraction=config.test_fraction)
    return MassMapDataset(path, split="train", **kw), MassMapDataset(path, split="test", **kw)


class FreshNoise(Dataset):
    """Training samples of ``clean`` (a noise-free :class:`MassMapDataset`) with a new noise
    realisation at every draw: std ``noise * clean.clean_std``, drawn from torch's global RNG
    (which :func:`~deepsphere_gen.training.fit` re-seeds every epoch: reproducible, resumable).

    The noise model is known, so a network need not see the same noise twice: with fixed
    noise the full-sky networks memorise the 60 noise realisations (training accuracy 100 %,
    test 75 % at noise 2).  Items as in :class:`MassMapDataset`.
    """

    def __init__(self, clean: MassMapDataset, noise: float):
        if clean.noise != 0:
            raise ValueError("FreshNoise needs a noise-free dataset")
        self.clean, self.noise = clean, _check_noise(noise)
        self.sigma = self.noise * clean.clean_std

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        x, label, idx = self.clean[i]
        if self.sigma > 0:
            x = x + self.sigma * torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
        return x, label, idx


def _scale(dataset: MassMapDataset) -> float:
    return dataset.clean_std * math.sqrt(1.0 + dataset.noise**2)


def _network_run(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: float,
                 train_set: MassMapDataset, world_size: int = 1):
    """``(model, TrainConfig with its checkpoint, meta)`` of one network run; the checkpoint
    file name carries the run's fingerprint (:mod:`.massmaps_runs`)."""
    model = build_model(method, sky, config, _scale(train_set))
    name = run_name(method, sky.name, noise)
    tc = train_config(method, len(train_set), config, world_size, desc=name)
    _, data_meta = load_massmaps(path)
    meta = run_meta(run_fields(config, data_meta.get("generation", data_meta), method, sky, noise, model, tc),
                    footprint=config.footprint if config.footprint in (None, "builtin")
                    else str(Path(config.footprint).resolve()))
    return model, replace(tc, checkpoint=checkpoint_file(config.out_dir, name, meta["fingerprint"])), meta


# ---------------------------------------------------------------------------- train / eval


def _network_runs(config: ExperimentConfig):
    for sky in sky_settings(config):
        for noise in config.noise_levels:
            for method in _methods_for(sky, config.methods):
                if method in NETWORK_METHODS:
                    yield sky, noise, method


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


def _training_set(path: Path, sky: SkySetting, noise: float, config: ExperimentConfig, train_set: MassMapDataset):
    """Training samples: fresh noise and random grid symmetries (``config.augment``)."""
    if not config.augment:
        return train_set
    samples = train_set
    if noise > 0:
        samples = FreshNoise(MassMapDataset(path, split="train", level=sky.level, footprint=sky.footprint, noise=0.0,
                                            test_fraction=config.test_fraction), noise)
    if sky.footprint is None:
        samples = RandomSymmetry(samples, symmetry_permutations(config.nside, sky.level))
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


def train(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
          log=print, restart: bool = False) -> dict:
    """Train every network (method, sky, noise); checkpoints under ``out_dir/checkpoints``.

    A finished run (checkpoint at the last epoch) is skipped, an interrupted one resumed;
    checkpoint names carry the run's fingerprint, so other settings train afresh beside
    them (``restart``: retrain even runs with a checkpoint).  Every checkpoint also stores
    the statistics of its training inputs (for ``classify``'s out-of-distribution check).
    Returns ``{run name: history}``.  A hybrid model that is not available is skipped
    with a message.
    """
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    histories = {}
    for sky, noise, method in _network_runs(config):
        train_set, test_set = _datasets(path, sky, noise, config)
        try:
            model, tc, meta = _network_run(config, path, method, sky, noise, train_set, ctx.world_size)
        except ValueError as exc:
            if method == "hybrid":
                if ctx.is_main and log:
                    log(f"massmaps: skipping hybrid: {exc}")
                continue
            raise
        meta["distribution"] = training_distribution(train_set, per_map=train_set.n_patches)
        samples = _training_set(path, sky, noise, config, train_set)
        histories[tc.desc] = fit(model, samples, replace(tc, resume=not restart), val_set=test_set, log=log,
                                 ctx=ctx, meta=meta)
    return histories


def evaluate_all(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
                 log=print) -> list[dict]:
    """Accuracy of every method on the test split: one record per (method, sky, noise).

    Networks are read from their checkpoints (missing ones are reported and skipped);
    baselines are fitted on the train split here.  Record keys: method, sky_fraction
    (float), sky (name), noise, accuracy, n_train, n_test, seconds (training + test for
    networks, fit + test for baselines), epochs, batch_size, lr (networks).
    """
    from .baselines import HistogramSVM, PowerSpectrumSVM

    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    records = []
    for sky in sky_settings(config):
        for noise in config.noise_levels:
            train_set, test_set = _datasets(path, sky, noise, config)
            arrays = None
            for method in _methods_for(sky, config.methods):
                rec = {"method": method, "sky_fraction": train_set.sky_fraction, "sky": sky.name, "noise": noise,
                       "n_train": len(train_set), "n_test": len(test_set)}
                t0 = time.perf_counter()
                if method in BASELINES:
                    if not ctx.is_main:
                        continue
                    if arrays is None:
                        arrays = train_set.arrays(), test_set.arrays()
                    lmin = 2 if sky.full_sky else max(2, int(round(2.0 / math.sqrt(train_set.sky_fraction))))
                    n_bins = min(24, 3 * config.nside - lmin)
                    model = (PowerSpectrumSVM(config.nside, lmin=lmin, n_bins=n_bins, seed=config.seed)
                             if method == "psd_svm"
                             else HistogramSVM(seed=config.seed))
                    rec["accuracy"] = model.fit(*arrays[0]).score(*arrays[1])
                    rec["seconds"] = time.perf_counter() - t0
                else:
                    try:
                        model, tc, _ = _network_run(config, path, method, sky, noise, train_set, ctx.world_size)
                    except ValueError:
                        if method == "hybrid":
                            continue  # not available in this build (train said so)
                        raise
                    ckpt = tc.checkpoint
                    if not ckpt.is_file():
                        if ctx.is_main and log and method != "hybrid":
                            log(f"massmaps: no checkpoint {ckpt} for these settings: "
                                "run `deepsphere-gen massmaps train` with the same options first")
                        continue
                    state = load_checkpoint(ckpt, map_location=ctx.device)
                    if int(state.get("epoch", 0)) < tc.epochs:
                        if ctx.is_main and log:
                            log(f"massmaps: {ckpt} stopped after epoch {state.get('epoch', 0)} of {tc.epochs}; "
                                "not evaluated: run `deepsphere-gen massmaps train` with the same options to finish it")
                        continue
                    load_model_state(model, state, ckpt)
                    model.to(ctx.device)
                    res = evaluate(model, test_set, batch_size=config.batch_size, ctx=ctx)
                    rec["accuracy"] = res["accuracy"]
                    rec["epochs"] = int(state["epoch"])
                    rec.update({k: state["config"][k] for k in ("batch_size", "lr") if k in state.get("config", {})})
                    rec["seconds"] = sum(h["seconds"] for h in state["history"]) + time.perf_counter() - t0
                    rec["history"] = [{k: v for k, v in h.items() if k != "step_losses"} for h in state["history"]]
                records.append(rec)
    return records


# ---------------------------------------------------------------------------------- outputs


def format_table(records: list[dict]) -> str:
    """Accuracy (%) table: one row per (sky, noise), one column per method."""
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    keys = list(dict.fromkeys((r["sky"], r["noise"]) for r in records))
    acc = {(r["sky"], r["noise"], r["method"]): r for r in records}
    head = ["sky", "noise", "n_train", "n_test"] + methods
    rows = [head]
    for sky, noise in keys:
        any_rec = next(r for r in records if (r["sky"], r["noise"]) == (sky, noise))
        row = [sky, f"{noise:g}", str(any_rec["n_train"]), str(any_rec["n_test"])]
        for m in methods:
            r = acc.get((sky, noise, m))
            row.append("-" if r is None else f"{100 * r['accuracy']:.1f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n(accuracy in % on the test maps; '-': not run for this sky setting)"


def write_json(path, records: list[dict], config: ExperimentConfig) -> Path:
    """JSON: {"config": ..., "records": [one per method, sky_fraction, noise]} written atomically."""
    payload = {"config": asdict(config), "records": records}
    text = json.dumps(payload, indent=1, default=str)
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    out = atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return out


def plot_examples(path: Path, config: ExperimentConfig, out: Path) -> Path:
    """Full-sky example maps of both classes (noise-free and at the highest noise) and one-point histograms."""
    import healpy as hp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps, meta = load_massmaps(path)
    names = [f"Om={c['omega_m']:g}, s8={c['sigma8']:g}" for c in meta["classes"]]
    noise = max(config.noise_levels)
    fig = plt.figure(figsize=(13, 6.5))
    vmax = 4 * meta["clean_std"]
    ds = MassMapDataset(path, noise=noise, split="all")
    for c in range(2):
        clean = np.asarray(maps[c, 0], dtype=np.float64)
        noisy = ds.values(c * ds.maps.shape[1])[0]
        hp.mollview(clean, nest=True, fig=fig.number, sub=(2, 3, 3 * c + 1), min=-vmax, max=vmax, cmap="RdBu_r",
                    title=f"class {c} ({names[c]}), noise 0", cbar=True)
        hp.mollview(noisy, nest=True, fig=fig.number, sub=(2, 3, 3 * c + 2), min=-vmax * (1 + noise),
                    max=vmax * (1 + noise), cmap="RdBu_r", title=f"class {c}, noise {noise:g}", cbar=True)
    ax = fig.add_subplot(1, 3, 3)
    bins = np.linspace(-4 * meta["clean_std"], 8 * meta["clean_std"], 80)
    for c in range(2):
        ax.hist(np.asarray(maps[c]).ravel(), bins=bins, histtype="step", density=True, log=True, label=names[c])
    ax.set_xlabel("convergence kappa (noise-free)")
    ax.set_ylabel("density")
    ax.set_title("one-point distribution (all maps)")
    ax.legend(fontsize=8)
    return _savefig(fig, out)


def plot_curves(records: list[dict], out: Path) -> Path:
    """Training loss and test accuracy per epoch, one column per sky setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = [r for r in records if r.get("history")]
    skies = list(dict.fromkeys(r["sky"] for r in nets)) or ["-"]
    fig, axes = plt.subplots(2, len(skies), figsize=(4.2 * len(skies), 6.5), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in nets))
    noises = sorted({r["noise"] for r in nets})
    styles = ["-", "--", ":", "-."]
    for j, sky in enumerate(skies):
        for r in (r for r in nets if r["sky"] == sky):
            ep = [h["epoch"] for h in r["history"]]
            kw = dict(color=f"C{methods.index(r['method'])}", ls=styles[noises.index(r["noise"]) % 4],
                      label=f"{r['method']} noise {r['noise']:g}")
            axes[0, j].plot(ep, [h["train_loss"] for h in r["history"]], **kw)
            axes[1, j].plot(ep, [h.get("val_accuracy", np.nan) for h in r["history"]], **kw)
        axes[0, j].set_title(f"sky fraction {sky}")
        axes[0, j].set_ylabel("training loss")
        axes[1, j].set_ylabel("test accuracy")
        axes[1, j].set_xlabel("epoch")
        axes[1, j].set_ylim(0.4, 1.02)
    _legend(fig, axes)
    return _savefig(fig, out)


def plot_accuracy(records: list[dict], out: Path) -> Path:
    """Accuracy against noise level per method, one panel per sky setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skies = list(dict.fromkeys(r["sky"] for r in records))
    fig, axes = plt.subplots(1, len(skies), figsize=(4.2 * len(skies), 3.6), squeeze=False)
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    for j, sky in enumerate(skies):
        ax = axes[0, j]
        for i, m in enumerate(methods):
            rs = sorted((r for r in records if r["sky"] == sky and r["method"] == m), key=lambda r: r["noise"])
            if rs:
                ax.plot([r["noise"] for r in rs], [100 * r["accuracy"] for r in rs], marker="o", color=f"C{i}",
                        ls="--" if m in BASELINES else "-", label=m)
        ax.axhline(50, color="gray", lw=0.8)
        ax.set_title(f"sky fraction {sky}")
        ax.set_xlabel("relative noise level")
        ax.set_ylim(40, 101)
    axes[0, 0].set_ylabel("test accuracy (%)")
    _legend(fig, axes)
    return _savefig(fig, out)


def _legend(fig, axes) -> None:
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(handles.values()), list(handles.keys()), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()


def plot_all(records: list[dict], config: ExperimentConfig, path: Path) -> list[Path]:
    """The three figures under ``out_dir``: examples.png, training_curves.png, accuracy_vs_noise.png."""
    out = Path(config.out_dir)
    return [plot_examples(path, config, out / "examples.png"), plot_curves(records, out / "training_curves.png"),
            plot_accuracy(records, out / "accuracy_vs_noise.png")]
