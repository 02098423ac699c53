"""The baselines' records of the mass-map experiment: the SVMs of :mod:`.baselines` on the features of
:mod:`.features` (patches) or on anafast band powers and histograms (full sky, footprint), fitted on the training
maps with C chosen on the validation maps (records ``C``, ``C_grid``, ``C_at_edge``), scored on the test maps
(:func:`baseline_records`).

Training features: ``baseline_noise_draws`` noise realisations per training patch (fresh noise, as the
networks get); validation and test samples keep the data set's fixed noise.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ...datasets import MassMapDataset
from .baselines import FeatureSVM, HistogramSVM, PowerSpectrumSVM
from .config import BASELINE_FEATURES, SKY_FEATURE_GROUPS, ExperimentConfig, SkySetting, patch_only
from .data import dataset_of, datasets_of
from .features import PatchFeatures
from .records import accuracy_fields, base_record
from .settings import NoiseSetting

__all__ = ["baseline_records"]


def _map_blocks(dataset: MassMapDataset):
    """Consecutive sample ranges of one map each: ``range``s of ``dataset.n_patches`` samples."""
    n = dataset.n_patches
    for start in range(0, len(dataset), n):
        yield range(start, start + n)


def _features(dataset: MassMapDataset, featurize, draws: int = 0, noise_std: float = 0.0, seed: int = 0):
    """(features dict of stacked groups, labels) over ``dataset``, one map at a time.

    ``draws`` > 0 (training): ``draws`` fresh white-noise realisations of std ``noise_std``
    per sample of the (clean) ``dataset``, seeded by (seed, draw, sample); else the samples
    as they are (validation and test: the data set's fixed noise, as the networks see it).
    """
    parts, labels = [], []
    for block in _map_blocks(dataset):
        x = np.stack([dataset.values(i)[0] for i in block])
        y = [dataset.sample_map(i)[0] for i in block]
        for d in range(max(draws, 1)):
            xd = x
            if draws and noise_std > 0:
                rng = np.random.default_rng(np.random.SeedSequence([seed, 104729, d, block.start]))
                xd = x + noise_std * rng.standard_normal(x.shape)
            parts.append(featurize(xd))
            labels.extend(y)
            if not (draws and noise_std > 0):
                break
    groups = {g: np.concatenate([p[g] for p in parts]) for g in parts[0]}
    return groups, np.asarray(labels, dtype=np.int64)


class _SkyFeatures:
    """``psd`` and ``hist`` features of samples that are not nested patches: the full sky or a footprint
    (``indices``: the samples' NESTED pixels, shared by all).  ``psd``: log band powers of
    ``healpy.anafast`` of the map with the sample's mean removed and zeros outside the footprint,
    divided by the sky fraction (the pseudo-C_l / f_sky estimator of
    :meth:`~.baselines.PowerSpectrumSVM.spectra`; exact C_l estimates on the full sky)."""

    def __init__(self, nside: int, seed: int, indices: np.ndarray):
        n_bins = min(24, 3 * nside - 2)
        self.psd = PowerSpectrumSVM(nside, lmin=2, n_bins=n_bins, seed=seed)
        self.hist = HistogramSVM(seed=seed)
        self.nside, self.indices = nside, np.asarray(indices, dtype=np.int64)

    def fit(self, values):
        self.hist.prepare(values, None)
        return self

    def transform(self, values, groups=SKY_FEATURE_GROUPS) -> dict:
        """``{group: features}`` of each group in ``groups`` (a subset of :data:`.config.SKY_FEATURE_GROUPS`: each is
        the attribute of that name, so the rule and the extractors cannot drift apart silently)."""
        return {g: getattr(self, g).features(values, self.indices) for g in groups}


def baseline_records(path: Path, sky: SkySetting, noise: NoiseSetting, config: ExperimentConfig,
                     methods) -> list[dict]:
    """Fit the baselines ``methods`` on the training maps (C chosen on the validation maps) and
    score them on the test maps; one record each.  A patch-only method (:func:`.config.patch_only`) on the full
    sky or a footprint is refused (ValueError naming it and the sky) before any work."""
    bad = [m for m in methods if patch_only(m)] if sky.level is None else []
    if bad:
        raise ValueError(f"{' '.join(bad)}: feature groups beyond {'/'.join(SKY_FEATURE_GROUPS)} exist on nested "
                         f"patches only, not on sky {sky.name}")
    t0, c0 = time.perf_counter(), time.process_time()
    train_clean = dataset_of(path, sky, None, config, "train")
    train_set, val_set, test_set = datasets_of(path, sky, noise, config)
    base = base_record(sky, noise, (train_set, val_set, test_set))
    groups = sorted({g for m in methods for g in BASELINE_FEATURES[m]})
    if sky.level is not None:
        side = int(round(math.sqrt(train_set.indices.shape[1])))
        feats = PatchFeatures(train_set.nside, side)
    else:
        feats = _SkyFeatures(train_set.nside, config.seed, train_set.indices[0])
    # histogram bins and thresholds from (noisy) training pixels of both classes, 4 maps per class
    sub = [i for b in list(_map_blocks(train_set))[::max(1, len(train_set) // train_set.n_patches // 8)]
           for i in b]
    feats.fit(np.stack([train_set.values(i)[0] for i in sub]))
    featurize = lambda x: feats.transform(x, groups)  # noqa: E731
    draws = config.baseline_noise_draws if train_set.noise_std > 0 and config.augment else 0
    Xtr, ytr = (_features(train_clean, featurize, draws, train_set.noise_std, config.seed) if draws
                else _features(train_set, featurize))
    Xva, yva = _features(val_set, featurize)
    Xte, yte = _features(test_set, featurize)
    t_feat = time.perf_counter() - t0
    records = []
    for m in methods:
        t1 = time.perf_counter()
        cols = list(BASELINE_FEATURES[m])
        pick = lambda X: np.concatenate([X[g] for g in cols], axis=1)  # noqa: E731
        clf = FeatureSVM(seed=config.seed).fit(pick(Xtr), ytr, pick(Xva), yva)
        records.append({**base, "method": m, **accuracy_fields(clf.predict(pick(Xte)) == yte, test_set),
                        "C": clf.C, "C_grid": list(clf.Cs), "C_at_edge": clf.C_at_edge,
                        "val_accuracy": clf.val_accuracy, "features": cols,
                        "n_features": int(pick(Xtr).shape[1]), "noise_draws": max(draws, 1),
                        "seconds": t_feat + time.perf_counter() - t1})
    cpu = time.process_time() - c0
    for r in records:
        r["cpu_seconds_all_baselines"] = cpu
    return records
