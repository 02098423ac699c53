"""The networks of the mass-map experiment: :func:`build_model` (graph CNNs ``fcn`` / ``cnn``, the
harmonic and the hybrid classifier), each wrapped in :class:`Standardized`.

Partial sky: every patch of a level has the same nested pixel layout, so one network (its
graph built on an equatorial patch, base pixel 4) reads all patches, as in DeepSphere.
Networks see maps divided by one per-data-set constant, ``sqrt(clean_std^2 + noise_std^2)``
(the expected pixel std), which carries no class information.
The harmonic and hybrid models run without their per-sample ``DegreeNorm`` (it divides out
the amplitude, which is what separates the two cosmologies).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...graph import capped_k
from ...models import DeepSphereClassifier, HarmonicClassifier, HybridClassifier
from ...nn import partial_sky_pool_plan
from ...sampling import HealpixSampling
from .config import NETWORK_METHODS, ExperimentConfig, SkySetting

__all__ = ["Standardized", "build_model", "input_pixels", "pool_levels", "footprint_pooling_steps"]


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


def _pixels(nside: int, indices: np.ndarray | None) -> int:
    return 12 * nside**2 if indices is None else len(indices)


def input_pixels(sky: SkySetting, config: ExperimentConfig) -> int:
    """Pixels of one input of the graph networks on ``sky`` (those :func:`build_model` builds on): 12 nside^2 on the
    full sky, nside^2 / 4^level on a nested patch, the footprint's pixels."""
    nside = sky.nside or config.nside
    return _pixels(nside, _reference_indices(sky, nside))


def _pooling_walk(method: str, sky: SkySetting, config: ExperimentConfig) -> tuple[list[int], list[tuple[int, int, int]]]:
    """The coarsening walk behind :func:`pool_levels` and :func:`footprint_pooling_steps`: (the pooling levels,
    the steps of :func:`~deepsphere_gen.nn.partial_sky_pool_plan` on a footprint, else []).  One ``coarsen(1)``
    per block on a footprint (cheap elsewhere: no sampling is built)."""
    nside = sky.nside or config.nside
    indices = _reference_indices(sky, nside)
    n = _pixels(nside, indices)
    if sky.footprint is not None:  # pixels counted as n / 4 per pooling, as on the other skies
        plan, steps = partial_sky_pool_plan(HealpixSampling(nside, indices=indices), len(config.channels),
                                            lambda block, coarse: n // 4**block >= 16)
        return list(plan), steps
    pools = []
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
    return pools, []


def pool_levels(method: str, sky: SkySetting, config: ExperimentConfig) -> list[int]:
    """Pooling by 4**p after each block of the graph network ``method`` ("fcn", "cnn") on ``sky``: by 4 while
    at least 4 pixels would remain (counted as pixels / 4 per pooling) and, on a footprint, while some parent
    pixel has all 4 children in it (then no more pooling: a fragmented footprint stops pooling instead of failing);
    the cnn on the full sky pools down to the 12 base pixels."""
    return _pooling_walk(method, sky, config)[0]


def footprint_pooling_steps(sky: SkySetting, config: ExperimentConfig) -> list[tuple[int, int, int]]:
    """What the graph networks' pooling does on the footprint ``sky``: (nside before, pixels before, complete
    parents kept) per pooling (:func:`~deepsphere_gen.nn.partial_sky_pool_plan`; it drops pixels - 4 parents, the
    pixels whose parent is partly outside, of which :func:`~deepsphere_gen.nn.partial_sky_pool` warns); [] for
    other skies."""
    return _pooling_walk("fcn", sky, config)[1]


def _hybrid_classifier(nside: int, config: ExperimentConfig) -> nn.Module:
    L0 = max(1, min(8, 2 * (nside // 4)))  # two poolings by 4: the bridge stays below 2 nside_low
    return HybridClassifier(nside=nside, n_classes=2, bandlimits=(L0, min(6, L0), min(4, L0)), normalize=False)


def build_model(method: str, sky: SkySetting, config: ExperimentConfig, scale: float,
                seed: int | None = None) -> nn.Module:
    """The network of ``method`` for ``sky``, wrapped in :class:`Standardized`; its initial weights
    seeded by ``seed`` (None: ``config.seed``)."""
    torch.manual_seed(config.seed if seed is None else seed)
    nside = sky.nside or config.nside
    if method in ("fcn", "cnn"):
        indices = _reference_indices(sky, nside)
        pools = pool_levels(method, sky, config)
        head = "gap" if method == "fcn" else "fc"
        # the default k on a tiny input: a complete graph (noted); HEALPix pixels are distinct points
        k = capped_k(_pixels(nside, indices), config.k)
        model = DeepSphereClassifier(nside, 1, channels=config.channels, n_classes=2, K=config.K, k=k,
                                     pool_levels=pools, head=head, indices=indices)
    elif method == "harmonic":
        model = HarmonicClassifier(2, bandlimits=config.harmonic_bandlimits, channels=config.harmonic_channels,
                                   sampling=HealpixSampling(nside), normalize=False)
    elif method == "hybrid":
        model = _hybrid_classifier(nside, config)
    else:
        raise ValueError(f"{method!r} is not a network method ({', '.join(NETWORK_METHODS)})")
    return Standardized(model, scale)
