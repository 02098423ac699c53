"""Pointwise activations on a grid (Cohen et al. 2018, Esteves et al. 2018): the baselines.

    coefficients -> inverse transform on a grid -> nonlinearity per sample -> forward transform

Not strictly equivariant: the nonlinearity creates power above the bandlimit, which the
grid aliases (and the grid itself is not rotation invariant).  ``oversampling`` >= 1
evaluates the nonlinearity on a finer grid (bandlimit ceil(oversampling * L)) and keeps
degrees l < L_out of its exact projection, which reduces the aliasing error.

* :class:`S2Pointwise`: S2 signals (batch, C, 2l+1, 1) on a McEwen-Wiaux,
  Gauss-Legendre or Driscoll-Healy grid (the project's exact SHT).
* :class:`SO3Pointwise`: SO(3) signals (batch, C, 2l+1, 2l+1) on an MW-SO(3),
  Gauss-Legendre or SOFT grid (``harmonic.SO3Transform``).

``S2ReLU`` / ``SO3ReLU`` are these with ReLU.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .._validation import check_positive_int
from ..harmonic import SHT, SO3Transform
from ..sampling import DriscollHealySampling, GaussLegendreSampling, McEwenWiauxSampling, so3_sampling
from ._signal import GeneralizedSignal

__all__ = ["S2Pointwise", "SO3Pointwise", "S2ReLU", "SO3ReLU"]

_S2_GRIDS = {"mw": McEwenWiauxSampling, "gl": GaussLegendreSampling, "dh": DriscollHealySampling}


def _grid_bandlimit(L: int, L_out, oversampling: float) -> tuple[int, int, int]:
    L = check_positive_int(L, "bandlimit L")
    L_out = check_positive_int(L if L_out is None else L_out, "output bandlimit L_out")
    if not (isinstance(oversampling, (int, float)) and math.isfinite(oversampling) and oversampling >= 1):
        raise ValueError(f"oversampling must be a finite number >= 1, got {oversampling!r}")
    return int(L), int(L_out), max(int(math.ceil(oversampling * max(L, L_out) - 1e-9)), L, int(L_out))


class _Pointwise(nn.Module):
    def __init__(self, L, channels, L_out, oversampling, grid, activation):
        super().__init__()
        self.L, self.L_out, self.L_grid = _grid_bandlimit(L, L_out, oversampling)
        self.channels, self.grid, self.oversampling = check_positive_int(channels, "channels"), grid, float(oversampling)
        if not callable(activation):
            raise ValueError(f"activation must be callable, got {activation!r}")
        self.activation = activation

    def _check(self, x, tau, what: str) -> None:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"{type(self).__name__} expects a GeneralizedSignal, got {type(x).__name__}")
        if x.L == self.L and x.type != tau:
            raise ValueError(f"{type(self).__name__} expects {what}, got type {x.type}")
        x.check(L=self.L, channels=self.channels, type=tau, name=f"{type(self).__name__} input")

    def extra_repr(self) -> str:
        return (f"L={self.L}->{self.L_out}, channels={self.channels}, grid={self.grid!r}, "
                f"L_grid={self.L_grid}, activation={getattr(self.activation, '__name__', self.activation)}")


class S2Pointwise(_Pointwise):
    """S2 signal (batch, C, 2l+1, 1), l < L -> activation on a sphere grid -> l < L_out.

    ``grid``: "mw" (McEwen-Wiaux, default, fewest samples), "gl" or "dh"; the grid has
    bandlimit ceil(oversampling * max(L, L_out)).  ``dtype`` of the transform tables
    (default: torch's default); the module follows ``.to()``.
    """

    def __init__(self, L: int, channels: int, L_out: int | None = None, oversampling: float = 1.0,
                 grid: str = "mw", activation: Callable = torch.relu, dtype: torch.dtype | None = None):
        super().__init__(L, channels, L_out, oversampling, grid, activation)
        if grid not in _S2_GRIDS:
            raise ValueError(f"unknown sphere grid {grid!r}; choose one of {sorted(_S2_GRIDS)}")
        self.sampling = _S2_GRIDS[grid](self.L_grid)
        dtype = dtype or torch.get_default_dtype()
        # no value checks: the input signal was checked when built, the grid values are ours
        self.synthesis = SHT(self.sampling, self.L, dtype=dtype, check_input=False)
        self.analysis = SHT(self.sampling, self.L_out, dtype=dtype, check_input=False)

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x, (1,) * self.L, "an S2 signal (tau_l = 1)")
        coeffs = torch.cat([f[..., 0] for f in x.fragments], dim=2).transpose(1, 2)  # (B, L*L, C)
        maps = self.activation(self.synthesis.inverse(coeffs.to(self.synthesis.dtype)))
        out = self.analysis(maps).to(x.dtype).transpose(1, 2)  # (B, C, L_out^2)
        return GeneralizedSignal([out[:, :, l * l : (l + 1) * (l + 1), None] for l in range(self.L_out)],
                                 check_values=False)


class SO3Pointwise(_Pointwise):
    """SO(3) signal (batch, C, 2l+1, 2l+1), l < L -> activation on an SO(3) grid -> l < L_out.

    ``grid``: "mw" (MW-SO(3), default), "gl" or "soft"; bandlimit
    ceil(oversampling * max(L, L_out)).  Works in the input's dtype.
    """

    def __init__(self, L: int, channels: int, L_out: int | None = None, oversampling: float = 1.0,
                 grid: str = "mw", activation: Callable = torch.relu):
        super().__init__(L, channels, L_out, oversampling, grid, activation)
        self.sampling = so3_sampling(grid, self.L_grid)
        # no value checks: the input signal was checked when built, the grid values are ours
        self.synthesis = SO3Transform(self.sampling, self.L, check_input=False)
        self.analysis = SO3Transform(self.sampling, self.L_out, check_input=False)

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x, tuple(2 * l + 1 for l in range(self.L)), "an SO(3) signal (tau_l = 2l+1)")
        samples = self.activation(self.synthesis.inverse(x.fragments))
        return GeneralizedSignal(self.analysis(samples), check_values=False)


class S2ReLU(S2Pointwise):
    """:class:`S2Pointwise` with ReLU."""

    def __init__(self, L: int, channels: int, L_out: int | None = None, oversampling: float = 1.0,
                 grid: str = "mw", dtype: torch.dtype | None = None):
        super().__init__(L, channels, L_out, oversampling, grid, torch.relu, dtype)


class SO3ReLU(SO3Pointwise):
    """:class:`SO3Pointwise` with ReLU."""

    def __init__(self, L: int, channels: int, L_out: int | None = None, oversampling: float = 1.0,
                 grid: str = "mw"):
        super().__init__(L, channels, L_out, oversampling, grid, torch.relu)
