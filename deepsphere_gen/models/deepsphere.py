"""DeepSphere networks on HEALPix (NESTED, full or partial sky): classifier, regressor, UNet.

Every block is ChebConv -> BatchNorm -> ReLU; pooling by 4**p follows the NESTED hierarchy
(partial sky: only parents whose children are all present survive).  Graphs come from
:func:`deepsphere_gen.graph.build_graph` (disk-cached) at each resolution.
"""
from __future__ import annotations

import numpy as np
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
from ..nn import ChebConv, Laplacian, LaplacianPyramid, SharedLaplacians
from ..nn.pooling import (
    HealpixAvgPool,
    HealpixMaxPool,
    HealpixMaxUnpool,
    HealpixPartialPool,
    HealpixPartialUnpool,
    HealpixUnpool,
)
from ..sampling import HealpixSampling
from .spec import specified

__all__ = ["DeepSphereClassifier", "DeepSphereRegressor", "SphericalUNet", "STATISTICS", "graph_encoder"]

#: pixel statistics available to the ``head="stats"`` readout (per channel).
STATISTICS = ("mean", "var", "std", "max", "min")
HEADS = ("gap", "stats", "fc")


def _per_block(value, n: int, name: str) -> tuple[int, ...]:
    """One non-negative integer for every block, or a sequence of ``n`` (one per block)."""
    try:
        vals = tuple(value)
    except TypeError:  # a scalar: the same for every block
        vals = (value,) * n
    if len(vals) == n:
        try:
            return tuple(check_nonnegative_int(v, name) for v in vals)
        except ValueError:
            pass  # the message below names the whole setting
    raise ValueError(f"{name} must be a non-negative int or {n} of them (one per block), got {value!r}")


def _sampling(nside: int, indices, owner: str) -> HealpixSampling:
    """The model's input sampling; a boolean mask given as ``indices`` is refused with the models' remedy, naming
    the model ``owner`` (HealpixSampling's own message advises its ``mask=``, which the models do not take)."""
    if indices is not None and np.asarray(indices).dtype == bool:
        raise ValueError(f"{owner}: indices is a boolean mask: pass indices=np.flatnonzero(mask) (the sorted NESTED "
                         "pixels it keeps; the models take no mask=)")
    return HealpixSampling(nside, indices=indices)



def _check_map(x: torch.Tensor, sampling, in_channels: int) -> None:
    """ValueError unless x is a finite (batch, sampling.npix, in_channels) map: a model's one
    value check (one host synchronisation); its ChebConvs are built with ``check_input=False``."""
    check_pixels(x, sampling.npix, what=f"HEALPix nside {sampling.nside}"
                 + ("" if sampling.is_full_sky else " partial sky"))
    check_channels(x, in_channels)
    check_finite(x)


