"""Pixel permutations of the SHT (a sampling's pixels <-> ring-major samples) held as int32.

A HEALPix NESTED map reaches ducc0 through one gather into RING order and comes back
through the inverse gather.  Both permutations are kept as int32 (4 bytes per pixel each,
npix < 2**31 up to nside 8192: 2 x 768 MiB at nside 4096) instead of int64 with an argsort
temporary, and the gathers convert the indices to numpy's intp in chunks of
:data:`CHUNK` (8 MiB of temporaries) with ``mode="clip"``: numpy's default ``mode="raise"``
copies the whole output through a buffer when ``out=`` is given, and an int32 index array
handed to ``np.take`` whole is first copied to intp (8 bytes per pixel).  The indices are
checked once (:func:`check_permutation`: in range; :func:`inverse_permutation`: each
once), so clipping never changes a value.
"""
from __future__ import annotations

import math

import numpy as np

from .._memory import index_dtype

__all__ = ["CHUNK", "check_permutation", "inverse_permutation", "gather", "is_identity"]

#: indices converted to intp per ``np.take`` call (bounds the temporaries: 8 MiB)
CHUNK = 1 << 20


def check_permutation(order, n: int, label: str) -> np.ndarray:
    """``order`` as a 1-D int32 array (int64 when n >= 2**31), after checking that it has n
    integer entries in [0, n) (ValueError naming ``label`` otherwise).  No copy when it is
    int32 already; O(n) time, no full-size temporary."""
    a = np.asarray(order)
    if a.ndim != 1 or a.size != n or a.dtype.kind not in "iu":
        raise ValueError(f"{label}: rings.order must be {n} integer pixel indices, got dtype {a.dtype} shape {a.shape}")
    if n and (int(a.min()) < 0 or int(a.max()) >= n):
        raise ValueError(f"{label}: rings.order holds pixel indices outside [0, {n})")
    return a.astype(index_dtype(n), copy=False)


def is_identity(order: np.ndarray) -> bool:
    """Whether ``order[i] == i`` for every i, compared chunk by chunk (no arange of full size)."""
    n = order.size
    return all(np.array_equal(order[lo : lo + CHUNK], np.arange(lo, min(lo + CHUNK, n))) for lo in range(0, n, CHUNK))


def inverse_permutation(order: np.ndarray) -> np.ndarray:
    """``inv`` with ``inv[order[i]] = i`` (equal to ``np.argsort(order)`` for a permutation), in
    ``order``'s dtype, by chunked scatters (no argsort temporaries).  ValueError where ``order``
    (checked in range by :func:`check_permutation`) repeats an index, i.e. misses another: a
    slot no index writes would otherwise hold garbage that the clipped gathers would read."""
    inv = np.full_like(order, -1)
    for lo in range(0, order.size, CHUNK):
        hi = min(lo + CHUNK, order.size)
        inv[order[lo:hi]] = np.arange(lo, hi, dtype=order.dtype)
    missing = np.flatnonzero(inv < 0)
    if missing.size:
        raise ValueError(f"rings.order is not a permutation: {missing.size} pixel(s) never appear (e.g. "
                         f"{missing[0]}), as many indices repeat")
    return inv


def gather(src: np.ndarray, index: np.ndarray, axis: int, out: np.ndarray | None = None) -> np.ndarray:
    """``np.take(src, index, axis)`` for indices known to lie in range (:func:`check_permutation`),
    into ``out`` (fresh when None, C-contiguous when given); ``index`` converted to intp
    :data:`CHUNK` entries at a time.  Several chunks with leading axes: one gather per leading
    index (each chunk of ``out`` contiguous, not copied through a buffer)."""
    if out is None:
        shape = list(src.shape)
        shape[axis] = index.size
        out = np.empty(shape, dtype=src.dtype)
    n = index.size
    if n <= CHUNK:  # one chunk: one np.take (an int32 index converted by numpy; no Python loop per call)
        return np.take(src, index, axis=axis, out=out, mode="clip")
    if axis > 0 and math.prod(src.shape[:axis]) > 1:
        leads = list(np.ndindex(*src.shape[:axis]))
        for lo in range(0, n, CHUNK):  # each index chunk converted once for every leading index
            hi = min(lo + CHUNK, n)
            idx = index[lo:hi].astype(np.intp, copy=False)
            for lead in leads:
                np.take(src[lead], idx, axis=0, out=out[lead][lo:hi], mode="clip")
        return out
    head = (slice(None),) * axis
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        np.take(src, index[lo:hi].astype(np.intp, copy=False), axis=axis, out=out[head + (slice(lo, hi),)], mode="clip")
    return out
