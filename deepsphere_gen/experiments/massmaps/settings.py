"""Noise and sky settings of the mass-map experiment: what a config runs, and which methods run where.

Noise (:class:`NoiseSetting`): physical shape noise of a survey with ``n_gal`` galaxies per
arcmin^2 and ellipticity dispersion ``sigma_e`` (per-pixel std
``sigma_e / sqrt(n_gal A_pix)`` at the samples' resolution), given directly or as
DeepSphere's relative levels (:func:`~deepsphere_gen.datasets.shape_noise.deepsphere_level_to_ngal`:
level 2 = 22.5 galaxies/arcmin^2); the old noise relative to the run's own clean std only as
an explicit option.  Sky settings: :func:`.config.sky_settings`; :func:`methods_for`: the methods a sky
setting runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...datasets.shape_noise import (
    DEFAULT_SIGMA_E,
    deepsphere_level_to_ngal,
    ngal_to_deepsphere_level,
    pixel_noise_std,
)
from .config import FULL_SKY_METHODS, ExperimentConfig, SkySetting, patch_only

__all__ = ["NoiseSetting", "noise_settings", "methods_for"]


@dataclass(frozen=True)
class NoiseSetting:
    """One noise setting: ``kind`` "none", "ngal" (``value`` galaxies per arcmin^2) or
    "relative" (``value`` x the samples' clean std); ``sigma_e``: ellipticity dispersion."""

    kind: str
    value: float = 0.0
    sigma_e: float = DEFAULT_SIGMA_E

    @property
    def name(self) -> str:
        """Short stable name (checkpoints, JSON): "none", "ngal22.47", "rel2"."""
        if self.kind == "none":
            return "none"
        return f"ngal{self.value:.4g}" if self.kind == "ngal" else f"rel{self.value:g}"

    @property
    def deepsphere_level(self) -> float | None:
        """DeepSphere's relative level of the same per-pixel noise at nside 1024 (None: relative kind)."""
        if self.kind == "none":
            return 0.0
        return ngal_to_deepsphere_level(self.value, self.sigma_e) if self.kind == "ngal" else None

    @property
    def label(self) -> str:
        """For tables and figures: "no noise", "n_gal 22.5/arcmin^2 (DeepSphere level 2)", "relative 2"."""
        if self.kind == "none":
            return "no noise"
        if self.kind == "relative":
            return f"relative {self.value:g} x clean std"
        return f"n_gal {self.value:.3g}/arcmin^2 (DeepSphere level {self.deepsphere_level:.3g})"

    def pixel_std(self, nside: int, clean_std: float) -> float:
        """Per-pixel noise std at ``nside`` for samples of clean std ``clean_std``."""
        if self.kind == "none":
            return 0.0
        if self.kind == "relative":
            return self.value * clean_std
        return pixel_noise_std(nside, self.value, self.sigma_e)

    def record(self) -> dict:
        """The setting's fields of a JSON record (``noise``, ``noise_label``, ``noise_kind``, ``ngal``,
        ``sigma_e``, ``deepsphere_level``, ``relative_noise``; None where they do not apply)."""
        return {"noise": self.name, "noise_label": self.label, "noise_kind": self.kind,
                "ngal": None if self.kind != "ngal" else self.value, "sigma_e": self.sigma_e,
                "deepsphere_level": self.deepsphere_level, "relative_noise": self.value if self.kind == "relative" else None}


def noise_settings(config: ExperimentConfig) -> list[NoiseSetting]:
    """DeepSphere levels (as galaxy densities), then galaxy densities, then relative levels; 0 / inf
    mean no noise; duplicates removed."""
    out = []
    for level in config.deepsphere_levels:
        ngal = deepsphere_level_to_ngal(level, config.sigma_e)
        out.append(NoiseSetting("none") if math.isinf(ngal) else NoiseSetting("ngal", ngal, config.sigma_e))
    for ngal in config.ngal:
        out.append(NoiseSetting("none") if math.isinf(ngal) else NoiseSetting("ngal", ngal, config.sigma_e))
    for rel in config.relative_noise:
        out.append(NoiseSetting("none") if rel == 0 else NoiseSetting("relative", rel, config.sigma_e))
    return list(dict.fromkeys(out))


def methods_for(sky: SkySetting, methods) -> list[str]:
    """Methods run on ``sky``: full-sky-only models (``FULL_SKY_METHODS``) on the full sky; baselines with a
    patch-only feature group (:func:`.config.patch_only`) on nested patches."""
    return [m for m in methods if (sky.full_sky or m not in FULL_SKY_METHODS)
            and (sky.level is not None or not patch_only(m))]
