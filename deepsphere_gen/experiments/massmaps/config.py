"""Settings of the mass-map experiment: methods, :class:`ExperimentConfig`, sky fractions.

Importing this module costs no torch, healpy or data-set import (those are imported where
a config is validated or a footprint read; the package ``__init__`` loads its other modules
only at first use of one of their names), so that ``deepsphere-gen massmaps --help`` can
name every default and method in a fraction of a second; the package re-exports all of it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from ..._cache_dirs import default_data_dir

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "METHODS",
    "NETWORK_METHODS",
    "FULL_SKY_METHODS",
    "PATCH_METHODS",
    "BASELINES",
    "BASELINE_FEATURES",
    "SKY_FEATURE_GROUPS",
    "patch_only",
    "DEFAULT_METHODS",
    "ENSEMBLE_METHODS",
    "RECORDED_ONLY_WHEN_SET",
    "recorded_fields",
    "ExperimentConfig",
    "SkySetting",
    "parse_sky_fraction",
    "sky_settings",
    "check_sigma_e",
]

METHODS = ("fcn", "cnn", "harmonic", "hybrid", "psd_svm", "hist_svm", "strong_svm")
NETWORK_METHODS = ("fcn", "cnn", "harmonic", "hybrid")
FULL_SKY_METHODS = ("harmonic", "hybrid")
BASELINES = ("psd_svm", "hist_svm", "strong_svm")
#: feature groups (:mod:`.features`) of each baseline
BASELINE_FEATURES = {"psd_svm": ("psd",), "hist_svm": ("hist",),
                     "strong_svm": ("psd", "hist", "moments", "peaks", "minkowski")}
#: the feature groups the baselines also compute on the full sky and footprints (anafast band powers, histograms:
#: ``baseline_records._SkyFeatures``); every group of :data:`.features.FEATURE_GROUPS` exists on nested patches
SKY_FEATURE_GROUPS = ("psd", "hist")


def patch_only(method: str) -> bool:
    """Whether ``method`` runs on nested patches only: a baseline with a feature group not in
    :data:`SKY_FEATURE_GROUPS` (the one rule of :func:`.settings.methods_for`; a new baseline is classed by
    its ``BASELINE_FEATURES`` entry, read at call time)."""
    return method in BASELINES and not set(BASELINE_FEATURES[method]) <= set(SKY_FEATURE_GROUPS)


#: the baselines that run on nested patches only (:func:`patch_only`): strong_svm
PATCH_METHODS = tuple(m for m in BASELINES if patch_only(m))
DEFAULT_METHODS = ("fcn", "harmonic", "hybrid", "psd_svm", "hist_svm", "strong_svm")
#: networks that ``fcn_members`` > 1 trains as ensembles (the harmonic and hybrid models stay single)
ENSEMBLE_METHODS = ("fcn", "cnn")
#: fields added after records and checkpoints existed, stored only where they differ from these values (so that
#: runs without them keep their fingerprints and records): :func:`recorded_fields`
RECORDED_ONLY_WHEN_SET = {"sky_rotations": 0, "generator": "lognormal"}


@dataclass
class ExperimentConfig:
    """Settings of the experiment (CLI flags map 1:1).

    nside, n_maps (per class), seed, generator (:data:`~deepsphere_gen.datasets.GENERATORS`): the generated data set; sky_fractions: "1" (full sky,
    averaged down to ``full_sky_nside``), "1/12", "1/48", "1/192" (nested patches at
    ``nside``) or "footprint" (needs ``footprint``: "builtin" or a HEALPix FITS mask);
    noise (see :func:`.settings.noise_settings`): ``deepsphere_levels`` (DeepSphere's relative levels,
    converted to galaxy densities; 0 = no noise), ``ngal`` (galaxies per arcmin^2, inf = no
    noise), ``relative_noise`` (explicit option: std = level x the samples' clean std),
    ``sigma_e`` (ellipticity dispersion per component);
    methods: subset of METHODS; epochs, batch_size, lr: training of the networks (at
    least ``min_steps`` steps per run: see :func:`.training.train_config`); augment: fresh noise at
    every draw of a training sample and random symmetries (False: the fixed noise of the
    data set); test_fraction, val_fraction: maps per class held out for the final table and
    for validation (C of the baselines, per-epoch curves of the networks);
    baseline_noise_draws: noise realisations per training patch for the baselines;
    warm_start: a network run with noise starts from the finished noise-free run of the same
    method and sky (trained first when missing) instead of a random initialisation (see
    :func:`.training.train_one`; off by default: no reliable gain measured); average_views: the test
    prediction on patches is averaged over the reflections of the square
    (:func:`.symmetry.evaluation_symmetries`; 4 forward passes; off by default: see the README);
    fcn_members: networks of each ``fcn`` and ``cnn`` run (sky, noise) trained on the same
    data with different training seeds (initial weights, batch order, training noise;
    :func:`~.runs.member_seed`), their class probabilities averaged at test time
    (member 0 is the single network of ``fcn_members`` = 1, same checkpoint);
    sky_rotations: R > 0 generates R randomly rotated copies of every training map once (the data cache,
    :func:`~deepsphere_gen.datasets.generate_sky_rotations`) and every network draws each training sample
    from the original map or one of its copies, at random per draw (:func:`.data.training_set`; the same
    number of steps; fingerprinted when > 0; the baselines keep the original maps; needs ``augment``);
    channels, K, k: graph conv blocks (k nearest neighbours of the graph);
    harmonic_bandlimits, harmonic_channels: harmonic model; data_dir: generated data cache;
    out_dir: checkpoints, JSON, plots.
    """

    nside: int = 256
    n_maps: int = 48
    seed: int = 0
    generator: str = "shells"
    sky_fractions: tuple = ("1", "1/48", "1/192")
    full_sky_nside: int = 64
    deepsphere_levels: tuple = (0.0, 2.0)
    ngal: tuple = ()
    relative_noise: tuple = ()
    sigma_e: float = 0.26  # datasets.shape_noise.DEFAULT_SIGMA_E (a test keeps them equal)
    methods: tuple = DEFAULT_METHODS
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    min_steps: int = 80
    augment: bool = True
    test_fraction: float = 0.25
    val_fraction: float = 0.1
    baseline_noise_draws: int = 3
    warm_start: bool = False
    average_views: bool = False
    fcn_members: int = 1
    sky_rotations: int = 0
    channels: tuple = (16, 32, 64, 64, 64)
    K: int = 5
    k: int = 8
    harmonic_bandlimits: tuple = (12, 6, 3)
    harmonic_channels: tuple = (8, 8, 8)
    footprint: str | None = None
    data_dir: str = field(default_factory=lambda: str(default_data_dir()))  # XDG cache, see deepsphere_gen._cache_dirs
    out_dir: str = "massmaps-out"
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        # the validators import torch and the data sets: here, so that importing this module stays cheap
        from ..._validation import check_nonnegative_int, check_positive_int
        from ...datasets import MassMapConfig, check_noise_level
        from ...sampling import check_nside
        from ...training import TrainConfig

        MassMapConfig(nside=self.nside, n_maps=self.n_maps, seed=self.seed, generator=self.generator)  # validates them
        check_nside(self.full_sky_nside)
        self.deepsphere_levels = tuple(check_noise_level(v) for v in self.deepsphere_levels)
        self.relative_noise = tuple(check_noise_level(v) for v in self.relative_noise)
        self.ngal = tuple(_check_ngal(v) for v in self.ngal)
        self.sigma_e = check_sigma_e(self.sigma_e)
        if not (self.deepsphere_levels or self.ngal or self.relative_noise):
            raise ValueError("give at least one noise setting (--deepsphere-level, --ngal or --relative-noise)")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
        self.methods = tuple(dict.fromkeys(self.methods))
        if not self.sky_fractions:
            raise ValueError("give at least one sky fraction")
        sky_settings(self)  # validates each sky fraction; reads the footprint file (the one read of a run)
        if "footprint" in self.sky_fractions and self.footprint is None:
            raise ValueError("sky fraction 'footprint' needs --footprint builtin|PATH")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if not 0 < self.val_fraction < 1 - self.test_fraction:
            raise ValueError(f"val_fraction must lie in (0, 1 - test_fraction), got {self.val_fraction}")
        n_test = max(1, round(self.test_fraction * self.n_maps))
        n_val = max(1, round(self.val_fraction * self.n_maps))
        if self.n_maps - n_test - n_val < 1:
            raise ValueError(f"{self.n_maps} maps per class leave no training map after {n_test} test and "
                             f"{n_val} validation map(s); use more maps")
        self.baseline_noise_draws = check_positive_int(self.baseline_noise_draws, "baseline_noise_draws")
        self.k = check_positive_int(self.k, "k (graph neighbours)")
        self.fcn_members = check_positive_int(self.fcn_members, "fcn_members (networks per fcn/cnn run)")
        self.sky_rotations = check_nonnegative_int(self.sky_rotations, "sky_rotations (--sky-rotations)")
        if self.sky_rotations and not self.augment:
            raise ValueError(f"--sky-rotations {self.sky_rotations} draws training samples with fresh noise from "
                             "rotated copies of the maps: it needs the augmentation (leave --no-augment out)")
        self.epochs = check_positive_int(self.epochs, "epochs (--epochs)")  # 0 would train min_steps' epochs anyway
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)  # validates
        self.min_steps = check_nonnegative_int(self.min_steps, "min_steps")


def recorded_fields(config: ExperimentConfig) -> dict:
    """``asdict(config)`` without the fields of :data:`RECORDED_ONLY_WHEN_SET` that hold their unset value: what
    the checkpoints' fingerprints and the JSON record take from the configuration."""
    return {k: v for k, v in asdict(config).items() if k not in RECORDED_ONLY_WHEN_SET or v != RECORDED_ONLY_WHEN_SET[k]}


def config_from_record(fields: dict) -> ExperimentConfig:
    """The configuration a record's fields (:func:`recorded_fields`, JSON lists allowed) describe: the fields it
    leaves out hold their :data:`RECORDED_ONLY_WHEN_SET` values, not the dataclass defaults."""
    return ExperimentConfig(**{**RECORDED_ONLY_WHEN_SET, **{k: tuple(v) if isinstance(v, list) else v
                                                           for k, v in fields.items()}})


def check_sigma_e(value) -> float:
    """The ellipticity dispersion of the experiment: a finite number > 0 (ValueError naming --sigma-e).  0 is
    refused: it would make every shape-noise setting (DeepSphere levels, galaxy densities) noise-free, so that a
    level-2 run silently became a duplicate of the noise-free one."""
    from ...datasets.shape_noise import pixel_noise_std

    pixel_noise_std(1, 1.0, value)  # a negative or non-finite value: the library's message
    if not float(value) > 0:
        raise ValueError(f"ellipticity dispersion sigma_e (--sigma-e) must be > 0, got {value!r}: it sets the shape "
                         "noise of every --deepsphere-level and --ngal setting (0 would make them all noise-free); "
                         "for no noise use --deepsphere-level 0 or --ngal inf")
    return float(value)


def _check_ngal(value) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "none"):
        return math.inf
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"galaxy density must be a number of galaxies per arcmin^2 or inf/none, got {value!r}") from None
    if not x > 0:
        raise ValueError(f"galaxy density must be > 0 galaxies per arcmin^2 (inf or none: no noise), got {value!r}")
    return x


