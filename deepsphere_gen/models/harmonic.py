"""Harmonic classifier: S2 input layer -> efficient generalized layers -> invariant readout.

Strictly rotation-invariant logits (up to floating point) when the input is given as
coefficients or on an equiangular sampling with band-limited maps.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._validation import check_positive_int, check_positive_ints
from ..harmonic import check_mixing
from ..nn import EfficientGeneralizedLayer, GeneralizedSignal, InvariantReadout, S2InputLayer
from .spec import specified

__all__ = ["HarmonicClassifier"]


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@specified({
    "input": ("in_channels", "sampling"),
    "harmonic": ("bandlimits", "channels", "tau", "mixing", "normalize"),
    "head": ("n_classes", "hidden"),
    "numerics": ("dtype",),
})
class HarmonicClassifier(nn.Module):
    """Rotation-invariant classifier on the sphere (Cobb et al. 2021's efficient layers).

    Args:
        n_classes: number of outputs (logits).
        bandlimits: (L_0, L_1, ..., L_n), non-increasing: L_0 for the S2 input layer,
            L_i the output bandlimit of efficient layer i.
        channels: (K_0, ..., K_n), channels after each layer (same length).
        in_channels: channels of the input map / coefficients.
        sampling: a deepsphere_gen sampling (input = maps (batch, npix, in_channels)),
            or None (input = coefficients (batch, L_0^2, in_channels) or a GeneralizedSignal).
        tau: columns per channel and degree between layers.
        mixing: "mst" | "rmst" | "full"; normalize: DegreeNorm inside each layer;
        hidden: MLP sizes of the readout; dtype: of every parameter and of the input
            transform (default torch's; ``.double()`` after construction gives the same float64
            model: the transform and the Clebsch-Gordan tables are recomputed / cast from
            float64, not from float32 values).  An input of another dtype is a ValueError.
    """

    def __init__(self, n_classes: int, *, bandlimits: Sequence[int] = (8, 6, 4), channels: Sequence[int] = (4, 8, 8),
                 in_channels: int = 1, sampling=None, tau: int = 2, mixing: str = "mst",
                 normalize: bool = True, hidden: Sequence[int] = (32,), dtype: torch.dtype | None = None):
        super().__init__()
        n_classes = check_positive_int(n_classes, "n_classes")
        bandlimits, channels = check_positive_ints("bandlimits", bandlimits), check_positive_ints("channels", channels)
        if len(bandlimits) != len(channels):
            raise ValueError(f"bandlimits {bandlimits} and channels {channels} must be of equal length")
        if any(b2 > b1 for b1, b2 in zip(bandlimits, bandlimits[1:])):
            raise ValueError(f"bandlimits must be non-increasing, got {bandlimits}")
        # every argument checked before the input transform's tables are built
        in_channels, tau = check_positive_int(in_channels, "in_channels"), check_positive_int(tau, "tau")
        hidden = check_positive_ints("hidden", hidden, allow_empty=True)
        check_mixing(mixing)
        self.bandlimits, self.channels, self.mixing = bandlimits, channels, mixing
        self.input = S2InputLayer(bandlimits[0], in_channels, channels[0], tau=tau, sampling=sampling, dtype=dtype)
        layers, type_in = [], self.input.type_out
        for L, L_out, k_in, k_out in zip(bandlimits, bandlimits[1:], channels, channels[1:]):
            layer = EfficientGeneralizedLayer(L, k_in, type_in, L_out, k_out, type_out=tau,
                                              mixing=mixing, normalize=normalize)
            layers.append(layer)
            type_in = layer.type_out
        self.layers = nn.ModuleList(layers).to(self.input.weight[0].dtype)  # CG tables stay float64 masters
        self.readout = InvariantReadout(bandlimits[-1], channels[-1], type_in, n_classes, hidden).to(
            self.input.weight[0].dtype)

    def signal(self, x) -> GeneralizedSignal:
        """Output of the last generalized layer (equivariant)."""
        f = x if isinstance(x, GeneralizedSignal) else self.input(x)
        for layer in self.layers:
            f = layer(f)
        return f

    def forward(self, x) -> torch.Tensor:
        return self.readout(self.signal(x))

    def summary(self) -> str:
        """Table of layers: bandlimits, channels, output type, parameters, activation flops."""
        rows = [("layer", "L", "channels", "type_out", "params", "flops/sample")]
        rows.append(("input", str(self.input.L), f"{self.input.in_channels}->{self.input.channels}",
                     str(self.input.type_out[0]), str(_params(self.input)), "-"))
        for i, layer in enumerate(self.layers):
            rows.append((f"efficient[{i}] ({self.mixing})", f"{layer.L}->{layer.L_out}",
                         f"{layer.channels_in}->{layer.channels_out}", str(layer.type_out[0]),
                         str(_params(layer)), str(layer.flops)))
        rows.append(("readout", "-", str(self.readout.n_features), "-", str(_params(self.readout)), "-"))
        rows.append(("total", "", "", "", str(_params(self)), ""))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows)

    def extra_repr(self) -> str:
        return f"bandlimits={self.bandlimits}, channels={self.channels}, mixing={self.mixing!r}, params={_params(self)}"
