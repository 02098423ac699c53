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

# SO(3) Euler-angle grids (issue 5)
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
    "HealpixSampling",
    "check_nside",
    "base_patch_indices",
    "MAX_NSIDE",
    "EquiangularSampling",
    "DriscollHealySampling",
    "GaussLegendreSampling",
    "McEwenWiauxSampling",
    "dh_theta_weights",
    # SO(3) Euler-angle grids (issue 5)
    "SO3Sampling",
    "SOFTSampling",
    "GaussLegendreSO3Sampling",
    "McEwenSO3Sampling",
    "so3_sampling",
    "soft_beta_weights",
]
