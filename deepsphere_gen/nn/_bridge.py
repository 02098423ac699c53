"""Differentiable graph <-> harmonic bridges (the hybrid models' hinge).

:class:`MapToSignal`: a graph-side map (batch, npix, C) on a full-sky sampling (HEALPix
NESTED, or an equiangular / Gauss-Legendre / McEwen-Wiaux grid) -> real coefficients
(batch, L*L, C) through the project's SHT -> GeneralizedSignal with C channels and
tau_l = 1 (fragment l: (batch, C, 2l+1, 1)).

:class:`SignalToMap`: a GeneralizedSignal (batch, K, 2l+1, tau_l) with a uniform type
-> coefficients (batch, L*L, K * tau) -> synthesis -> (batch, npix, K * tau) (channel
index k * tau + t), for dense outputs.

Both are ``nn.Module`` s whose SHT tables are non-persistent buffers: they follow the
model with ``.to(device)``; gradients flow through the (linear) transforms.  Exactly
equivariant on equiangular grids for maps band-limited below L; on HEALPix the analysis is
approximate (``iterations`` Jacobi steps; accurate for L <= 2 nside, see rotate_map).
"""
from __future__ import annotations

import torch
from torch import nn

from .._validation import check_channels, check_finite, check_pixels
from ._signal import GeneralizedSignal

__all__ = ["MapToSignal", "SignalToMap"]


def _sht(sampling, L: int, dtype, iterations: int):
    """The bridge's transform; it skips the value check (the bridge's input is checked once, or trusted)."""
    from ..harmonic import SHT

    if int(L) != L or L < 1:
        raise ValueError(f"bandlimit L must be a positive integer, got {L!r}")
    return SHT(sampling, int(L), dtype=dtype or torch.get_default_dtype(), iterations=iterations, check_input=False)


class MapToSignal(nn.Module):
    """Map (batch, npix, channels) -> GeneralizedSignal (batch, channels, 2l+1, 1), l < L.

    ``dtype`` (default: torch's default) fixes the transform tables: build in float64 for
    float64 work.  ``iterations``: Jacobi steps of the HEALPix analysis (ignored elsewhere).
    ``check_input``: reject NaN / inf / UNSEEN maps (ValueError; one host synchronisation per
    call); a model feeding the bridge its own graph features passes False.  Shape, channels,
    dtype and device are always checked.
    """

    def __init__(self, sampling, L: int, channels: int, dtype: torch.dtype | None = None, iterations: int = 3,
                 check_input: bool = True):
        super().__init__()
        self.check_input = bool(check_input)
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.sampling, self.L, self.channels = sampling, int(L), int(channels)
        self.sht = _sht(sampling, L, dtype, iterations)
        self.type_out = (1,) * self.L

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Validated analysis: (batch, npix, C) -> (batch, L*L, C)."""
        if not torch.is_tensor(x) or x.dim() != 3:
            raise ValueError(f"MapToSignal input must be a (batch, pixels, channels) tensor, got {getattr(x, 'shape', x)!r}")
        check_pixels(x, self.sampling.npix, "MapToSignal input", type(self.sampling).__name__)
        check_channels(x, self.channels, "MapToSignal input")
        if self.check_input:
            check_finite(x, "MapToSignal input")
        return self.sht(x)  # checks dtype / device against the tables (not the values: done above)

    def forward(self, x: torch.Tensor) -> GeneralizedSignal:
        a = self.coefficients(x)  # (B, L*L, C)
        return GeneralizedSignal([a[:, l * l:(l + 1) * (l + 1), :].transpose(1, 2).unsqueeze(-1)
                                  for l in range(self.L)], check_values=False)

    def extra_repr(self) -> str:
        return (f"{type(self.sampling).__name__}(npix={self.sampling.npix}), L={self.L}, channels={self.channels}"
                + ("" if self.check_input else ", check_input=False"))


class SignalToMap(nn.Module):
    """GeneralizedSignal (batch, K, 2l+1, tau), l < L_in <= L -> map (batch, npix, K * tau).

    Degrees l >= L_in are zero; the signal must have a uniform type tau.  ``dtype`` as in
    :class:`MapToSignal`.  No value check: a GeneralizedSignal's values are checked when it
    is built (``check_values=True``, the default).
    """

    def __init__(self, sampling, L: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.sampling, self.L = sampling, int(L)
        self.sht = _sht(sampling, L, dtype, 0)

    def coefficients(self, x: GeneralizedSignal) -> torch.Tensor:
        """(batch, L*L, K * tau) coefficients, zero above the signal's bandlimit."""
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"SignalToMap expects a GeneralizedSignal, got {type(x).__name__}")
        if x.L > self.L:
            raise ValueError(f"signal bandlimit L={x.L} exceeds the bridge's L={self.L}")
        if len(set(x.type)) != 1:
            raise ValueError(f"SignalToMap needs a uniform type (same tau for every degree), got {x.type}")
        B, K, tau = x.batch, x.channels, x.type[0]
        parts = [f.permute(0, 2, 1, 3).reshape(B, 2 * l + 1, K * tau) for l, f in enumerate(x.fragments)]
        a = torch.cat(parts, dim=1)
        if x.L < self.L:
            a = torch.cat([a, a.new_zeros(B, self.L**2 - x.L**2, K * tau)], dim=1)
        return a

    def forward(self, x: GeneralizedSignal) -> torch.Tensor:
        return self.sht.inverse(self.coefficients(x))  # checks dtype / device against the tables, not values

    def extra_repr(self) -> str:
        return f"{type(self.sampling).__name__}(npix={self.sampling.npix}), L={self.L}"
