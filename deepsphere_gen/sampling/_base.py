"""Common interface of every sampling: where the pixels are, their rings and quadrature.

A sampling that declares its rings (:meth:`Sampling.rings`: colatitudes, samples per ring,
first longitudes, pixel order, and either per-ring quadrature weights or the name of an
exact theta rule) and its largest bandlimit (:attr:`Sampling.max_bandlimit`) gets the
spherical harmonic transforms of :mod:`deepsphere_gen.harmonic` without any edit there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Sampling", "Rings", "check_sampling"]


class _MadeOnFirstRead:
    """Data descriptor of a dataclass field given either its value or a zero-argument function
    that makes it: the function is called at the first read and its value kept, so a field
    that costs time (HEALPix's ring permutation) is made only when someone reads it."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:  # class access: the dataclass reads no default (the field stays required)
            raise AttributeError(self.name)
        value = obj.__dict__[self.slot]
        if callable(value):
            value = obj.__dict__[self.slot] = value()
        return value

    def __set__(self, obj, value) -> None:  # the dataclass __init__ only (frozen: users cannot assign)
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class Rings:
    """Iso-latitude ring structure of a sampling (used by the ring-based SHT).

    Attributes
    ----------
    theta : (nrings,) float64, colatitude of each ring in radians, increasing.
    nphi : (nrings,) int64, number of equispaced samples on each ring.
    phi0 : (nrings,) float64, longitude of the first sample of each ring (radians).
    start : (nrings,) int64, offset of each ring in ring-major order.
    order : (npix,) integers (int32 or int64), ``order[i]`` is the pixel index (in the sampling's own
        pixel order) of the i-th sample in ring-major order (ring by ring, phi
        increasing).  ``x[..., order, :]`` turns a map into ring-major order.  Given either as
        the array or as a zero-argument function returning it, called at the first read of
        ``order`` (its result kept): the SHT on ring-major maps never reads it.
    weights : (nrings,) float64 or None, quadrature weight (steradians) of every pixel of
        each ring: ``sum_rings weights * nphi`` integrates band-limited products exactly
        up to the sampling's bandlimit.  None where the analysis uses ``rule`` instead.
    rule : how the SHT integrates over theta: ``"quadrature"`` (the ``weights``) or the
        name of an exact rule that the harmonic package implements (``"mcewen-wiaux"``:
        the McEwen-Wiaux torus extension, for samplings without a direct quadrature).
    """

    theta: np.ndarray
    nphi: np.ndarray
    phi0: np.ndarray
    start: np.ndarray
    order: np.ndarray = _MadeOnFirstRead()
    weights: np.ndarray | None = None
    rule: str = "quadrature"

    @property
    def nrings(self) -> int:
        return int(self.theta.shape[0])


class Sampling:
    """A set of ``npix`` points on the unit sphere.

    Subclasses set ``theta`` and ``phi`` (colatitude / longitude in radians, float64,
    shape (npix,)) and may provide quadrature ``weights`` (steradians, sum 4 pi on the
    full sphere; docs/conventions.md says what each sampling's integrate exactly), ``rings()`` and ``max_bandlimit`` (what the SHT needs: see the module
    docstring).  Maps on a sampling are tensors shaped (batch, npix, channels).
    """

    name: str = "sampling"
    theta: np.ndarray
    phi: np.ndarray

    @property
    def npix(self) -> int:
        return int(self.theta.shape[0])

    @property
    def xyz(self) -> np.ndarray:
        """(npix, 3) float64 unit vectors."""
        return np.stack(self.xyz_of(slice(None)), axis=-1)

    def xyz_of(self, index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, z of the pixels ``index`` (an index array or a slice) as three float64 arrays,
        computed element by element as :attr:`xyz` computes them (equal to its rows bit for
        bit), so that a pass over a few pixels needs no (npix, 3) array."""
        theta, phi = self._angles_of(index)
        st = np.sin(theta)
        return st * np.cos(phi), st * np.sin(phi), np.cos(theta)

    def _angles_of(self, index) -> tuple[np.ndarray, np.ndarray]:
        """(theta, phi) of the pixels ``index``: ``self.theta[index], self.phi[index]`` (a sampling
        whose coordinates are made on demand may compute a few pixels' without making them all)."""
        return self.theta[index], self.phi[index]

    @property
    def weights(self) -> np.ndarray | None:
        """(npix,) quadrature weights in steradians, or None if the sampling has none."""
        return None

    @property
    def is_full_sky(self) -> bool:
        return True

    @property
    def max_bandlimit(self) -> int | None:
        """Largest bandlimit L (degrees l < L) the SHT may use on this sampling (None: no known limit)."""
        return None

    def rings(self) -> Rings:
        raise NotImplementedError(f"{self.name} sampling has no iso-latitude ring structure")

    def cache_key(self) -> str:
        """A short string that names the sampling and its parameters (e.g. "healpix-n8-full"):
        the graph cache's file names, and the memo keys of the functional SHT
        (:func:`~deepsphere_gen.harmonic.analysis`) and ``nn.LaplacianPyramid``, which need it.
        Optional for a graph: without it the graph cache keys by a hash of the coordinates."""
        raise NotImplementedError(f"{type(self).__name__} defines no cache_key() (the functional SHT and "
                                  "LaplacianPyramid need one; graphs fall back to a hash of the coordinates)")

    def __repr__(self) -> str:
        try:
            key = f"{self.cache_key()}, "
        except NotImplementedError:  # a sampling without a key: error messages formatting it still read
            key = ""
        return f"{type(self).__name__}({key}npix={self.npix})"


def check_sampling(sampling, cls: type | None = None):
    """``sampling`` unchanged if it is an instance of ``cls`` (default :class:`Sampling`), else ValueError
    "sampling: expected a <cls>, e.g. HealpixSampling(8), got ..." naming what was given (an nside or an index
    array, the usual slips, with the call that makes the sampling): the check of every function and layer taking
    a sampling, made where they share it: the pooling layers, the kNN graph and its parameters, the SHT (its ring
    geometry, and the functional transforms' cache) and the Laplacian pyramid
    (was: AttributeError "'int' object has no attribute 'npix'")."""
    cls = cls or Sampling
    if isinstance(sampling, cls):
        return sampling
    got = type(sampling).__name__
    if isinstance(sampling, (int, np.integer)) and not isinstance(sampling, bool):
        got += f" {sampling} (an nside? pass HealpixSampling({sampling}))"
    elif isinstance(sampling, np.ndarray) or type(sampling).__module__ == "torch":
        got += " (pixel indices? pass HealpixSampling(nside, indices=...))"
    elif isinstance(sampling, Sampling):
        got += f" (this needs a {cls.__name__})"
    raise ValueError(f"sampling: expected a {cls.__name__}, e.g. HealpixSampling(8), got {got}")
