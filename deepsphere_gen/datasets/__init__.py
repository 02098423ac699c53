"""Data generation and loading (imports only :mod:`deepsphere_gen.sampling` and :mod:`deepsphere_gen.harmonic`).

| module | holds |
| --- | --- |
| :mod:`._mnist_files` | readers for local MNIST files (IDX, NPZ); nothing is downloaded |
| :mod:`._projection` | flat images <-> spherical maps (spherical-MNIST projection and back-projection) |
| :mod:`.digits` | spherical digits: splits (NR/NR, R/R, NR/R), their cache, ``SphericalDigits`` |
| :mod:`._spectra` | convergence power spectra (pyccl), cosmologies, log-normal shifts, beam, pixel window |
| :mod:`._lognormal` | shifted log-normal fields: C_l <-> correlation transforms, map synthesis |
| :mod:`._shells` | multi-plane log-normal convergence: matter shells, their spectra (pyccl), synthesis |
| :mod:`._footprint` | partial sky: nested base patches, survey footprints, HEALPix FITS input |
| :mod:`.massmaps` | convergence maps of two cosmologies: generation, cache, ``MassMapDataset``, ``FreshNoise`` |
| :mod:`._sky_rotations` | randomly rotated copies of the mass maps (training augmentation) and their cache |
| :mod:`._massmaps_cache` | the mass-map cache: keys, metadata, atomic directories, thread limits |
| :mod:`.shape_noise` | weak-lensing shape noise per HEALPix pixel from the galaxy density |
| :mod:`.patch_psd` | nested base patches as square images, their FFT band powers (a cheap patch PSD) |
| :mod:`.pseudo_cl` | pseudo-C_l band powers on a footprint with the MASTER mode-coupling correction |
| :mod:`.survey_footprint` | a stage-III-sized survey footprint and its rotated copies on one sky |
| :mod:`.tomography` | tomographic convergence: redshift bins, pyccl spectra, correlated log-normal maps |
| :mod:`.cosmo_grid` | tomographic maps over an (Omega_m, sigma_8) design on a footprint, cached on disk |
"""
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

# cosmology mass maps
from ._massmaps_cache import limit_threads
from ._footprint import (
    apply_footprint,
    bad_pixels,
    band_footprint,
    builtin_footprint,
    check_fits_ordering,
    choose_column,
    data_columns,
    read_footprint,
    read_healpix_fits,
    split_patches,
)
from ._spectra import COSMOLOGIES, Cosmology, convergence_cl, gaussian_beam, lognormal_shift, pixel_window
from .massmaps import (
    check_noise_level,
    DEEPSPHERE_NOISE_LEVELS,
    GENERATORS,
    MassMapConfig,
    MassMapDataset,
    FreshNoise,
    split_sizes,
    convergence_map,
    generate_massmaps,
    load_massmaps,
)
from ._shells import LensingShells, lensing_shells
from ._sky_rotations import generate_sky_rotations, load_sky_rotations, rotated_map, sky_rotations_dir

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
    "check_fits_ordering",
    "choose_column",
    "data_columns",
    "apply_footprint",
    "bad_pixels",
    "DEEPSPHERE_NOISE_LEVELS",
    "check_noise_level",
    "MassMapConfig",
    "GENERATORS",
    "LensingShells",
    "lensing_shells",
    "MassMapDataset",
    "FreshNoise",
    "split_sizes",
    "convergence_map",
    "generate_massmaps",
    "load_massmaps",
    "generate_sky_rotations",
    "load_sky_rotations",
    "rotated_map",
    "sky_rotations_dir",
    "limit_threads",
]
