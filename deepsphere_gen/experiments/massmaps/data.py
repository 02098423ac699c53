"""The samples of the mass-map experiment: the data set (:func:`generate`), its training, validation and
test samples of one (sky, noise) setting (:func:`dataset_of`, :func:`datasets_of`: split by map, so
patches of one map never straddle a split), and what the networks train on (:func:`training_set`: fresh
noise at every draw, :class:`FreshNoise`, and random grid symmetries).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...datasets import MassMapConfig, MassMapDataset, generate_massmaps
from ...training import DistContext, distributed_context
from .config import ExperimentConfig, SkySetting
from .settings import NoiseSetting
from .symmetry import RandomSymmetry, symmetry_permutations

__all__ = ["generate", "dataset_of", "datasets_of", "FreshNoise", "training_set"]


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


def dataset_of(path: Path, sky: SkySetting, noise: NoiseSetting | None, config: ExperimentConfig,
               split: str) -> MassMapDataset:
    """The samples of one split for (sky, noise); ``noise`` None: clean samples."""
    kw = dict(level=sky.level, footprint=sky.footprint, split=split, test_fraction=config.test_fraction,
              val_fraction=config.val_fraction, nside_out=sky.nside if sky.full_sky else None)
    clean = MassMapDataset(path, **kw)
    if noise is None or noise.kind == "none":
        return clean
    return MassMapDataset(path, noise_std=noise.pixel_std(clean.nside, clean.clean_std), **kw)


def datasets_of(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig):
    """(train, validation, test) samples for (sky, noise), each with the data set's fixed noise."""
    return tuple(dataset_of(path, sky, noise, config, split) for split in ("train", "val", "test"))


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


def training_set(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig,
                 train_set: MassMapDataset):
    """Training samples: fresh noise and random grid symmetries (``config.augment``)."""
    if not config.augment:
        return train_set
    samples = train_set
    if train_set.noise_std > 0:
        samples = FreshNoise(dataset_of(path, sky, None, config, "train"), train_set.noise_std)
    if sky.footprint is None:
        samples = RandomSymmetry(samples, symmetry_permutations(train_set.nside, sky.level))
    return samples
