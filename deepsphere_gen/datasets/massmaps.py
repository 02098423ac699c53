"""Weak-lensing convergence (mass) maps of two nearly degenerate cosmologies, and their Dataset.

Pipeline for one map (class c = cosmology ``COSMOLOGIES[c]``), by the config's ``generator``:

1. ``"shells"`` (the default): log-normal matter shells of 200 Mpc along the line of sight, each
   with its pyccl (Limber) spectrum and shift 1, summed with the lensing kernel's weights
   (:mod:`._shells`: ``kappa = sum_i W_i delta_i``; the shells' spectra sum to pyccl's
   convergence C_l within 0.3 % for l >= 30), every shell's field at the pixel centres;
2. ``"lognormal"``: one shifted log-normal convergence field, ``C_l^kappa`` from pyccl
   (:func:`convergence_cl`), l <= lmax = 3 nside - 1 by default; shift ``lambda``
   (:func:`lognormal_shift`) and Gaussian spectrum ``C_l^G`` from
   ``xi_G = ln(1 + xi_kappa / lambda^2)`` (:func:`lognormal_gaussian_cl`); G synthesised
   band-limited at the pixel centres, ``kappa = lambda (exp(G - var_G/2) - 1)``;
   ``"gaussian"``: the Gaussian field of spectrum ``C_l^kappa`` itself (ablation);
3. smoothing: ``map2alm`` (``iter`` iterations, no pixel weights), alm times the Gaussian
   beam (FWHM ``smoothing_arcmin``, default 7.06' = sigma 3' as in DeepSphere) and the HEALPix pixel window (the map then
   behaves like pixel-integrated data), ``alm2map``;
4. NESTED order, float32 on disk.

Noise is not stored: the Dataset adds white Gaussian noise of a given per-pixel standard
deviation ``noise_std`` (physical shape noise: :mod:`deepsphere_gen.datasets.shape_noise`), or,
as an explicit option, ``noise_level * clean_std`` where ``clean_std`` is ONE number per
dataset, the pixel std of all clean maps of both classes together.  Either way the noise
amplitude carries no class information.  The noise of a sample is fixed by
(seed, noise std, class, map, patch): reproducible, identical across epochs.  For training,
:class:`FreshNoise` draws a new realisation at every draw over a noise-free ``MassMapDataset``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import healpy as hp
import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_nonnegative_int, check_positive_int
from ..sampling import check_nside
from ._footprint import apply_footprint, bad_pixels, check_mask, nside_of, split_patches
from ._lognormal import field_variance, lognormal_from_alm, lognormal_gaussian_cl, synthesize_alm
from ._shells import (KERNEL_SAMPLES, SHELL_WIDTH_MPC, TAIL_VARIANCE, lensing_shells, shell_alms, shell_spectrum_sum,
                      shells_convergence)
from ._massmaps_cache import (
    METADATA,
    atomic_directory,
    cache_key,
    cost_note,
    damaged_data_set,
    open_data_npy,
    limit_threads,
    package_versions,
    preallocated_memmap,
    read_metadata,
)
from .shape_noise import DEEPSPHERE_SMOOTHING_FWHM_ARCMIN
from ._spectra import (
    COSMOLOGIES,
    FIXED_PARAMETERS,
    SMAIL_PARAMETERS,
    Cosmology,
    convergence_cl,
    gaussian_beam,
    lognormal_shift,
    pixel_window,
)

__all__ = ["split_sizes", 
    "check_noise_level",
    "MassMapConfig",
    "GENERATORS",
    "DEEPSPHERE_NOISE_LEVELS",
    "convergence_map",
    "map_rng",
    "gaussian_alm",
    "map_from_gaussian_alm",
    "generate_massmaps",
    "load_massmaps",
    "MassMapDataset",
    "FreshNoise",
]

#: Relative noise levels of DeepSphere's experiments (2019: 0-2, ICLR 2020: 3.5).
DEEPSPHERE_NOISE_LEVELS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.5)
#: the map generators of :class:`MassMapConfig` (the first is the default): multi-plane log-normal shells, one
#: log-normal convergence field, a Gaussian field of the same C_l
GENERATORS = ("shells", "lognormal", "gaussian")
#: seconds per map at nside 1024 on one core, by generator (scaled by nside^3 for the generation line's estimate;
#: the shells measured with their set-up: 1.24 s per map at nside 256 (96 maps), 6.9 s at 512 (40 maps))
SECONDS_PER_MAP_1024 = {"shells": 60.0, "lognormal": 11.0, "gaussian": 8.0}
_MAPS_FILE = "maps.npy"
_SPECTRA_FILE = "spectra.npz"


def check_noise_level(level) -> float:
    """A noise level (a multiple of a pixel std) as a finite float >= 0, else ValueError naming it."""
    try:
        x = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"noise level must be a number, got {level!r}") from None
    if not np.isfinite(x) or x < 0:
        raise ValueError(f"noise level must be a finite number >= 0 (relative to the clean map std), got {level!r}")
    return x


@dataclass(frozen=True)
class MassMapConfig:
    """Parameters of a generated mass-map data set (both classes).

    nside: HEALPix resolution (power of 2, <= 1024 supported in practice);
    n_maps: full-sky maps per class; seed: base seed (map i of class c uses
    ``SeedSequence([seed, c, i])``, so adding maps keeps the first ones);
    smoothing_arcmin: Gaussian beam FWHM in arcmin (0 = none; default 7.06', i.e. sigma 3'
    as DeepSphere's maps); pixel_window: apply the HEALPix
    pixel window; lmax: band limit (None -> 3 nside - 1); iter: map2alm iterations of
    the smoothing step (0 by default: the log-normal map has power above lmax, and
    iterating fits its aliases; measured at nside 64 in the top band 160 <= l < 192:
    anafast / expected = 0.96 with iter 0, 0.94 with iter 1, 0.95 with iter 3); generator: one of
    :data:`GENERATORS` (module docstring: "shells", the default, sums log-normal matter shells; "lognormal" is one
    log-normal convergence field, the generator of the records made before the shells; "gaussian" a Gaussian field of
    the same C_l, an ablation); noise_levels: the relative noise levels the experiment uses (validated,
    recorded; noise itself is added by :class:`MassMapDataset`).
    """

    nside: int = 64
    n_maps: int = 16
    seed: int = 0
    smoothing_arcmin: float = DEEPSPHERE_SMOOTHING_FWHM_ARCMIN
    pixel_window: bool = True
    lmax: int | None = None
    iter: int = 0
    generator: str = GENERATORS[0]
    noise_levels: tuple = field(default=DEEPSPHERE_NOISE_LEVELS)

    def __post_init__(self):
        object.__setattr__(self, "nside", check_nside(self.nside))
        object.__setattr__(self, "n_maps", check_positive_int(self.n_maps, "n_maps (per class)"))
        object.__setattr__(self, "seed", check_nonnegative_int(self.seed, "seed"))
        if not np.isfinite(self.smoothing_arcmin) or self.smoothing_arcmin < 0:
            raise ValueError(f"smoothing_arcmin must be >= 0, got {self.smoothing_arcmin!r}")
        if self.lmax is not None:
            lmax = check_positive_int(self.lmax, "lmax")
            if not 2 <= lmax <= 4 * self.nside:
                raise ValueError(f"lmax must be an integer in [2, 4 nside = {4 * self.nside}], got {self.lmax!r}")
            object.__setattr__(self, "lmax", lmax)
        object.__setattr__(self, "iter", check_nonnegative_int(self.iter, "iter"))
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        object.__setattr__(self, "noise_levels", tuple(check_noise_level(v) for v in self.noise_levels))

    @property
    def band_limit(self) -> int:
        """lmax actually used (3 nside - 1 unless given)."""
        return int(self.lmax) if self.lmax is not None else 3 * self.nside - 1

    def generation_params(self) -> dict:
        """Everything that determines the stored maps (the cache key); noise levels excluded."""
        d = asdict(self)
        d.pop("noise_levels")
        generator = d.pop("generator")
        if generator == "shells":
            d["generator"] = {"name": generator, "shell_width_mpc": SHELL_WIDTH_MPC, "kernel_samples": KERNEL_SAMPLES,
                              "tail_variance": TAIL_VARIANCE}
        else:  # the parameters of the data sets made before the shells existed: their cache keys unchanged
            d["lognormal"] = generator == "lognormal"
        d["lmax"] = self.band_limit
        d["cosmologies"] = [asdict(c) for c in COSMOLOGIES]
        d["fixed_parameters"] = FIXED_PARAMETERS
        d["smail"] = SMAIL_PARAMETERS
        return d


@lru_cache(maxsize=16)
def _gaussian_cl(cosmology: Cosmology, lmax: int) -> np.ndarray:
    cl_g = lognormal_gaussian_cl(convergence_cl(cosmology, lmax), lognormal_shift(cosmology))
    cl_g.setflags(write=False)
    return cl_g


def _transfer(config: MassMapConfig) -> np.ndarray:
    lmax = config.band_limit
    b = gaussian_beam(config.smoothing_arcmin, lmax)
    if config.pixel_window:
        b = b * pixel_window(config.nside, lmax)
    return b


def map_rng(config: MassMapConfig, c: int, i: int) -> np.random.Generator:
    """The random generator of map ``i`` of class ``c``: ``SeedSequence([config.seed, c, i])``."""
    return np.random.default_rng(np.random.SeedSequence([config.seed, c, i]))


def gaussian_alm(cosmology: Cosmology, config: MassMapConfig, rng: np.random.Generator) -> np.ndarray:
    """The Gaussian fields' alm of one map (healpy order, m >= 0, lmax = ``config.band_limit``, complex128):
    shape (n_shells, n_alm), one row per matter shell (:func:`~._shells.shell_alms`) for ``"shells"``; shape
    (n_alm,) otherwise, G's (spectrum C_l^G) for a log-normal map, the map's own (C_l^kappa) for a Gaussian one.
    Randomness only from ``rng``."""
    lmax = config.band_limit
    if config.generator == "shells":
        shells = lensing_shells(cosmology, lmax)
        out = np.empty((shells.n_shells, hp.Alm.getsize(lmax)), np.complex128)
        for row, alm in zip(out, shell_alms(shells, rng)):
            row[:] = alm
        return out
    lognormal = config.generator == "lognormal"
    return synthesize_alm(_gaussian_cl(cosmology, lmax) if lognormal else convergence_cl(cosmology, lmax), rng)


def map_from_gaussian_alm(alm: np.ndarray, cosmology: Cosmology, config: MassMapConfig) -> np.ndarray:
    """The generator's steps after the Gaussian fields' ``alm`` (:func:`gaussian_alm`): the fields at the pixel
    centres, the shifted exponentials (summed with the shells' weights for ``"shells"``), beam and pixel window
    through ``map2alm`` / ``alm2map``; NESTED, float64, shape (12 nside^2,).  Cost: one transform per field and
    two more at lmax = 3 nside - 1."""
    lmax, nside = config.band_limit, config.nside
    if config.generator == "shells":
        kappa = shells_convergence(alm, lensing_shells(cosmology, lmax), nside)
    elif config.generator == "lognormal":
        kappa = lognormal_from_alm(alm, _gaussian_cl(cosmology, lmax), lognormal_shift(cosmology), nside)
    else:
        kappa = hp.alm2map(alm, nside, lmax=lmax, pixwin=False)
    return _smoothed_nested(kappa, config)


def _smoothed_nested(kappa: np.ndarray, config: MassMapConfig) -> np.ndarray:
    """The RING map ``kappa`` (values at the pixel centres) through the beam and pixel window, NESTED."""
    lmax, nside = config.band_limit, config.nside
    if config.smoothing_arcmin > 0 or config.pixel_window:
        alm = hp.map2alm(kappa, lmax=lmax, iter=config.iter, use_pixel_weights=False)
        kappa = hp.alm2map(hp.almxfl(alm, _transfer(config)), nside, lmax=lmax, pixwin=False)
    return hp.reorder(kappa, r2n=True)


def convergence_map(cosmology: Cosmology, config: MassMapConfig, rng: np.random.Generator) -> np.ndarray:
    """One clean convergence map, NESTED, float64, shape (12 nside^2,).

    Randomness comes only from ``rng``.  The shells' alms are drawn and used one at a time (the draws of
    :func:`gaussian_alm`, the same map, without holding every shell's alm).
    """
    alm = (shell_alms(lensing_shells(cosmology, config.band_limit), rng) if config.generator == "shells"
           else gaussian_alm(cosmology, config, rng))
    return map_from_gaussian_alm(alm, cosmology, config)


def _dataset_dir(config: MassMapConfig, data_dir) -> Path:
    return Path(data_dir) / f"massmaps-nside{config.nside}-{cache_key(config.generation_params())}"


def _class_spectra(cosmology: Cosmology, config: MassMapConfig, c: int) -> dict:
    """The arrays of class ``c`` in spectra.npz: the input ``cl_kappa_c`` (for ``"shells"`` the shells' sum, which
    is pyccl's weak-lensing C_l without its (l+2)!/(l-2)!/(l+1/2)^4 factor: 1.6x at l = 2, 1.02 at l = 10, within
    0.3 % from l = 30); for ``"shells"`` the shells' ``shell_edges_c``
    (Mpc), ``shell_weights_c``, ``cl_shells_c`` and ``cl_gauss_c`` (n_shells, lmax + 1); otherwise ``cl_gauss_c``
    (lmax + 1,) and the log-normal ``shift_c``."""
    lmax = config.band_limit
    if config.generator == "shells":
        shells = lensing_shells(cosmology, lmax)
        return {f"cl_kappa_{c}": shell_spectrum_sum(shells), f"shell_edges_{c}": shells.edges_mpc,
                f"shell_weights_{c}": shells.weights, f"cl_shells_{c}": shells.cl_density, f"cl_gauss_{c}": shells.cl_gauss}
    cl = convergence_cl(cosmology, lmax)
    cl_g = _gaussian_cl(cosmology, lmax) if config.generator == "lognormal" else cl
    return {f"cl_kappa_{c}": cl, f"cl_gauss_{c}": cl_g, f"shift_{c}": np.float64(lognormal_shift(cosmology))}


def _class_generator(cosmology: Cosmology, config: MassMapConfig) -> dict:
    """What metadata.json says of one class's generator: its shells (count, dropped variance fraction, shift 1) or
    the log-normal shift."""
    if config.generator == "shells":
        shells = lensing_shells(cosmology, config.band_limit)
        return {"n_shells": shells.n_shells, "shell_shift": 1.0, "dropped_variance": shells.dropped_variance}
    return {"lognormal_shift": lognormal_shift(cosmology)}


def generate_massmaps(config: MassMapConfig, data_dir, progress: bool = True, verbose: bool = True,
                      threads: int | None = 1) -> Path:
    """Generate (or reuse) the data set for ``config`` under ``data_dir``; returns its directory.

    The directory holds ``maps.npy`` (2 classes, n_maps, 12 nside^2) float32 NESTED, ``spectra.npz`` (input C_l^kappa, the generator's spectra: :func:`_class_spectra`; transfer b_l w_l)
    and ``metadata.json`` (parameters, package versions, clean_std, timing).  It is
    written to a temporary directory and renamed at the end: an error leaves nothing.
    A directory with the same parameters is reused without recomputation.
    ``threads``: OpenMP threads for healpy (1 by default: faster on a shared machine;
    None = healpy's default).
    """
    if not isinstance(config, MassMapConfig):
        raise ValueError(f"config must be a MassMapConfig, got {type(config).__name__}")
    final = _dataset_dir(config, data_dir)
    meta = read_metadata(final)
    if meta is not None and meta.get("generation") == json.loads(json.dumps(config.generation_params())):
        if verbose:
            print(f"massmaps: reusing {final}")
        return final
    if final.exists():
        raise ValueError(f"{final} exists but its metadata does not match; remove it to regenerate")

    n_total = 2 * config.n_maps
    if verbose:
        print(f"massmaps: generating {config.n_maps} maps x 2 classes at nside {config.nside} "
              f"(lmax {config.band_limit}): {cost_note(config.nside, n_total, SECONDS_PER_MAP_1024[config.generator])} "
              f"-> {final}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    npix = 12 * config.nside**2
    with atomic_directory(final, log=print if verbose else None) as tmp, limit_threads(threads), \
            tqdm(total=n_total, desc="massmaps", unit="map", disable=None if progress else True) as bar:
        spectra = {"transfer": _transfer(config)}
        out = preallocated_memmap(tmp / _MAPS_FILE, (2, config.n_maps, npix))
        sums, sq = 0.0, 0.0
        class_std = []
        for c, cosmo in enumerate(COSMOLOGIES):
            spectra.update(_class_spectra(cosmo, config, c))
            csum, csq = 0.0, 0.0
            for i in range(config.n_maps):
                m = convergence_map(cosmo, config, map_rng(config, c, i))
                out[c, i] = m
                csum += float(m.sum())
                csq += float(np.square(m).sum())
                bar.update(1)
            n = config.n_maps * npix
            class_std.append(float(np.sqrt(max(csq / n - (csum / n) ** 2, 0.0))))
            sums, sq = sums + csum, sq + csq
        out.flush()
        del out
        np.savez(tmp / _SPECTRA_FILE, **spectra)
        n = n_total * npix
        elapsed = time.perf_counter() - t0
        meta = {
            "generation": config.generation_params(),
            "noise_levels": list(config.noise_levels),
            "classes": [{"label": c, **asdict(cosmo), **_class_generator(cosmo, config),
                         "clean_std": class_std[c], "input_variance": field_variance(
                             spectra[f"cl_kappa_{c}"] * spectra["transfer"] ** 2)}
                        for c, cosmo in enumerate(COSMOLOGIES)],
            "clean_std": float(np.sqrt(max(sq / n - (sums / n) ** 2, 0.0))),
            "ordering": "NESTED",
            "dtype": "float32",
            "shape": [2, config.n_maps, npix],
            "files": [_MAPS_FILE, _SPECTRA_FILE],
            "versions": package_versions(),
            "seconds": elapsed,
            "seconds_per_map": elapsed / n_total,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(tmp / METADATA, "w") as f:
            json.dump(meta, f, indent=1)
    if verbose:
        print(f"massmaps: {n_total} maps in {elapsed:.1f} s ({elapsed / n_total:.2f} s/map)")
    return final


def load_massmaps(path) -> tuple[np.ndarray, dict]:
    """``(maps, metadata)`` of a directory written by :func:`generate_massmaps`.

    ``maps``: (2, n_maps, 12 nside^2) float32 NESTED, a read-only memory map (nothing is
    read until indexed); ``metadata``: the parsed metadata.json.
    """
    path = Path(path)
    meta = read_metadata(path)
    if meta is None:
        raise ValueError(f"{path} is not a generated mass-map data set (no readable {METADATA})")
    maps = open_data_npy(path, _MAPS_FILE)
    if list(maps.shape) != list(meta.get("shape", maps.shape)):
        raise damaged_data_set(path, path / _MAPS_FILE, f"of shape {list(maps.shape)}, its metadata says {meta['shape']}")
    return maps, meta


def _check_estimable(maps: np.ndarray) -> None:
    """ValueError naming the first map with UNSEEN/NaN/inf pixels in ``maps`` (classes, maps,
    pixels), from which no clean std can be estimated.  Cost: a min and a max pass; the map
    search runs on the error path only."""
    if not bad_pixels(np.array([np.min(maps), np.max(maps)])).any():  # NaN propagates, UNSEEN / inf are extremes
        return
    for c in range(maps.shape[0]):
        for j in range(maps.shape[1]):
            m = np.asarray(maps[c, j])
            n = int(np.count_nonzero(bad_pixels(m)))
            if n:
                raise ValueError(
                    f"map {j} of class {c} has UNSEEN/NaN/inf pixels ({n}): the clean std cannot be estimated "
                    "from them; give clean_std, and a footprint that excludes the missing pixels")


def split_sizes(n_maps: int, test_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """Maps per class in the (train, validation, test) splits of :class:`MassMapDataset`: the last
    ``round(test_fraction * n_maps)`` (at least 1) are the test maps, the ``round(val_fraction * n_maps)``
    before them (at least 1 where ``val_fraction`` > 0, else none) the validation maps, the others the
    training maps (may be < 1: the caller refuses)."""
    n_test = max(1, int(round(test_fraction * n_maps)))
    n_val = max(1, int(round(val_fraction * n_maps))) if val_fraction > 0 else 0
    return n_maps - n_test - n_val, n_val, n_test


class MassMapDataset(Dataset):
    """Samples (x, label, pixel_indices) of full-sky maps, nested base patches or a footprint.

    Parameters
    ----------
    source : directory written by :func:`generate_massmaps`, or an array shaped
        (n_classes, n_maps, 12 nside^2) of clean NESTED maps (a memory map is read lazily:
        one sample at a time).
    level : None for full sky, else the patch level k: 12 * 4**k patches of sky
        fraction 1/12 (k=0), 1/48 (k=1), 1/192 (k=2).
    footprint : boolean NESTED mask (12 nside^2,), instead of ``level``.
    noise : relative noise level >= 0 (noise std = noise * clean_std); the explicit
        alternative to ``noise_std``.
    noise_std : per-pixel noise std of a sample, in convergence units, at the sample's
        resolution (physical shape noise: ``shape_noise.pixel_noise_std(nside, ngal)``).
    split : "train", "val", "test" or "all"; the last ``round(test_fraction * n_maps)`` maps
        of each class (at least 1) are the test maps, the ``round(val_fraction * n_maps)``
        maps before them the validation maps (taken from the training maps), so patches of
        one map never straddle a split.
    nside_out : full sky only: samples are the maps averaged down (NESTED children means,
        like ``healpy.ud_grade``) to this resolution; ``clean_std`` then refers to the
        averaged maps (measured on the first 8 maps of each class) and ``noise_std`` to the
        coarse pixels.
    clean_std : reference std for arrays (default: std of the given array, which must then hold
        no UNSEEN/NaN/inf pixel: ValueError naming the first such map).
    seed : noise seed (default: the data set's seed, 0 for arrays).

    The noise of a sample is fixed by (seed, noise std, class, map, patch): ``ds[i]`` is the same at every
    epoch.  Right for validation and test samples; for training it lets a network memorise the noise (see
    :class:`FreshNoise`): train on ``FreshNoise(MassMapDataset(..., split="train"), noise_std)`` instead.

    Item: ``x`` (pixels, 1) float tensor, ``label`` int64 scalar tensor, ``indices``
    (pixels,) int64 sorted nested pixel indices of ``x`` (all items of a data set have
    the same pixel count, so the default collate batches them).
    """

    def __init__(self, source, level: int | None = None, noise: float = 0.0, split: str = "train",
                 test_fraction: float = 0.25, footprint=None, clean_std: float | None = None,
                 seed: int | None = None, dtype: torch.dtype = torch.float32, noise_std: float | None = None,
                 val_fraction: float = 0.0, nside_out: int | None = None):
        if isinstance(source, (str, Path)):
            maps, meta = load_massmaps(source)
            ref_std = meta["clean_std"] if clean_std is None else clean_std
            seed = meta["generation"]["seed"] if seed is None else seed
        else:
            maps = np.asarray(source)
            if maps.ndim != 3:
                raise ValueError(f"map array must be shaped (n_classes, n_maps, pixels), got {maps.shape}")
            if clean_std is None:
                _check_estimable(maps)
            ref_std = float(np.std(maps)) if clean_std is None else clean_std
            seed = 0 if seed is None else seed
        n_classes, n_maps, npix = maps.shape
        self.nside = self.map_nside = nside_of(npix)
        self._group = 1
        if nside_out is not None and int(nside_out) != self.nside:
            if level is not None or footprint is not None:
                raise ValueError("nside_out (averaging down) applies to full-sky samples only")
            nside_out = check_nside(nside_out)
            if nside_out > self.nside:
                raise ValueError(f"nside_out {nside_out} must not exceed the maps' nside {self.nside}")
            self.nside, self._group = nside_out, (self.nside // nside_out) ** 2
            if clean_std is None:
                sub = np.asarray(maps[:, :min(8, n_maps)], dtype=np.float64)
                _check_estimable(sub)
                ref_std = float(sub.reshape(sub.shape[:2] + (-1, self._group)).mean(-1).std())
        if not np.isfinite(ref_std) or ref_std <= 0:
            raise ValueError(f"clean_std must be positive, got {ref_std}")
        self.maps, self.clean_std, self.seed, self.dtype = maps, float(ref_std), int(seed), dtype
        if noise_std is not None:
            if noise:
                raise ValueError("give either a relative noise level or noise_std, not both")
            std = float(noise_std)
            if not (np.isfinite(std) and std >= 0):
                raise ValueError(f"noise_std must be a finite number >= 0 (convergence units), got {noise_std!r}")
            self.noise_std, self._noise_key = std, [7920, int(round(std * 1e9))]
        else:
            rel = check_noise_level(noise)
            self.noise_std, self._noise_key = rel * self.clean_std, [7919, int(round(rel * 1000))]
        self.noise = self.noise_std / self.clean_std  # relative to the clean std of the samples

        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        if not 0 <= val_fraction < 1 - test_fraction:
            raise ValueError(f"val_fraction must lie in [0, 1 - test_fraction), got {val_fraction}")
        n_train, n_val, n_test = split_sizes(n_maps, test_fraction, val_fraction)
        if split != "all" and n_train < 1:
            raise ValueError(f"{n_maps} map(s) per class cannot be split into train"
                             f"{', validation' if n_val else ''} and test")
        self.map_ids = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val),
                        "test": np.arange(n_maps - n_test, n_maps), "all": np.arange(n_maps)}[split]
        if len(self.map_ids) == 0:
            raise ValueError("the validation split is empty: give val_fraction > 0")
        self.split = split

        if footprint is not None and level is not None:
            raise ValueError("give either a patch level or a footprint, not both")
        self.level = level
        if footprint is not None:
            mask = check_mask(footprint, self.nside, name="footprint")
            self.indices = np.flatnonzero(mask)[None, :].astype(np.int64)
            apply_footprint(np.asarray(maps[0, :1]), mask)  # UNSEEN inside the footprint -> ValueError
        elif level is not None:
            _, self.indices = split_patches(np.empty(npix, dtype=np.int8), level)
        else:
            self.indices = np.arange(12 * self.nside**2, dtype=np.int64)[None, :]
        self.n_classes = n_classes
        self._indices_t = torch.from_numpy(self.indices)

    @property
    def n_patches(self) -> int:
        return self.indices.shape[0]

    @property
    def sky_fraction(self) -> float:
        """Fraction of the sky seen by one sample."""
        return self.indices.shape[1] / (12 * self.nside**2)

    def sample_map(self, i: int) -> tuple[int, int]:
        """(class, map number) of sample ``i``."""
        c, j, _ = self.locate(i)
        return c, j

    def __len__(self) -> int:
        return self.n_classes * len(self.map_ids) * self.n_patches

    def locate(self, i: int) -> tuple[int, int, int]:
        """(class, map number, patch number) of sample ``i`` (negative: from the end): the samples run over the
        classes, within a class over its maps (``map_ids``), within a map over its patches.  IndexError out of
        range.  :meth:`sample_index` is the inverse."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i %= len(self)
        per_class = len(self.map_ids) * self.n_patches
        c, r = divmod(i, per_class)
        j, p = divmod(r, self.n_patches)
        return c, int(self.map_ids[j]), p

    def sample_index(self, c: int, j: int, p: int) -> int:
        """The sample of patch ``p`` of map number ``j`` of class ``c`` (:meth:`locate`'s inverse); IndexError where
        the data set holds no such sample (another split's map, say)."""
        k = j - int(self.map_ids[0])  # the maps of a split are consecutive numbers
        if not (0 <= c < self.n_classes and 0 <= k < len(self.map_ids) and 0 <= p < self.n_patches):
            raise IndexError(f"no sample of class {c}, map {j}, patch {p} in the {self.split} samples (classes "
                             f"{self.n_classes}, maps {self.map_ids[0]}-{self.map_ids[-1]}, patches {self.n_patches})")
        return (c * len(self.map_ids) + k) * self.n_patches + p

    def values(self, i: int) -> tuple[np.ndarray, int, int]:
        """(pixel values float64 (pixels,), label, patch number) of sample ``i``, noise included."""
        c, j, p = self.locate(i)
        if self._group > 1:
            x = np.asarray(self.maps[c, j], dtype=np.float64).reshape(-1, self._group).mean(axis=1)
        elif self.level is not None:  # nested patches are contiguous pixel ranges
            n = self.indices.shape[1]
            x = np.asarray(self.maps[c, j, p * n:(p + 1) * n], dtype=np.float64)
        else:
            x = np.asarray(self.maps[c, j, self.indices[p]], dtype=np.float64)
        if bad_pixels(x).any():
            raise ValueError(f"map {j} of class {c} has UNSEEN/NaN/inf pixels inside patch {p}: "
                             "pass a footprint that excludes them")
        if self.noise_std > 0:
            key = [self.seed, *self._noise_key, c, j, 0 if self.level is None else self.level + 1, p]
            if self._group > 1:
                key.append(self.nside)
            rng = np.random.default_rng(np.random.SeedSequence(key))
            x = x + self.noise_std * rng.standard_normal(x.size)
        return x, c, p

    def __getitem__(self, i: int):
        x, c, p = self.values(i)
        return (torch.from_numpy(x).to(self.dtype).unsqueeze(-1), torch.tensor(c, dtype=torch.int64),
                self._indices_t[p])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All samples as numpy: values (n, pixels) float64, indices (n, pixels) int64, labels (n,)."""
        out = [self.values(i) for i in range(len(self))]
        x = np.stack([o[0] for o in out])
        labels = np.array([o[1] for o in out], dtype=np.int64)
        idx = self.indices[[o[2] for o in out]]
        return x, idx, labels


class FreshNoise(Dataset):
    """Training samples of ``clean`` (a noise-free :class:`MassMapDataset`, or any data set of such items with
    ``noise_std`` 0) with a new white-noise realisation of per-pixel std ``noise_std`` at every draw:
    ``x + noise_std * torch.randn(x.shape, dtype=torch.float64)`` cast to ``x``'s dtype, from torch's global
    RNG (which :func:`~deepsphere_gen.training.fit` re-seeds every epoch: reproducible, resumable).

    The noise model is known, so a network need not see the same noise twice: with the fixed noise of
    ``MassMapDataset(..., noise_std=s)`` the full-sky networks of the mass-map experiment memorised the noise
    realisations of their 60 training maps (a development run at noise 2, no record kept: training accuracy
    100 %, test 75 %).  Items as in :class:`MassMapDataset`.
    """

    def __init__(self, clean, noise_std: float):
        if clean.noise_std != 0:
            raise ValueError("FreshNoise needs a noise-free dataset")
        std = float(noise_std)
        if not (np.isfinite(std) and std >= 0):
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        self.clean, self.sigma = clean, std

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        x, label, idx = self.clean[i]
        if self.sigma > 0:
            x = x + self.sigma * torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
        return x, label, idx
