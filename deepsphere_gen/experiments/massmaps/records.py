"""The fields that every record of the mass-map experiment (network or baseline) carries: those of its data
(:func:`base_record`) and those of its test accuracy (:func:`accuracy_fields`: Wilson and map-bootstrap
95 % intervals, the per-sample correctness and the test maps it is about).
"""
from __future__ import annotations

import numpy as np

from ...datasets import MassMapDataset
from .. import reporting
from ..reporting import wilson_interval
from .config import SkySetting
from .settings import NoiseSetting

__all__ = ["base_record", "accuracy_fields"]


def base_record(sky: SkySetting, noise: NoiseSetting, sets) -> dict:
    """The fields of every record of (``sky``, ``noise``) with the (train, validation, test) samples ``sets``:
    sky_fraction, sky, nside (of the samples), the noise setting's (:meth:`.settings.NoiseSetting.record`),
    noise_std and clean_std (per pixel), n_train, n_val, n_test."""
    train_set, val_set, test_set = sets
    return {"sky_fraction": train_set.sky_fraction, "sky": sky.name, "nside": train_set.nside,
            **noise.record(), "noise_std": train_set.noise_std, "clean_std": train_set.clean_std,
            "n_train": len(train_set), "n_val": len(val_set), "n_test": len(test_set)}


def _sample_maps(test_set: MassMapDataset) -> tuple[np.ndarray, np.ndarray]:
    """(classes (n,), map numbers (n,)) int64 of the test samples in order: the samples run over the
    classes, within a class over its maps (``map_ids``), within a map over its patches (what
    :meth:`MassMapDataset.sample_map` gives sample by sample); O(n), no Python loop."""
    per_map = test_set.n_patches
    maps = np.repeat(np.asarray(test_set.map_ids, dtype=np.int64), per_map)
    classes = np.repeat(np.arange(test_set.n_classes, dtype=np.int64), maps.size)
    return classes, np.tile(maps, test_set.n_classes)


def accuracy_fields(correct: np.ndarray, test_set: MassMapDataset | None = None) -> dict:
    """accuracy, n_correct, ci95 (Wilson) of the per-sample ``correct`` (n,); with ``test_set`` (the
    samples ``correct`` is about, in order) also ``correct`` (a "0"/"1" string, one per sample),
    ``test_maps`` (the (class, map) of every sample, :func:`..reporting.map_runs`) and ``ci95_maps``
    (with ``ci95_maps_note`` where it is not the bootstrap's percentiles: :func:`..reporting.map_interval_fields`)."""
    k, n = int(np.sum(correct)), len(correct)
    if n == 0:
        raise ValueError("cannot score an empty test set")
    out = {"accuracy": k / n, "n_correct": k, "ci95": list(wilson_interval(k, n))}
    if test_set is not None:
        if len(test_set) != n:
            raise ValueError(f"{n} correctness values for {len(test_set)} test samples")
        classes, maps = _sample_maps(test_set)
        out.update(**reporting.map_interval_fields(correct, maps, classes),
                   correct=reporting.encode_correct(correct), test_maps=reporting.map_runs(classes, maps))
    return out
