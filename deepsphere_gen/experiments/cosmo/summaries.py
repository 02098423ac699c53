"""Summary statistics of tomographic footprint maps for :mod:`deepsphere_gen.experiments.cosmo`.

- ``power_spectrum``: MASTER pseudo-C_l band powers (:class:`~deepsphere_gen.datasets.pseudo_cl.PseudoCl`)
  of every auto and cross pair of redshift bins, noise included (n_bins (n_bins+1)/2 x
  n_bands values), the input of the power-spectrum analysis;
- ``handcrafted``: the power spectrum plus, per bin and at three resolutions (the map, and
  its nested averages 2 and 4 times coarser, keeping only parents whose children all lie in
  the footprint), the standard deviation, skewness, excess kurtosis and 7 quantiles of the
  standardised pixel values (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98): the strong hand-crafted
  statistic that measures how much non-Gaussian information the maps hold beyond the spectra.

Features are computed once per (data set, split, noise setting, noise realisation) and
stored beside the maps (``features-<key>.npy``); cost ~25 ms per sample at nside 128 (3 bins).
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..._io import atomic_write
from ...datasets.cosmo_grid import CosmoMapDataset
from ...datasets.pseudo_cl import PseudoCl

__all__ = ["QUANTILES", "SCALES", "coarse_values", "map_statistics", "summary_features"]

QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
#: resolutions of the hand-crafted statistics: nside, nside / 2, nside / 4
SCALES = 3


def coarse_values(values: np.ndarray, indices: np.ndarray, levels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Nested averages ``levels`` times coarser of footprint values (pixels, ...) at NESTED ``indices``.

    Only parents whose 4**levels children are all in the footprint are kept (the footprint's
    edges and holes never mix with masked pixels).  Returns (values (parents, ...), parent indices).
    """
    k = 4**levels
    parents, inverse, counts = np.unique(indices // k, return_inverse=True, return_counts=True)
    sums = np.zeros((parents.size,) + values.shape[1:])
    np.add.at(sums, inverse, values)
    full = counts == k
    return sums[full] / k, parents[full]


def map_statistics(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Hand-crafted statistics of footprint values (pixels, n_bins): (SCALES, n_bins, 3 + len(QUANTILES))."""
    out = []
    for level in range(SCALES):
        v = values if level == 0 else coarse_values(values, indices, level)[0]
        mean, std = v.mean(0), v.std(0) + 1e-30
        z = (v - mean) / std
        q = np.quantile(z, QUANTILES, axis=0).T  # (n_bins, n_q)
        out.append(np.concatenate([std[:, None], (z**3).mean(0)[:, None], (z**4).mean(0)[:, None] - 3, q], 1))
    return np.stack(out)


def _key(path: Path, split: str, noise_std, realisation: int, seed: int) -> str:
    blob = json.dumps({"data": Path(path).name, "split": split, "noise": [float(s) for s in noise_std],
                       "realisation": realisation, "seed": seed, "quantiles": QUANTILES, "scales": SCALES,
                       "version": 1})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def summary_features(path, split: str, noise_std, estimator: PseudoCl, realisation: int = 0, seed: int = 0,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """Band powers and hand-crafted statistics of every sample of a split, cached on disk.

    Sample i carries noise realisation ``realisation`` (0: the fixed noise of
    :class:`CosmoMapDataset` with ``seed``, so the networks' test inputs are the same maps;
    r > 0: further draws for training).  Returns {"power_spectrum": (n, n_pairs * n_bands),
    "handcrafted": (n, n_pairs * n_bands + SCALES * n_bins * 10)}.
    """
    path = Path(path)
    file = path / f"features-{split}-{_key(path, split, noise_std, realisation, seed)}.npz"
    if file.is_file():
        try:
            with np.load(file) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, not an .npz file
            raise ValueError(f"{file} is damaged ({type(exc).__name__}: {exc}); remove it to compute the features "
                             "again") from None
    ds = CosmoMapDataset(path, split, noise_std, seed=seed + 7919 * realisation)
    indices = np.load(path / "footprint.npy")
    if not np.array_equal(indices, estimator.indices):
        raise ValueError("the pseudo-C_l estimator was built on another footprint than the data set's")
    ps, hc = [], []
    for i in tqdm(range(len(ds)), desc=f"summaries {split}", disable=None if progress else True, leave=False):
        v = ds.values(i)  # (pixels, n_bins) with noise
        ps.append(estimator(v.T).ravel())
        hc.append(map_statistics(v, indices).ravel())
    ps, hc = np.asarray(ps), np.asarray(hc)
    out = {"power_spectrum": ps, "handcrafted": np.concatenate([ps, hc], 1)}
    atomic_write(file, lambda fh: np.savez(fh, **out))
    return out
