"""What every SHT engine needs from a sampling: its rings at one bandlimit, validated.

The sampling declares everything (``Sampling.rings()`` and ``Sampling.max_bandlimit``):
ring colatitudes, samples per ring, first longitudes, ring starts, pixel order, and either
per-ring quadrature weights or the name of an exact theta rule.  Nothing here depends on
the sampling's type, so a new sampling needs no edit in ``harmonic/``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_healpix_order, check_positive_int
from ..sampling import check_sampling
from ._permutation import check_permutation, is_identity

__all__ = ["RingGeometry", "THETA_RULES", "max_bandlimit"]

#: theta rules the engines implement: "quadrature" (the rings' weights) and the exact
#: McEwen-Wiaux rule (torus extension, for MW grids, which have no direct quadrature).
THETA_RULES = ("quadrature", "mcewen-wiaux")


def max_bandlimit(sampling) -> int | None:
    """Largest bandlimit L the sampling supports (``sampling.max_bandlimit``; None: no known limit).

    GL / DH / MW grids built for L: L.  HEALPix: 3 * nside (healpy's usual lmax + 1).
    """
    return getattr(sampling, "max_bandlimit", None)


@dataclass(frozen=True)
class RingGeometry:
    """Rings of a full-sky sampling, in the order the maps handed to the SHT store them.

    Attributes
    ----------
    L : bandlimit (degrees l < L).
    npix : pixels per map.
    theta, nphi, phi0, start : (nrings,) colatitude (rad), samples, first longitude (rad)
        and offset of each ring in ring-major order.
    order : (npix,) int32 (int64 from 2**31 pixels) pixel of each ring-major sample
        (``maps[:, order]`` is ring-major), or None when the maps are ring-major already.
    weights : (nrings,) quadrature weight of each pixel of the ring (sr), or None (exact theta
        rule, or a grid without weights: synthesis only, :meth:`check_analysis`).
    rule : "quadrature" or "mcewen-wiaux" (see :data:`THETA_RULES`).
    label : the sampling's repr (for messages).
    """

    L: int
    npix: int
    theta: np.ndarray
    nphi: np.ndarray
    phi0: np.ndarray
    start: np.ndarray
    order: np.ndarray | None
    weights: np.ndarray | None
    rule: str
    label: str

    @property
    def nrings(self) -> int:
        return int(self.theta.size)

    def check_analysis(self) -> None:
        """ValueError unless the analysis is defined: an exact theta rule, or quadrature weights (the synthesis
        needs no weights).  The one test of it: :class:`~deepsphere_gen.harmonic.SphericalAnalysis` calls it at
        construction, every analysis at the call (a few attribute reads)."""
        if self.rule == "quadrature" and self.weights is None:
            raise ValueError(f"{self.label} has no quadrature weights: no analysis possible "
                             "(synthesis needs none: SphericalSynthesis, SHT.inverse)")

    @classmethod
    def from_sampling(cls, sampling, L: int, order: str = "NESTED") -> "RingGeometry":
        """Validate ``L`` and the sampling's rings; ``order``: "NESTED" (maps in the sampling's
        own pixel order, NESTED for HEALPix) or "RING" (maps already ring-major).  ``sampling`` must be a
        :class:`~deepsphere_gen.sampling.Sampling` (:func:`~deepsphere_gen.sampling.check_sampling`: an nside is a
        ValueError saying so): the check of every SHT module and layer built on one.  Rings without weights are
        accepted (synthesis only: :meth:`check_analysis`)."""
        check_sampling(sampling)
        L = check_positive_int(L, "bandlimit L")
        limit = max_bandlimit(sampling)
        if limit is not None and L > limit:
            raise ValueError(f"bandlimit L={L} is too large for {sampling!r}: at most {limit}")
        if not getattr(sampling, "is_full_sky", True):
            raise ValueError("the SHT needs a full-sky sampling; mask partial-sky maps onto the full sphere")
        order = check_healpix_order(order)
        rings = sampling.rings()
        if rings.rule not in THETA_RULES:
            raise ValueError(f"{sampling!r} declares theta rule {rings.rule!r}; the SHT knows {THETA_RULES}")
        nphi = np.asarray(rings.nphi, dtype=np.int64)
        start = np.asarray(rings.start, dtype=np.int64)
        npix = int(nphi.sum())
        if npix != sampling.npix or np.any(nphi < 1):
            raise ValueError(f"{sampling!r}: its rings hold {npix} samples, not its {sampling.npix} pixels")
        perm = None if order == "RING" else check_permutation(rings.order, npix, repr(sampling))
        return cls(
            L=L,
            npix=npix,
            theta=np.asarray(rings.theta, dtype=np.float64),
            nphi=nphi,
            phi0=np.asarray(rings.phi0, dtype=np.float64),
            start=start,
            order=None if perm is None or is_identity(perm) else perm,
            weights=None if rings.weights is None else np.asarray(rings.weights, dtype=np.float64),
            rule=rings.rule,
            label=repr(sampling),
        )
