"""Tomographic convergence maps over a (Omega_m, sigma_8) design on a survey footprint, cached on disk.

Design (:func:`design`): a scrambled Sobol sequence (``scipy.stats.qmc``, seeded) over the
box ``omega_m_range x sigma8_range``; its first ``n_train`` points are the training
cosmologies, the next ``n_test`` the held-out ones, the next ``n_calib`` the calibration
cosmologies (never trained on: they fit the variance calibration of the estimators).  A ``fiducial`` cosmology gets
``n_fiducial`` extra maps for the constraint widths.  Every cosmology has ``n_real``
full-sky realisations of ``n_bins`` correlated log-normal maps (:mod:`.tomography`);
each realisation yields one survey sample per exact copy of the footprint
(:func:`~.survey_footprint.footprint_copies`: 4 for the built-in one).

Cache: ``<data_dir>/cosmo-nside<N>-<key>/`` with, per split (train, test, fiducial, calibration),
``maps_<split>.npy`` (samples, footprint pixels, n_bins) float32 (pixels in the order of the
footprint's NESTED indices; read through a memory map), ``params_<split>.npy`` (samples, 2)
(Omega_m, sigma_8), ``ids_<split>.npy`` (samples, 3) (cosmology, realisation, copy);
``spectra.npz`` (theory C_l per cosmology, shifts), ``footprint.npy`` (NESTED indices of
copy 0) and ``metadata.json``.  The key and the checkpoints' fingerprints name the footprint by its content
(:func:`footprint_id`: the pixels kept at the data nside), never by the FITS file's name, pixel ordering or
fill value.  A data set is checked where it is reused (:func:`check_data_set`): a missing, truncated or
reshaped file is named, with the advice to remove the folder (as ``massmaps`` words it).  Realisation r of cosmology c of a split is drawn from
``SeedSequence([seed, split, c, r])``: reproducible, independent of the other settings.
The default data directory is ``_cache_dirs.cosmo_data_dir()``: ``cache_root() / "cosmo"``
(``~/.cache/deepsphere_gen/cosmo`` unless ``$DEEPSPHERE_GEN_CACHE`` or ``$XDG_CACHE_HOME`` moves it).
Noise is not stored: :class:`CosmoMapDataset` adds white shape noise per bin.
"""
from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._cache_dirs import cosmo_data_dir
from .._fingerprint import mask_hash
from .._validation import check_positive_int
from ..sampling import check_nside
from ._footprint import read_footprint
from ._massmaps_cache import (METADATA, atomic_directory, cache_key, damaged_data_set, limit_threads, open_data_npy,
                              package_versions, preallocated_memmap, read_metadata)
from ._spectra import FIXED_PARAMETERS, SMAIL_PARAMETERS, Cosmology
from .survey_footprint import footprint_area_deg2, footprint_copies, stage3_footprint
from .tomography import check_n_bins, gaussian_cl_matrix, lognormal_maps, redshift_bins, tomographic_cl, tomographic_shifts

__all__ = ["CosmoGridConfig", "SPLITS", "design", "load_footprint", "footprint_mask", "MAX_FOOTPRINT_FRACTION",
           "footprint_id", "grid_fields", "data_set_dir", "data_set_bytes", "generate_cosmo_grid", "check_data_set",
           "load_split", "CosmoMapDataset", "s8"]

#: the split index in a realisation's SeedSequence is its position here (calibration last: adding it
#: left the maps of the other splits unchanged)
SPLITS = ("train", "test", "fiducial", "calibration")


def s8(omega_m, sigma8):
    """S_8 = sigma_8 sqrt(Omega_m / 0.3) (arrays broadcast)."""
    return np.asarray(sigma8) * np.sqrt(np.asarray(omega_m) / 0.3)


