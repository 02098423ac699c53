"""Constrained generalized convolutions (Cobb et al. 2021, sec. 5.2) and degree normalisation.

A generalized convolution multiplies every fragment on the right, f^l -> f^l W^l; it is
equivariant because rotations act on the left (the 2l+1 axis).  The three constrained
versions split one big per-degree matrix into cheap ones:

* :class:`UniformConv`: one W^l (tau_in_l x tau_out_l) shared by all channels;
* :class:`ChannelWiseConv`: one W_k^l (tau_in_l x tau_out_l) per channel k;
* :class:`CrossChannelConv`: per degree a (K_in x K_out) channel mixing, type unchanged.

Initialisation: entries N(0, 1 / fan_in) with fan_in the number of summed inputs per
output (tau_in_l, or K_in), so unit-variance inputs give unit-variance outputs at
every degree and the scale stays put through depth.  :class:`DegreeNorm` divides each
(channel, degree) block by its RMS over (2l+1, tau_l) per sample: norms over the
2l+1 axis are rotation invariant, so it stays equivariant.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .._validation import check_positive_int
from ._signal import GeneralizedSignal, normalize_type

__all__ = ["UniformConv", "ChannelWiseConv", "CrossChannelConv", "DegreeNorm"]


def _init(shape: Sequence[int], fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(fan_in))


class _PerDegree(nn.Module):
    """Common bookkeeping: input/output type, channels, L, input checks."""

    def __init__(self, L: int, channels_in: int, channels_out: int, type_in, type_out):
        super().__init__()
        self.L = check_positive_int(L, "bandlimit L")
        self.channels_in = check_positive_int(channels_in, "channels_in")
        self.channels_out = check_positive_int(channels_out, "channels_out")
        self.type_in = normalize_type(type_in, L, "type_in")
        self.type_out = normalize_type(type_out, L, "type_out")

    def _check(self, x: GeneralizedSignal) -> None:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"{type(self).__name__} expects a GeneralizedSignal, got {type(x).__name__}")
        param = next(self.parameters(), None)  # DegreeNorm(affine=False) has none: any dtype
        x.check(L=self.L, channels=self.channels_in, type=self.type_in, name=f"{type(self).__name__} input",
                dtype=None if param is None else param.dtype)

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"L={self.L}, channels={self.channels_in}->{self.channels_out}, "
                f"type_in={self.type_in}, type_out={self.type_out}, params={n}")


class UniformConv(_PerDegree):
    """f_k^l -> f_k^l W^l with W^l (tau_in_l, tau_out_l) shared by every channel k."""

    def __init__(self, L: int, channels: int, type_in, type_out):
        super().__init__(L, channels, channels, type_in, type_out)
        self.weight = nn.ParameterList(_init((a, b), a) for a, b in zip(self.type_in, self.type_out))

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x)
        return GeneralizedSignal([f @ w for f, w in zip(x.fragments, self.weight)], check_values=False)


class ChannelWiseConv(_PerDegree):
    """f_k^l -> f_k^l W_k^l with one W_k^l (tau_in_l, tau_out_l) per channel."""

    def __init__(self, L: int, channels: int, type_in, type_out):
        super().__init__(L, channels, channels, type_in, type_out)
        self.weight = nn.ParameterList(_init((channels, a, b), a) for a, b in zip(self.type_in, self.type_out))

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x)
        # (batch, K, 2l+1, a) @ (K, a, b) broadcasts over batch: one batched GEMM per degree.
        return GeneralizedSignal([f @ w for f, w in zip(x.fragments, self.weight)], check_values=False)


class CrossChannelConv(_PerDegree):
    """g_j^l = sum_k W^l[k, j] f_k^l: per-degree channel mixing (K_in, K_out), type unchanged."""

    def __init__(self, L: int, channels_in: int, channels_out: int, type):
        super().__init__(L, channels_in, channels_out, type, type)
        self.weight = nn.ParameterList(_init((channels_in, channels_out), channels_in) for _ in range(self.L))

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x)
        out = [torch.einsum("bkmt,kj->bjmt", f, w) for f, w in zip(x.fragments, self.weight)]
        return GeneralizedSignal(out, check_values=False)


class DegreeNorm(_PerDegree):
    """f_k^l -> gain_k^l f_k^l / sqrt(mean_{m,t} (f_k^l)^2 + eps), per sample; equivariant.

    ``affine=True`` learns the gain (init 1) per (degree, channel).
    """

    def __init__(self, L: int, channels: int, type, eps: float = 1e-5, affine: bool = True):
        super().__init__(L, channels, channels, type, type)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.gain = nn.Parameter(torch.ones(self.L, channels)) if affine else None

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x)
        out = []
        for l, f in enumerate(x.fragments):
            scale = torch.rsqrt(f.pow(2).mean(dim=(2, 3), keepdim=True) + self.eps)
            if self.gain is not None:
                scale = scale * self.gain[l].view(1, -1, 1, 1)
            out.append(f * scale)
        return GeneralizedSignal(out, check_values=False)
