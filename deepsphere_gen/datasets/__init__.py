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

# cosmology mass maps (issue 7)
from ._massmaps_cache import limit_threads
from ._footprint import (
    apply_footprint,
    band_footprint,
    builtin_footprint,
    read_footprint,
    read_healpix_fits,
    split_patches,
)
from ._spectra import COSMOLOGIES, Cosmology, convergence_cl, gaussian_beam, lognormal_shift, pixel_window
from .massmaps import (
    DEEPSPHERE_NOISE_LEVELS,
    MassMapConfig,
    MassMapDataset,
    convergence_map,
    generate_massmaps,
    load_massmaps,
)

__all__ += [
    "COSMOLOGIES",
    "Cosmology",
    "convergence_cl",
    "lognormal_shift",
    "gaussian_beam",
    "pixel_window",
    "split_patches",
    "band_footprint",
    "builtin_footprint",
    "read_footprint",
    "read_healpix_fits",
    "apply_footprint",
    "DEEPSPHERE_NOISE_LEVELS",
    "MassMapConfig",
    "MassMapDataset",
    "convergence_map",
    "generate_massmaps",
    "load_massmaps",
    "limit_threads",
]
