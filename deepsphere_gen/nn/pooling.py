"""Pooling and unpooling on HEALPix (NESTED, full or partial sky) and equiangular grids.

HEALPix NESTED order puts the 4**p descendants of a pixel at nside/2**p in consecutive
positions, so pooling is a reshape (batch, pixels / 4**p, 4**p, channels) and a reduction.
Equiangular (Driscoll-Healy) maps in ring-major order (batch, ntheta * nphi, channels)
pool by 2**p x 2**p blocks of (theta, phi), mapping DH(L) onto DH(L / 2**p).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._validation import check_finite, check_nonnegative_int, check_pixels, check_positive_int, check_tensor
from ..sampling import (DriscollHealySampling, GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling,
                        check_sampling)
from . import _pool_native

__all__ = [
    "HealpixMaxPool",
    "HealpixAvgPool",
    "HealpixUnpool",
    "HealpixMaxUnpool",
    "HealpixPartialPool",
    "HealpixPartialUnpool",
    "partial_sky_pool",
    "partial_sky_pool_plan",
    "EquiangularMaxPool",
    "EquiangularAvgPool",
    "EquiangularUnpool",
    "EquiangularMaxUnpool",
]


def _check_levels(p) -> int:
    return check_nonnegative_int(p, "pooling levels p")


def _check_values(layer: nn.Module, x: torch.Tensor) -> None:
    """:func:`~deepsphere_gen._validation.check_finite` of a pooling layer's input, named after the layer, where
    the layer's ``check_input`` is on (the default; layers pickled before the option existed check too).
    Cost: one reduction and one host synchronisation, 25-50 % of a pooling's own time on one CPU thread (docs of
    ``check_input``): the models build their poolings with ``check_input=False`` and check their input once."""
    if getattr(layer, "check_input", True):
        check_finite(x, f"{type(layer).__name__} input")


def _check_repr(layer: nn.Module) -> str:
    return "" if getattr(layer, "check_input", True) else ", check_input=False"


def _nested_count_levels(npix: int) -> int | None:
    """n where ``npix`` is a NESTED full sky (12 * 4**n pixels, nside 2**n) or a nested base patch
    (4**n pixels: the descendants of one pixel), else None.  ``int``: under ``torch.jit.trace`` a shape is a
    tensor."""
    npix = int(npix)
    for base in (12, 1):
        if npix >= base and npix % base == 0:
            q = npix // base
            if q & (q - 1) == 0 and (q.bit_length() - 1) % 2 == 0:  # a power of 4
                return (q.bit_length() - 1) // 2
    return None


def _check_count(npix: int, p: int, layer: str) -> None:
    """ValueError unless a map of ``npix`` pixels pools by 4**p into NESTED parents: a full sky 12 * 4**n or a
    nested base patch 4**n with n >= p.  Any other count (a multiple of 4**p included) is a partial sky whose
    consecutive pixels need not be siblings: reshaping it would group pixels of different parents."""
    n = _nested_count_levels(npix)
    if p == 0 or (n is not None and n >= p):  # p = 0: groups of one pixel, any count
        return
    if n is None:
        raise ValueError(
            f"input has {npix} pixels, neither a NESTED full sky (12 * 4**n pixels) nor a nested base patch (4**n "
            f"pixels): {layer} groups each {4**p} consecutive pixels, which are siblings only in those (use "
            "HealpixPartialPool for a partial sky)"
        )
    what = f"a full sky at nside {2**n}" if npix % 3 == 0 else f"a nested patch of 4**{n} pixels"
    raise ValueError(f"input has {npix} pixels, {what}: too few to pool by 4**p = {4**p} ({layer}(p={p}))")


def _check_npix(npix, p: int, layer: str) -> int | None:
    """A pooling layer's ``npix`` (None: any count of :func:`_check_count`), checked as its inputs are."""
    if npix is None:
        return None
    npix = check_positive_int(npix, "npix")
    _check_count(npix, p, layer)
    return npix


