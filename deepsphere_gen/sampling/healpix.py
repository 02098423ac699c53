"""HEALPix sampling in NESTED order, full or partial sky."""
from __future__ import annotations

import healpy as hp
import numpy as np

from .._memory import index_dtype
from .._validation import check_healpix_order, is_bool

from ._base import Rings, Sampling

__all__ = ["HealpixSampling", "check_nside", "nside_of", "check_mask", "MASK_REMEDY", "base_patch_indices", "MAX_NSIDE"]

MAX_NSIDE = 8192


def check_nside(nside) -> int:
    """Return ``nside`` as int, or raise ValueError unless it is a power of 2 in [1, MAX_NSIDE]."""
    try:
        if is_bool(nside):
            raise TypeError
        n = int(nside)
    except (TypeError, ValueError):
        raise ValueError(f"nside must be an integer power of 2, got {nside!r}") from None
    if n != nside or n < 1 or n > MAX_NSIDE or (n & (n - 1)) != 0:
        raise ValueError(f"nside must be a power of 2 between 1 and {MAX_NSIDE}, got {nside!r}")
    return n


def nside_of(npix: int) -> int:
    """nside of a full-sky map with ``npix`` pixels; ValueError if npix is not 12 nside^2 (nside a power of 2 up
    to :data:`MAX_NSIDE`)."""
    nside = int(round(np.sqrt(npix / 12)))
    if nside < 1 or 12 * nside * nside != npix or (nside & (nside - 1)):
        raise ValueError(f"{npix} pixels is not a full HEALPix sky (12 * nside**2 with nside a power of 2)")
    return check_nside(nside)


#: what a mask holding values other than 0/1 is told (an apodised or ud_graded mask holds fractions)
MASK_REMEDY = "threshold it, e.g. mask > 0.5 (mask > 0 keeps every pixel it touches)"


def check_mask(mask, nside: int | None = None, name: str = "mask", allow_empty: bool = False) -> np.ndarray:
    """``mask`` as a bool array (12 nside^2,), True = pixel kept: the one check of every mask the package takes
    (``HealpixSampling(mask=)``, footprints, ``apply_footprint``, ``PseudoCl``, the survey footprint's area and copies).

    Accepted: booleans, or numbers that are exactly 0 or 1 (a healpy 0/1 float map).  ValueError naming ``name``
    for another shape (``nside`` None: any full HEALPix sky, its nside read from the size), for any other value
    (0.5, NaN, UNSEEN: the message says to threshold, :data:`MASK_REMEDY`), and, unless ``allow_empty``, for a
    mask keeping no pixel ("empty footprint").  The pixel order is the caller's: nothing is reordered.
    Cost: one pass over the mask (a copy unless it is already bool).
    """
    mask = np.asarray(mask)
    if nside is None:
        try:
            nside = nside_of(mask.size if mask.ndim == 1 else 0)
        except ValueError:
            raise ValueError(f"{name} must be a full HEALPix sky of 12 nside**2 values (nside a power of 2), "
                             f"got shape {mask.shape}") from None
    nside = check_nside(nside)
    if mask.shape != (12 * nside * nside,):
        raise ValueError(f"{name} must have shape ({12 * nside * nside},) for nside {nside}, got {mask.shape}")
    if mask.dtype != bool:
        if mask.dtype.kind not in "iuf":
            raise ValueError(f"{name} must hold booleans or 0/1 numbers (1 = pixel kept), got dtype {mask.dtype}")
        odd = (mask != 0) & (mask != 1)
        if odd.any():
            raise ValueError(f"{name} must hold booleans or exactly 0/1 (1 = pixel kept), got {int(odd.sum())} "
                             f"pixel(s) of other values (e.g. {mask[odd][0]:.3g}); {MASK_REMEDY}")
        mask = mask.astype(bool)
    if not allow_empty and not mask.any():
        raise ValueError(f"empty footprint: {name} keeps no pixel")
    return mask


def base_patch_indices(nside: int, level: int, index: int) -> np.ndarray:
    """Nested pixel indices of base patch ``index`` among the 12*4**level nested patches.

    Sky fraction of one patch: 1 / (12 * 4**level).  Requires 2**level <= nside.
    """
    nside = check_nside(nside)
    npatch = 12 * 4**level
    if level < 0 or 2**level > nside:
        raise ValueError(f"patch level {level} needs 1 <= 2**level <= nside={nside}")
    if not 0 <= index < npatch:
        raise ValueError(f"patch index {index} outside [0, {npatch}) at level {level}")
    n = 12 * nside * nside // npatch
    return np.arange(index * n, (index + 1) * n, dtype=np.int64)


