"""harmonic sub-package (see ../shared/DESIGN.md)."""
# spherical harmonic transforms (SHT owner)
from ._healpy_convert import healpy_alm_size, healpy_alm_to_real, real_to_healpy_alm
from ._legendre import normalized_legendre, real_spherical_harmonics
from ._mw import mw_theta_mixing, mw_weight
from ._sht import (
    ENGINE_FOR_DEVICE,
    SHT,
    SphericalAnalysis,
    SphericalSynthesis,
    analysis,
    clear_sht_cache,
    max_bandlimit,
    synthesis,
)

# rotations, Wigner matrices, Clebsch-Gordan tensors (issue 3, rotations owner)
from ._cg_sparse import SparseCG, sparse_clebsch_gordan, sparse_from_dense
from ._clebsch_gordan import cg_triples, clebsch_gordan, clebsch_gordan_block
from ._rotation import (
    MapRotator,
    compose_rotations,
    euler_to_matrix,
    invert_rotation,
    matrix_to_euler,
    random_rotations,
    rotate_coefficients,
    rotate_fragments,
    rotate_map,
    rotate_points,
)
from ._wigner import complex_to_real_matrix, wigner_d, wigner_D_blocks, wigner_D_real

# Wigner transforms on SO(3) grids (issue 5)
from ._so3_transform import SO3Transform, so3_coefficient_count

# harmonic layers (issue 4)
from ._mixing_sets import (
    MIXING_KINDS,
    MixingSet,
    admissible_pairs,
    fit_scaling_exponent,
    full_mixing_set,
    log_spaced_degrees,
    mixing_set,
    mixing_set_table,
    mst_mixing_set,
    pair_cost,
    rmst_mixing_set,
)

__all__ = [
    # harmonic layers (issue 4)
    "MixingSet",
    "MIXING_KINDS",
    "pair_cost",
    "admissible_pairs",
    "log_spaced_degrees",
    "full_mixing_set",
    "mst_mixing_set",
    "rmst_mixing_set",
    "mixing_set",
    "mixing_set_table",
    "fit_scaling_exponent",
    # rotations, Wigner matrices, Clebsch-Gordan tensors (issue 3, rotations owner)
    "clebsch_gordan",
    "clebsch_gordan_block",
    "cg_triples",
    "SparseCG",
    "sparse_clebsch_gordan",
    "sparse_from_dense",
    "complex_to_real_matrix",
    "wigner_d",
    "wigner_D_real",
    "wigner_D_blocks",
    "random_rotations",
    "euler_to_matrix",
    "matrix_to_euler",
    "compose_rotations",
    "invert_rotation",
    "rotate_points",
    "rotate_coefficients",
    "rotate_fragments",
    "rotate_map",
    "MapRotator",
    # spherical harmonic transforms (SHT owner)
    "SHT",
    "SphericalAnalysis",
    "SphericalSynthesis",
    "ENGINE_FOR_DEVICE",
    "analysis",
    "synthesis",
    "max_bandlimit",
    "clear_sht_cache",
    "normalized_legendre",
    "real_spherical_harmonics",
    "mw_theta_mixing",
    "mw_weight",
    "real_to_healpy_alm",
    "healpy_alm_to_real",
    "healpy_alm_size",
    # Wigner transforms on SO(3) grids (issue 5)
    "SO3Transform",
    "so3_coefficient_count",
]