class _PixelBatchNorm(nn.BatchNorm1d):
    """BatchNorm over batch and pixels of a (batch, pixels, channels) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, P, C = x.shape
        return super().forward(x.reshape(B * P, C)).view(B, P, C)


class _ConvBlock(nn.Module):
    """ChebConv -> BatchNorm -> ReLU, (B, P, in) -> (B, P, out); no value check (the model checks its input).
    ``relu=False``: without the ReLU (:func:`graph_encoder` applies it after a max pooling)."""

    def __init__(self, cin: int, cout: int, K: int, lap: Laplacian, batch_norm: bool, dtype, relu: bool = True):
        super().__init__()
        self.conv = ChebConv(cin, cout, K, lap, bias=not batch_norm, dtype=dtype, check_input=False)
        self.norm = _PixelBatchNorm(cout, dtype=dtype) if batch_norm else nn.Identity()
        self.relu = bool(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return torch.relu(y) if self.relu else y


def _check_pool_mode(mode: str) -> None:
    """ValueError unless ``mode`` is a pooling of the graph models, "max" or "avg"."""
    if mode not in ("max", "avg"):
        raise ValueError(f"unknown pooling {mode!r}; use 'max' or 'avg'")


def _pool(sampling: HealpixSampling, p: int, mode: str, return_indices: bool = False):
    """(pool module, coarse sampling) for pooling ``sampling`` by 4**p; the layer checks no input values (the model
    checks its input once)."""
    _check_pool_mode(mode)
    if (sampling.nside >> p) < 1 or (sampling.nside >> p) << p != sampling.nside:
        raise ValueError(f"cannot pool nside {sampling.nside} by 4**{p}: too many pooling levels for this nside")
    if sampling.is_full_sky:
        n = sampling.npix
        pool = (HealpixMaxPool(p, return_indices, npix=n, check_input=False) if mode == "max"
                else HealpixAvgPool(p, npix=n, check_input=False))
        return pool, HealpixSampling(sampling.nside >> p)
    pool = HealpixPartialPool(sampling, p, mode=mode, return_indices=return_indices, check_input=False)
    return pool, pool.coarse


def _pooled(where: str, pooled: int) -> str:
    """The context a graph level names when its sampling has too few pixels (:class:`~deepsphere_gen.nn.LaplacianPyramid`)."""
    return (f"{where} works on the map pooled {pooled} time(s) by 4 (at most {pooled - 1} pooling level(s) before "
            f"{where}: pool_levels)")


def graph_encoder(graphs: LaplacianPyramid, sampling: HealpixSampling, in_channels: int, channels, pools, K: int,
                  batch_norm: bool, pool: str, dtype) -> tuple[nn.Sequential, HealpixSampling]:
    """The graph encoder shared by the DeepSphere nets and :class:`~.hybrid.HybridClassifier`.

    One stage per entry of ``channels``: ChebConv (order ``K``, on ``graphs(s)``, the
    rescaled Laplacian of the stage's sampling ``s``) -> BatchNorm over batch and pixels
    (``batch_norm``) -> ReLU, then pooling by ``4**pools[i]`` (``pool``: "max" | "avg"; 0:
    none; partial sky keeps only parents whose children are all present).  Maps
    (B, sampling.npix, in_channels) -> (B, out.npix, channels[-1]).  Returns
    ``(nn.Sequential of the stages, out)`` with ``out`` the sampling after the last pooling.

    A stage that max-pools applies its ReLU after the pooling (``[block without ReLU, pool,
    nn.ReLU()]``): the two commute (ReLU is monotone), so outputs and gradients are the same
    bits, and the ReLU runs on 4**p times fewer pixels (a training step of the default cosmo
    network, 32 maps of 4,762 pixels, one thread: 74 -> 58 ms CPU).

    ``sampling`` must be a :class:`~deepsphere_gen.sampling.HealpixSampling` (full or partial sky): the pooling
    follows the NESTED hierarchy (TypeError otherwise; on another sampling, stack
    :class:`~deepsphere_gen.nn.ChebConv` layers on one shared :class:`~deepsphere_gen.nn.Laplacian` of
    :func:`~deepsphere_gen.graph.build_graph`, without pooling).  ``pool`` and the pooling levels in all are
    checked before any graph is built (ValueError).
    """
    if not isinstance(sampling, HealpixSampling):
        raise TypeError(f"graph_encoder: sampling must be a HealpixSampling (its pooling follows the NESTED "
                        f"hierarchy), got {type(sampling).__name__}; on another sampling stack ChebConv layers on "
                        "one shared nn.Laplacian of graph.build_graph(sampling), without pooling")
    _check_pool_mode(pool)
    if sampling.nside >> sum(pools) < 1:
        raise ValueError(f"cannot pool nside {sampling.nside} by 4**{sum(pools)} (pool_levels {tuple(pools)} in all): "
                         "too many pooling levels for this nside")
    blocks, s, cin, pooled = [], sampling, in_channels, 0
    for i, (cout, p) in enumerate(zip(channels, pools)):
        late_relu = bool(p) and pool == "max"
        stage = [_ConvBlock(cin, cout, K, graphs(s, _pooled(f"block {i + 1}", pooled)), batch_norm, dtype,
                            relu=not late_relu)]
        if p:
            pool_mod, s = _pool(s, p, pool)
            stage.append(pool_mod)
            pooled += p
        if late_relu:
            stage.append(nn.ReLU())
        blocks.append(nn.Sequential(*stage))
        cin = cout
    return nn.Sequential(*blocks), s


def _summary(model: nn.Module) -> str:
    lines = [f"{type(model).__name__}: {model.describe()}"]
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        lines.append(f"  {name:<12} {n:>10,d} parameters")
    total = sum(p.numel() for p in model.parameters())
    lines.append(f"  {'total':<12} {total:>10,d} parameters ({sum(p.numel() for p in model.parameters() if p.requires_grad):,d} trainable)")
    return "\n".join(lines)


class _DeepSphereNet(SharedLaplacians):
    """Encoder of conv blocks with pooling, then a map-level head; (B, npix, in) -> (B, n_out).  Every argument
    is checked before the first graph is built (a refusal costs nothing at a large nside)."""

    def __init__(self, *, nside, in_channels, n_out, channels, K, k, pool_levels, head, stats, fc_hidden,
                 indices, laplacian, pool, batch_norm, order, dtype, cache, cache_dir, n_out_name="n_out"):
        super().__init__()
        check_nested_order(order)
        channels = check_positive_ints("channels", channels)
        self.in_channels, n_out = check_positive_int(in_channels, "in_channels"), check_positive_int(n_out, n_out_name)
        K, k = check_positive_int(K, "K"), check_positive_int(k, "k")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
        if head == "stats":
            stats = tuple(stats)
            bad = [t for t in stats if t not in STATISTICS]
            if not stats or bad:
                raise ValueError(f"stats must be a non-empty subset of {STATISTICS}, got {stats!r}")
        if head == "fc":
            fc_hidden = check_positive_ints("fc_hidden", fc_hidden, allow_empty=True)
        pools = _per_block(pool_levels, len(channels), "pool_levels")
        dtype = dtype or torch.get_default_dtype()
        self.sampling = _sampling(nside, indices, type(self).__name__)
        self.npix = self.sampling.npix
        check_neighbours(self.sampling, k)  # the input; coarse levels of fewer points are complete graphs
        self.head_kind = head
        graphs = LaplacianPyramid(k, laplacian, dtype, cache, cache_dir)
        self.blocks, s = graph_encoder(graphs, self.sampling, self.in_channels, channels, pools, K, batch_norm, pool, dtype)
        self.out_sampling = s
        cin = channels[-1]
        fk = {"dtype": dtype}
        if head == "gap":
            self.head = nn.Linear(cin, n_out, **fk)
        elif head == "stats":
            self.stats = stats
            self.head = nn.Linear(cin * len(stats), n_out, **fk)
        else:
            layers, width = [nn.Flatten()], cin * s.npix
            for h in fc_hidden:
                layers += [nn.Linear(width, h, **fk), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, n_out, **fk))
            self.head = nn.Sequential(*layers)
        self._describe = (f"nside={self.sampling.nside}, pixels={self.npix}, channels={channels}, K={K}, "
                          f"{graphs.describe_k()}, "
                          f"pool_levels={pools}, head={head!r}, laplacian={laplacian!r}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel features after the last block, (B, out_sampling.npix, channels[-1])."""
        _check_map(x, self.sampling, self.in_channels)
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.head_kind == "gap":
            return self.head(h.mean(dim=1))
        if self.head_kind == "stats":
            return self.head(torch.cat([self._stat(h, t) for t in self.stats], dim=-1))
        return self.head(h)

    @staticmethod
    def _stat(h: torch.Tensor, name: str) -> torch.Tensor:
        if name == "mean":
            return h.mean(dim=1)
        if name == "var":
            return h.var(dim=1, unbiased=False)
        if name == "std":
            return h.var(dim=1, unbiased=False).add(1e-12).sqrt()
        return h.amax(dim=1) if name == "max" else h.amin(dim=1)

    def describe(self) -> str:
        return self._describe

    def summary(self) -> str:
        """Per-part and total parameter counts."""
        return _summary(self)

    def extra_repr(self) -> str:
        return f"{self._describe}, parameters={sum(p.numel() for p in self.parameters()):,d}"


@specified({
    "input": ("nside", "in_channels", "indices", "order"),
    "encoder": ("channels", "K", "k", "pool_levels", "pool", "batch_norm", "laplacian"),
    "head": ("n_classes", "head", "stats", "fc_hidden"),
    "numerics": ("dtype",),
    "runtime": ("cache", "cache_dir"),
})
class DeepSphereClassifier(_DeepSphereNet):
    """DeepSphere classifier: (batch, pixels, in_channels) NESTED maps -> (batch, n_classes) logits.

    Parameters
    ----------
    nside : HEALPix resolution of the input.
    in_channels : input channels per pixel.
    channels : output channels of each conv block (one block per entry).
    n_classes : number of classes (logits out).
    K : Chebyshev orders per conv.  k : neighbours of the kNN graphs (capped at pixels-1 on coarse
        levels; k >= the input's pixels is refused, as ``build_graph`` refuses it: ``graph.check_neighbours``).
    pool_levels : pooling by 4**p after each block (int for all, or one per block; 0 = none).
    head : "gap" (global average -> linear), "stats" (pixel statistics ``stats`` per
        channel -> linear) or "fc" (flatten -> ``fc_hidden`` ReLU layers -> linear).
    indices : sorted NESTED pixel indices of a partial sky (None: full sky).
    laplacian : "combinatorial" or "normalized".  pool : "max" or "avg".
    order : must be "NESTED" (a declared "RING" is rejected; a RING tensor cannot be detected).
    dtype : parameter/Laplacian dtype (default torch's).  Build with ``dtype=torch.float64``
        for exact float64 work: ``.double()`` after construction casts the float32-rounded
        Laplacian values (as for :class:`~deepsphere_gen.nn.ChebConv`).
    cache, cache_dir : graph disk cache (see ``build_graph``).
    """

    def __init__(self, nside: int, in_channels: int, *, channels=(16, 32, 64), n_classes: int = 2, K: int = 5,
                 k: int = 20, pool_levels=1, head: str = "gap", stats=("mean", "var"), fc_hidden=(),
                 indices=None, laplacian: str = "combinatorial", pool: str = "max", batch_norm: bool = True,
                 order: str = "NESTED", dtype=None, cache: bool = True, cache_dir=None):
        super().__init__(nside=nside, in_channels=in_channels, n_out=n_classes, channels=channels, K=K, k=k,
                         pool_levels=pool_levels, head=head, stats=stats, fc_hidden=fc_hidden, indices=indices,
                         laplacian=laplacian, pool=pool, batch_norm=batch_norm, order=order, dtype=dtype,
                         cache=cache, cache_dir=cache_dir, n_out_name="n_classes")
        self.n_classes = int(n_classes)


@specified({
    "input": ("nside", "in_channels", "indices", "order"),
    "encoder": ("channels", "K", "k", "pool_levels", "pool", "batch_norm", "laplacian"),
    "head": ("n_outputs", "head", "stats", "fc_hidden"),
    "numerics": ("dtype",),
    "runtime": ("cache", "cache_dir"),
})
class DeepSphereRegressor(_DeepSphereNet):
    """DeepSphere regressor: (batch, pixels, in_channels) -> (batch, n_outputs); same options as
    :class:`DeepSphereClassifier` (``n_outputs`` replaces ``n_classes``)."""

    def __init__(self, nside: int, in_channels: int, *, channels=(16, 32, 64), n_outputs: int = 1, K: int = 5,
                 k: int = 20, pool_levels=1, head: str = "gap", stats=("mean", "var"), fc_hidden=(),
                 indices=None, laplacian: str = "combinatorial", pool: str = "max", batch_norm: bool = True,
                 order: str = "NESTED", dtype=None, cache: bool = True, cache_dir=None):
        super().__init__(nside=nside, in_channels=in_channels, n_out=n_outputs, channels=channels, K=K, k=k,
                         pool_levels=pool_levels, head=head, stats=stats, fc_hidden=fc_hidden, indices=indices,
                         laplacian=laplacian, pool=pool, batch_norm=batch_norm, order=order, dtype=dtype,
                         cache=cache, cache_dir=cache_dir, n_out_name="n_outputs")
        self.n_outputs = int(n_outputs)


@specified({
    "input": ("nside", "in_channels", "indices", "order"),
    "encoder": ("channels", "K", "k", "pool_levels", "convs_per_level", "pool", "batch_norm", "laplacian"),
    "decoder": ("out_channels", "unpool"),
    "numerics": ("dtype",),
    "runtime": ("cache", "cache_dir"),
})
class SphericalUNet(SharedLaplacians):
    """Spherical UNet for per-pixel outputs: (batch, pixels, in_channels) -> (batch, pixels, out_channels).

    Level i (i = 0..len(channels)-1) runs ``convs_per_level`` conv blocks with ``channels[i]``
    outputs at nside / 2**(sum of the poolings above it); between levels the map is pooled by
    4**pool_levels.  The decoder unpools (``unpool="repeat"``, or ``"max"``: a linear projection
    to channels[i] then max-unpooling at the encoder's argmax), concatenates the encoder's skip map and runs conv blocks back to ``channels[i]``;
    a final ChebConv (no norm, no ReLU) maps to ``out_channels``.  Partial sky via ``indices``
    (decoder pixels whose parent pooling dropped start from zeros and rely on the skip).
    Other parameters as in :class:`DeepSphereClassifier`.
    """

    def __init__(self, nside: int, in_channels: int, out_channels: int, *, channels=(16, 32, 64), K: int = 5,
                 k: int = 20, pool_levels: int = 1, convs_per_level: int = 1, indices=None,
                 laplacian: str = "combinatorial", pool: str = "max", unpool: str = "repeat",
                 batch_norm: bool = True, order: str = "NESTED", dtype=None, cache: bool = True, cache_dir=None):
        super().__init__()
        check_nested_order(order)
        channels = check_positive_ints("channels", channels)
        self.in_channels, self.out_channels, K, k, reps = (
            check_positive_int(v, name) for v, name in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                                                         (K, "K"), (k, "k"), (convs_per_level, "convs_per_level")))
        n = len(channels)
        pools = _per_block(pool_levels, n - 1, "pool_levels") if n > 1 else ()
        if any(p == 0 for p in pools):
            raise ValueError("pool_levels must be >= 1 between UNet levels")
        if unpool not in ("repeat", "max"):
            raise ValueError(f"unknown unpool {unpool!r}; use 'repeat' or 'max'")
        if unpool == "max" and pool != "max":
            raise ValueError("unpool='max' needs pool='max' (it reuses the argmax)")
        self.unpool_mode = unpool
        dtype = dtype or torch.get_default_dtype()
        graphs = LaplacianPyramid(k, laplacian, dtype, cache, cache_dir)
        self.sampling = _sampling(nside, indices, type(self).__name__)
        self.npix = self.sampling.npix
        check_neighbours(self.sampling, k)  # the input; coarse levels of fewer points are complete graphs
        samplings = [self.sampling]
        self.pools, self.unpools = nn.ModuleList(), nn.ModuleList()
        for p in pools:
            s = samplings[-1]
            pool_mod, coarse = _pool(s, p, pool, return_indices=unpool == "max")
            self.pools.append(pool_mod)
            if s.is_full_sky:
                self.unpools.append(HealpixMaxUnpool(p, check_input=False) if unpool == "max"
                                    else HealpixUnpool(p, check_input=False))
            else:
                self.unpools.append(HealpixPartialUnpool(s, p, mode=unpool, check_input=False))
            samplings.append(coarse)

        def level(cin, cout, s, i):
            laps = graphs(s, _pooled(f"UNet level {i}", sum(pools[:i])))
            return nn.Sequential(*[_ConvBlock(cin if r == 0 else cout, cout, K, laps, batch_norm, dtype) for r in range(reps)])

        self.encoder = nn.ModuleList()
        cin = self.in_channels
        for c, s in zip(channels, samplings):
            self.encoder.append(level(cin, c, s, len(self.encoder)))
            cin = c
        # max-unpool reuses the argmax of channels[i] maps: project channels[i+1] -> channels[i] first
        self.project = nn.ModuleList(
            nn.Linear(channels[i + 1], channels[i], dtype=dtype) for i in range(n - 1)
        ) if unpool == "max" else None
        up_channels = channels if unpool == "max" else channels[1:]
        self.decoder = nn.ModuleList(
            level(up_channels[i] + channels[i], channels[i], samplings[i], i) for i in range(n - 1)
        )
        self.out = ChebConv(channels[0], self.out_channels, K, graphs(samplings[0]), dtype=dtype, check_input=False)
        self._describe = (f"nside={self.sampling.nside}, pixels={self.npix}, channels={channels}, K={K}, "
                          f"{graphs.describe_k()}, "
                          f"pool_levels={pools}, unpool={unpool!r}, laplacian={laplacian!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, self.sampling, self.in_channels)
        skips, argmax = [], []
        h = x
        for i, enc in enumerate(self.encoder):
            h = enc(h)
            if i < len(self.pools):
                skips.append(h)
                h = self.pools[i](h)
                if self.unpool_mode == "max":
                    h, idx = h
                    argmax.append(idx)
        for i in reversed(range(len(self.decoder))):
            if self.unpool_mode == "max":
                up = self.unpools[i](self.project[i](h), argmax[i])
            else:
                up = self.unpools[i](h)
            h = self.decoder[i](torch.cat([up, skips[i]], dim=-1))
        return self.out(h)

    def describe(self) -> str:
        return self._describe

    def summary(self) -> str:
        """Per-part and total parameter counts."""
        return _summary(self)

    def extra_repr(self) -> str:
        return f"{self._describe}, parameters={sum(p.numel() for p in self.parameters()):,d}"