#: what :func:`_integer_indices` advises for a boolean mask given as indices (HealpixSampling takes mask=)
_MASK_AS_INDICES = "use mask= (or np.flatnonzero(mask) as indices)"


def _integer_indices(indices, mask_advice: str = _MASK_AS_INDICES) -> np.ndarray:
    """``indices`` flattened to int64; ValueError for a boolean mask (followed by ``mask_advice``: the caller's
    remedy, as only some callers take ``mask=``) or any non-integer dtype, floats included
    (docs/conventions.md: a float array is refused by name, integral or not, as a cast would truncate 2.5 -> 2;
    the remedy is an integer cast, e.g. ``indices.astype(np.int64)``).  An empty list passes (refused later as
    a sampling with no pixels)."""
    raw = np.asarray(indices).ravel()
    if raw.dtype == bool:
        raise ValueError(f"indices is a boolean mask: {mask_advice}")
    if raw.size == 0:
        return raw.astype(np.int64)
    if raw.dtype.kind not in "iu":
        bad = raw[~np.isfinite(raw) | (raw != np.round(raw))] if raw.dtype.kind == "f" else raw
        raise ValueError(f"indices must be an integer array, got dtype {raw.dtype}"
                         + (" of whole numbers: cast it, e.g. indices.astype(np.int64)" if not bad.size else
                            f" with non-integer value(s) {bad[:5].tolist()}"
                            + (f" and {bad.size - 5} more" if bad.size > 5 else "")))
    return raw.astype(np.int64, copy=False)


