"""harmonic sub-package (see ../shared/DESIGN.md)."""
# rotations, Wigner matrices, Clebsch-Gordan tensors (issue 3, rotations owner)
from ._clebsch_gordan import cg_triples, clebsch_gordan, clebsch_gordan_block
from ._rotation import (
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

__all__ = [
    # rotations, Wigner matrices, Clebsch-Gordan tensors (issue 3, rotations owner)
    "clebsch_gordan",
    "clebsch_gordan_block",
    "cg_triples",
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
]
