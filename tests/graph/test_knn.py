import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.graph import kernel_width, knn_distances, knn_graph
from deepsphere_gen.sampling import (
    DriscollHealySampling,
    GaussLegendreSampling,
    HealpixSampling,
    McEwenWiauxSampling,
)

from ._points import random_points


def brute_force_graph(xyz, k, sigma):
    d2 = np.sum((xyz[:, None, :] - xyz[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(d2, np.inf)
    nn = np.argsort(d2, axis=1)[:, :k]
    A = np.zeros_like(d2)
    rows = np.arange(len(xyz))[:, None]
    A[rows, nn] = np.exp(-np.log(2) * d2[rows, nn] / sigma**2)
    return np.maximum(A, A.T)


def check_graph(W, k):
    n = W.shape[0]
    assert W.format == "csr" and W.has_sorted_indices
    assert abs(W - W.T).max() == 0  # exactly symmetric
    assert np.all(W.diagonal() == 0)
    assert np.diff(W.indptr).min() >= k
    assert np.all(W.data > 0) and np.all(W.data <= 1)
    assert W.shape == (n, n)


@pytest.mark.parametrize("k", [1, 8, 20])
def test_matches_brute_force_on_random_points(k):
    s = random_points(400)
    sigma = 0.15
    W = knn_graph(s, k=k, sigma=sigma)
    check_graph(W, k)
    np.testing.assert_allclose(W.toarray(), brute_force_graph(s.xyz, k, sigma), rtol=1e-12, atol=0)
    assert W.nnz > 400 * k  # some non-mutual pairs were added in the reverse direction


def test_healpix_distances_are_the_k_smallest():
    s = HealpixSampling(8)
    xyz = s.xyz
    idx, d2 = knn_distances(xyz, 20)
    full = np.sum((xyz[:, None] - xyz[None]) ** 2, axis=-1)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(d2, np.sort(full, axis=1)[:, :20], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(d2, np.take_along_axis(full, idx.astype(np.int64), axis=1), rtol=1e-12)
    assert np.all(np.diff(d2, axis=1) >= 0)
    W = knn_graph(s, 20)
    check_graph(W, 20)
    # weights are the Gaussian kernel of the chordal distance with the default width
    rows = np.repeat(np.arange(s.npix), np.diff(W.indptr))
    d2w = np.sum((xyz[rows] - xyz[W.indices]) ** 2, axis=1)
    np.testing.assert_allclose(W.data, np.exp(-np.log(2) * d2w / kernel_width(8, 20) ** 2), rtol=1e-12)


def test_healpix_k8_mostly_the_healpy_neighbours():
    """k=8: on average > 95 % of healpy's (7 or) 8 neighbours are among a pixel's 8 nearest,
    and every pixel has at least 6 of them (the diagonal neighbours across a base-face
    corner can be farther than a second-ring pixel)."""
    nside = 16
    idx, _ = knn_distances(HealpixSampling(nside).xyz, 8)
    nb = hp.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True).T
    frac = np.array([len(set(nb[i][nb[i] >= 0]) & set(idx[i])) / np.sum(nb[i] >= 0) for i in range(len(nb))])
    assert frac.mean() > 0.95
    assert frac.min() >= 0.75
    # the 4 edge-sharing neighbours (healpy's SW, NW, NE, SE) are always among the 8 nearest
    edge = nb[:, [0, 2, 4, 6]]
    assert all(set(edge[i]) <= set(idx[i]) for i in range(len(nb)))


def test_partial_sky_contains_the_restricted_full_graph():
    nside, k = 32, 20
    full = knn_graph(HealpixSampling(nside), k)
    part_s = HealpixSampling.base_patch(nside, 0, 7)
    part = knn_graph(part_s, k)
    check_graph(part, k)
    sub = full[part_s.indices][:, part_s.indices]
    # every full-sky edge between two patch pixels is in the patch graph, with the same weight
    diff = part.multiply(sub > 0) - sub
    assert abs(diff).max() == 0
    # deep in the patch (3 hops from the border), rows are identical
    inside = np.zeros(12 * nside**2, bool)
    inside[part_s.indices] = True
    A = (full > 0).astype(np.int64)
    border = ~inside
    for _ in range(3):
        border = border | ((A @ border.astype(np.int64)) > 0)
    deep = np.flatnonzero(~border[part_s.indices])
    assert deep.size > 200
    assert abs(part[deep] - sub[deep]).max() == 0


@pytest.mark.parametrize(
    "sampling",
    [HealpixSampling(4), DriscollHealySampling(8), GaussLegendreSampling(8), McEwenWiauxSampling(8),
     HealpixSampling(8, mask=np.arange(768) % 3 == 0)],
    ids=["healpix", "dh", "gl", "mw", "healpix-mask"],
)
def test_any_sampling(sampling):
    W = knn_graph(sampling, 8)
    check_graph(W, 8)
    assert W.shape == (sampling.npix, sampling.npix)


def test_coincident_points_no_self_loops():
    # Driscoll-Healy's theta = 0 ring is 2L copies of the north pole
    s = DriscollHealySampling(4)
    W = knn_graph(s, 10)
    check_graph(W, 10)
    pole = np.arange(8)
    assert W[pole][:, pole].nnz == 0  # the copies share the pole's edges, not linked to each other (test_poles.py)


def test_errors():
    s = HealpixSampling(1)
    with pytest.raises(ValueError, match="k=12"):
        knn_graph(s, 12)
    with pytest.raises(ValueError, match="k=20"):
        knn_graph(s, 20)
    knn_graph(s, 11)
    with pytest.raises(ValueError, match="sigma"):
        knn_graph(s, 4, sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        knn_graph(s, 4, sigma=np.nan)
    with pytest.raises(ValueError, match="k"):
        knn_graph(s, 0)
