"""Training the networks of the mass-map experiment: what a run is (:class:`NetworkRun`, :func:`network_run`,
:func:`network_runs`), its schedule (:func:`train_config`), and training one run or all of them
(:func:`train_one`, :func:`train`).

Training (see :func:`train_config`): AdamW with a cosine-decaying learning rate (the budget's
version of DeepSphere's Adam 2e-4 x 0.999 per step over 80 epochs), BatchNorm statistics
recalibrated on the training set after every epoch, at least ``min_steps`` optimisation
steps per run, fresh noise and random square/grid symmetries (:func:`.data.training_set`), and
per-epoch validation on the validation maps (the test maps are used for the final table only).

Ensembles (``fcn_members`` M > 1): every ``fcn`` (and ``cnn``) run is M networks trained on the
same samples with the training seeds :func:`~.runs.member_seed` (member 0: the single
network and its checkpoint; member i: its own fingerprinted checkpoint ``...-m<i>-<fingerprint>.pt``);
the test prediction is the mean of their class probabilities
(:func:`~.symmetry.log_mean_probabilities`), and each member's own accuracy is recorded too.

Checkpoints are named by a fingerprint of everything that determines them
(:mod:`.runs`): other settings train afresh beside them, the same settings resume or
are found finished, whether trained in this process or in the workers of a
:class:`~.parallel.ParallelRun`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from ...datasets import COSMOLOGIES, MassMapDataset, load_massmaps
from ...training import (
    DistContext,
    TrainConfig,
    distributed_context,
    fit,
    load_checkpoint,
    load_model_state,
    trained_weights,
)
from .config import ENSEMBLE_METHODS, NETWORK_METHODS, ExperimentConfig, SkySetting, sky_settings
from .data import dataset_of, datasets_of, generate, training_set
from .map_statistics import training_distribution
from .models import build_model
from .runs import checkpoint_file, member_name, member_seed, run_fields, run_meta, run_name
from .settings import NoiseSetting, methods_for, noise_settings

__all__ = ["NetworkRun", "members_of", "network_run", "network_runs", "train_config", "warm_start", "train_one",
           "train"]


def _scale(dataset: MassMapDataset) -> float:
    """Expected pixel std of the samples (clean and noise; one number for both classes)."""
    return math.sqrt(dataset.clean_std**2 + dataset.noise_std**2)


@dataclass
class NetworkRun:
    """One network run: its model (initial weights), TrainConfig (with the fingerprinted checkpoint),
    checkpoint meta, and the noise-free run it starts from (``source``; None: random initialisation)."""

    model: nn.Module
    train_config: TrainConfig
    meta: dict
    source: "NetworkRun | None" = None


def _warm_start_source(config: ExperimentConfig, noise: NoiseSetting) -> NoiseSetting | None:
    """The noise setting a run starts from: the noise-free one for runs with noise (``config.warm_start``)."""
    return NoiseSetting("none") if config.warm_start and noise.kind != "none" else None


def members_of(config: ExperimentConfig, method: str) -> int:
    """Networks per run of ``method``: ``config.fcn_members`` for :data:`ENSEMBLE_METHODS`, else 1."""
    return config.fcn_members if method in ENSEMBLE_METHODS else 1


def network_run(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                train_set: MassMapDataset, world_size: int = 1, member: int = 0) -> NetworkRun:
    """The :class:`NetworkRun` of (method, sky, noise) and ensemble ``member``; the checkpoint file
    name carries the run's fingerprint (:mod:`.runs`), which for a warm-started run includes
    the fingerprint of the noise-free run (of the same member) it starts from (field ``init``), for a
    member i >= 1 the member and its seed (initial weights and training: :func:`member_seed`)."""
    seed = member_seed(config.seed, member)
    model = build_model(method, sky, config, _scale(train_set), seed)
    name = member_name(run_name(method, sky.name, noise), member)
    tc = replace(train_config(method, len(train_set), config, world_size, desc=name), seed=seed)
    source, init = None, None
    src_noise = _warm_start_source(config, noise)
    if src_noise is not None:
        source = network_run(config, path, method, sky, src_noise, dataset_of(path, sky, None, config, "train"),
                             world_size, member)
        init = {"warm_start": member_name(run_name(method, sky.name, src_noise), member),
                "fingerprint": source.meta["fingerprint"]}
    _, data_meta = load_massmaps(path)
    meta = run_meta(run_fields(config, data_meta.get("generation", data_meta), method, sky, noise, model, tc, init,
                               member),
                    footprint=config.footprint if config.footprint in (None, "builtin")
                    else str(Path(config.footprint).resolve()), mask=sky.footprint)
    tc = replace(tc, checkpoint=checkpoint_file(config.out_dir, name, meta["fingerprint"]))
    return NetworkRun(model, tc, meta, source)


def network_runs(config: ExperimentConfig):
    """(sky, noise, method, member) of every network run; per sky and method the noise-free run
    first (the runs with noise start from it: :func:`train_one`), member 0 of every run before the
    other members."""
    noises = sorted(noise_settings(config), key=lambda n: n.kind != "none")
    for sky in sky_settings(config):
        for method in methods_for(sky, config.methods):
            if method in NETWORK_METHODS:
                for member in range(members_of(config, method)):
                    for noise in noises:
                        yield sky, noise, method, member


#: per method: (learning-rate factor, minimum-steps factor); the harmonic model (no
#: BatchNorm, quadratic activations of a unit-std input) starts slowly and is cheap
_METHOD_TRAINING = {"fcn": (1.0, 1), "cnn": (1.0, 1), "hybrid": (1.0, 1), "harmonic": (3.0, 3)}


def train_config(method: str, n_train: int, config: ExperimentConfig, world_size: int = 1, **kw) -> TrainConfig:
    """The :class:`TrainConfig` of one network run on ``n_train`` training samples.

    batch: ``config.batch_size``, reduced for small data sets to ``max(8, n_train // 8)``
    (rounded to a multiple of ``world_size``), so that an epoch has about 8 steps or more;
    epochs: at least ``config.epochs`` and enough for ``min_steps`` (x the method's factor)
    optimisation steps; lr: ``config.lr`` x the method's factor, cosine schedule with 10 %
    warm-up; BatchNorm recalibrated after every epoch on at most 512 training samples.
    ``kw``: further TrainConfig fields (checkpoint, desc, ...).
    """
    lr_factor, steps_factor = _METHOD_TRAINING.get(method, (1.0, 1))
    batch = min(config.batch_size, max(8, n_train // 8))
    batch = max(world_size, batch - batch % world_size)
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = max(config.epochs, math.ceil(config.min_steps * steps_factor / steps_per_epoch))
    return TrainConfig(epochs=epochs, batch_size=batch, lr=config.lr * lr_factor, seed=config.seed,
                       device=config.device, progress=config.progress, lr_schedule="cosine", warmup=0.1,
                       recalibrate_samples=512, **kw)


def _finished(tc: TrainConfig) -> bool:
    """Whether ``tc.checkpoint`` holds a run trained to its last epoch."""
    ckpt = Path(tc.checkpoint)
    return ckpt.is_file() and int(load_checkpoint(ckpt).get("epoch", 0)) >= tc.epochs


def warm_start(model: nn.Module, checkpoint) -> nn.Module:
    """Load the weights of a (noise-free) run's ``checkpoint`` into ``model`` (a :class:`~.models.Standardized`
    network of the same method and sky), keeping the model's own input ``scale`` (the expected
    pixel std of its noisy samples).  BatchNorm statistics come along; :func:`~deepsphere_gen.training.fit`
    recomputes them on the noisy training samples after every epoch."""
    weights = dict(trained_weights(load_checkpoint(checkpoint)))
    if "scale" in weights:
        weights["scale"] = model.state_dict()["scale"]
    return load_model_state(model, {"model": weights}, checkpoint)


def class_cosmologies() -> list[dict]:
    """The cosmology of each class, ``[{"omega_m", "sigma8"}, ...]`` (class c = ``COSMOLOGIES[c]``)."""
    return [{"omega_m": c.omega_m, "sigma8": c.sigma8} for c in COSMOLOGIES]


def train_one(config: ExperimentConfig, path: Path, sky: SkySetting, noise: NoiseSetting, method: str,
              ctx: DistContext | None = None, log=print, restart: bool = False, member: int = 0) -> list[dict] | None:
    """Train one network, ensemble member ``member`` of its run (checkpointed, resumable; ``restart``:
    from scratch even if a checkpoint of the same settings exists); its history, or None for an
    unavailable hybrid.

    The checkpoint name carries the run's fingerprint (:func:`network_run`); the checkpoint
    also stores the statistics of the training inputs (``classify``'s out-of-distribution check).

    Warm start (``config.warm_start``, runs with noise): the run starts from the weights of the
    finished noise-free run of the same method and sky (trained here first if its checkpoint is
    missing or unfinished; never retrained when finished), then trains its full schedule on the
    noisy samples: a curriculum from clean to noisy maps.  A resumed run continues from its own
    checkpoint (the warm start is only its initialisation, recorded in its fingerprint).
    Measured at nside 256, 1/48, DeepSphere level 2, 6 epochs: 86.1 vs 85.6 % (seed 0) and
    85.2 vs 85.8 % (seed 1) against a random initialisation, 1152 test patches each: no
    reliable gain, hence off by default.
    """
    ctx = ctx or distributed_context(config.device)
    train_set, val_set, _ = datasets_of(path, sky, noise, config)
    try:
        run = network_run(config, path, method, sky, noise, train_set, ctx.world_size, member)
    except ValueError as exc:
        if method == "hybrid":
            if ctx.is_main and log:
                log(f"massmaps: skipping hybrid: {exc}")
            return None
        raise
    tc, meta = run.train_config, run.meta
    fresh = restart or not Path(tc.checkpoint).is_file()
    if run.source is not None and fresh:
        if not _finished(run.source.train_config):
            train_one(config, path, sky, _warm_start_source(config, noise), method, ctx, log, member=member)
        warm_start(run.model, run.source.train_config.checkpoint)
        if ctx.is_main and log:
            log(f"{tc.desc}: starts from {run.source.train_config.checkpoint}")
    meta["distribution"] = training_distribution(train_set, per_map=train_set.n_patches)
    meta["classes"] = class_cosmologies()  # what class 0 and 1 are (classify names them)
    samples = training_set(path, sky, noise, config, train_set)
    if tc.epochs != config.epochs and fresh and ctx.is_main and log:  # say why (train_config's minimum of steps)
        steps = config.min_steps * _METHOD_TRAINING.get(method, (1.0, 1))[1]
        log(f"{tc.desc}: {tc.epochs} epochs instead of --epochs {config.epochs}, to reach {steps} optimisation steps "
            f"(--min-steps) at {math.ceil(len(samples) / tc.batch_size)} steps per epoch")
    return fit(run.model, samples, replace(tc, resume=not restart), val_set=val_set, log=log, ctx=ctx, meta=meta)


def train(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
          log=print, restart: bool = False) -> dict:
    """Train every network (method, sky, noise); checkpoints under ``out_dir/checkpoints``.

    Per-epoch validation on the validation maps (never the test maps).  A finished run
    (checkpoint at the last epoch) is skipped, an interrupted one resumed; checkpoint names
    carry the run's fingerprint, so other settings train afresh beside them (``restart``:
    retrain even runs with a checkpoint).  Every checkpoint also stores the statistics of
    its training inputs (for ``classify``'s out-of-distribution check).  Returns
    ``{run name: history}`` (ensemble members i >= 1: ``<run name>-m<i>``).  A hybrid model that is
    not available is skipped with a message.
    """
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    histories = {}
    for sky, noise, method, member in network_runs(config):
        history = train_one(config, path, sky, noise, method, ctx, log, restart, member)
        if history is not None:
            histories[member_name(run_name(method, sky.name, noise), member)] = history
    return histories