@dataclass(frozen=True)
class CosmoGridConfig:
    """What is simulated.  footprint: "stage3" (built-in) or a HEALPix FITS mask path; n_calib:
    cosmologies of the calibration split (n_real maps each)."""

    nside: int = 128
    n_bins: int = 3
    n_train: int = 128
    n_test: int = 32
    n_real: int = 4
    n_fiducial: int = 24
    n_calib: int = 64
    omega_m_range: tuple = (0.2, 0.4)
    sigma8_range: tuple = (0.6, 1.0)
    fiducial: tuple = (0.3, 0.8)
    footprint: str = "stage3"
    seed: int = 0

    def __post_init__(self):
        check_nside(self.nside)
        check_n_bins(self.n_bins, "n_bins")  # before any work (was: refused by the generation, after its plan line)
        for name in ("n_train", "n_test", "n_real", "n_fiducial", "n_calib"):
            check_positive_int(getattr(self, name), name)
        for name in ("omega_m_range", "sigma8_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)}")
        Cosmology(self.omega_m_range[0], self.sigma8_range[0])  # ValueError for an unphysical box or fiducial
        Cosmology(*self.fiducial)
        object.__setattr__(self, "omega_m_range", tuple(map(float, self.omega_m_range)))
        object.__setattr__(self, "sigma8_range", tuple(map(float, self.sigma8_range)))
        object.__setattr__(self, "fiducial", tuple(map(float, self.fiducial)))

    @property
    def lmax(self) -> int:
        return 3 * self.nside - 1


def design(config: CosmoGridConfig) -> dict[str, np.ndarray]:
    """(Omega_m, sigma_8) per split: {"train": (n_train, 2), "test": (n_test, 2), "fiducial": (1, 2),
    "calibration": (n_calib, 2)}: consecutive points of one Sobol sequence (the training and test points
    do not depend on n_calib as long as n_train + n_test + n_calib stays within the same power of 2)."""
    from scipy.stats import qmc

    n = config.n_train + config.n_test + config.n_calib
    m = int(np.ceil(np.log2(n)))
    unit = qmc.Sobol(d=2, scramble=True, seed=config.seed).random_base2(m)[:n]
    lo = np.array([config.omega_m_range[0], config.sigma8_range[0]])
    hi = np.array([config.omega_m_range[1], config.sigma8_range[1]])
    pts = qmc.scale(unit, lo, hi)
    held = config.n_train + config.n_test
    return {"train": pts[: config.n_train], "test": pts[config.n_train:held], "fiducial": np.array([config.fiducial]),
            "calibration": pts[held:]}


#: a footprint FITS file keeping more than this fraction of the sky is refused (:func:`load_footprint`): the grid
#: simulates a partial-sky survey, and a full-sky "mask" is usually a file given by mistake
MAX_FOOTPRINT_FRACTION = 0.9


def load_footprint(spec: str, nside: int) -> np.ndarray:
    """NESTED bool mask (12 nside^2,): "stage3" (built-in) or a HEALPix FITS survey mask
    (:func:`~._footprint.read_footprint`: 1 inside, 0 or UNSEEN outside; other values refused) keeping at most
    :data:`MAX_FOOTPRINT_FRACTION` of the sky (ValueError naming the fraction it keeps).  Every user of a
    grid's footprint reads it through :func:`footprint_mask`, once per grid; each call here reads the file
    again (~0.1 s at nside 128) or builds the built-in footprint again (~5 s at nside 1024) and returns a new
    array."""
    if spec == "stage3":
        return stage3_footprint(nside)
    mask = read_footprint(spec, nside)
    frac = float(mask.mean())
    if frac > MAX_FOOTPRINT_FRACTION:
        raise ValueError(f"footprint {spec} keeps {100 * frac:.1f} % of the sky: cosmo analyses a partial-sky survey "
                         f"footprint (at most {100 * MAX_FOOTPRINT_FRACTION:.0f} % of the sky); pass the survey's mask "
                         "(1 inside, 0 outside)")
    return mask


def footprint_mask(config: CosmoGridConfig) -> np.ndarray:
    """The footprint of the grid ``config`` (:func:`load_footprint`: NESTED bool (12 nside^2,)), read (a FITS
    file) or built (the built-in one) once per config and shared, read-only, by every user of a run: the
    command's checks, generation, :func:`grid_fields`, the pseudo-C_l estimator and the Fisher forecast (a
    ``cosmo`` run read a FITS file 6 times, built the built-in footprint 6 times).

    The mask is kept on the config as a plain attribute, not a field: not in :func:`dataclasses.asdict`, the
    data set's key, the fingerprints, equality or :func:`dataclasses.replace` (a replaced config reads again).
    The config is frozen, so the kept mask is always that of its footprint and nside; a file rewritten after the
    first read is read by the next config made (the next run), never by this one: one run sees one mask.  A
    refused footprint is not kept (every call raises again)."""
    kept = config.__dict__.get("_footprint_mask")
    if kept is None:
        kept = load_footprint(config.footprint, config.nside)
        kept.flags.writeable = False
        object.__setattr__(config, "_footprint_mask", kept)
    return kept


