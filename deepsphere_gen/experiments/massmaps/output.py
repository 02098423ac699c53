"""The outputs of the mass-map experiment: the accuracy and margins tables, the JSON and the figures
(:mod:`..reporting` draws and formats them with the experiment's methods).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._io import atomic_write_json, plain_json
from ..._platform import cpu_description
from ...datasets import load_massmaps
from ...datasets.patch_psd import to_square
from .. import reporting
from .baselines import c_edge_note
from .config import (BASELINES, METHODS, NETWORK_METHODS, ExperimentConfig, parse_sky_fraction, recorded_fields,
                     sky_settings)
from .data import dataset_of
from .settings import noise_settings

__all__ = ["format_table", "margins", "format_margins", "write_json", "plot_examples", "plot_all"]


def format_table(records: list[dict]) -> str:
    """Accuracy (%) table with 95 % intervals: one row per (sky, noise), one column per method; a footnote
    where a baseline's C lies at the edge of its grid (:func:`.baselines.c_edge_note`)."""
    return reporting.format_table(records, METHODS) + c_edge_note(records)


def margins(records: list[dict]) -> list[dict]:
    """Paired margins of every network method over every baseline on the same test samples, per (sky,
    noise), with 95 % intervals from a bootstrap over test maps (:func:`..reporting.margin_records`)."""
    return reporting.margin_records(records, NETWORK_METHODS, BASELINES)


def format_margins(pairs: list[dict]) -> str:
    """Margins table of the paired margins ``pairs`` (:func:`margins`; points, 95 % map-bootstrap intervals):
    per (sky, noise) the fcn (else the first network run) minus the better of the PSD and histogram SVMs,
    and minus the strong SVM."""
    return reporting.format_margins(pairs, NETWORK_METHODS, ("psd_svm", "hist_svm"))


def write_json(path, records: list[dict], config: ExperimentConfig, pairs: list[dict] | None = None,
               extra: dict | None = None, quick: bool = False) -> Path:
    """JSON: {"config", "noise_settings", "interval_note", "margin_note", "margins": ``pairs`` (None:
    :func:`margins` of ``records``), "cpu" (the processor: trained networks are bit-identical on one
    processor type only), "records": [one per method, sky, noise], **extra}, written atomically.
    The config's fields are those of ``config`` except ``full_sky_nside``: the resolution the full sky ran at,
    ``min(nside, full_sky_nside)`` (the default 64 at ``--nside 16`` runs at 16; the checkpoints' fingerprints
    keep the configured value), ``sky_rotations`` only when > 0, and ``quick``: whether the run was ``--quick``'s
    smoke test (no config field: the settings it stands for are the others); every record's ``nside`` is the
    resolution of its samples."""
    ran = dict(recorded_fields(config), full_sky_nside=min(config.nside, config.full_sky_nside), quick=bool(quick))
    payload = {"config": ran, "noise_settings": [n.record() for n in noise_settings(config)],
               "cpu": cpu_description(),
               "interval_note": reporting.INTERVAL_NOTE, "method_names": reporting.METHOD_NAMES,
               "margin_note": reporting.MARGIN_NOTE, "margins": margins(records) if pairs is None else pairs,
               **(extra or {}), "records": records}
    return atomic_write_json(path, plain_json(payload, infinity=True))  # --ngal inf as "inf", not Infinity


def plot_examples(path: Path, config: ExperimentConfig, out: Path) -> Path:
    """Example maps of both cosmologies: full sky (averaged down to ``full_sky_nside``) and one
    equatorial patch of the largest patch level run (else, in a footprint run, the footprint; else 1/12),
    clean and with the strongest noise setting, on one colour scale; and one-point distributions."""
    maps, meta = load_massmaps(path)
    full = parse_sky_fraction("1", config.nside, None, config.full_sky_nside)
    group = (config.nside // full.nside) ** 2
    full_sky = np.asarray(maps[:, 0], dtype=np.float64).reshape(2, -1, group).mean(-1)
    skies = sky_settings(config)
    levels = [s.level for s in skies if s.level is not None]
    sky = next((s for s in skies if s.footprint is not None), None)
    if levels or sky is None:
        sky = parse_sky_fraction(f"1/{12 * 4 ** (min(levels) if levels else 0)}", config.nside)
    noises = noise_settings(config)
    noise = max(noises, key=lambda n: n.pixel_std(config.nside, 1.0))
    clean, noisy = dataset_of(path, sky, None, config, "all"), dataset_of(path, sky, noise, config, "all")
    p = 0 if sky.level is None else 4 * 4**sky.level  # an equatorial patch (base pixel 4); a footprint is one
    first = [clean.sample_index(c, int(clean.map_ids[0]), p) for c in range(2)]  # each class's first map
    if sky.footprint is not None:
        shown = np.zeros((2, 2, sky.footprint.size))  # (clean / noisy, class, pixels) NESTED, 0 outside
        for k, ds in enumerate((clean, noisy)):
            for c, i in enumerate(first):
                shown[k, c, ds.indices[0]] = ds.values(i)[0]
        return reporting.plot_examples(full_sky, shown[0], shown[1], meta["classes"], noise.label, full.nside,
                                       f"{reporting.footprint_text(sky.fraction)}, nside {config.nside}",
                                       out, reporting.save_png, footprint=sky.footprint)
    patches = np.stack([to_square(clean.values(i)[0]) for i in first])
    noisy_p = np.stack([to_square(noisy.values(i)[0]) for i in first])
    return reporting.plot_examples(full_sky, patches, noisy_p, meta["classes"], noise.label, full.nside,
                                   f"{sky.name} patch, nside {config.nside}", out, reporting.save_png)


def plot_all(records: list[dict], config: ExperimentConfig, path: Path) -> list[Path]:
    """The three figures under ``out_dir``: examples.png, training_curves.png, accuracy_vs_noise.png."""
    out = Path(config.out_dir)
    return [plot_examples(path, config, out / "examples.png"),
            reporting.plot_curves(records, out / "training_curves.png", reporting.save_png),
            reporting.plot_accuracy(records, out / "accuracy_vs_noise.png", reporting.save_png, METHODS)]
