"""datasets sub-package (see ../shared/DESIGN.md)."""
from ._mnist_files import load_mnist, read_idx
from ._projection import BackProjection, plane_to_sphere, project_images, sphere_to_plane
from .digits import SPLITS, DigitSplit, SphericalDigits, build_split, load_sklearn_digits, plot_digits

__all__ = [
    # spherical digits
    "load_sklearn_digits",
    "load_mnist",
    "read_idx",
    "project_images",
    "sphere_to_plane",
    "plane_to_sphere",
    "BackProjection",
    "SPLITS",
    "build_split",
    "DigitSplit",
    "SphericalDigits",
    "plot_digits",
]
