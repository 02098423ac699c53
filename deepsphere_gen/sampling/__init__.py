"""Where the pixels are: the bottom layer (imports nothing else from the package).

| module | holds |
| --- | --- |
| :mod:`._base` | ``Sampling`` (theta, phi, xyz, weights, rings, cache key), ``Rings`` (SHT rings), ``check_sampling`` |
| :mod:`.healpix` | ``HealpixSampling`` (NESTED, full or partial sky, parents), ``check_nside``, ``nside_of``, ``check_mask``, patches |
| :mod:`.equiangular` | Driscoll-Healy, Gauss-Legendre, McEwen-Wiaux grids and their quadrature weights |
| :mod:`.so3` | Euler-angle grids on SO(3): SOFT, Gauss-Legendre, McEwen-Wiaux (SO(3)) |

Maps on a sampling are (batch, npix, channels) in its pixel order (docs/conventions.md).
"""
from ._base import Rings, Sampling, check_sampling
from .equiangular import (
    DriscollHealySampling,
    EquiangularSampling,
    GaussLegendreSampling,
    McEwenWiauxSampling,
    dh_theta_weights,
    mw_area_weights,
)
from .healpix import MASK_REMEDY, MAX_NSIDE, HealpixSampling, base_patch_indices, check_mask, check_nside, nside_of

# SO(3) Euler-angle grids
from .so3 import (
    GaussLegendreSO3Sampling,
    McEwenSO3Sampling,
    SO3Sampling,
    SOFTSampling,
    so3_sampling,
    soft_beta_weights,
)

__all__ = [
    "Sampling",
    "Rings",
    "check_sampling",
    "HealpixSampling",
    "check_nside",
    "nside_of",
    "check_mask",
    "MASK_REMEDY",
    "base_patch_indices",
    "MAX_NSIDE",
    "EquiangularSampling",
    "DriscollHealySampling",
    "GaussLegendreSampling",
    "McEwenWiauxSampling",
    "dh_theta_weights",
    "mw_area_weights",
    # SO(3) Euler-angle grids
    "SO3Sampling",
    "SOFTSampling",
    "GaussLegendreSO3Sampling",
    "McEwenSO3Sampling",
    "so3_sampling",
    "soft_beta_weights",
]
