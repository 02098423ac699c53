"""Differentiable pixel <-> harmonic adapters (the hybrid models' hinge, every harmonic model's input).

:class:`MapToSignal`: a map (batch, npix, C) on a full-sky sampling (HEALPix NESTED, or an
equiangular / Gauss-Legendre / McEwen-Wiaux grid) -> real coefficients (batch, L*L, C)
through the project's SHT -> GeneralizedSignal with C channels and tau_l = 1 (fragment l:
(batch, C, 2l+1, 1)).  Without a sampling it takes the coefficients (batch, L*L, C)
directly.  It is the one map-to-signal adapter: :class:`~._harmonic_input.S2InputLayer`
adds learned per-degree weights on top of it, the classic models use it as their input.

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

from .._validation import check_channels, check_finite, check_pixels, check_positive_int, check_tensor
from ..harmonic import SphericalAnalysis, SphericalSynthesis
from ._signal import GeneralizedSignal

__all__ = ["MapToSignal", "SignalToMap"]


def _transform(cls, sampling, L: int, dtype, **kwargs):
    """The adapter's transform (``cls``: SphericalAnalysis or SphericalSynthesis) in ``dtype`` (None: torch's
    default); it skips the value check (the adapter's input is checked once, or trusted)."""
    return cls(sampling, check_positive_int(L, "bandlimit L"), dtype=dtype or torch.get_default_dtype(),
               check_input=False, **kwargs)


class MapToSignal(nn.Module):
    """Map (batch, npix, channels) -> GeneralizedSignal (batch, channels, 2l+1, 1), l < L.

    ``sampling=None``: the input is already coefficients (batch, L*L, channels), in the real
    orthonormal basis (flat index l*l + l + m).  ``dtype`` (default: torch's default) fixes
    the transform tables: build in float64 for float64 work.  ``iterations``: Jacobi steps
    of the analysis (None: :func:`~deepsphere_gen.harmonic.default_iterations`, 3 on HEALPix, 0 on the
    exact grids GL, DH, MW, where steps change nothing but the time).  ``check_input``: reject NaN / inf / UNSEEN
    input (ValueError; one host synchronisation per call); a model feeding the adapter its
    own features passes False.  ``cast``: cast a map of another floating dtype to the
    tables' dtype and the coefficients back (models whose transform precision differs from
    their layers'); without it a dtype mismatch is a ValueError.  ``name``: how error
    messages call the input.  Shape, channels, dtype and device are always checked.  A sampling
    on which no analysis is possible (rings without quadrature weights) is a ValueError here
    (the adapter's transform is a :class:`~deepsphere_gen.harmonic.SphericalAnalysis`).
    """

    def __init__(self, sampling, L: int, channels: int, dtype: torch.dtype | None = None, iterations: int | None = None,
                 check_input: bool = True, cast: bool = False, name: str = "MapToSignal input"):
        super().__init__()
        self.check_input, self.cast, self.name = bool(check_input), bool(cast), str(name)
        self.channels = check_positive_int(channels, "channels")
        self.sampling, self.L = sampling, check_positive_int(L, "bandlimit L")
        self.sht = None if sampling is None else _transform(SphericalAnalysis, sampling, L, dtype, iterations=iterations)
        self.type_out = (1,) * self.L

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Validated analysis: (batch, npix, C) -> (batch, L*L, C); coefficients pass through."""
        check_tensor(x, self.name)
        if x.dim() != 3:
            raise ValueError(f"{self.name} must be a (batch, pixels, channels) tensor, got shape {tuple(x.shape)}")
        if self.sht is None:
            check_channels(x, self.channels, self.name)
            if x.shape[1] != self.L * self.L:
                raise ValueError(f"coefficients have {x.shape[1]} rows, expected L*L = {self.L * self.L} (L = {self.L})")
        else:
            check_pixels(x, self.sampling.npix, self.name, type(self.sampling).__name__)
            check_channels(x, self.channels, self.name)
        if self.check_input:
            check_finite(x, self.name)
        if self.sht is None:
            return x
        if self.cast and x.dtype != self.sht.dtype:
            return self.sht(x.to(self.sht.dtype)).to(x.dtype)
        return self.sht(x)  # checks dtype / device against the tables (not the values: done above)

    def forward(self, x: torch.Tensor) -> GeneralizedSignal:
        a = self.coefficients(x)  # (B, L*L, C)
        return GeneralizedSignal([a[:, l * l:(l + 1) * (l + 1), :].transpose(1, 2).unsqueeze(-1)
                                  for l in range(self.L)], check_values=False)

    def extra_repr(self) -> str:
        src = "coefficients" if self.sampling is None else f"{type(self.sampling).__name__}(npix={self.sampling.npix})"
        return (f"{src}, L={self.L}, channels={self.channels}"
                + ("" if self.check_input else ", check_input=False") + (", cast=True" if self.cast else ""))


class SignalToMap(nn.Module):
    """GeneralizedSignal (batch, K, 2l+1, tau), l < L_in <= L -> map (batch, npix, K * tau).

    Degrees l >= L_in are zero; the signal must have a uniform type tau.  ``dtype`` as in
    :class:`MapToSignal`.  No value check: a GeneralizedSignal's values are checked when it
    is built (``check_values=True``, the default).
    """

    def __init__(self, sampling, L: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.sampling, self.L = sampling, int(L)
        self.sht = _transform(SphericalSynthesis, sampling, L, dtype)

    def coefficients(self, x: GeneralizedSignal) -> torch.Tensor:
        """(batch, L*L, K * tau) coefficients, zero above the signal's bandlimit."""
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"SignalToMap expects a GeneralizedSignal, got {type(x).__name__}")
        if x.L > self.L:
            raise ValueError(f"signal bandlimit L={x.L} exceeds the bridge's L={self.L}")
        if len(set(x.type)) != 1:
            raise ValueError(f"SignalToMap needs a uniform type (same tau for every degree), got {x.type}")
        a = x.to_coefficients()
        if x.L < self.L:
            a = torch.cat([a, a.new_zeros(x.batch, self.L**2 - x.L**2, a.shape[2])], dim=1)
        return a

    def forward(self, x: GeneralizedSignal) -> torch.Tensor:
        return self.sht(self.coefficients(x))  # checks dtype / device against the tables, not values

    def extra_repr(self) -> str:
        return f"{type(self.sampling).__name__}(npix={self.sampling.npix}), L={self.L}"
