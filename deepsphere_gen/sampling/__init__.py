"""Where the pixels are: HEALPix (nested, full or partial sky) and equiangular grids."""
from ._base import Rings, Sampling
from .equiangular import (
    DriscollHealySampling,
    EquiangularSampling,
    GaussLegendreSampling,
    McEwenWiauxSampling,
    dh_theta_weights,
)
from .healpix import MAX_NSIDE, HealpixSampling, base_patch_indices, check_nside

__all__ = [
    "Sampling",
    "Rings",
    "HealpixSampling",
    "check_nside",
    "base_patch_indices",
    "MAX_NSIDE",
    "EquiangularSampling",
    "DriscollHealySampling",
    "GaussLegendreSampling",
    "McEwenWiauxSampling",
    "dh_theta_weights",
]
