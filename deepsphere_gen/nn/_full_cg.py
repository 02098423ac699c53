"""Full Clebsch-Gordan layer (Kondor, Lin & Trivedi 2018): products across all channels.

The channels of the input are flattened into one set of columns per degree
(tau_l -> K tau_l), every pair of columns of the admissible degree pairs is multiplied
through the Clebsch-Gordan decomposition (the project's :class:`TensorProductActivation`
on a single channel, so products now mix channels), optionally normalised per degree,
and one per-degree linear map W^l brings the quadratic number of columns back to
K_out tau_out_l, reshaped into K_out channels.  Output type grows as (K tau)^2 before
the projection: cost O(K^2 tau^2 L^5) with the full degree-mixing set, against O(K ...)
for the channel-wise efficient layer (Cobb et al. 2021).
"""
from __future__ import annotations

from torch import nn

from .._validation import check_positive_int
from ..harmonic import MixingSet
from ._generalized_conv import DegreeNorm, UniformConv
from ._signal import GeneralizedSignal, normalize_type
from ._tensor_product import CGFn, TensorProductActivation

__all__ = ["FullCGLayer"]


class FullCGLayer(nn.Module):
    """GeneralizedSignal (batch, K_in, 2l+1, type_in[l]), l < L -> (batch, K_out, 2l+1, type_out[l]), l < L_out.

    Args: ``L``, ``channels_in``, ``type_in``; ``L_out`` (default L); ``channels_out``
    (default channels_in); ``type_out`` (int or sequence, default 1); ``mixing``
    ("full", Kondor's choice, or "mst" / "rmst" / a MixingSet); ``normalize``
    (DegreeNorm after the products); ``cg`` accessor.
    Parameters: sum_l expanded_l K_out type_out[l] (+ normalisation gains).
    """

    def __init__(self, L: int, channels_in: int, type_in, L_out: int | None = None,
                 channels_out: int | None = None, type_out=1, mixing: str | MixingSet = "full",
                 normalize: bool = True, cg: CGFn | None = None):
        super().__init__()
        self.channels_in = check_positive_int(channels_in, "channels_in")
        self.channels_out = self.channels_in if channels_out is None else check_positive_int(channels_out, "channels_out")
        self.type_in = normalize_type(type_in, int(L), "type_in")
        flat_in = [self.channels_in * t for t in self.type_in]
        self.activation = TensorProductActivation(L, 1, flat_in, L_out, mixing, cg)
        self.L, self.L_out = self.activation.L, self.activation.L_out
        self.type_out = normalize_type(type_out, self.L_out, "type_out")
        expanded = self.activation.type_out
        self.norm = DegreeNorm(self.L_out, 1, expanded) if normalize else None
        self.linear = UniformConv(self.L_out, 1, expanded, [self.channels_out * t for t in self.type_out])

    @property
    def flops(self) -> int:
        """Multiply-adds per sample of the Clebsch-Gordan products."""
        return self.activation.flops

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"FullCGLayer expects a GeneralizedSignal, got {type(x).__name__}")
        x.check(L=self.L, channels=self.channels_in, type=self.type_in, name="FullCGLayer input")
        B = x.batch
        flat = GeneralizedSignal([f.permute(0, 2, 1, 3).reshape(B, 1, 2 * l + 1, f.shape[1] * f.shape[3])
                                  for l, f in enumerate(x.fragments)],
                                 check_values=False)
        y = self.activation(flat)
        if self.norm is not None:
            y = self.norm(y)
        y = self.linear(y)
        out = [f.reshape(B, 2 * l + 1, self.channels_out, t).permute(0, 2, 1, 3)
               for l, (f, t) in enumerate(zip(y.fragments, self.type_out))]
        return GeneralizedSignal(out, check_values=False)

    def extra_repr(self) -> str:
        return (f"L={self.L}->{self.L_out}, channels={self.channels_in}->{self.channels_out}, "
                f"type_in={self.type_in}, type_out={self.type_out}, flops={self.flops}")
