"""Exact k-nearest-neighbour search on HEALPix from the grid itself, no k-d tree.

HEALPix neighbourhoods are regular: inside a base face, the pixels within Chebyshev
distance R of pixel (x, y) in the face's (x, y) grid are the (2R + 1)^2 - 1 pixels
(x + dx, y + dy); near a face edge the same ball comes from R rounds of
``healpy.get_all_neighbours``.  The k nearest candidates (by squared chordal distance,
ties broken by the smaller pixel index) are the true k nearest when the k-th candidate is
strictly closer than every pixel of the ball's outer shell (the shell separates the ball
from the rest of the sphere; pixels of the shell outside a partial sky count too).  Pixels
that fail this test (a distorted neighbourhood, the edge of a partial sky) are searched
again in balls one ring larger (up to four), and as a last resort with a k-d tree.  Squared distances are summed over x, y, z in that order, then
square-rooted and squared back, exactly as ``scipy.spatial.cKDTree`` reports them, so the
graphs equal the k-d tree ones bit for bit (tested).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import healpy as hp
import numpy as np
from scipy.spatial import cKDTree

from ..sampling import HealpixSampling

__all__ = ["healpix_knn", "coordinates", "squared_distances", "search_workers"]

_TILE = 16  # the face-grid search guesses the k nearest offsets once per _TILE x _TILE pixels
_CHUNK = 1 << 15  # pixels per chunk: (chunk, (2R+1)^2, 3) float64 temporaries of ~20-60 MB


def coordinates(sampling) -> list[np.ndarray]:
    """x, y, z of the pixels as three contiguous float64 arrays (1-D gathers are ~2.5x
    faster than gathers of (npix, 3) rows), bit-equal to the columns of ``sampling.xyz``
    without making that (npix, 3) array, filled ``sampling.COORD_CHUNK`` pixels at a time
    (default: HEALPix's): a HEALPix sampling then computes each chunk's angles without storing its
    (npix,) theta and phi (16 bytes per pixel)."""
    n = sampling.npix
    step = getattr(sampling, "COORD_CHUNK", HealpixSampling.COORD_CHUNK)
    X = [np.empty(n) for _ in range(3)]
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        for x, part in zip(X, sampling.xyz_of(slice(lo, hi))):
            x[lo:hi] = part
    return X


def squared_distances(X, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """sum over x, y, z (in that order) of (x[col] - x[row])^2, the ranking key of the search
    (the k-d tree's sum, before its square root).  ``X``: :func:`coordinates`; ``rows``,
    ``cols``: index arrays that broadcast together."""
    s = None
    for x in X:
        diff = x[cols]
        diff -= x[rows]
        diff *= diff
        if s is None:
            s = diff  # == 0 + dx^2
        else:
            s += diff
    return s


def _spread(v: np.ndarray) -> np.ndarray:
    """Bits b of v (< 2**29) moved to bit 2b (the NESTED interleaving)."""
    v = v.astype(np.int64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread` on the even bits of v."""
    v = v & 0x5555555555555555
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                        (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)):
        v = (v | (v >> shift)) & mask
    return v


def ball_radius(k: int) -> int:
    """Smallest R whose ball minus its shell (the (2R - 1)^2 - 1 pixels around) holds k pixels."""
    R = 1
    while (2 * R - 1) ** 2 - 1 < k:
        R += 1
    return R


def _face_balls(nside: int, pix: np.ndarray, R: int):
    """Balls inside the faces: (cand (m, M) NESTED indices, shell (M,) bool, ok (m,) bool).

    ``ok`` is False for pixels within R of their face's edge (their rows of ``cand`` are junk).
    """
    ns2 = nside * nside
    face, ipf = np.divmod(pix, ns2)
    x, y = _compact(ipf), _compact(ipf >> 1)
    ok = (x >= R) & (x < nside - R) & (y >= R) & (y < nside - R)
    d = np.arange(-R, R + 1)
    dx, dy = np.repeat(d, d.size), np.tile(d, d.size)
    keep = (dx != 0) | (dy != 0)
    dx, dy = dx[keep], dy[keep]
    shell = np.maximum(np.abs(dx), np.abs(dy)) == R
    xs = np.where(ok, x, R)[:, None] + dx
    ys = np.where(ok, y, R)[:, None] + dy
    cand = (face * ns2)[:, None] + (_spread(xs) | (_spread(ys) << 1))
    return cand, shell, ok


def _pack_rows(vals: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows of ``vals`` restricted to ``keep``, left-aligned, padded with -1."""
    width = int(keep.sum(axis=1).max(initial=0))
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    out = np.take_along_axis(vals, order, axis=1)
    out[~np.take_along_axis(keep, order, axis=1)] = -1
    return out


def _bfs_balls(nside: int, pix: np.ndarray, R: int):
    """Balls of R rounds of 8-neighbour steps: (cand (m, M) with -1 padding, shell (m, M) bool)."""
    m = pix.size
    visited = pix[:, None]
    frontier = pix[:, None]
    for _ in range(R):
        f = np.where(frontier >= 0, frontier, pix[:, None])
        nb = hp.get_all_neighbours(nside, f.ravel(), nest=True).T.reshape(m, -1)
        nb[np.repeat(frontier < 0, 8, axis=1)] = -1
        # new = entries of nb not in visited, deduplicated: sort (value, is_new) per row
        tagged = np.concatenate([visited * 2, nb * 2 + 1], axis=1)
        tagged[tagged < 0] = np.iinfo(np.int64).max
        tagged.sort(axis=1)
        val = tagged >> 1
        first = np.ones(tagged.shape, dtype=bool)
        first[:, 1:] = val[:, 1:] != val[:, :-1]
        new = first & (tagged & 1).astype(bool) & (tagged != np.iinfo(np.int64).max)
        frontier = _pack_rows(val, new)
        visited = np.concatenate([visited, frontier], axis=1)
    cand = visited[:, 1:]
    shell = np.zeros(cand.shape, dtype=bool)
    shell[:, cand.shape[1] - frontier.shape[1]:] = frontier >= 0
    return cand, shell


def _select(i_local, cand_local, shell, X, k, cand_nest=None, nside=None):
    """k nearest candidates by (squared distance, index): (idx (m, k), s (m, k), certified (m,)).

    ``cand_local``: (m, M) local indices, -1 where absent; ``shell``: (M,) or (m, M) bool
    (shell pixels only bound the search); ``X``: :func:`coordinates`.  Partial sky:
    ``cand_nest`` (m, M) NESTED indices (-1: none) and ``nside`` let shell pixels outside the
    sampling bound the search too (their distances from ``healpy.pix2vec``, with a margin).
    """
    m, M = cand_local.shape
    if M < k:  # fewer candidates than k: never certified
        cand_local = np.pad(cand_local, ((0, 0), (0, k - M)), constant_values=-1)
        shell = np.pad(np.broadcast_to(shell, (m, M)), ((0, 0), (0, k - M)))
        if cand_nest is not None:
            cand_nest = np.pad(cand_nest, ((0, 0), (0, k - M)), constant_values=-1)
    present = cand_local >= 0
    c = np.where(present, cand_local, 0)
    s = squared_distances(X, i_local[:, None], c)
    s[~present] = np.inf
    if cand_nest is not None:  # the sky's edge: absent shell pixels are barriers all the same
        shell = np.broadcast_to(shell, s.shape)
        gone = shell & ~present & (cand_nest >= 0)
        if gone.any():
            rows = np.broadcast_to(i_local[:, None], s.shape)[gone]
            v = np.stack(hp.pix2vec(nside, cand_nest[gone], nest=True), axis=-1)
            centre = np.stack([x[rows] for x in X], axis=-1)
            s[gone] = ((v - centre) ** 2).sum(-1) * (1 - 1e-9)  # shell: barrier only, never picked
    return _pick(s, c, shell, k)


def _pick(s, c, shell, k):
    """:func:`_select` from the squared distances ``s`` (m, M) of the candidates ``c`` (m, M)."""
    if shell.ndim == 1:
        barrier = s[:, shell].min(axis=1, initial=np.inf)
        s[:, shell] = np.inf
    else:
        barrier = np.where(shell, s, np.inf).min(axis=1)
        s[shell] = np.inf
    pick = np.argpartition(s, k - 1, axis=1)[:, :k]
    sk = np.take_along_axis(s, pick, axis=1)
    kth = sk.max(axis=1)
    # exact ties at the k-th distance: the smaller indices win (sort those rows fully)
    tie = (s == kth[:, None]).sum(axis=1) > (sk == kth[:, None]).sum(axis=1)
    if tie.any():
        ct = np.where(np.isfinite(s[tie]), c[tie], np.iinfo(np.int64).max)
        order = np.argsort(ct, axis=1, kind="stable")
        st = np.take_along_axis(s[tie], order, axis=1)
        pt = np.take_along_axis(order, np.argsort(st, axis=1, kind="stable")[:, :k], axis=1)
        pick[tie] = pt
        sk[tie] = np.take_along_axis(s[tie], pt, axis=1)
    certified = np.isfinite(kth) & (kth < barrier)
    return np.take_along_axis(c, pick, axis=1), sk, certified


def _face_grid_knn(nside: int, X, k: int, out: "_Out") -> np.ndarray:
    """Full sky: the ball search of every pixel at least R from its face's edge, as array
    slices of the face's (x, y) grid (no gathers).  Fills ``out``; returns the done mask.

    Per tile of the grid, the k offsets nearest to the tile's middle pixel are a guess
    that each pixel verifies with two reductions (its guessed distances all strictly below
    every other candidate's and the shell's); pixels where it fails are ranked fully.
    """
    ns2 = nside * nside
    sp = _spread(np.arange(nside))
    grid = sp[:, None] | (sp[None, :] << 1)  # (x, y) -> NESTED index within the face
    done = np.zeros(12 * ns2, dtype=bool)
    R0 = ball_radius(k)

    def one_face(face):
        R = R0 + int(face < 4 or face > 7)  # distorted polar faces: one ring more
        if nside <= 2 * R:
            return
        d = np.arange(-R, R + 1)
        offsets = [(a, b) for a in d for b in d if a or b]
        M = len(offsets)
        shell = np.array([max(abs(a), abs(b)) == R for a, b in offsets])
        G = [x[face * ns2 + grid] for x in X]  # (nside, nside) coordinate grids
        ys = slice(R, nside - R)
        for x0 in range(R, nside - R, _TILE):
            x1 = min(nside - R, x0 + _TILE)
            s = np.zeros((M, x1 - x0, nside - 2 * R))
            diff = np.empty(s.shape[1:])
            for o, (a, b) in enumerate(offsets):
                for g in G:  # x, y, z in this order, as the k-d tree does
                    np.subtract(g[x0 + a : x1 + a, R + b : nside - R + b], g[x0:x1, ys], out=diff)
                    diff *= diff
                    s[o] += diff
            cand = np.stack([grid[x0 + a : x1 + a, R + b : nside - R + b] for a, b in offsets])
            cand += face * ns2
            centre = face * ns2 + grid[x0:x1, ys]
            for y0 in range(0, nside - 2 * R, _TILE):  # one guess per tile of _TILE x _TILE pixels
                st = s[:, :, y0 : y0 + _TILE]
                mid = st[~shell, st.shape[1] // 2, st.shape[2] // 2]
                guess = np.flatnonzero(~shell)[np.argsort(mid, kind="stable")[:k]]
                rest = np.ones(M, dtype=bool)
                rest[guess] = False
                sg = st[guess]
                ok = sg.max(axis=0) < st[rest].min(axis=0)
                ct = cand[:, :, y0 : y0 + _TILE]
                sel = centre[:, y0 : y0 + _TILE][ok]
                out.put(sel, ct[guess][:, ok].T, sg[:, ok].T)
                done[sel] = True
                if not ok.all():
                    bad = ~ok
                    j, sk, cert = _pick(np.ascontiguousarray(st[:, bad].T), np.ascontiguousarray(ct[:, bad].T),
                                        shell, k)
                    sel = centre[:, y0 : y0 + _TILE][bad][cert]
                    out.put(sel, j[cert], sk[cert])
                    done[sel] = True

    # the faces fill disjoint rows; numpy releases the GIL in the array arithmetic
    with ThreadPoolExecutor(max_workers=search_workers()) as pool:
        list(pool.map(one_face, range(12)))
    return done


def search_workers() -> int:
    """Threads of the full-sky search (one face each): the usable CPUs, at most 12."""
    return max(1, min(12, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class _Out:
    """Where the searches put their results: the neighbours, and each row's k-th (largest)
    (squared distance, index) pair, the key of the symmetrisation."""

    def __init__(self, idx: np.ndarray):
        self.idx = idx
        self.kth = np.empty(idx.shape[0])
        self.last = np.empty(idx.shape[0], dtype=np.int64)

    def put(self, rows, j, s) -> None:
        self.idx[rows] = j
        kth = s.max(axis=1)
        self.kth[rows] = kth
        self.last[rows] = np.where(s == kth[:, None], j, -1).max(axis=1)


def healpix_knn(sampling, k: int, idx: np.ndarray | None = None, X=None):
    """k nearest other pixels of every pixel of a (full or partial sky) HEALPix sampling.

    Fills ``idx`` ((npix, k) int32 local neighbour indices, any order within a row; allocated
    if None) and returns ``(kth, last)``: each row's k-th (largest) squared chordal distance
    (summed over x, y, z in that order; the k-d tree reports its square root) and the
    largest neighbour index at that distance.  j is among i's neighbours iff
    ``(s_ij, j) <= (kth[i], last[i])``.  Cost O(npix (2R + 1)^2) with R = :func:`ball_radius`;
    memory: ``idx``, 12 bytes per pixel, the coordinates (``X``: :func:`coordinates` if
    already computed) and a chunk.
    """
    nside, n = sampling.nside, sampling.npix
    X = coordinates(sampling) if X is None else X
    full = sampling.is_full_sky
    if full:
        to_local = None
    else:
        to_local = np.full(sampling.npix_full, -1, dtype=np.int64)
        to_local[sampling.indices] = np.arange(n)

    def local(nest):
        if full:
            return nest
        return np.where(nest >= 0, to_local[np.maximum(nest, 0)], -1)

    if idx is None:
        idx = np.empty((n, k), dtype=np.int32 if n < 2**31 else np.int64)
    out = _Out(idx)
    R0 = ball_radius(k)
    todo_all = [np.flatnonzero(~_face_grid_knn(nside, X, k, out))] if full else []
    for s0 in range(0, 0 if full else n, _CHUNK):  # partial sky: balls gathered pixel by pixel
        rows = np.arange(s0, min(n, s0 + _CHUNK))
        pix = sampling.indices[rows]
        face = pix // (nside * nside)
        polar = (face < 4) | (face > 7)  # distorted pixels near the poles: one ring more
        done = np.zeros(rows.size, dtype=bool)
        for extra in (0, 1, 2):
            for group in (~polar, polar):
                R = R0 + extra + int(group is polar)
                sel = np.flatnonzero(group & ~done)
                if sel.size == 0 or nside <= 2 * R:
                    continue
                cand, shell, ok = _face_balls(nside, pix[sel], R)
                sel, cand = sel[ok], cand[ok]
                j, s, cert = _select(rows[sel], local(cand), shell, X, k, None if full else cand, nside)
                out.put(rows[sel[cert]], j[cert], s[cert])
                done[sel[cert]] = True
        todo_all.append(rows[~done])
    todo = np.concatenate(todo_all)
    R = R0 + 1
    while todo.size and R <= R0 + 4:  # larger balls from neighbour steps (face edges, distorted spots)
        left = []
        for s0 in range(0, todo.size, _CHUNK // 4):
            rows = todo[s0 : s0 + _CHUNK // 4]
            cand, shell = _bfs_balls(nside, rows if full else sampling.indices[rows], R)
            j, s, cert = _select(rows, local(cand), shell, X, k, None if full else cand, nside)
            out.put(rows[cert], j[cert], s[cert])
            left.append(rows[~cert])
        todo = np.concatenate(left)
        R += 1
    if todo.size:  # e.g. the edge of a small partial sky: a k-d tree over the sampling
        xyz = np.stack(X, axis=1)
        tree = cKDTree(xyz, balanced_tree=False, compact_nodes=False)
        m = min(n, k + 9)  # a margin for ties at the k-th distance
        j = tree.query(xyz[todo], m)[1]
        j = np.where((j == todo[:, None]) | (j >= n), -1, j)
        j, s, _ = _select(todo, j, np.zeros(m, dtype=bool), X, k)
        out.put(todo, j, s)
    return out.kth, out.last
