"""Symmetries of the mass maps: pixel permutations of the HEALPix grid and of the square patches, the
random one per training draw (:class:`RandomSymmetry`), the views averaged at test time
(:class:`SymmetryAverage`), and the average of several predictions' class probabilities
(:func:`log_mean_probabilities`: symmetric views, and the members of an ensemble).
"""
from __future__ import annotations

import math

import healpy as hp
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = ["symmetry_permutations", "RandomSymmetry", "evaluation_symmetries", "log_mean_probabilities",
           "SymmetryAverage"]


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
    if not len(outputs):
        raise ValueError("log_mean_probabilities needs at least one prediction")
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
