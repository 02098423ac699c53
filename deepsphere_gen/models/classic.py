"""Spherical-MNIST architectures of the classic spherical CNNs, on the shared layers.

Every model takes maps (batch, npix, in_channels) on ``sampling``, or coefficients
(batch, L0^2, in_channels) when ``sampling`` is None, and returns logits (batch, n_classes).
``summary()`` prints the layers and parameter counts.

* :class:`CohenS2CNN` (Cohen et al. 2018, s2cnn's MNIST net): S2 -> SO(3) conv
  (bandlimit 30 -> 10, 20 channels, 24-point kernel near the pole), SO(3) ReLU, SO(3) conv
  (10 -> 6, 40 channels, 72-point kernel near the identity: 8 alphas x 3 betas x 3
  gammas), SO(3) ReLU, integral over SO(3), linear: 58,550 parameters (paper: 58k).
* :class:`EstevesS2CNN` (Esteves et al. 2018): zonal S2 convolutions with spectral
  (anchor) filters and S2 ReLUs, spectral pooling (bandlimit truncation) between blocks,
  global average (degree 0) -> linear.  Channels (16, 32, 32, 64, 64) with 8 anchors give
  ~62k parameters (paper: 58k; the paper's per-layer table was not available offline).
* :class:`KondorCGNet` (Kondor et al. 2018): full Clebsch-Gordan layers (products across
  all channels), the degree-0 fragments of every layer concatenated -> MLP.  Strictly
  invariant.  Defaults (L 8, tau 5, 4 layers) give ~59k parameters (paper: 286k; its exact
  sizes were not available offline, all are arguments).
* :class:`CobbHybrid` (Cobb et al. 2021): S2 -> SO(3) conv + SO(3) ReLU, SO(3) conv +
  SO(3) ReLU, then efficient generalized layers (MST) at decreasing bandlimits, invariant
  readout -> MLP.  Defaults give ~40k parameters (paper: 58k; its per-layer sizes were
  not available offline, all are arguments).

Every model checks its arguments before it builds a layer (the input transform's tables first).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .._validation import check_positive_int, check_positive_ints
from ..harmonic import check_mixing
from ..nn import (
    EfficientGeneralizedLayer,
    FullCGLayer,
    GeneralizedSignal,
    InvariantReadout,
    MapToSignal,
    S2Conv,
    S2InputLayer,
    S2ReLU,
    S2ToSO3Conv,
    SO3BatchNorm,
    SO3Conv,
    SO3ReLU,
    s2_near_identity_grid,
    so3_near_identity_grid,
)

__all__ = ["CohenS2CNN", "EstevesS2CNN", "KondorCGNet", "CobbHybrid", "classic_models"]


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _input(L: int, in_channels: int, sampling, dtype) -> MapToSignal:
    """The models' input adapter: maps on ``sampling`` (or coefficients when None) -> S2 signal
    (batch, C, 2l+1, 1), no weights; the model's one value check (one host synchronisation)
    of a tensor input; the transform runs in ``dtype`` (default torch's) whatever the input's."""
    return MapToSignal(sampling, L, in_channels, dtype=dtype, cast=True, name="model input")


class _Summary:
    """``summary()``: one row per top-level child with its parameter count, and the total;
    ``signal(x)``: a tensor input through ``self.input``, a GeneralizedSignal (checked when it
    was built) as it is."""

    def signal(self, x) -> GeneralizedSignal:
        return x if isinstance(x, GeneralizedSignal) else self.input(x)

    def summary(self) -> str:
        rows = [(name, type(m).__name__, _params(m)) for name, m in self.named_children()]
        rows.append(("total", "", _params(self)))
        w = max(len(r[0]) + len(r[1]) for r in rows) + 3
        return "\n".join(f"{(n + ' ' + t).ljust(w)}{p:>9,d}" for n, t, p in rows)


def _kernel_grids(kernel_beta) -> tuple:
    """CohenS2CNN's S2 and SO(3) near-identity kernel grids of ``kernel_beta`` (two radii in (0, pi] radians),
    or ValueError naming ``kernel_beta`` (was: a bare unpacking error, or a grid of a negative radius)."""
    message = f"kernel_beta must be two radii in (0, pi] radians (S2 kernel, SO(3) kernel), got {kernel_beta!r}"
    try:
        b1, b2 = kernel_beta
        return s2_near_identity_grid(max_beta=b1), so3_near_identity_grid(max_beta=b2)
    except (TypeError, ValueError):
        raise ValueError(message) from None


class CohenS2CNN(_Summary, nn.Module):
    """Cohen et al. 2018: S2->SO(3) conv, SO(3) ReLU, SO(3) conv, SO(3) ReLU, SO(3) integral, linear.

    ``kernel_beta``: radii (rad) of the S2 and SO(3) near-identity kernel grids (paper: pi/8
    at bandlimit 10; at a lower bandlimit a pi/8 kernel is below the resolution and the
    filters are nearly isotropic, so scale it with 1 / bandlimit).  ``batchnorm``: an
    equivariant :class:`SO3BatchNorm` before each SO(3) ReLU (+ 2 params per channel).
    ``grid``, ``oversampling``: SO(3) ReLU grids (both layers); ``readout_oversampling``
    for the last ReLU, whose output is only integrated (its aliasing is the model's
    invariance error, and at L_out = 1 a fine grid is cheap).
    """

    def __init__(self, n_classes: int = 10, bandlimits: Sequence[int] = (30, 10, 6), channels: Sequence[int] = (20, 40),
                 in_channels: int = 1, sampling=None, grid: str = "soft", dtype: torch.dtype | None = None,
                 kernel_beta: Sequence[float] = (math.pi / 8, math.pi / 8), batchnorm: bool = False,
                 oversampling: float = 1.0, readout_oversampling: float | None = None, readout_grid: str | None = None):
        super().__init__()
        n_classes = check_positive_int(n_classes, "n_classes")
        bandlimits, channels = check_positive_ints("bandlimits", bandlimits), check_positive_ints("channels", channels)
        if len(bandlimits) != 3 or len(channels) != 2:
            raise ValueError(f"need bandlimits (L0, L1, L2) and channels (c1, c2), got {bandlimits} and {channels}")
        in_channels = check_positive_int(in_channels, "in_channels")
        L0, L1, L2 = bandlimits
        c1, c2 = channels
        grid1, grid2 = _kernel_grids(kernel_beta)  # before the input transform: a refusal costs nothing
        self.input = _input(L0, in_channels, sampling, dtype)
        self.conv1 = S2ToSO3Conv(L0, in_channels, c1, L_out=L1, kernel_grid=grid1)
        self.norm1 = SO3BatchNorm(c1) if batchnorm else nn.Identity()
        self.relu1 = SO3ReLU(L1, c1, grid=grid, oversampling=oversampling)
        self.conv2 = SO3Conv(L1, c1, c2, L_out=L2, kernel_grid=grid2)
        self.norm2 = SO3BatchNorm(c2) if batchnorm else nn.Identity()
        self.relu2 = SO3ReLU(L2, c2, L_out=1, grid=readout_grid or grid,
                             oversampling=oversampling if readout_oversampling is None else readout_oversampling)
        self.fc = nn.Linear(c2, n_classes)

    def features(self, x) -> torch.Tensor:
        """Invariant features (batch, channels[1]): the SO(3) integrals of the last ReLU's output."""
        f = self.relu2(self.norm2(self.conv2(self.relu1(self.norm1(self.conv1(self.signal(x)))))))
        # int_SO(3) f dR = sqrt(8 pi^2) F^0
        return math.sqrt(8 * math.pi**2) * f.fragments[0].reshape(f.batch, -1)

    def forward(self, x) -> torch.Tensor:
        return self.fc(self.features(x))


class EstevesS2CNN(_Summary, nn.Module):
    """Esteves et al. 2018: [zonal S2 conv -> S2 ReLU] blocks with spectral pooling, global average, linear."""

    def __init__(self, n_classes: int = 10, bandlimits: Sequence[int] = (32, 32, 16, 16, 8, 8),
                 channels: Sequence[int] = (16, 32, 32, 64, 64), n_anchors: int = 8, in_channels: int = 1,
                 sampling=None, grid: str = "mw", dtype: torch.dtype | None = None):
        super().__init__()
        n_classes = check_positive_int(n_classes, "n_classes")
        bandlimits, channels = check_positive_ints("bandlimits", bandlimits), check_positive_ints("channels", channels)
        if len(bandlimits) != len(channels) + 1:
            raise ValueError(f"need one bandlimit more than channels, got {bandlimits} and {channels}")
        in_channels, n_anchors = check_positive_int(in_channels, "in_channels"), check_positive_int(n_anchors, "n_anchors")
        self.input = _input(bandlimits[0], in_channels, sampling, dtype)
        blocks, c_in = [], in_channels
        for L, L_out, c in zip(bandlimits, bandlimits[1:], channels):
            blocks += [S2Conv(L, c_in, c, L_out=L_out, n_anchors=min(n_anchors, L_out) if L_out > 1 else None),
                       S2ReLU(L_out, c, grid=grid, dtype=dtype)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x) -> torch.Tensor:
        f = self.blocks(self.signal(x))
        return self.fc(f.fragments[0].reshape(f.batch, -1) / math.sqrt(4 * math.pi))  # sphere average


class KondorCGNet(_Summary, nn.Module):
    """Kondor et al. 2018: S2 input -> full CG layers -> degree-0 fragments of all layers -> MLP (invariant).

    ``dtype`` (default torch's): of every parameter and the input transform's tables; the
    input must have it (see :class:`~deepsphere_gen.nn.S2InputLayer`).
    """

    def __init__(self, n_classes: int = 10, L: int = 8, channels: int = 1, tau: int = 5, n_layers: int = 4,
                 hidden: Sequence[int] = (256,), in_channels: int = 1, sampling=None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        n_classes = check_positive_int(n_classes, "n_classes")
        L, channels, tau, n_layers, in_channels = (check_positive_int(v, name) for v, name in (
            (L, "L"), (channels, "channels"), (tau, "tau"), (n_layers, "n_layers"), (in_channels, "in_channels")))
        hidden = check_positive_ints("hidden", hidden, allow_empty=True)
        self.input = S2InputLayer(L, in_channels, channels, tau=tau, sampling=sampling, dtype=dtype)
        # the last layer only needs its invariant (degree-0) output
        self.layers = nn.ModuleList(FullCGLayer(L, channels, tau, L_out=L if i < n_layers - 1 else 1, type_out=tau,
                                                mixing="full") for i in range(n_layers))
        n_feat = channels * tau * (n_layers + 1)
        dims = [n_feat, *hidden, n_classes]
        mlp: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mlp += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(dims) - 2 else [])
        self.mlp = nn.Sequential(*mlp)
        dtype = self.input.weight[0].dtype  # the S2 input layer's: every part in one dtype
        self.layers.to(dtype)
        self.mlp.to(dtype)

    def forward(self, x) -> torch.Tensor:
        f = self.signal(x)
        feats = [f.fragments[0].reshape(f.batch, -1)]  # invariant at every depth
        for layer in self.layers:
            f = layer(f)
            feats.append(f.fragments[0].reshape(f.batch, -1))
        return self.mlp(torch.cat(feats, dim=1))


class CobbHybrid(_Summary, nn.Module):
    """Cobb et al. 2021 hybrid: classic S2/SO(3) conv layers with SO(3) ReLUs, then efficient layers."""

    def __init__(self, n_classes: int = 10, bandlimits: Sequence[int] = (20, 10, 6, 3, 1),
                 channels: Sequence[int] = (20, 22, 24, 26), tau: int = 2, mixing: str = "mst",
                 hidden: Sequence[int] = (64,), in_channels: int = 1, sampling=None, grid: str = "mw",
                 dtype: torch.dtype | None = None):
        super().__init__()
        n_classes = check_positive_int(n_classes, "n_classes")
        bandlimits, channels = check_positive_ints("bandlimits", bandlimits), check_positive_ints("channels", channels)
        if len(bandlimits) < 3 or len(channels) != len(bandlimits) - 1:
            raise ValueError(f"need bandlimits (L0, L1, L2, ...) and one channel count per layer, got "
                             f"{bandlimits} and {channels}")
        in_channels, tau = check_positive_int(in_channels, "in_channels"), check_positive_int(tau, "tau")
        hidden = check_positive_ints("hidden", hidden, allow_empty=True)
        check_mixing(mixing)
        L0, L1, L2 = bandlimits[:3]
        self.input = _input(L0, in_channels, sampling, dtype)
        self.conv1 = S2ToSO3Conv(L0, in_channels, channels[0], L_out=L1, kernel_grid=s2_near_identity_grid())
        self.relu1 = SO3ReLU(L1, channels[0], grid=grid)
        self.conv2 = SO3Conv(L1, channels[0], channels[1], L_out=L2, kernel_grid=so3_near_identity_grid())
        self.relu2 = SO3ReLU(L2, channels[1], grid=grid)
        layers, type_in = [], tuple(2 * l + 1 for l in range(L2))
        for L, L_out, k_in, k_out in zip(bandlimits[2:], bandlimits[3:], channels[1:], channels[2:]):
            layer = EfficientGeneralizedLayer(L, k_in, type_in, L_out, k_out, type_out=tau, mixing=mixing)
            layers.append(layer)
            type_in = layer.type_out
        self.efficient = nn.ModuleList(layers)
        self.readout = InvariantReadout(bandlimits[-1], channels[-1], type_in, n_classes, hidden)

    def forward(self, x) -> torch.Tensor:
        f = self.relu2(self.conv2(self.relu1(self.conv1(self.signal(x)))))
        for layer in self.efficient:
            f = layer(f)
        return self.readout(f)


def classic_models() -> dict[str, nn.Module]:
    """The four spherical-MNIST models at their default (paper-shaped) sizes, by name."""
    return {"cohen": CohenS2CNN(), "esteves": EstevesS2CNN(), "kondor": KondorCGNet(), "cobb": CobbHybrid()}


if __name__ == "__main__":
    for name, model in classic_models().items():
        print(f"== {name}\n{model.summary()}\n")
