"""Randomly rotated copies of generated mass maps (training augmentation), and their on-disk cache.

A copy of map i of class c is the generator's map with its Gaussian field rotated: the field's alm,
regenerated from the map's own seed (:func:`~.massmaps.map_rng`, :func:`~.massmaps.gaussian_alm`), are rotated
(exact for band-limited alm: ``healpy.rotate_alm`` for one field, as the recorded copies of the single log-normal
maps; ``ducc0.sht.rotate_alm`` for each matter shell's field, the same rotation 1e-14 apart, ~15x faster) and the generator's
remaining steps run from there (:func:`~.massmaps.map_from_gaussian_alm`: the shifted exponentials, beam and pixel
window).  So a copy is
a map of the same class with the same statistics, and the identity rotation gives the stored map back.
Rotations are uniform on SO(3) (Haar measure: ZYZ Euler angles alpha, gamma uniform in [0, 2 pi), cos beta
uniform in [-1, 1]), not aligned with the HEALPix grid; copy r of map i of class c uses
``SeedSequence([rotation_seed, c, i, r])``, the rotation seed derived from the data seed
(:func:`rotation_seed`).  Angles are the package's active ZYZ (alpha, beta, gamma) (docs/conventions.md), except
in ``angles.npy``, which keeps the order the copies of :data:`ROTATIONS_FORMAT` 2 were recorded in: healpy's
(psi, theta, phi) = (gamma, beta, alpha).

Cache: ``<data_dir>/massmaps-rotations-nside<N>-<key>/`` holds ``rotations.npy`` (2 classes, n_maps x copies,
12 nside^2) float32 NESTED, copy r of map i at ``[c, i * copies + r]``, ``angles.npy`` (2, n_maps, copies, 3)
float64 radians in healpy's (psi, theta, phi) order (see above), and ``metadata.json``; the key hashes the data
set's generation parameters, the maps rotated, the copies per map and the rotation seed.  Written atomically and reused like the maps
(:func:`~._massmaps_cache.atomic_directory`); read as a memory map.  Cost per copy: one ``rotate_alm`` and the
generator's three transforms at lmax = 3 nside - 1, about 1.2 s at nside 256 on one CPU thread (``rotate_alm``
dominates; 0.2 s per map for the generator alone; cost ~ nside^3): the generation line's estimate
(:data:`SECONDS_PER_COPY_1024`); for the shells ~3.3 s at nside 256: a map's generation (1.24 s) and 24
rotations of 0.09 s (:data:`SECONDS_PER_SHELLS_COPY_1024`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import healpy as hp
import numpy as np
import torch

from .._seeds import derived_seeds
from ..harmonic import as_angles, random_rotations
from .._validation import check_nonnegative_int, check_positive_int
from ._massmaps_cache import METADATA, atomic_directory, cache_key, cost_note, damaged_data_set, limit_threads, \
    open_data_npy, package_versions, preallocated_memmap, read_metadata
from ._spectra import COSMOLOGIES
from .massmaps import SECONDS_PER_MAP_1024, MassMapConfig, gaussian_alm, map_from_gaussian_alm, map_rng

__all__ = ["ROTATION_STREAM", "SECONDS_PER_COPY_1024", "SECONDS_PER_SHELLS_COPY_1024", "rotation_seed", "random_rotation", "rotated_map", "sky_rotations_dir",
           "generate_sky_rotations", "load_sky_rotations"]

#: stream constant of the rotation seed (:func:`rotation_seed`)
ROTATION_STREAM = 7700
#: version of the copies' recipe (:func:`random_rotation`, :func:`rotated_map`) in their cache key: raise it when the
#: recipe changes, so old copies are not reused (the maps' own FORMAT_VERSION leaves the maps cache alone)
ROTATIONS_FORMAT = 2  # 2: the angles drawn by harmonic.random_rotations
#: seconds per copy at nside 1024 on one core, for the generation line's estimate: 1.2 s measured at nside 256
#: (the cost ~ nside^3: rotate_alm and the transforms at lmax = 3 nside - 1)
SECONDS_PER_COPY_1024 = 1.2 * (1024 / 256) ** 3
#: the same for the shells: a map's generation and a ducc0 rotation per shell (24 x 0.09 s at nside 256)
SECONDS_PER_SHELLS_COPY_1024 = SECONDS_PER_MAP_1024["shells"] + 24 * 0.09 * (1024 / 256) ** 3
_FILE = "rotations.npy"


def _seconds_per_copy_1024(config: MassMapConfig) -> float:
    """The estimate's seconds per copy at nside 1024: :data:`SECONDS_PER_SHELLS_COPY_1024` for the shells,
    :data:`SECONDS_PER_COPY_1024` for one field."""
    return SECONDS_PER_SHELLS_COPY_1024 if config.generator == "shells" else SECONDS_PER_COPY_1024
_ANGLES = "angles.npy"


def rotation_seed(seed: int) -> int:
    """Seed of the rotations of the data set seeded ``seed``: ``derived_seeds(seed, (ROTATION_STREAM,))``."""
    return derived_seeds(seed, (ROTATION_STREAM,))[0]


def random_rotation(seed: int, c: int, i: int, r: int) -> np.ndarray:
    """ZYZ Euler angles (alpha, beta, gamma) in radians, shape (3,), of the rotation of copy ``r`` of map ``i`` of
    class ``c`` (``seed``: :func:`rotation_seed`): the draw of :func:`~deepsphere_gen.harmonic.random_rotations`
    seeded by ``derived_seeds(seed, (c, i, r))``, reversed, since the recorded copies (:data:`ROTATIONS_FORMAT` 2)
    passed that draw to ``healpy.rotate_alm`` as its (psi, theta, phi); uniform on SO(3) all the same."""
    return random_rotations(1, seed=derived_seeds(seed, (c, i, r))[0])[0].numpy()[::-1].copy()


def rotated_map(config: MassMapConfig, c: int, i: int, angles, alm=None) -> np.ndarray:
    """Map ``i`` of class ``c`` of the data set ``config`` with its Gaussian field rotated by the ZYZ Euler
    ``angles`` (alpha, beta, gamma) in radians, the package's active rotation (as
    :func:`~deepsphere_gen.harmonic.rotate_map`; shape (3,), finite, else ValueError); NESTED float64 (12 nside^2,).
    ``alm``: that map's Gaussian alm where the caller already holds it (left unchanged; made here otherwise)."""
    ang = as_angles(angles, torch.float64, "cpu")
    if ang.shape != (3,):
        raise ValueError(f"angles must be one rotation, shape (3,) ZYZ Euler angles (alpha, beta, gamma), "
                         f"got shape {tuple(ang.shape)}")
    alpha, beta, gamma = ang.tolist()
    cosmology = COSMOLOGIES[c]
    alm = gaussian_alm(cosmology, config, map_rng(config, c, i)) if alm is None else alm
    if alm.ndim == 2:  # one row per matter shell, rotated into a new array as the shells are summed
        import ducc0

        alm = (ducc0.sht.rotate_alm(row, config.band_limit, gamma, beta, alpha) for row in alm)
    else:
        alm = alm.copy()
        hp.rotate_alm(alm, gamma, beta, alpha, lmax=config.band_limit)  # healpy's (psi, theta, phi), in place
    return map_from_gaussian_alm(alm, cosmology, config)