def footprint_id(config: CosmoGridConfig) -> str:
    """What names the footprint of the grid ``config`` in the data set's cache key and the checkpoints'
    fingerprints (:func:`grid_fields`): its content, the pixels of :func:`footprint_mask` at ``config.nside``:
    "stage3" for the built-in footprint (never built for it; a FITS file holding the same pixels included: the
    keys and fingerprints of runs on it are those of earlier versions), else "mask-sha256:<16 hex digits>", the
    same for a copy of the file, another path to it, RING or NESTED ordering, 0 or UNSEEN outside.  Once per
    config (kept on it as :func:`footprint_mask` keeps the mask)."""
    if config.footprint == "stage3":
        return "stage3"
    if "_footprint_id" not in config.__dict__:
        object.__setattr__(config, "_footprint_id", _mask_id(footprint_mask(config), config.nside))
    return config.__dict__["_footprint_id"]


def _mask_id(mask: np.ndarray, nside: int) -> str:
    """:func:`footprint_id` of a NESTED bool mask at ``nside``: "stage3" where it is the built-in footprint (only
    a mask inside base pixel 4, as that one, is compared with it), else "mask-sha256:" and
    :func:`~deepsphere_gen._fingerprint.mask_hash` (the hash ``massmaps`` fingerprints a footprint by)."""
    n2 = nside * nside
    if nside >= 32 and not mask[: 4 * n2].any() and not mask[5 * n2:].any() \
            and np.array_equal(mask, stage3_footprint(nside)):
        return "stage3"
    return f"mask-sha256:{mask_hash(mask)}"


def grid_fields(config: CosmoGridConfig) -> dict:
    """The grid's settings as the checkpoints' fingerprints hold them: its fields, the footprint named by
    :func:`footprint_id` (its content, from :func:`footprint_mask`), not by the path it was given as."""
    return {**asdict(config), "footprint": footprint_id(config)}


def _params(config: CosmoGridConfig) -> dict:
    """What the data set of ``config`` is generated from (its cache key: :func:`cache_key`)."""
    d = asdict(config)
    d["footprint"] = footprint_id(config)  # "stage3" for the built-in footprint
    d["footprint_sha1"] = hashlib.sha1(np.packbits(footprint_mask(config)).tobytes()).hexdigest()
    d["fixed_parameters"] = FIXED_PARAMETERS
    d["smail"] = SMAIL_PARAMETERS
    d["kind"] = "cosmo-grid-lognormal-tomographic"
    return d


def _n_maps(config: CosmoGridConfig, split: str) -> int:
    return config.n_fiducial if split == "fiducial" else config.n_real


def data_set_dir(config: CosmoGridConfig, data_dir=None) -> Path:
    """The folder the data set of ``config`` has (or will have) under ``data_dir`` (None: the default cache)."""
    data_dir = Path(data_dir) if data_dir is not None else cosmo_data_dir()
    return data_dir / f"cosmo-nside{config.nside}-{cache_key(_params(config))}"


#: what :func:`_disk_bytes` adds per file (15 of them) for its header (.npy: 128 bytes; zip entries) and its last
#: file-system block (4 KiB), rounded up
_FILE_SLACK = 8 * 1024
#: what :func:`_disk_bytes` adds once: metadata.json (~1.3 KB) and the n(z) grid in spectra.npz (16 KB at 3 bins)
_FIXED_SLACK = 64 * 1024


def _disk_bytes(config: CosmoGridConfig, points: dict, n_copies: int, n_pix: int) -> int:
    """Bytes the data set takes on disk, an upper bound: per split the maps (4 bytes per pixel, bin and sample),
    params (16 bytes per sample) and ids (24); the theory spectra (8 bytes per bin pair and multipole, shifts and
    design per cosmology); the footprint's indices (8 bytes per pixel); :data:`_FILE_SLACK` per file and
    :data:`_FIXED_SLACK`."""
    b, total = config.n_bins, 0
    for split in SPLITS:
        n = len(points[split]) * _n_maps(config, split) * n_copies
        total += n * (4 * n_pix * b + 16 + 24) + 8 * len(points[split]) * (b * b * (config.lmax + 1) + b + 2)
    return total + 8 * n_pix + 15 * _FILE_SLACK + _FIXED_SLACK