class HealpixSampling(Sampling):
    """HEALPix pixel centres in NESTED order.

    Parameters
    ----------
    nside : power of 2.
    indices : optional sorted nested pixel indices of a partial sky, an integer array (a float array is
        refused, integral or not: cast it); ``None`` is full sky.
    mask : optional array of length 12*nside**2 selecting the pixels (alternative to ``indices``),
        booleans or exactly 0/1 (:func:`check_mask`: 0.5 is refused, threshold it), in the pixel order ``order``.
    order : "NESTED" (default) or "RING": the order of ``mask`` (a healpy RING mask is
        converted with ``healpy.reorder(mask, r2n=True)``).  The sampling, its indices and its
        maps are NESTED whatever the mask's order.
    """

    name = "healpix"

    def __init__(self, nside: int, indices=None, mask=None, order: str = "NESTED"):
        self.nside = check_nside(nside)
        self.npix_full = 12 * self.nside**2
        order = check_healpix_order(order, "order (of the mask)")
        if indices is not None and mask is not None:
            raise ValueError("give either indices or mask, not both")
        if mask is not None:
            mask = check_mask(mask, self.nside, allow_empty=True)  # (empty: refused below as no pixels)
            if order == "RING":
                mask = hp.reorder(mask, r2n=True).astype(bool)
            indices = np.flatnonzero(mask)
        elif order == "RING":
            raise ValueError("order='RING' applies to mask=; indices are NESTED (convert RING indices with "
                             "healpy.ring2nest and sort them)")
        if indices is None:
            self._indices = None  # np.arange(npix_full), made on first access (see indices)
            self._full = True
        else:
            idx = _integer_indices(indices)
            if idx.size == 0:
                raise ValueError("partial-sky sampling with no pixels (empty mask or index list)")
            if idx.min() < 0 or idx.max() >= self.npix_full:
                raise ValueError(f"pixel indices must lie in [0, {self.npix_full}) for nside {self.nside}")
            if np.any(np.diff(idx) <= 0):
                raise ValueError("partial-sky indices must be sorted and unique (nested order)")
            self._indices = idx
            self._full = idx.size == self.npix_full
        self._coords: tuple[np.ndarray, np.ndarray] | None = None  # (theta, phi), made on first access

    #: pixels per hp.pix2ang / hp.ring2nest call when the coordinates / the RING order are made
    #: (bounds the temporaries)
    COORD_CHUNK = 1 << 20

    def __setstate__(self, state: dict) -> None:
        """Unpickling: a sampling pickled before the coordinates were made lazily (its ``theta`` and ``phi``
        stored as attributes, which the properties below now shadow) keeps them as its made coordinates."""
        if "theta" in state and "_coords" not in state:
            state = dict(state)
            state["_coords"] = (state.pop("theta"), state.pop("phi"))
        state.setdefault("_coords", None)
        self.__dict__.update(state)

    @property
    def npix(self) -> int:
        return self.npix_full if self._indices is None else int(self._indices.size)

    def _coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(theta, phi) of every pixel, made on first access by ``hp.pix2ang(nest=True)`` in chunks
        of :attr:`COORD_CHUNK` pixels and kept: 16 bytes per pixel (12 GiB at nside 8192) and
        ~24 MiB of temporaries per chunk (its int64 pixel numbers and healpy's two float64 outputs),
        none until asked for (the SHT, pooling and a graph's values, which take a block's pixels from
        :meth:`_angles_of`, never ask)."""
        if self._coords is None:
            n = self.npix
            theta, phi = np.empty(n), np.empty(n)
            for lo in range(0, n, self.COORD_CHUNK):
                hi = min(lo + self.COORD_CHUNK, n)
                theta[lo:hi], phi[lo:hi] = hp.pix2ang(self.nside, self._pixels_of(slice(lo, hi)), nest=True)
            self._coords = theta, phi
        return self._coords

    def _angles_of(self, index) -> tuple[np.ndarray, np.ndarray]:
        """(theta, phi) of the pixels ``index`` (a slice or an integer array): the stored
        coordinates when they are made, else, for at most :attr:`COORD_CHUNK` pixels,
        ``hp.pix2ang`` of these pixels only (element-wise: the same bits as the stored ones),
        so that a graph's values pass (blocks of ~16K rows) makes no (npix,) array."""
        if self._coords is None:
            pix = self._pixels_of(index)
            if pix is not None and pix.size <= self.COORD_CHUNK:
                return hp.pix2ang(self.nside, pix, nest=True)
        return self.theta[index], self.phi[index]

    def _pixels_of(self, index) -> np.ndarray | None:
        """int64 NESTED pixel numbers of ``index`` (a slice, or integers in [-npix, npix)); None for
        anything else (the caller then indexes the stored coordinates, which raises as numpy does)."""
        n = self.npix
        if isinstance(index, slice):
            if self._indices is not None:
                return self._indices[index]
            return np.arange(*index.indices(n), dtype=np.int64)
        idx = np.asarray(index)
        if idx.dtype.kind not in "iu" or (idx.size and (int(idx.min()) < -n or int(idx.max()) >= n)):
            return None
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        return idx if self._indices is None else self._indices[idx]

    @property
    def theta(self) -> np.ndarray:
        """(npix,) float64 colatitudes (radians) of the pixel centres (see :meth:`_coordinates`)."""
        return self._coordinates()[0]

    @property
    def phi(self) -> np.ndarray:
        """(npix,) float64 longitudes (radians) of the pixel centres (see :meth:`_coordinates`)."""
        return self._coordinates()[1]

    @property
    def indices(self) -> np.ndarray:
        """(npix,) int64 sorted NESTED indices of the pixels.  Full sky: ``arange(npix)``, made
        on first access and kept (a full-sky graph never asks: 96 MiB less at nside 1024)."""
        if self._indices is None:
            self._indices = np.arange(self.npix_full, dtype=np.int64)
        return self._indices

    @classmethod
    def base_patch(cls, nside: int, level: int, index: int) -> "HealpixSampling":
        """One of the 12*4**level nested base patches (see :func:`base_patch_indices`)."""
        return cls(nside, indices=base_patch_indices(nside, level, index))

    @property
    def is_full_sky(self) -> bool:
        return self._full

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in steradians."""
        return 4 * np.pi / self.npix_full

    @property
    def weights(self) -> np.ndarray:
        return np.full(self.npix, self.pixel_area)

    @property
    def max_bandlimit(self) -> int:
        """3 nside (healpy's usual lmax = 3 nside - 1)."""
        return 3 * self.nside

    @property
    def sky_fraction(self) -> float:
        return self.npix / self.npix_full

    @property
    def mask(self) -> np.ndarray:
        """(12*nside**2,) boolean NESTED mask of the pixels present."""
        m = np.zeros(self.npix_full, dtype=bool)
        m[self.indices] = True
        return m

    def parents(self, levels: int = 1) -> np.ndarray:
        """Nested index at nside / 2**levels of each pixel's ancestor, shape (npix,)."""
        self._check_levels(levels)
        return self.indices >> (2 * levels)

    def children(self, levels: int = 1) -> np.ndarray:
        """(npix, 4**levels) nested indices at nside * 2**levels of each pixel's descendants."""
        f = 4**levels
        if self.nside * 2**levels > MAX_NSIDE:
            raise ValueError(f"nside {self.nside} * 2**{levels} exceeds {MAX_NSIDE}")
        return self.indices[:, None] * f + np.arange(f)[None, :]

    def coarsen(self, levels: int = 1) -> tuple["HealpixSampling", np.ndarray]:
        """Sampling at nside / 2**levels made of the parents whose 4**levels children are all present.

        Returns ``(coarse, keep)`` where ``keep`` (npix,) bool marks the fine pixels
        that belong to a kept parent (they are consecutive groups of 4**levels).

        Cost: a full sky gives the full sky at nside / 2**levels and ``keep`` all True (1 byte per pixel, no
        other work); a partial sky sorts its parents (``np.unique``, ``np.isin``): O(npix log npix) time and
        ~40 bytes per pixel of temporaries.
        """
        self._check_levels(levels)
        if self.is_full_sky:
            return HealpixSampling(self.nside >> levels), np.ones(self.npix, dtype=bool)
        f = 4**levels
        par = self.parents(levels)
        uniq, counts = np.unique(par, return_counts=True)
        complete = uniq[counts == f]
        keep = np.isin(par, complete)
        if complete.size == 0:
            raise ValueError(
                f"no complete parent at nside {self.nside >> levels}: the partial sky is too "
                f"fragmented to pool by {f}"
            )
        coarse = HealpixSampling(self.nside >> levels, indices=complete)
        return coarse, keep

    def rings(self) -> Rings:
        """Rings of the full sky (the SHT needs every pixel).  Their ``order`` (NESTED pixel of each
        RING sample, :meth:`_ring_to_nest`: ~0.15 s CPU and 4 bytes per pixel at nside 1024) is made
        at its first read: never by the SHT on RING maps."""
        if not self.is_full_sky:
            raise ValueError("a partial-sky HEALPix sampling has no complete rings; mask the map instead")
        nside = self.nside
        ring_numbers = np.arange(1, 4 * nside)
        start, nphi, costheta, _, shifted = hp.ringinfo(nside, ring_numbers)
        theta = np.arccos(np.clip(costheta, -1, 1))
        phi0 = np.where(shifted, np.pi / nphi, 0.0)
        return Rings(
            theta=theta.astype(np.float64),
            nphi=nphi.astype(np.int64),
            phi0=phi0.astype(np.float64),
            start=start.astype(np.int64),
            order=self._ring_to_nest,  # called at the first read of Rings.order
            weights=np.full(ring_numbers.size, self.pixel_area),
        )

    def _ring_to_nest(self) -> np.ndarray:
        """(npix,) int32 NESTED index of each RING-ordered pixel (``hp.ring2nest``), made in chunks of
        :attr:`COORD_CHUNK` pixels: 4 bytes per pixel (192 MiB at nside 2048) and ~16 MiB of
        temporaries, where ``hp.ring2nest(nside, np.arange(npix))`` took 16 bytes per pixel."""
        out = np.empty(self.npix_full, dtype=index_dtype(self.npix_full))  # int32 up to MAX_NSIDE 8192
        for lo in range(0, self.npix_full, self.COORD_CHUNK):
            hi = min(lo + self.COORD_CHUNK, self.npix_full)
            out[lo:hi] = hp.ring2nest(self.nside, np.arange(lo, hi, dtype=np.int64))
        return out

    def cache_key(self) -> str:
        if self.is_full_sky:
            return f"healpix-nside{self.nside}"
        import hashlib

        h = hashlib.sha1(self.indices.tobytes()).hexdigest()[:12]
        return f"healpix-nside{self.nside}-partial{self.npix}-{h}"

    def _check_levels(self, levels: int) -> None:
        if levels < 0 or (self.nside >> levels) < 1 or (self.nside >> levels) << levels != self.nside:
            raise ValueError(f"cannot go {levels} levels up from nside {self.nside}")
