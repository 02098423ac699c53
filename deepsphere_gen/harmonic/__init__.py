"""Harmonic analysis on the sphere and SO(3) (imports only :mod:`deepsphere_gen.sampling`).

| module | holds |
| --- | --- |
| :mod:`._legendre` | orthonormal associated Legendre functions, real spherical harmonics at points |
| :mod:`._mw` | McEwen-Wiaux exact theta quadrature (ring mixing) |
| :mod:`._sht` | ``SHT`` (ring-FFT + Legendre transform on every iso-latitude sampling), ``analysis`` / ``synthesis`` |
| :mod:`._sht_geometry` | ``RingGeometry``: a sampling's rings, pixel order and theta rule, validated for the SHT |
| :mod:`._sht_ducc` | CPU engine of the SHT: ducc0's transforms with their adjoints as backward |
| :mod:`._ducc_layout` | our real coefficients <-> ducc0's (re, im) pairs: tables (small L) or per-order blocks |
| :mod:`._sht_torch` | pure-torch engine of the SHT (CUDA; reference anywhere): ``_sht_rings`` + ``_sht_legendre`` |
| :mod:`._sht_rings` | pixels <-> per-ring Fourier coefficients, north / south mirror pairs |
| :mod:`._permutation` | int32 pixel permutations (NESTED <-> RING) and their chunked gathers |
| :mod:`._sht_legendre` | blocked on-the-fly Legendre recursion (no L^3 table) |
| :mod:`._healpy_convert` | exact conversion between our real coefficients and healpy's complex alm |
| :mod:`._lru` | ``ByteLRU``, the byte-bounded cache of the Wigner / Clebsch-Gordan tables |
| :mod:`._per_thread` | per-thread work arrays engines keep between calls (copies and pickles start empty) |
| :mod:`._wigner` | Wigner small-d and real Wigner-D matrices, complex <-> real basis change |
| :mod:`._rotation` | ZYZ rotations: random, matrices, rotating points / coefficients / fragments / maps, ``MapRotator`` |
| :mod:`._cg_complex` | complex Clebsch-Gordan coefficients (eigenvector construction) |
| :mod:`._cg_sparse` | real Clebsch-Gordan tensors as their non-zeros (``SparseCG``) |
| :mod:`._clebsch_gordan` | dense real Clebsch-Gordan tensors, admissible triples |
| :mod:`._so3_transform` | ``SO3Transform``: Wigner transforms on SO(3) grids |
| :mod:`._mixing_sets` | degree-mixing sets of the tensor-product activation (full, MST, RMST) |

Basis, normalisation, phase and rotation conventions: docs/conventions.md.
"""
# spherical harmonic transforms
from ._healpy_convert import healpy_alm_size, healpy_alm_to_real, real_to_healpy_alm
from ._legendre import normalized_legendre, real_spherical_harmonics
from ._mw import mw_theta_mixing, mw_weight
from ._sht import (
    ENGINE_FOR_DEVICE,
    ENGINES,
    HEALPIX_ITERATIONS,
    SHT,
    SphericalAnalysis,
    SphericalSynthesis,
    analysis,
    clear_sht_cache,
    default_iterations,
    max_bandlimit,
    synthesis,
)

# rotations, Wigner matrices, Clebsch-Gordan tensors
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
from ._wigner import as_angles, complex_to_real_matrix, wigner_d, wigner_D_blocks, wigner_D_real

# Wigner transforms on SO(3) grids
from ._so3_transform import SO3Transform, so3_coefficient_count

# degree-mixing sets of the harmonic layers
from ._mixing_sets import (
    MIXING_KINDS,
    MixingSet,
    admissible_pairs,
    check_mixing,
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
    # degree-mixing sets of the harmonic layers
    "MixingSet",
    "MIXING_KINDS",
    "pair_cost",
    "admissible_pairs",
    "log_spaced_degrees",
    "full_mixing_set",
    "mst_mixing_set",
    "rmst_mixing_set",
    "mixing_set",
    "check_mixing",
    "mixing_set_table",
    "fit_scaling_exponent",
    # rotations, Wigner matrices, Clebsch-Gordan tensors
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
    "as_angles",
    "euler_to_matrix",
    "matrix_to_euler",
    "compose_rotations",
    "invert_rotation",
    "rotate_points",
    "rotate_coefficients",
    "rotate_fragments",
    "rotate_map",
    "MapRotator",
    # spherical harmonic transforms
    "SHT",
    "SphericalAnalysis",
    "SphericalSynthesis",
    "ENGINE_FOR_DEVICE",
    "ENGINES",
    "analysis",
    "synthesis",
    "max_bandlimit",
    "clear_sht_cache",
    "HEALPIX_ITERATIONS",
    "default_iterations",
    "normalized_legendre",
    "real_spherical_harmonics",
    "mw_theta_mixing",
    "mw_weight",
    "real_to_healpy_alm",
    "healpy_alm_to_real",
    "healpy_alm_size",
    # Wigner transforms on SO(3) grids
    "SO3Transform",
    "so3_coefficient_count",
]