@dataclass
class SkySetting:
    """One way of cutting the sky: name ("1/12"), patch level (None: full sky or
    footprint), footprint mask (NESTED bool) or None, the sky fraction of a sample, and the
    resolution of the samples (``nside``; the full sky is averaged down)."""

    name: str
    level: int | None
    footprint: np.ndarray | None = field(default=None, repr=False)
    fraction: float = 1.0
    nside: int | None = None

    @property
    def full_sky(self) -> bool:
        return self.level is None and self.footprint is None


def parse_sky_fraction(text: str, nside: int, footprint=None, full_sky_nside: int | None = None,
                       remedy: bool = True) -> SkySetting:
    """"1" -> full sky (at ``min(nside, full_sky_nside)``); "1/12", "1/48", "1/192", ... -> patch
    level; "footprint" -> mask.

    The footprint is only read (and checked) when ``footprint`` is given; ``remedy``: its refusals name their
    remedies (:func:`~deepsphere_gen.datasets.read_footprint`).
    """
    text = str(text).strip()
    if text == "footprint":
        if footprint is None:
            return SkySetting("footprint", None, None, float("nan"), nside)
        from ...datasets import builtin_footprint, read_footprint  # (see __post_init__)

        mask = builtin_footprint(nside) if footprint == "builtin" else read_footprint(footprint, nside, remedy=remedy)
        return SkySetting("footprint", None, mask, float(mask.mean()), nside)
    try:
        frac = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"sky fraction must be 1, 1/12, 1/48, 1/192, ... or 'footprint', got {text!r}") from None
    if frac == 1:
        return SkySetting("1", None, None, 1.0, nside if full_sky_nside is None else min(nside, full_sky_nside))
    if frac.numerator == 1 and frac.denominator % 12 == 0:
        q = frac.denominator // 12
        level = int(round(math.log(q, 4))) if q >= 1 else -1
        if level >= 0 and 4**level == q:
            if 2**level > nside:
                raise ValueError(f"sky fraction {text} needs nside >= {2**level}, got nside {nside}")
            return SkySetting(text, level, None, float(frac), nside)
    raise ValueError(f"sky fraction {text!r} is not a nested base-patch fraction 1/(12*4^k) nor 1")


def sky_settings(config: ExperimentConfig) -> list[SkySetting]:
    """The sky settings of ``config.sky_fractions``, in order (:func:`parse_sky_fraction` at the config's
    ``nside``, ``footprint`` and ``full_sky_nside``).

    The footprint file is read once per config, when ``__post_init__`` validates it: the settings are kept on
    the config (a plain attribute, not a field: not in its JSON, fingerprint or :func:`dataclasses.replace`;
    pickled with it to worker processes) and parsed again only after one of those four fields changed.  Their
    footprint mask is shared by every caller, hence read-only.
    """
    key = (tuple(config.sky_fractions), config.nside, config.footprint, config.full_sky_nside)
    kept = getattr(config, "_sky_settings", None)
    if kept is None or kept[0] != key:
        parsed = {s: parse_sky_fraction(s, config.nside, config.footprint, config.full_sky_nside)
                  for s in dict.fromkeys(config.sky_fractions)}
        for sky in parsed.values():
            if sky.footprint is not None:
                sky.footprint.flags.writeable = False
        kept = config._sky_settings = (key, [parsed[s] for s in config.sky_fractions])
    return list(kept[1])
