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

from ...models import DeepSphereClassifier, HarmonicClassifier, HybridClassifier
from ...sampling import HealpixSampling
from .config import NETWORK_METHODS, ExperimentConfig, SkySetting

__all__ = ["Standardized", "build_model"]


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
