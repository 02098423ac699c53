"""Samplings the graph tests share: a point set (no rings, no cache key: the plain kNN path) and the distinct
points of a sampling as the kNN graph takes them."""
import numpy as np

from deepsphere_gen.graph._poles import distinct_points, pole_rings
from deepsphere_gen.sampling import Sampling


class Points(Sampling):
    """Points at colatitudes ``theta`` and longitudes ``phi`` (radians)."""

    def __init__(self, theta, phi):
        self.theta, self.phi = np.asarray(theta, dtype=float), np.asarray(phi, dtype=float)


def random_points(n: int, seed: int = 0) -> Points:
    """``n`` points uniform on the sphere: no distance ties, so the kNN graph is unique."""
    v = np.random.default_rng(seed).standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return Points(np.arccos(np.clip(v[:, 2], -1, 1)), np.arctan2(v[:, 1], v[:, 0]) % (2 * np.pi))


def distinct_pixels(s) -> np.ndarray:
    """The pixels kept as the distinct points of ``s`` (each pole ring's first pixel), increasing."""
    return distinct_points(s, pole_rings(s))
