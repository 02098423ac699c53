"""Invariant readout: rotation-invariant features of a generalized signal -> MLP.

Features: the degree-0 fragments (invariant: D^0 = 1) and, for l >= 1, the norms of
every column over the 2l+1 axis, sqrt(sum_m f[m]^2 + eps) (invariant: D^l is
orthogonal; eps keeps the gradient finite at zero).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._validation import check_positive_int, check_positive_ints
from ._signal import GeneralizedSignal, normalize_type

__all__ = ["InvariantReadout"]


class InvariantReadout(nn.Module):
    """GeneralizedSignal (batch, K, 2l+1, tau_l) -> (batch, n_out), invariant to rotations.

    ``use_norms=False`` keeps only the degree-0 fragments; ``hidden`` sizes of the ReLU MLP
    (positive ints; empty: one linear layer); ``n_out`` a positive int.  Either else a ValueError naming it.
    """

    def __init__(self, L: int, channels: int, type, n_out: int, hidden: Sequence[int] = (64,),
                 use_norms: bool = True, eps: float = 1e-8):
        super().__init__()
        n_out, hidden = check_positive_int(n_out, "n_out"), check_positive_ints("hidden", hidden, allow_empty=True)
        self.L, self.channels = int(L), int(channels)
        self.type_in = normalize_type(type, self.L, "type")
        self.use_norms, self.eps = bool(use_norms), float(eps)
        self.n_features = channels * (self.type_in[0] + (sum(self.type_in[1:]) if use_norms else 0))
        dims = [self.n_features, *hidden, n_out]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def features(self, x: GeneralizedSignal) -> torch.Tensor:
        """Invariant features (batch, n_features)."""
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"InvariantReadout expects a GeneralizedSignal, got {type(x).__name__}")
        x.check(L=self.L, channels=self.channels, type=self.type_in, name="InvariantReadout input",
                dtype=self.mlp[0].weight.dtype)
        feats = [x.fragments[0].flatten(1)]  # flatten, not reshape(B, -1): an empty batch has no -1 to infer
        if self.use_norms:
            feats += [torch.sqrt(f.pow(2).sum(dim=2) + self.eps).flatten(1) for f in x.fragments[1:]]
        return torch.cat(feats, dim=1)

    def forward(self, x: GeneralizedSignal) -> torch.Tensor:
        return self.mlp(self.features(x))
