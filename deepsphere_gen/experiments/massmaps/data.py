"""The samples of the mass-map experiment: the data set (:func:`generate`), its training, validation and
test samples of one (sky, noise) setting (:func:`dataset_of`, :func:`datasets_of`: split by map, so
patches of one map never straddle a split), and what the networks train on (:func:`training_set`: fresh
noise at every draw, :class:`~deepsphere_gen.datasets.FreshNoise`, random grid symmetries and, with
``sky_rotations`` R > 0, a draw from the original map or one of its R rotated copies, :class:`SkyRotationDraws`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...datasets import (FreshNoise, MassMapConfig, MassMapDataset, generate_massmaps, generate_sky_rotations,
                         load_sky_rotations, split_sizes)
from ...training import DistContext, distributed_context
from .config import ExperimentConfig, SkySetting
from .settings import NoiseSetting
from .symmetry import RandomSymmetry, symmetry_permutations

__all__ = ["generate", "data_config", "n_training_maps", "rotated_copies", "dataset_of", "datasets_of",
           "SkyRotationDraws", "training_set"]


def data_config(config: ExperimentConfig) -> MassMapConfig:
    """The generation parameters of the experiment's data set."""
    return MassMapConfig(nside=config.nside, n_maps=config.n_maps, seed=config.seed, generator=config.generator)


def n_training_maps(config: ExperimentConfig) -> int:
    """Training maps per class: those before the validation and test maps (:func:`~deepsphere_gen.datasets.split_sizes`,
    as :class:`MassMapDataset` splits)."""
    return split_sizes(config.n_maps, config.test_fraction, config.val_fraction)[0]


def generate(config: ExperimentConfig, ctx: DistContext | None = None, copies: bool = True) -> Path:
    """Generate (rank 0; other ranks then reuse) or reuse the data set and, with ``config.sky_rotations`` > 0 and
    ``copies`` (False for the evaluate step, which trains nothing), the rotated copies of its training maps (beside
    it); returns the data set's directory."""
    ctx = ctx or distributed_context(config.device)
    mc, main = data_config(config), ctx.is_main
    for turn in (True, False):  # rank 0 first, then the others reuse
        if main == turn:
            path = generate_massmaps(mc, config.data_dir, progress=config.progress and main, verbose=main)
            if config.sky_rotations and copies:
                generate_sky_rotations(mc, n_training_maps(config), config.sky_rotations, path.parent,
                                       progress=config.progress and main, verbose=main)
        if turn:
            ctx.barrier()
    return path


def rotated_copies(path: Path, sky: SkySetting, config: ExperimentConfig, clean: MassMapDataset) -> MassMapDataset:
    """The ``config.sky_rotations`` rotated copies of the training maps of the data set ``path`` (generated beside
    it, or reused) as samples of ``sky`` like ``clean`` (the noise-free training samples: the same clean std)."""
    folder = generate_sky_rotations(data_config(config), n_training_maps(config), config.sky_rotations,
                                    Path(path).parent, progress=False, verbose=False)  # made by generate(): reused
    maps, _ = load_sky_rotations(folder, config.sky_rotations)
    return MassMapDataset(maps, level=sky.level, footprint=sky.footprint, split="all", clean_std=clean.clean_std,
                          nside_out=sky.nside if sky.full_sky else None)


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


class SkyRotationDraws(Dataset):
    """The samples of ``original`` (noise-free training samples, :class:`MassMapDataset`), each drawn, at every
    draw, from the original map or one of its ``n_copies`` rotated copies (``copies``: the copies as samples of
    the same sky, copy r of map i at map ``i * n_copies + r``, :func:`rotated_copies`), chosen uniformly
    from torch's global RNG (which :func:`~deepsphere_gen.training.fit` re-seeds every epoch: reproducible,
    resumable).  The same length as ``original``: an epoch draws each patch position once, the steps
    are unchanged; a copy's sample is found by the data sets' own layout (:meth:`MassMapDataset.locate`,
    :meth:`MassMapDataset.sample_index`).  Items as in :class:`MassMapDataset`."""

    def __init__(self, original: MassMapDataset, copies: MassMapDataset, n_copies: int):
        if original.noise_std != 0 or copies.noise_std != 0:
            raise ValueError("SkyRotationDraws needs noise-free samples")
        n_maps = len(original.map_ids)
        if len(copies) != n_copies * len(original) or list(original.map_ids) != list(range(n_maps)):
            raise ValueError(f"{len(copies)} samples of copies do not match {n_copies} copies of the {n_maps} "
                             f"first maps per class ({len(original)} samples)")
        self.original, self.copies, self.n_copies, self.noise_std = original, copies, int(n_copies), 0.0

    def __len__(self) -> int:
        return len(self.original)

    def __getitem__(self, i: int):
        k = int(torch.randint(self.n_copies + 1, ()))
        if k == 0:
            return self.original[i]
        c, j, p = self.original.locate(i)
        return self.copies[self.copies.sample_index(c, j * self.n_copies + k - 1, p)]


def training_set(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig,
                 train_set: MassMapDataset):
    """Training samples: fresh noise and random grid symmetries (``config.augment``), drawn from the
    original maps or their rotated copies (``config.sky_rotations`` > 0: :class:`SkyRotationDraws`)."""
    if not config.augment:
        return train_set
    samples = train_set if train_set.noise_std == 0 else dataset_of(path, sky, None, config, "train")
    if config.sky_rotations:
        samples = SkyRotationDraws(samples, rotated_copies(path, sky, config, samples), config.sky_rotations)
    if train_set.noise_std > 0:
        samples = FreshNoise(samples, train_set.noise_std)
    if sky.footprint is None:
        samples = RandomSymmetry(samples, symmetry_permutations(train_set.nside, sky.level))
    return samples
