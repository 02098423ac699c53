"""The estimators' networks: the DeepSphere regressor on the footprint pixels and the MLP on
summary statistics, both (B, n_in) -> (B, 5) outputs of the Gaussian posterior of :mod:`.posterior`.

- ``graph``: :class:`~deepsphere_gen.models.DeepSphereRegressor` on the footprint pixels only
  (``indices=``: masked pixels never enter; partial-sky pooling keeps only parents whose children
  are all inside, :func:`pooling_plan`, :func:`pooling_steps`), channels = redshift bins, inputs divided by each bin's
  pixel std;
- ``power_spectrum`` and ``handcrafted``: :func:`build_mlp` on the features of :mod:`.summaries`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ...models import DeepSphereRegressor
from ...nn import partial_sky_pool_plan
from ...sampling import HealpixSampling
from .config import CosmoExperimentConfig

__all__ = ["pooling_plan", "pooling_steps", "build_graph_model", "build_mlp"]


class _ScaledInput(nn.Module):
    """Divide every input channel by a fixed scale, then run ``model``; (B, P, C) -> model's output."""

    def __init__(self, model: nn.Module, scale):
        super().__init__()
        self.model = model
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float32))

    def forward(self, x):
        return self.model(x / self.scale)


def pooling_plan(nside: int, indices: np.ndarray, n_blocks: int) -> tuple[int, ...]:
    """Pool by 4 after each block while the footprint keeps a complete parent (then 0): a fragmented user mask
    stops pooling instead of failing.  One entry per block (the built-in footprint at nside 128: (1, 1, 1, 1),
    6 pixels left at nside 8)."""
    return partial_sky_pool_plan(HealpixSampling(nside, indices=indices), n_blocks)[0]


def pooling_steps(nside: int, indices: np.ndarray, n_blocks: int) -> list[tuple[int, int, int]]:
    """What the poolings of :func:`pooling_plan` do: (nside before, pixels before, complete parents kept) per
    pooling, as :func:`~deepsphere_gen.nn.partial_sky_pool_plan` gives them (the pooling drops pixels - 4 parents,
    those whose parent is partly outside the footprint)."""
    return partial_sky_pool_plan(HealpixSampling(nside, indices=indices), n_blocks)[1]


def build_graph_model(config: CosmoExperimentConfig, indices: np.ndarray, scale) -> nn.Module:
    """DeepSphere regressor on the footprint pixels ``indices``: (B, pixels, n_bins) -> (B, 5); pooling by
    :func:`pooling_plan`."""
    pools = pooling_plan(config.grid.nside, indices, len(config.channels))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="partial-sky pooling")  # edge pixels of incomplete parents
        net = DeepSphereRegressor(config.grid.nside, config.grid.n_bins, channels=config.channels, n_outputs=5,
                                  K=config.K, k=config.k, pool_levels=pools, head="stats", stats=("mean", "std"),
                                  indices=indices)
    return _ScaledInput(net, scale)


def build_mlp(n_in: int, hidden, dropout: float = 0.0) -> nn.Module:
    """MLP (B, n_in) -> (B, 5): Linear + ReLU (+ Dropout when ``dropout``) per width of ``hidden``, then Linear."""
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        width = h
    layers.append(nn.Linear(width, 5))
    return nn.Sequential(*layers)
