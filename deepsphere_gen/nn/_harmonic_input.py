"""S2 input layer: a map (or its coefficients) -> generalized signal with learned per-degree weights.

For input channels c and each degree l, ``g_k^l[m, t] = sum_c a^l_m[c] W^l[c, k, t]``:
an isotropic (axisymmetric-filter) S2 convolution when tau = 1, equivariant because the
weights act only on channels.  Maps go through the project's spherical harmonic
transform on the given sampling (exact on equiangular grids for band-limited maps,
approximate on HEALPix): the layer is :class:`~._bridge.MapToSignal` (checks and analysis)
followed by the weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import check_dtype, check_positive_int
from ._bridge import MapToSignal
from ._signal import GeneralizedSignal

__all__ = ["S2InputLayer"]


class S2InputLayer(nn.Module):
    """Map (batch, npix, C_in) on ``sampling`` -- or coefficients (batch, L*L, C_in) when
    ``sampling`` is None -- to a GeneralizedSignal (batch, channels, 2l+1, tau), l < L.

    Weights W^l (C_in, channels, tau) per degree, init N(0, 1/C_in).  ``dtype`` (default:
    torch's default) of the weights and, with a sampling, of the transform (``.double()``
    later gives the same float64 transform: it is recomputed in the new dtype, not cast); an
    input of another dtype is a ValueError;
    ``iterations`` = Jacobi iterations of the analysis (None: 3 on HEALPix, 0 on equiangular grids, as
    :class:`~._bridge.MapToSignal`).
    ``check_input``: reject NaN / inf / UNSEEN input (ValueError; one host synchronisation per
    call, the transform does not check again); False for values a model produced itself.
    Shapes are always checked.
    """

    def __init__(self, L: int, in_channels: int, channels: int, tau: int = 1, sampling=None,
                 dtype: torch.dtype | None = None, iterations: int | None = None, check_input: bool = True):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.channels, self.tau = check_positive_int(channels, "channels"), check_positive_int(tau, "tau")
        self.adapter = MapToSignal(sampling, L, in_channels, dtype=dtype, iterations=iterations,
                                   check_input=check_input, name="S2InputLayer input")
        self.L, self.sampling = self.adapter.L, sampling
        self.weight = nn.ParameterList(
            nn.Parameter(torch.randn(in_channels, channels, tau, dtype=dtype) / math.sqrt(in_channels))
            for _ in range(self.L)
        )
        self.type_out = (self.tau,) * self.L

    @property
    def sht(self):
        """The adapter's SHT (None for coefficient input)."""
        return self.adapter.sht

    @property
    def check_input(self) -> bool:
        return self.adapter.check_input

    def extra_repr(self) -> str:
        src = "coefficients" if self.sampling is None else type(self.sampling).__name__
        return (f"L={self.L}, in_channels={self.in_channels}, channels={self.channels}, tau={self.tau}, "
                f"input={src}, params={sum(p.numel() for p in self.parameters())}"
                + ("" if self.check_input else ", check_input=False"))

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Validate the input and return coefficients (batch, L*L, C_in)."""
        a = self.adapter.coefficients(x)
        check_dtype(a.dtype, self.weight[0].dtype, self.adapter.name)
        return a

    def forward(self, x: torch.Tensor) -> GeneralizedSignal:
        a = self.coefficients(x)
        B = a.shape[0]
        out = []
        for l, w in enumerate(self.weight):
            f = a[:, l * l : (l + 1) * (l + 1), :] @ w.reshape(self.in_channels, -1)  # (B, 2l+1, K*tau)
            out.append(f.reshape(B, 2 * l + 1, self.channels, self.tau).permute(0, 2, 1, 3))
        return GeneralizedSignal(out, check_values=False)