def _params(config: MassMapConfig, n_maps: int, copies: int) -> dict:
    return {"maps": config.generation_params(), "n_maps_rotated": int(n_maps), "copies": int(copies),
            "rotation_seed": rotation_seed(config.seed), "rotation_stream": ROTATION_STREAM,
            "rotations_format": ROTATIONS_FORMAT}


def sky_rotations_dir(config: MassMapConfig, n_maps: int, copies: int, data_dir) -> Path:
    """Folder of the ``copies`` rotated copies of the first ``n_maps`` maps per class of ``config``."""
    key = cache_key(json.loads(json.dumps(_params(config, n_maps, copies), default=str)))
    return Path(data_dir) / f"massmaps-rotations-nside{config.nside}-{key}"


def generate_sky_rotations(config: MassMapConfig, n_maps: int, copies: int, data_dir, progress: bool = True,
                           verbose: bool = True, threads: int | None = 1) -> Path:
    """Generate (or reuse) ``copies`` rotated copies of maps 0 .. ``n_maps`` - 1 of each class of ``config``
    (the training maps) under ``data_dir``; returns the folder (see the module docstring).  ``threads``:
    OpenMP threads for healpy (as :func:`~.massmaps.generate_massmaps`)."""
    if not isinstance(config, MassMapConfig):
        raise ValueError(f"config must be a MassMapConfig, got {type(config).__name__}")
    n_maps = check_positive_int(n_maps, "n_maps (maps rotated per class)")
    copies = check_positive_int(copies, "copies (rotated copies per map)")
    if n_maps > config.n_maps:
        raise ValueError(f"cannot rotate {n_maps} maps per class of a data set of {config.n_maps}")
    final = sky_rotations_dir(config, n_maps, copies, data_dir)
    params = json.loads(json.dumps(_params(config, n_maps, copies), default=str))
    meta = read_metadata(final)
    if meta is not None and meta.get("generation") == params:
        if verbose:
            print(f"massmaps: reusing the rotated copies {final}")
        return final
    if final.exists():
        raise ValueError(f"{final} exists but its metadata does not match; remove it to regenerate")
    n_total, npix = 2 * n_maps * copies, 12 * config.nside**2
    if verbose:
        print(f"massmaps: generating {copies} rotated cop{'y' if copies == 1 else 'ies'} of {n_maps} maps x 2 classes at "
              f"nside {config.nside}: {cost_note(config.nside, n_total, _seconds_per_copy_1024(config))} -> {final}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    seed = rotation_seed(config.seed)
    with atomic_directory(final, log=print if verbose else None) as tmp, limit_threads(threads), \
            tqdm(total=n_total, desc="rotated copies", unit="map", disable=None if progress else True) as bar:
        out = preallocated_memmap(tmp / _FILE, (2, n_maps * copies, npix))
        angles = np.empty((2, n_maps, copies, 3))
        for c in range(2):
            for i in range(n_maps):
                alm = gaussian_alm(COSMOLOGIES[c], config, map_rng(config, c, i))  # once per map, for all its copies
                for r in range(copies):
                    rotation = random_rotation(seed, c, i, r)
                    angles[c, i, r] = rotation[::-1]  # the file's (psi, theta, phi): see the module docstring
                    out[c, i * copies + r] = rotated_map(config, c, i, rotation, alm)
                    bar.update(1)
        out.flush()
        del out
        np.save(tmp / _ANGLES, angles)
        elapsed = time.perf_counter() - t0
        with open(tmp / METADATA, "w") as f:
            json.dump({"generation": params, "ordering": "NESTED", "dtype": "float32",
                       "shape": [2, n_maps * copies, npix], "layout": "copy r of map i at [c, i * copies + r]",
                       "files": [_FILE, _ANGLES], "versions": package_versions(), "seconds": elapsed,
                       "seconds_per_map": elapsed / n_total, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                      f, indent=1)
    if verbose:
        print(f"massmaps: {n_total} rotated copies in {elapsed:.1f} s ({elapsed / n_total:.2f} s/map)")
    return final


def load_sky_rotations(path, copies: int | None = None) -> tuple[np.ndarray, dict]:
    """``(copies, metadata)`` of a folder of :func:`generate_sky_rotations`: (2, n_maps x copies, 12 nside^2)
    float32 NESTED read-only memory map (copy r of map i at ``[c, i * copies + r]``), and the parsed metadata;
    ``copies``: checked against the metadata when given."""
    path = Path(path)
    meta = read_metadata(path)
    if meta is None:
        raise ValueError(f"{path} is not a folder of rotated mass maps (no readable {METADATA})")
    if copies is not None and meta["generation"]["copies"] != check_nonnegative_int(copies, "copies"):
        raise ValueError(f"{path} holds {meta['generation']['copies']} copies per map, not {copies}")
    maps = open_data_npy(path, _FILE)
    if list(maps.shape) != list(meta["shape"]):
        raise damaged_data_set(path, path / _FILE, f"of shape {list(maps.shape)}, its metadata says {meta['shape']}")
    return maps, meta
