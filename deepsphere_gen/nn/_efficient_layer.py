"""Efficient generalized layer (Cobb et al. 2021, sec. 5): the paper's layer in one module.

    tensor-product activation -> [degree norm] -> uniform -> channel-wise -> cross-channel

The activation (channel-wise, on a degree-mixing set) expands each channel's type; the
uniform convolution projects it back down (shared by channels), the channel-wise one
recombines fragments inside each channel and the cross-channel one mixes channels per
degree.  The optional :class:`DegreeNorm` after the activation (per sample, per channel
and degree, norms over the 2l+1 axis) keeps the scale independent of the quadratic
activation and is exactly equivariant.
"""
from __future__ import annotations

from torch import nn

from ..harmonic import MixingSet
from ._generalized_conv import ChannelWiseConv, CrossChannelConv, DegreeNorm, UniformConv
from ._signal import GeneralizedSignal, normalize_type
from ._tensor_product import CGFn, TensorProductActivation

__all__ = ["EfficientGeneralizedLayer"]


class EfficientGeneralizedLayer(nn.Module):
    """One efficient generalized layer.

    Args:
        L: input bandlimit; ``L_out`` (<= L, default L) the output bandlimit.
        channels_in, channels_out: K_in, K_out.
        type_in: input tau per degree (int or sequence of length L).
        type_out: output tau per degree (int or sequence of length L_out), default 1.
        type_hidden: tau after the uniform convolution (default ``type_out``).
        mixing: "full" | "mst" | "rmst" or a MixingSet; ``normalize``: DegreeNorm on/off.
        cg: Clebsch-Gordan accessor (default: the project's).

    Input/output: GeneralizedSignal (batch, K_in, 2l+1, type_in[l]) ->
    (batch, K_out, 2l+1, type_out[l]), l < L_out.  Parameters in torch's default dtype: cast
    with ``.to(dtype)`` / ``.double()`` (the Clebsch-Gordan tables are float64 masters, exact
    in either dtype); a signal of another dtype is a ValueError.
    """

    def __init__(self, L: int, channels_in: int, type_in, L_out: int | None = None,
                 channels_out: int | None = None, type_out=1, type_hidden=None,
                 mixing: str | MixingSet = "mst", normalize: bool = True, cg: CGFn | None = None):
        super().__init__()
        L_out = L if L_out is None else L_out
        channels_out = channels_in if channels_out is None else channels_out
        self.activation = TensorProductActivation(L, channels_in, type_in, L_out, mixing, cg)
        expanded = self.activation.type_out
        type_out = normalize_type(type_out, L_out, "type_out")
        type_hidden = type_out if type_hidden is None else normalize_type(type_hidden, L_out, "type_hidden")
        self.norm = DegreeNorm(L_out, channels_in, expanded) if normalize else None
        self.uniform = UniformConv(L_out, channels_in, expanded, type_hidden)
        self.channelwise = ChannelWiseConv(L_out, channels_in, type_hidden, type_out)
        self.cross = CrossChannelConv(L_out, channels_in, channels_out, type_out)
        self.L, self.L_out = self.activation.L, L_out
        self.channels_in, self.channels_out = channels_in, channels_out
        self.type_in, self.type_out = self.activation.type_in, type_out

    @property
    def flops(self) -> int:
        """Multiply-adds per sample of the activation (the dominant cost)."""
        return self.activation.flops

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        if isinstance(x, GeneralizedSignal):  # the activation has no parameters: check the dtype here
            x.check(name="EfficientGeneralizedLayer input", dtype=self.cross.weight[0].dtype)
        y = self.activation(x)
        if self.norm is not None:
            y = self.norm(y)
        return self.cross(self.channelwise(self.uniform(y)))