def _groups(x: torch.Tensor, f: int) -> torch.Tensor:
    """(batch, pixels, channels) -> (batch, pixels / f, f, channels); pixels a multiple of f (the callers'
    checks: :func:`_check_count`, or the complete groups :class:`HealpixPartialPool` keeps)."""
    B, P, C = x.shape
    return x.reshape(B, P // f, f, C)


def _max_groups(x: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over each group of ``f`` consecutive pixels of x (batch, pixels, channels): values and
    argmax positions along x's pixel axis, both (batch, pixels / f, channels); the first maximum
    wins ties, as in ``torch.max``.

    One ``max_pool2d`` over x seen as a (batch, channels, pixels, 1) image, channels-last for a
    contiguous x: a single pass vectorised over channels, and a backward that writes the input
    gradient in one pass.  ``torch.max`` over the group axis of (batch, pixels / f, f, channels),
    used before, is a strided reduction: on one CPU thread, 32 maps of 4,524 pixels and 16
    channels, forward 8.0 -> 1.5 ms, forward + backward 10.7 -> 3.3 ms; values, indices and
    gradients are the same bits (tests/nn/test_pooling.py).  Boolean maps, which ``max_pool2d``
    does not take, use ``torch.max`` over the groups.
    """
    groups = _groups(x, f)
    B, Q, _, C = groups.shape
    if x.dtype == torch.bool:
        y, arg = groups.max(dim=2)
        return y, arg + torch.arange(0, Q * f, f, device=x.device).view(1, -1, 1)
    image = x.contiguous().view(B, Q * f, 1, C).permute(0, 3, 1, 2)  # channels-last (B, C, P, 1)
    y, arg = F.max_pool2d(image, (f, 1), (f, 1), return_indices=True)
    # (B, C, Q, 1) -> contiguous (B, Q, C), the layout of torch.max's results (no copy: channels-last)
    return y.permute(0, 2, 3, 1).contiguous().view(B, Q, C), arg.permute(0, 2, 3, 1).contiguous().view(B, Q, C)


def _scatter_max(y: torch.Tensor, indices: torch.Tensor, npix_out: int) -> torch.Tensor:
    """Zeros (batch, npix_out, channels) with y placed at ``indices`` along the pixel axis."""
    check_pixels(y, None)
    if indices.shape != y.shape:
        raise ValueError(f"indices shape {tuple(indices.shape)} differs from input shape {tuple(y.shape)}")
    out = y.new_zeros(y.shape[0], npix_out, y.shape[2])
    return out.scatter(1, indices, y)


def _check_argmax(y: torch.Tensor, indices, npix_out: int, parent, layer: str, advice=None) -> None:
    """ValueError unless ``indices`` (B, P, C) hold, at each coarse pixel q of ``y`` (B, P, C), a fine position in
    [0, ``npix_out``) whose ``parent`` (a function of a tensor of fine positions) is q: the argmax the max pooling
    ``layer`` gives (the message names it, then ``advice``, a string or a function of the coarse pixel q).
    The check of every max unpooling: out-of-range indices are not handed to torch (an index error, or a map
    scattered to the wrong pixels).  One pass over the indices, one host sync."""
    check_pixels(y, None)
    check_tensor(indices, "indices")
    if indices.shape != y.shape:
        raise ValueError(f"indices shape {tuple(indices.shape)} differs from input shape {tuple(y.shape)}")
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"indices must be integer (int64) pixel positions, got dtype {indices.dtype}")
    inside = (indices >= 0) & (indices < npix_out)
    q = torch.arange(y.shape[1], device=indices.device).view(1, -1, 1)
    bad = ~inside | (parent(indices.clamp(0, max(npix_out - 1, 0))) != q)
    if not bool(bad.any()):  # the one host sync
        return
    b, q, c = (int(v) for v in bad.nonzero()[0])
    i = int(indices[b, q, c])
    where = f"outside the fine map's {npix_out} pixels" if not 0 <= i < npix_out else "not one of its children"
    advice = advice(q) if callable(advice) else advice
    raise ValueError(f"indices are not the argmax of {layer} of this map: index {i} at coarse pixel {q} is {where}"
                     + (f" {advice}" if advice else ""))


def _healpix_argmax(y: torch.Tensor, indices, p: int) -> None:
    """:func:`_check_argmax` of :class:`HealpixMaxPool`'s indices: coarse pixel q's children are q * 4**p ...
    (q + 1) * 4**p - 1."""
    f = 4**p
    _check_argmax(y, indices, y.shape[1] * f, lambda i: torch.div(i, f, rounding_mode="floor"),
                  f"HealpixMaxPool(p={p})", lambda q: f"(its children: {q * f}..{(q + 1) * f - 1}; indices of a partial-sky "
                  "pooling, HealpixPartialPool / partial_sky_pool, count the partial map's pixels: unpool them with "
                  "HealpixPartialUnpool(sampling, p, mode='max'))")


class HealpixMaxPool(nn.Module):
    """Max over the 4**p children of each parent: (B, P, C) -> (B, P / 4**p, C), NESTED pixels
    on axis 1 (channels LAST: a channels-first (B, C, P) tensor whose C is 12 * 4**n or 4**n
    would be pooled over its channels; give ``npix`` to have that refused).  P must be a full
    sky, 12 * 4**n, or a nested base patch, 4**n (n >= p): other counts, multiples of 4**p
    included, are refused (a partial sky's consecutive pixels need not be siblings; pool it with
    :class:`HealpixPartialPool`).

    With ``return_indices`` also returns the argmax as fine-pixel positions (B, P / 4**p, C),
    the input of :class:`HealpixMaxUnpool`.  ``npix`` (optional): the input's pixel count P,
    checked on every call (the models pass it).  ``check_input``: refuse NaN / inf / UNSEEN values
    (ValueError, as ChebConv does); one reduction and one host synchronisation per call, 25-50 % of
    the pooling's own time on one CPU thread: the models, which check their input once, turn it off.
    """

    def __init__(self, p: int = 1, return_indices: bool = False, npix: int | None = None, check_input: bool = True):
        super().__init__()
        self.p, self.return_indices = _check_levels(p), bool(return_indices)
        self.npix = _check_npix(npix, self.p, "HealpixMaxPool")
        self.check_input = bool(check_input)

    def forward(self, x: torch.Tensor):
        check_pixels(x, getattr(self, "npix", None), what="the layer's")  # getattr: layers pickled before npix existed
        _check_count(x.shape[1], self.p, "HealpixMaxPool")
        _check_values(self, x)
        y, arg = _max_groups(x, 4**self.p)
        return (y, arg) if self.return_indices else y

    def extra_repr(self) -> str:
        return (f"p={self.p}, return_indices={self.return_indices}" + (f", npix={self.npix}" if self.npix else "")
                + _check_repr(self))


class HealpixAvgPool(nn.Module):
    """Mean over the 4**p children of each parent (equals ``healpy.ud_grade`` in NESTED order):
    (B, P, C) -> (B, P / 4**p, C), channels last; ``npix`` and the pixel counts P taken as in
    :class:`HealpixMaxPool`, and so is ``check_input``."""

    def __init__(self, p: int = 1, npix: int | None = None, check_input: bool = True):
        super().__init__()
        self.p = _check_levels(p)
        self.npix = _check_npix(npix, self.p, "HealpixAvgPool")
        self.check_input = bool(check_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pixels(x, getattr(self, "npix", None), what="the layer's")
        _check_count(x.shape[1], self.p, "HealpixAvgPool")
        _check_values(self, x)
        return _groups(x, 4**self.p).mean(dim=2)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (f", npix={self.npix}" if self.npix else "") + _check_repr(self)


class HealpixUnpool(nn.Module):
    """Copy each pixel to its 4**p children: (B, P, C) -> (B, P * 4**p, C).

    ``mode="repeat"`` (nearest-neighbour upsampling) is the only mode; the adjoint of
    average pooling up to the factor 4**p.  Any P is right (unlike pooling): the children of
    NESTED-sorted parents, 4**p consecutive per parent, are the fine map of those parents in
    NESTED order, a partial sky's included (the map :class:`HealpixPartialUnpool` gives where its
    pooling dropped nothing).  ``check_input`` as in :class:`HealpixMaxPool`.
    """

    def __init__(self, p: int = 1, mode: str = "repeat", check_input: bool = True):
        super().__init__()
        if mode != "repeat":
            raise ValueError(f"unknown unpool mode {mode!r}; use 'repeat' (or HealpixMaxUnpool)")
        self.p, self.mode, self.check_input = _check_levels(p), mode, bool(check_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pixels(x, None)
        _check_values(self, x)
        return torch.repeat_interleave(x, 4**self.p, dim=1)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}" + _check_repr(self)


class HealpixMaxUnpool(nn.Module):
    """Place each value at the child its max pooling came from, zeros elsewhere: values (B, P, C) and the
    indices (B, P, C) of :class:`HealpixMaxPool` ``(p, return_indices=True)`` -> (B, P * 4**p, C).

    Indices that are not each value's own children (those of another ``p``, out of range, or a partial-sky
    pooling's, :class:`HealpixPartialPool` / :func:`partial_sky_pool`, which count the partial fine map's pixels:
    unpool those with :class:`HealpixPartialUnpool`) are a ValueError, not a torch index error or a map silently
    scattered wrong.  That check, and the values' (NaN / inf / UNSEEN refused, as in :class:`HealpixMaxPool`), cost
    one pass over the indices and the values and two host synchronisations: ``check_input=False`` skips them where a
    model passes the indices of its own pooling.
    """

    def __init__(self, p: int = 1, check_input: bool = True):
        super().__init__()
        self.p, self.check_input = _check_levels(p), bool(check_input)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if getattr(self, "check_input", True):  # a layer pickled before the option checks
            _check_values(self, x)
            _healpix_argmax(x, indices, self.p)
        return _scatter_max(x, indices, x.shape[1] * 4**self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}" + _check_repr(self)


def partial_sky_pool(sampling: HealpixSampling, p: int = 1, warn: bool = True):
    """Plan pooling of a partial-sky map by 4**p.

    Returns ``(coarse, keep)``: the sampling at nside / 2**p made of the parents whose
    4**p children are all present, and ``keep`` (int64, coarse.npix * 4**p) the positions,
    in the fine map, of those children (grouped by parent).  Warns how many fine pixels
    were dropped (those whose parent is incomplete).
    """
    check_sampling(sampling, HealpixSampling)
    p = _check_levels(p)
    coarse, keep = sampling.coarsen(p)
    dropped = int((~keep).sum())
    if dropped and warn:
        warnings.warn(
            f"partial-sky pooling nside {sampling.nside} -> {coarse.nside}: dropped {dropped} of "
            f"{sampling.npix} pixels whose parent is incomplete",
            stacklevel=2,
        )
    return coarse, np.flatnonzero(keep).astype(np.int64)


def partial_sky_pool_plan(sampling: HealpixSampling, n_blocks: int, may_pool=None):
    """Poolings by 4 after each of ``n_blocks`` blocks of a graph network on the partial sky ``sampling``
    (what :class:`HealpixPartialPool` does at each): by 4 while nside >= 2, some parent pixel has all 4 children
    in the map (the pooling fails otherwise) and ``may_pool(block, coarse)`` (default: always; ``coarse`` the
    sampling that pooling would give), then none: a fragmented footprint stops pooling instead of failing.

    Returns ``(plan, steps)``: ``plan`` one 1 or 0 per block (1s, then 0s); ``steps`` one ``(nside, pixels,
    parents)`` per pooling done: the nside and pixel count before it, the complete parents it keeps (the
    pixels after it; it drops ``pixels - 4 * parents``).  One ``coarsen(1)`` per block (O(pixels))."""
    check_sampling(sampling, HealpixSampling)
    n_blocks = check_nonnegative_int(n_blocks, "n_blocks")
    plan, steps = [], []
    for block in range(n_blocks):
        coarse = None
        if sampling.nside >= 2 and len(plan) == len(steps):  # pooled after every block so far
            try:
                coarse = sampling.coarsen(1)[0]
            except ValueError:  # no complete parent
                coarse = None
        if coarse is None or (may_pool is not None and not may_pool(block, coarse)):
            plan.append(0)
            continue
        steps.append((sampling.nside, sampling.npix, coarse.npix))
        plan.append(1)
        sampling = coarse
    return tuple(plan), steps


class HealpixPartialPool(nn.Module):
    """Max or average pooling by 4**p of a partial-sky map on ``sampling``.

    Keeps only the parents whose children are all present (see :func:`partial_sky_pool`);
    ``self.coarse`` is the output sampling.  (B, sampling.npix, C) -> (B, coarse.npix, C).
    ``check_input`` as in :class:`HealpixMaxPool`.
    """

    def __init__(self, sampling: HealpixSampling, p: int = 1, mode: str = "max", return_indices: bool = False,
                 check_input: bool = True):
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"unknown pooling mode {mode!r}; use 'max' or 'avg'")
        if return_indices and mode != "max":
            raise ValueError("return_indices needs mode='max'")
        self.p, self.mode, self.return_indices = _check_levels(p), mode, bool(return_indices)
        self.check_input = bool(check_input)
        self.npix_in = check_sampling(sampling, HealpixSampling).npix
        self.coarse, keep = partial_sky_pool(sampling, self.p)
        self.dropped = self.npix_in - keep.size
        self.register_buffer("keep", torch.from_numpy(keep), persistent=False)
        if mode == "max" and self.dropped:  # the compiled max pooling's other operand: pixels no parent keeps
            self.register_buffer("_dropped", torch.from_numpy(np.setdiff1d(np.arange(self.npix_in), keep)),
                                 persistent=False)
            _pool_native.check_groups(self._groups, self._dropped, self.npix_in)

    def forward(self, x: torch.Tensor):
        check_pixels(x, self.npix_in, what="the partial-sky sampling's")
        _check_values(self, x)
        if self.mode == "max" and self.dropped and not self.return_indices and _pool_native.usable(x, self._groups):
            return _pool_native.gather_max(x, self._groups, self._dropped, self._torch_forward)
        return self._torch_forward(x)

    @property
    def _groups(self) -> torch.Tensor:
        """(coarse pixels, 4**p) positions of the kept children by parent: a view of ``keep``."""
        return self.keep.view(-1, 4**self.p)

    def _torch_forward(self, x: torch.Tensor):
        """The pooling with torch operations: gather of the kept children, then the pooling."""
        xs = x if self.dropped == 0 else x.index_select(1, self.keep)
        f = 4**self.p
        if self.mode == "avg":  # the kept children come in complete groups whatever their count: no _check_count
            return _groups(xs, f).mean(dim=2)
        y, idx = _max_groups(xs, f)
        if not self.return_indices:
            return y
        return (y, self.keep[idx]) if self.dropped else (y, idx)

    def extra_repr(self) -> str:
        return (f"p={self.p}, mode={self.mode!r}, pixels {self.npix_in} -> {self.coarse.npix}, dropped={self.dropped}"
                + _check_repr(self))


class HealpixPartialUnpool(nn.Module):
    """Inverse of :class:`HealpixPartialPool` on the fine ``sampling``: (B, coarse.npix, C) -> (B, sampling.npix, C).

    ``mode="repeat"`` copies each parent to its children; ``mode="max"`` takes the indices
    returned by the max pooling (positions in the partial fine map; others, out of range included, are a
    ValueError).  Fine pixels that pooling dropped get zeros.  ``check_input`` as in :class:`HealpixMaxPool`
    (and :class:`HealpixMaxUnpool`'s for the indices).
    """

    def __init__(self, sampling: HealpixSampling, p: int = 1, mode: str = "repeat", check_input: bool = True):
        super().__init__()
        if mode not in ("repeat", "max"):
            raise ValueError(f"unknown unpool mode {mode!r}; use 'repeat' or 'max'")
        self.p, self.mode, self.check_input = _check_levels(p), mode, bool(check_input)
        self.npix_out = check_sampling(sampling, HealpixSampling).npix
        self.coarse, keep = partial_sky_pool(sampling, self.p, warn=False)
        self.dropped = self.npix_out - keep.size
        self.register_buffer("keep", torch.from_numpy(keep), persistent=False)
        parent = torch.full((self.npix_out,), -1, dtype=torch.int64)  # coarse pixel of each fine one, -1: dropped
        parent[self.keep] = torch.arange(keep.size) // 4**self.p
        self.register_buffer("parent", parent, persistent=False)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        check_pixels(x, None)
        if x.shape[1] != self.coarse.npix:
            raise ValueError(f"input has {x.shape[1]} pixels, the coarse sampling has {self.coarse.npix}")
        _check_values(self, x)
        if self.mode == "max":
            if indices is None:
                raise ValueError("mode='max' unpooling needs the indices returned by the max pooling")
            if getattr(self, "check_input", True):
                _check_argmax(x, indices, self.npix_out, self.parent.__getitem__, f"HealpixPartialPool(p={self.p})")
            return _scatter_max(x, indices, self.npix_out)
        y = torch.repeat_interleave(x, 4**self.p, dim=1)
        if self.dropped == 0:
            return y
        out = y.new_zeros(y.shape[0], self.npix_out, y.shape[2])
        return out.index_copy(1, self.keep, y)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}, pixels {self.coarse.npix} -> {self.npix_out}" + _check_repr(self)


def _grid_shape(grid, p: int) -> tuple[int, int]:
    """(ntheta, nphi) of a grid that pools by 2**p x 2**p blocks, or a ValueError saying what is true of
    ``grid``: a :class:`~deepsphere_gen.sampling.DriscollHealySampling` needs L divisible by 2**p (its
    2L x 2L grid then pools onto DH(L / 2**p); another L gives a grid that is no DH); another
    :class:`~deepsphere_gen.sampling.EquiangularSampling` or an ``(ntheta, nphi)`` pair needs both sizes
    divisible by 2**p.  A Gauss-Legendre grid fails that test for every p, a McEwen-Wiaux one is no
    (ntheta, nphi) grid: the message then says why they never pool (:func:`_unpoolable`)."""
    f = 2**p
    if isinstance(grid, DriscollHealySampling) and grid.L % f:
        raise ValueError(f"{grid!r}: DH(L) pools onto DH(L / 2**p) only for L divisible by 2**p = {f} (p={p}); "
                         f"L = {grid.L} would give a {2 * grid.L // f} x {2 * grid.L // f} grid that is no "
                         "Driscoll-Healy grid")
    shape = getattr(grid, "shape", grid)
    try:
        nt, nphi = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError("grid must be a Driscoll-Healy or other EquiangularSampling, or (ntheta, nphi), got "
                         f"{grid!r}{_unpoolable(grid)}") from None
    if nt % f or nphi % f:
        named = "" if shape is grid else f" ({grid!r})"
        raise ValueError(f"grid {nt} x {nphi}{named} is not divisible by 2**p={f} in both directions{_unpoolable(grid)}")
    return nt, nphi


def _unpoolable(grid) -> str:
    """The end of :func:`_grid_shape`'s message for a grid that never pools by 2 x 2 blocks (Gauss-Legendre,
    McEwen-Wiaux): why, and what pools; "" for other grids."""
    if isinstance(grid, GaussLegendreSampling):
        why = (f"a Gauss-Legendre grid cannot be pooled by 2 x 2 blocks (nphi = 2L-1 = {grid.nphi} is odd, and "
               "GL(L/2)'s nodes are not every other node of GL(L))")
    elif isinstance(grid, McEwenWiauxSampling):
        why = (f"a McEwen-Wiaux grid cannot be pooled by 2 x 2 blocks ((L-1) rings of 2L-1 = {grid.nphi} samples, "
               "odd, and one south-pole sample: no (ntheta, nphi) grid)")
    else:
        return ""
    return f": {why}; pool a DriscollHealySampling (L divisible by 2**p), which maps DH(L) onto DH(L / 2**p)"


class _EquiangularBase(nn.Module):
    """``grid``: a :class:`~deepsphere_gen.sampling.DriscollHealySampling` with L divisible by 2**p (the
    pooled map is then on DH(L / 2**p)), another :class:`~deepsphere_gen.sampling.EquiangularSampling`, or
    ``(ntheta, nphi)``, both divisible by 2**p; Gauss-Legendre and McEwen-Wiaux grids cannot be pooled (a
    ValueError says why: :func:`_grid_shape`).  ``check_input`` as in :class:`HealpixMaxPool` (and
    :class:`HealpixMaxUnpool`'s for the indices)."""

    def __init__(self, grid, p: int = 1, check_input: bool = True):
        super().__init__()
        self.p, self.check_input = _check_levels(p), bool(check_input)
        self.ntheta, self.nphi = _grid_shape(grid, self.p)

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ntheta*nphi, C) -> (B, ntheta/f, nphi/f, f*f, C)."""
        check_pixels(x, None)
        B, P, C = x.shape
        if P != self.ntheta * self.nphi:
            raise ValueError(f"input has {P} pixels, the grid {self.ntheta} x {self.nphi} has {self.ntheta * self.nphi}")
        _check_values(self, x)
        f = 2**self.p
        x = x.reshape(B, self.ntheta // f, f, self.nphi // f, f, C).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(B, self.ntheta // f, self.nphi // f, f * f, C)

    def _coarse(self, x: torch.Tensor) -> None:
        """ValueError unless x is a map on the coarse grid (ntheta / 2**p, nphi / 2**p), values checked."""
        check_pixels(x, None)
        f = 2**self.p
        nt, nph = self.ntheta // f, self.nphi // f
        if x.shape[1] != nt * nph:
            raise ValueError(f"input has {x.shape[1]} pixels, the coarse grid {nt} x {nph} has {nt * nph}")
        _check_values(self, x)

    def extra_repr(self) -> str:
        return f"grid=({self.ntheta}, {self.nphi}), p={self.p}" + _check_repr(self)


class EquiangularMaxPool(_EquiangularBase):
    """Max over 2**p x 2**p (theta, phi) blocks of a ring-major grid map: DH(L) -> DH(L / 2**p)
    (L divisible by 2**p; Gauss-Legendre and McEwen-Wiaux grids cannot be pooled, see ``grid`` of
    :class:`_EquiangularBase`).  Each DH(L / 2**p) pixel sits where the first (north-west: smallest
    theta, smallest phi) fine pixel of its block sits, not at the block's centre: half a fine
    pixel off per level in theta and phi (mind it when aligning a U-Net's skip connections).

    With ``return_indices`` also returns the argmax as fine-pixel positions.
    """

    def __init__(self, grid, p: int = 1, return_indices: bool = False, check_input: bool = True):
        super().__init__(grid, p, check_input)
        self.return_indices = bool(return_indices)

    def forward(self, x: torch.Tensor):
        blocks = self._blocks(x)
        B, nt, nph, _, C = blocks.shape
        y, arg = blocks.max(dim=3)
        y = y.reshape(B, nt * nph, C)
        if not self.return_indices:
            return y
        f = 2**self.p
        it = torch.arange(nt, device=x.device).view(1, nt, 1, 1) * f + torch.div(arg, f, rounding_mode="floor")
        ip = torch.arange(nph, device=x.device).view(1, 1, nph, 1) * f + arg % f
        return y, (it * self.nphi + ip).reshape(B, nt * nph, C)


class EquiangularAvgPool(_EquiangularBase):
    """Mean over 2**p x 2**p (theta, phi) blocks of a ring-major grid map (grids and pixel positions as in
    :class:`EquiangularMaxPool`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self._blocks(x)
        B, nt, nph, _, C = blocks.shape
        return blocks.mean(dim=3).reshape(B, nt * nph, C)


class EquiangularUnpool(_EquiangularBase):
    """Copy each coarse pixel to its 2**p x 2**p block; ``grid`` is the FINE grid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._coarse(x)
        f = 2**self.p
        nt, nph = self.ntheta // f, self.nphi // f
        B, C = x.shape[0], x.shape[2]
        x = x.reshape(B, nt, 1, nph, 1, C).expand(B, nt, f, nph, f, C)
        return x.reshape(B, self.ntheta * self.nphi, C)


class EquiangularMaxUnpool(_EquiangularBase):
    """Place each value at the fine pixel its max pooling came from; ``grid`` is the FINE grid.  Indices that are
    not :class:`EquiangularMaxPool`'s of this grid and p (out of range, or another block's) are a ValueError."""

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        self._coarse(x)
        if getattr(self, "check_input", True):
            f, nphi = 2**self.p, self.nphi
            _check_argmax(x, indices, self.ntheta * nphi,
                          lambda i: torch.div(i, nphi * f, rounding_mode="floor") * (nphi // f)
                          + torch.div(i % nphi, f, rounding_mode="floor"),
                          f"EquiangularMaxPool(({self.ntheta}, {nphi}), p={self.p})")
        return _scatter_max(x, indices, self.ntheta * self.nphi)
