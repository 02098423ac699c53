"""Change of basis between e3nn's real spherical harmonics and ours (tests and benchmarks).

e3nn is an optional (test) dependency; it is imported on call.
"""
from __future__ import annotations

import numpy as np
import torch

from ..harmonic import real_spherical_harmonics

__all__ = ["e3nn_basis"]


def e3nn_basis(L: int) -> list[torch.Tensor]:
    """Orthogonal (2l+1, 2l+1) float64 Q_l, l < L, with e3nn's real harmonics = Q_l @ ours.

    Fitted by least squares at 4 L^2 + 50 random points (seeded).
    """
    from e3nn import o3  # deferred: e3nn is a test extra, not a dependency

    rng = np.random.default_rng(0)
    n = 4 * L * L + 50
    th, ph = np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 2 * np.pi, n)
    xyz = torch.tensor(np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], 1))
    Y = real_spherical_harmonics(L, th, ph)
    out = []
    for l in range(L):
        ye = o3.spherical_harmonics(l, xyz, normalize=True, normalization="integral").numpy()
        out.append(torch.tensor(np.linalg.lstsq(Y[:, l * l:(l + 1) ** 2], ye, rcond=None)[0].T))
    return out
