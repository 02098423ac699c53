"""Hybrid classifier: graph conv + pooling at high resolution, a bridge, harmonic layers at low L.

    (B, npix, C_in) --[ChebConv -> BN -> ReLU -> pool] x n--> (B, npix_low, K_g)
        --MapToSignal (SHT at L_0)--> GeneralizedSignal (B, K_g, 2l+1, 1)
        --EfficientGeneralizedLayer x m--> (B, K_h, 2l+1, tau), l < L_m
        --InvariantReadout--> (B, n_classes)

The graph part is cheap and nearly equivariant (its error is the graph's, see
``deepsphere-gen equivariance``); everything after the bridge is equivariant to
floating-point precision.  The model's invariance error has three sources:

* the graph part's equivariance error;
* the bridge's HEALPix transform error on band-limited maps (small for L_0 <= 2 nside_low:
  the sweep's "hybrid: bridge" row);
* the bridge's aliasing: the features it analyses come out of ReLU and pooling, so they are
  NOT band-limited, and their power at l >= L_0 folds into l < L_0 differently for each
  rotation (HEALPix is not a rotation-invariant grid).  Often the largest term.  Max pooling
  adds more high-degree power than average pooling, and every pooling halves nside_low, so
  the grid under L_0 gets coarser.

Measured (``map_equivariance_error(..., invariant=True)``: logits relative to their spread
over 8 random maps band-limited below 8, 4 rotations; nside 16, one graph block of 8
channels, L_0 = 8, 10 Jacobi iterations, float64, untrained): pool_levels 0: 0.043;
1: max 0.092, avg 0.045; 2: max 0.31, avg 0.094.  The same graph block followed by a
global average instead (``DeepSphereClassifier``, no pooling) gives 0.0064.  So pool little
before the bridge, prefer ``pool="avg"`` there, and keep L_0 well below 2 nside_low.
The defaults (two blocks, each max-pooling by 4) are on the aliasing side of this trade.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._validation import (
    check_channels,
    check_finite,
    check_nested_order,
    check_nonnegative_int,
    check_pixels,
    check_positive_int,
    check_positive_ints,
)
from ..graph import check_neighbours
from ..harmonic import check_mixing
from ..nn import EfficientGeneralizedLayer, GeneralizedSignal, InvariantReadout, LaplacianPyramid, MapToSignal, SharedLaplacians
from ..sampling import HealpixSampling
from .deepsphere import graph_encoder
from .spec import specified

__all__ = ["HybridClassifier"]


@specified({
    "input": ("nside", "in_channels", "order"),
    "encoder": ("graph_channels", "K", "k", "pool_levels", "pool", "batch_norm", "laplacian"),
    "bridge": ("iterations",),
    "harmonic": ("bandlimits", "harmonic_channels", "tau", "mixing", "normalize"),
    "head": ("n_classes", "hidden"),
    "numerics": ("dtype",),
    "runtime": ("cache", "cache_dir"),
})
class HybridClassifier(SharedLaplacians):
    """Graph blocks on full-sky HEALPix, then harmonic layers; rotation-invariant readout.

    Args:
        nside: HEALPix resolution of the input (NESTED maps (B, 12 nside^2, in_channels)); the defaults
            need nside >= 16 (the bridge's L_0 = 8 <= 3 nside after two poolings by 4).
        in_channels, n_classes: input channels, logits out.
        graph_channels: output channels of each graph block (ChebConv -> BN -> ReLU ->
            pooling by 4**pool_levels); K: Chebyshev orders; k: kNN neighbours;
            laplacian, pool ("max" | "avg"), batch_norm as in DeepSphereClassifier.
        bandlimits: (L_0, ..., L_m): L_0 of the bridge (at most 3 nside_low; <= 2 nside_low
            keeps the bridge accurate), L_i the output bandlimit of efficient layer i.
        harmonic_channels: channels after each efficient layer (len(bandlimits) - 1).
        tau, mixing, normalize: efficient-layer options; hidden: readout MLP sizes.
        iterations: Jacobi steps of the bridge's HEALPix analysis (None: 3, as ``healpy.map2alm``); dtype: of all parts
            (parameters, Laplacians, bridge tables; default torch's); build with
            ``dtype=torch.float64`` for exact float64 work: ``.double()`` after construction
            keeps the float32-rounded Laplacian values (the bridge's transform is recomputed).

    Every argument is checked before the first graph is built (a refusal costs nothing at a large nside).
    """

    def __init__(self, nside: int, in_channels: int = 1, n_classes: int = 2, *, graph_channels: Sequence[int] = (8, 16),
                 K: int = 5, k: int = 20, pool_levels: int = 1, bandlimits: Sequence[int] = (8, 6, 4),
                 harmonic_channels: Sequence[int] = (16, 16), tau: int = 2, mixing: str = "mst",
                 normalize: bool = True, hidden: Sequence[int] = (32,), laplacian: str = "combinatorial",
                 pool: str = "max", batch_norm: bool = True, iterations: int | None = None, order: str = "NESTED",
                 dtype: torch.dtype | None = None, cache: bool = True, cache_dir=None):
        super().__init__()
        check_nested_order(order)
        graph_channels = check_positive_ints("graph_channels", graph_channels)
        bandlimits = check_positive_ints("bandlimits", bandlimits)
        harmonic_channels = check_positive_ints("harmonic_channels", harmonic_channels, allow_empty=True)
        if len(harmonic_channels) != len(bandlimits) - 1:
            raise ValueError(f"harmonic_channels needs one entry per efficient layer (len(bandlimits) - 1 = "
                             f"{len(bandlimits) - 1}), got {harmonic_channels!r}")
        if any(b > a for a, b in zip(bandlimits, bandlimits[1:])):
            raise ValueError(f"bandlimits must be non-increasing, got {bandlimits}")
        self.in_channels = check_positive_int(in_channels, "in_channels")
        n_classes = check_positive_int(n_classes, "n_classes")
        K, k, tau = check_positive_int(K, "K"), check_positive_int(k, "k"), check_positive_int(tau, "tau")
        pool_levels = check_nonnegative_int(pool_levels, "pool_levels")
        hidden = check_positive_ints("hidden", hidden, allow_empty=True)
        if iterations is not None:
            check_nonnegative_int(iterations, "iterations")
        check_mixing(mixing)
        dtype = dtype or torch.get_default_dtype()
        self.sampling = HealpixSampling(nside)
        self.npix = self.sampling.npix
        check_neighbours(self.sampling, k)  # the input; coarse levels of fewer points are complete graphs
        low_nside = self.sampling.nside >> (pool_levels * len(graph_channels))  # 0: graph_encoder refuses the pooling
        if low_nside and bandlimits[0] > 3 * low_nside:  # every argument checked before the first graph is built
            shift = pool_levels * len(graph_channels)
            least = 1 << (max(-(-bandlimits[0] // 3) - 1, 0)).bit_length() << shift  # smallest nside that fits
            raise ValueError(f"bridge bandlimit L_0={bandlimits[0]} exceeds 3 * nside = {3 * low_nside} of the "
                             f"pooled map (nside {self.sampling.nside} pooled by 4**pool_levels = {4**pool_levels} "
                             f"after each of the {len(graph_channels)} graph_channels blocks); give fewer graph_channels "
                             f"blocks, a smaller pool_levels, bandlimits[0] <= {3 * low_nside}, or nside >= {least}")
        graphs = LaplacianPyramid(k, laplacian, dtype, cache, cache_dir)
        self.graph, s = graph_encoder(graphs, self.sampling, self.in_channels, graph_channels,
                                      [pool_levels] * len(graph_channels), K, batch_norm, pool, dtype)
        self.low_sampling = s
        cin = graph_channels[-1]
        # the input is checked once (graph_features); the graph part and bridge do not re-check
        self.bridge = MapToSignal(s, bandlimits[0], cin, dtype=dtype, iterations=iterations, check_input=False)
        layers, type_in, k_in = [], self.bridge.type_out, cin
        for L, L_out, k_out in zip(bandlimits, bandlimits[1:], harmonic_channels):
            layer = EfficientGeneralizedLayer(L, k_in, type_in, L_out, k_out, type_out=tau, mixing=mixing,
                                              normalize=normalize)
            layers.append(layer)
            type_in, k_in = layer.type_out, k_out
        self.harmonic = nn.ModuleList(layers).to(dtype)
        self.readout = InvariantReadout(bandlimits[-1], k_in, type_in, n_classes, hidden).to(dtype)
        self.bandlimits, self.graph_channels, self.harmonic_channels = bandlimits, graph_channels, harmonic_channels
        self.n_classes = n_classes

    def graph_features(self, x: torch.Tensor) -> torch.Tensor:
        """Graph part: (B, npix, in_channels) -> (B, npix_low, graph_channels[-1])."""
        check_pixels(x, self.npix, what=f"HEALPix nside {self.sampling.nside}")
        check_channels(x, self.in_channels)
        check_finite(x)
        return self.graph(x)

    def harmonic_signal(self, f: GeneralizedSignal) -> GeneralizedSignal:
        """Harmonic part (exactly equivariant): bridge output -> last efficient layer's output."""
        for layer in self.harmonic:
            f = layer(f)
        return f

    def signal(self, x: torch.Tensor) -> GeneralizedSignal:
        """Map -> output of the last efficient layer (equivariant up to the graph part's error and the bridge's aliasing)."""
        return self.harmonic_signal(self.bridge(self.graph_features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.signal(x))

    def extra_repr(self) -> str:
        return (f"nside={self.sampling.nside}->{self.low_sampling.nside}, graph_channels={self.graph_channels}, "
                f"bandlimits={self.bandlimits}, harmonic_channels={self.harmonic_channels}, "
                f"params={sum(q.numel() for q in self.parameters()):,d}")