def data_set_bytes(config: CosmoGridConfig) -> int:
    """Disk the data set of ``config`` needs (bytes, an upper bound: :func:`_disk_bytes`); the footprint is read or
    built once (:func:`footprint_mask`).  At --quick (nside 32, stage3): 1.98 MB for a folder of 1.82 MB
    (1.87 MB of blocks on ext4)."""
    mask = footprint_mask(config)
    copies = footprint_copies(mask)
    return _disk_bytes(config, design(config), len(copies), copies.shape[1])


def generate_cosmo_grid(config: CosmoGridConfig, data_dir=None, progress: bool = True, verbose: bool = True,
                        threads: int | None = 1, log=print) -> Path:
    """Generate (or reuse) the data set of ``config``; returns its directory (see the module docstring).

    ``log``: where the "cosmo: ..." lines go (None, or ``verbose=False``: nowhere); ``progress``:
    the tqdm bar.

    Cost at nside 128, 3 bins: ~0.3 s of pyccl per cosmology, ~0.08 s per full-sky realisation
    (one core); disk 4 bytes x pixels x bins per sample (58 KiB at nside 128).
    """
    log = log if verbose else None
    mask = footprint_mask(config)
    params = _params(config)
    final = data_set_dir(config, data_dir)
    meta = read_metadata(final)
    if meta is not None and meta.get("generation") == json.loads(json.dumps(params)):
        check_data_set(final, meta)
        if log:
            log(f"cosmo: reusing {final}")
        return final
    if final.exists():
        raise ValueError(f"{final} exists but its metadata does not match; remove it to regenerate")
    copies = footprint_copies(mask)
    points = design(config)
    n_pix, lmax = copies.shape[1], config.lmax
    total = sum(len(points[s]) * _n_maps(config, s) for s in SPLITS)
    if log:
        log(f"cosmo: {len(points['train'])} training + {len(points['test'])} held-out + {len(points['calibration'])} "
            f"calibration cosmologies x {config.n_real} "
            f"maps, fiducial x {config.n_fiducial}, {config.n_bins} bins, nside {config.nside}, footprint "
            f"{footprint_area_deg2(mask):.0f} deg^2 x {len(copies)} copies per map -> "
            f"{_disk_bytes(config, points, len(copies), n_pix) / 2**20:.1f} MiB at {final}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    spectra, clip = {}, 0.0
    with atomic_directory(final, log=log) as tmp, limit_threads(threads), \
            tqdm(total=total, desc="cosmo maps", unit="map", disable=None if progress else True) as bar:
        np.save(tmp / "footprint.npy", copies[0])
        for k, split in enumerate(SPLITS):
            pts, n_maps = points[split], _n_maps(config, split)
            n = len(pts) * n_maps * len(copies)
            out = preallocated_memmap(tmp / f"maps_{split}.npy", (n, n_pix, config.n_bins))
            params_out = np.empty((n, 2))
            ids = np.empty((n, 3), dtype=np.int64)
            cls, shifts = [], []
            i = 0
            for c, (om, sig) in enumerate(pts):
                cosmo = Cosmology(float(om), float(sig))
                cl = tomographic_cl(cosmo, config.n_bins, lmax)
                lam = tomographic_shifts(cosmo, config.n_bins)
                cl_g, clipped = gaussian_cl_matrix(cl, lam)
                clip = max(clip, clipped)
                cls.append(cl)
                shifts.append(lam)
                for r in range(n_maps):
                    rng = np.random.default_rng(np.random.SeedSequence([config.seed, k, c, r]))
                    maps = lognormal_maps(cl_g, lam, config.nside, rng)  # (n_bins, npix)
                    for j, idx in enumerate(copies):
                        out[i] = maps[:, idx].T
                        params_out[i], ids[i] = (om, sig), (c, r, j)
                        i += 1
                    bar.update(1)
            out.flush()
            del out
            np.save(tmp / f"params_{split}.npy", params_out)
            np.save(tmp / f"ids_{split}.npy", ids)
            spectra[f"cl_{split}"] = np.stack(cls)
            spectra[f"shifts_{split}"] = np.stack(shifts)
            spectra[f"design_{split}"] = pts
        z, nz, edges = redshift_bins(config.n_bins)
        np.savez(tmp / "spectra.npz", z=z, nz=nz, edges=edges, **spectra)
        elapsed = time.perf_counter() - t0
        meta = {"generation": params, "n_copies": int(len(copies)), "footprint_pixels": int(n_pix),
                "footprint_area_deg2": footprint_area_deg2(mask), "redshift_edges": edges.tolist(),
                "max_clipped_eigenvalue": clip, "versions": package_versions(), "seconds": elapsed,
                "samples": {s: int(len(points[s]) * _n_maps(config, s) * len(copies)) for s in SPLITS},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(tmp / METADATA, "w") as f:
            json.dump(meta, f, indent=1)
    if log:
        log(f"cosmo: {total} full-sky maps in {elapsed:.0f} s")
    return final


def check_data_set(path, meta: dict) -> None:
    """ValueError naming the first file of the data set ``path`` (metadata ``meta``) that is missing, damaged
    (truncated: numpy's "mmap length is greater than file size") or of another shape than ``meta`` gives, and
    saying to remove ``path``; run where a data set is reused.  Reads the .npy headers and the .npz directory
    only (memory maps: milliseconds)."""
    path = Path(path)
    samples, pixels = meta.get("samples", {}), meta.get("footprint_pixels")
    bins = meta.get("generation", {}).get("n_bins")
    for split in SPLITS:
        n = samples.get(split)
        for kind, shape in (("maps", (n, pixels, bins)), ("params", (n, 2)), ("ids", (n, 3))):
            array = open_data_npy(path, f"{kind}_{split}.npy")
            if None not in shape and array.shape != shape:
                raise damaged_data_set(path, path / f"{kind}_{split}.npy",
                               f"of shape {list(array.shape)}, its metadata says {list(shape)}")
    footprint = open_data_npy(path, "footprint.npy")
    if pixels is not None and footprint.shape != (pixels,):
        raise damaged_data_set(path, path / "footprint.npy", f"of shape {list(footprint.shape)}, its metadata says {[pixels]}")
    try:
        with np.load(path / "spectra.npz") as f:
            f.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise damaged_data_set(path, path / "spectra.npz", f"missing or damaged ({type(exc).__name__}: {exc})") from None


def load_split(path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(maps memmap (samples, pixels, bins) float32, params (samples, 2), ids (samples, 3)) of a split; a missing
    or damaged file: ValueError naming it (remove the data set to generate it again)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(path)
    if read_metadata(path) is None:
        raise ValueError(f"{path} is not a generated cosmology data set (no readable {METADATA})")
    return (open_data_npy(path, f"maps_{split}.npy"), open_data_npy(path, f"params_{split}.npy", mmap=False),
            open_data_npy(path, f"ids_{split}.npy", mmap=False))


class CosmoMapDataset(Dataset):
    """Noisy footprint maps and their parameters: items ``(x (pixels, n_bins) float32, theta (2,) float32)``.

    theta = (Omega_m, sigma_8).  noise_std: per-bin white noise std (n_bins,) (e.g.
    ``shape_noise.pixel_noise_std`` of each bin's galaxy density; zeros: none).  fresh_noise:
    a new realisation at every draw from torch's global RNG (``training.fit`` re-seeds it per
    epoch: reproducible); else a fixed realisation per sample from (seed, split, sample).
    """

    def __init__(self, path, split: str, noise_std, fresh_noise: bool = False, seed: int = 0):
        self.maps, self.params, self.ids = load_split(path, split)
        self.noise_std = np.asarray(noise_std, dtype=np.float64)
        if self.noise_std.shape != (self.maps.shape[2],) or np.any(~np.isfinite(self.noise_std)) \
                or np.any(self.noise_std < 0):
            raise ValueError(f"noise_std must be {self.maps.shape[2]} finite values >= 0 (one per bin), "
                             f"got {noise_std!r}")
        self.split, self.fresh, self.seed = split, bool(fresh_noise), int(seed)
        self._split_id = SPLITS.index(split)

    def __len__(self) -> int:
        return self.maps.shape[0]

    def noise(self, i: int) -> np.ndarray:
        """The fixed noise realisation of sample i, (pixels, n_bins) float64."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 104729, self._split_id, int(i)]))
        return rng.standard_normal(self.maps.shape[1:]) * self.noise_std

    def values(self, i: int) -> np.ndarray:
        """Sample i with its fixed noise, (pixels, n_bins) float64."""
        return np.asarray(self.maps[i], dtype=np.float64) + self.noise(i)

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i %= len(self)
        theta = torch.as_tensor(self.params[i], dtype=torch.float32)
        if self.fresh:
            x = torch.from_numpy(np.array(self.maps[i], dtype=np.float32))
            return x + torch.randn(x.shape) * torch.as_tensor(self.noise_std, dtype=torch.float32), theta
        return torch.from_numpy(self.values(i).astype(np.float32)), theta
