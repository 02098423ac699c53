"""The ensembles' members (graph networks and summary-statistic MLPs): their seeds, checkpoint paths,
fingerprints, training settings and the checked loading of their checkpoints.

Graph ensemble (``graph_members`` M > 1): M graph networks trained one after another on the same
data with training seeds :func:`member_seed` (member 0 is the single network, checkpoint
``cosmo-graph.pt``; member i: ``cosmo-graph-m<i>.pt``, :func:`checkpoint_path`; every checkpoint
carries a fingerprint of :func:`member_fields`, :func:`member_meta`, checked by
:func:`graph_state`).  Each sample's M Gaussians in u-space become one by moment matching their
equal-weight mixture (:func:`~.posterior.ensemble_moments`) before the variance calibration, which
runs unchanged; the summary likelihood uses the ensemble mean.  Each member alone is evaluated too
(``summary["members"]`` for M > 1) and its training recorded (``records[graph]["members"]``,
M >= 1: :func:`~.evaluation.evaluate_all`).  Cost: M times the graph training, M prediction passes.

The summary-statistic MLPs' initial weights are seeded by :func:`mlp_init_seed` (the run's seed and the
method alone: the same MLP whatever else the run trains or reuses).  Their checkpoints
(``cosmo-power_spectrum.pt``, ``cosmo-handcrafted.pt``) carry a fingerprint of :func:`mlp_fields` too
(:func:`mlp_meta`, its ``init_seed`` included), checked by :func:`mlp_state` before one is reused or
evaluated; one of other settings, written before the fingerprints or before the seeded initialisation
(no ``init_seed``), is refused (``cosmo --restart`` retrains it).

MLP ensembles (``mlp_members`` N > 1), as the graph's: N MLPs per method trained on the same features,
member k's initial weights and training (dropout, batch order) seeded by :func:`mlp_member_seeds` (member 0
is the single MLP above, checkpoint and fingerprint unchanged; member k >= 1: ``cosmo-<method>-m<k>.pt``,
fingerprint :func:`mlp_fields` with ``member``, ``init_seed`` and ``train_seed``).  Their Gaussians are
combined by the graph ensemble's code (:func:`~.posterior.ensemble_moments`), then calibrated; each member
alone is in ``records[method]["members"]``.  A member's fingerprint does not hold N: another
``--mlp-members`` reuses the members both runs share.

A refusal names each differing field with the ``deepsphere-gen cosmo`` option that sets it, where one does
(:data:`GRAPH_OPTIONS`, :data:`MLP_OPTIONS`).
"""
from __future__ import annotations

from pathlib import Path

from ..._fingerprint import canonical, fingerprint_meta
from ..._seeds import derived_seeds, ensemble_seed
from ...datasets.cosmo_grid import grid_fields
from ...training import CheckpointMismatch, TrainConfig, check_fingerprint, check_settings, load_checkpoint
from .config import MLP_TRAINING, CosmoExperimentConfig

__all__ = ["checkpoint_path", "member_seed", "mlp_init_seed", "member_fields", "member_meta", "is_legacy",
           "graph_train_config", "graph_state", "mlp_member_seeds", "mlp_fields", "mlp_meta", "mlp_state", "EVALUATE_REMEDY",
           "RETRAIN_REMEDY", "remedy_for", "GRAPH_OPTIONS", "MLP_OPTIONS", "untrained_method_message",
           "untrained_message"]

#: what to do about a checkpoint of other settings, per method (``{method}``: :func:`remedy_for` fills it in):
#: ``--restart`` alone would retrain every method of the run, the graph networks too
RETRAIN_REMEDY = ("not reused: add `--methods {method} --restart` to the command to retrain it (overwriting it; the "
                  "other methods' networks are kept), or use another --out-dir")
EVALUATE_REMEDY = ("not evaluated: train it again with `deepsphere-gen cosmo train --methods {method} --restart` and "
                   "this run's options (overwriting it), use another --out-dir, or remove it")


def remedy_for(remedy: str, method: str) -> str:
    """``remedy`` with its ``{method}`` placeholder (if any) replaced by ``method``."""
    return remedy.replace("{method}", method)


def checkpoint_path(config: CosmoExperimentConfig, method: str, member: int = 0) -> Path:
    """``checkpoints/cosmo-<method>.pt``; ensemble member i >= 1: ``cosmo-<method>-m<i>.pt``."""
    return Path(config.out_dir) / "checkpoints" / (f"cosmo-{method}.pt" if member == 0 else f"cosmo-{method}-m{member}.pt")


def member_seed(seed: int, member: int) -> int:
    """Training seed of graph ensemble member ``member`` of a run with ``seed``: ``seed`` itself for
    member 0 (the single network), else 31 bits of ``SeedSequence([seed, 7477, member])`` (weights,
    data order and training noise differ; the data, validation split and noise of the evaluation
    stay those of ``seed``); :func:`~deepsphere_gen._seeds.ensemble_seed` with stream 7477."""
    return ensemble_seed(seed, member, 7477)


#: the summary-statistic MLPs' numbers in :func:`mlp_init_seed` (fixed: a new method takes a new one)
_MLP_NUMBERS = {"power_spectrum": 1, "handcrafted": 2}


def mlp_init_seed(seed: int, method: str) -> int:
    """Seed of the initial weights of summary-statistic MLP ``method`` in a run with ``seed``: 31 bits of
    ``SeedSequence([seed, 8311, n])``, n = 1 (power_spectrum) or 2 (handcrafted)
    (:func:`~deepsphere_gen._seeds.ensemble_seed` with stream 8311).  ``seed_everything`` with it right before
    the MLP is built, so that its weights depend on nothing else in the run (which methods are trained, a graph
    network trained, reused or absent); its training is seeded by ``seed`` itself."""
    return ensemble_seed(seed, _MLP_NUMBERS[method], 8311)


def mlp_member_seeds(seed: int, method: str, member: int) -> tuple[int, int]:
    """(initial-weight seed, training seed) of member ``member`` of MLP ``method``'s ensemble in a run with
    ``seed``: member 0 (the single MLP) ``(mlp_init_seed(seed, method), seed)``; member k >= 1 two 31-bit words
    of ``SeedSequence([seed, 8311, n, k])`` (n as in :func:`mlp_init_seed`;
    :func:`~deepsphere_gen._seeds.derived_seeds`), so that its weights, dropout and batch order differ from every
    other member's and method's; its features (noise draws) and validation split stay those of ``seed``."""
    if member == 0:
        return mlp_init_seed(seed, method), int(seed)
    return derived_seeds(seed, (8311, _MLP_NUMBERS[method], member), 2)


#: the ``deepsphere-gen cosmo`` option that sets each field of :func:`member_fields` (named in a refusal; fields
#: that no option sets, or that follow from others such as ``member_seed``, have none)
GRAPH_OPTIONS = {"grid.nside": "--nside", "grid.n_bins": "--bins", "grid.n_train": "--n-train",
                 "grid.n_test": "--n-test", "grid.n_real": "--n-real", "grid.n_fiducial": "--n-fiducial",
                 "grid.n_calib": "--n-calib", "grid.footprint": "--footprint", "grid.seed": "--seed", "ngal": "--ngal",
                 "sigma_e": "--sigma-e", "network.channels": "--quick", "train.epochs": "--epochs",
                 "train.batch_size": "--batch-size", "train.lr": "--lr", "seed": "--seed"}
#: the ``deepsphere-gen cosmo`` option that sets each field of :func:`mlp_fields` (named in a refusal)
MLP_OPTIONS = {**{k: v for k, v in GRAPH_OPTIONS.items() if k.startswith("grid.")}, "ngal": "--ngal",
               "sigma_e": "--sigma-e", "train.epochs": "--mlp-epochs", "seed": "--seed"}


def member_fields(config: CosmoExperimentConfig, member: int) -> dict:
    """What determines the checkpoint of graph member ``member`` (fingerprinted into it, so a checkpoint
    of another configuration is neither resumed nor evaluated): the simulations' settings, noise,
    network, training settings, the run's seed and the member."""
    return canonical({"grid": grid_fields(config.grid), "ngal": config.ngal, "sigma_e": config.sigma_e,
                      "network": {"channels": config.channels, "K": config.K, "k": config.k},
                      "train": {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                                "weight_decay": config.weight_decay},
                      "seed": config.seed, "member": member, "member_seed": member_seed(config.seed, member)})


def member_meta(config: CosmoExperimentConfig, member: int) -> dict:
    """``fit``'s meta of a member: the fingerprint of :func:`member_fields` and the fields."""
    return fingerprint_meta(member_fields(config, member))


def is_legacy(member: int, state: dict | None) -> bool:
    """A checkpoint of member 0 written before the fingerprints (no ``meta["fingerprint"]``): still
    resumed and evaluated (only its training settings are checked), so earlier single-network runs
    stay usable; members >= 1 always carry one."""
    return member == 0 and state is not None and "fingerprint" not in (state.get("meta") or {})


def graph_train_config(config: CosmoExperimentConfig, n_train: int, world: int, member: int = 0) -> TrainConfig:
    """The :class:`~deepsphere_gen.training.TrainConfig` of graph member ``member`` on ``n_train`` training samples
    and ``world`` processes: the global batch is ``config.batch_size`` (at most ``n_train``) rounded down to a
    multiple of ``world``; cosine schedule, seed :func:`member_seed`, checkpoint :func:`checkpoint_path`."""
    batch = max(world, min(config.batch_size, n_train) - min(config.batch_size, n_train) % world)
    return TrainConfig(epochs=config.epochs, batch_size=batch, lr=config.lr, weight_decay=config.weight_decay,
                       seed=member_seed(config.seed, member), device=config.device, progress=config.progress,
                       lr_schedule="cosine", warmup=0.05, recalibrate_samples=512,
                       checkpoint=checkpoint_path(config, "graph", member),
                       desc="cosmo graph" if member == 0 else f"cosmo graph m{member}", keep_best="val_loss")


def graph_state(config: CosmoExperimentConfig, member: int, device) -> dict | None:
    """The checkpoint of graph member ``member`` (None if absent), checked against ``config``: its
    fingerprint (:func:`member_fields`, :func:`~deepsphere_gen.training.check_fingerprint`) must match;
    a member-0 checkpoint without one (:func:`is_legacy`) is checked on its stored training settings, as a
    resumed run checks them (:func:`~deepsphere_gen.training.check_settings`; a setting it does not store
    counts as differing; the batch size is not compared: the effective one depends on the number of
    processes that trained it); else :class:`~deepsphere_gen.training.CheckpointMismatch`."""
    ckpt = checkpoint_path(config, "graph", member)
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt, map_location=device)
    remedy = remedy_for(EVALUATE_REMEDY, "graph")
    if is_legacy(member, state):
        check_settings(state, graph_train_config(config, 1, 1, member), ckpt, remedy, ignore=("batch_size",),
                       absent_differs=True)
    else:
        check_fingerprint(state, member_meta(config, member), ckpt, remedy, options=GRAPH_OPTIONS)
    return state


def mlp_fields(config: CosmoExperimentConfig, method: str, member: int = 0) -> dict:
    """What determines the checkpoint of member ``member`` of summary-statistic MLP ``method`` (fingerprinted
    into it): the simulations' settings, noise, the features (their noise draws, quantiles, scales), the network,
    its training (:data:`~.config.MLP_TRAINING` included), the run's seed and the seed of its initial weights
    (``init_seed``, :func:`mlp_init_seed`: a checkpoint without it predates the seeded initialisation); member
    k >= 1 adds ``member`` and its seeds (:func:`mlp_member_seeds`), member 0's fields are those of the single
    MLP (its checkpoints stay valid)."""
    from .summaries import QUANTILES, SCALES

    init, train = mlp_member_seeds(config.seed, method, member)
    extra = {} if member == 0 else {"member": member, "train_seed": train}
    return canonical({"method": method, "grid": grid_fields(config.grid), "ngal": config.ngal, "sigma_e": config.sigma_e,
                      "features": {"noise_draws": config.ps_noise_draws, "quantiles": QUANTILES, "scales": SCALES},
                      "network": {"hidden": config.mlp_hidden, "dropout": config.mlp_dropout},
                      "train": {"epochs": config.mlp_epochs, "weight_decay": config.weight_decay, **MLP_TRAINING},
                      "seed": config.seed, "init_seed": init, **extra})


def mlp_meta(config: CosmoExperimentConfig, method: str, member: int = 0) -> dict:
    """The meta stored in the checkpoint of MLP ``method``'s member ``member``: the fingerprint of
    :func:`mlp_fields` and the fields."""
    return fingerprint_meta(mlp_fields(config, method, member))


def mlp_state(config: CosmoExperimentConfig, method: str, device="cpu", remedy: str = EVALUATE_REMEDY,
              member: int = 0) -> dict | None:
    """The checkpoint of member ``member`` of MLP ``method`` (None if absent), checked against ``config``: its
    fingerprint must be :func:`mlp_meta`'s, else :class:`~deepsphere_gen.training.CheckpointMismatch` naming the
    differing fields and ``remedy``; a checkpoint without one (written before the fingerprints) is refused too,
    its settings being unknown."""
    ckpt = checkpoint_path(config, method, member)
    if not ckpt.is_file():
        return None
    state = load_checkpoint(ckpt, map_location=device)
    if "fingerprint" not in (state.get("meta") or {}):
        raise CheckpointMismatch(f"checkpoint {ckpt} predates checkpoint fingerprints (the settings it was "
                                 f"trained with are unknown); {remedy_for(remedy, method)}")
    check_fingerprint(state, mlp_meta(config, method, member), ckpt, remedy_for(remedy, method), options=MLP_OPTIONS)
    return state


def _members(config: CosmoExperimentConfig, method: str) -> tuple[int, str]:
    """(members requested, the option that sets their number) of ``method``."""
    return (config.graph_members, "--graph-members") if method == "graph" else (config.mlp_members, "--mlp-members")


def untrained_method_message(config: CosmoExperimentConfig, method: str) -> str | None:
    """None where every member of ``method`` requested by ``config`` has a checkpoint; else one line: the missing
    checkpoints, the command that trains them, and the members that could be evaluated instead
    (``--graph-members 3``) or, where none is trained, leaving the method out.  ``deepsphere-gen cosmo evaluate``
    refuses with it (:func:`untrained_message`); ``evaluate_all`` logs it and leaves the method out."""
    n, option = _members(config, method)
    missing = [i for i in range(n) if not checkpoint_path(config, method, i).is_file()]
    if not missing:
        return None
    files = ", ".join(str(checkpoint_path(config, method, i)) for i in missing)
    done = missing[0]  # members 0 .. done - 1 are trained
    other = (f"or evaluate the {done} trained with `{option} {done}`" if done
             else f"or leave {method} out of --methods")
    return (f"{method}: no checkpoint {files} ({option} {n}): train {'them' if len(missing) > 1 else 'it'} "
            f"with `deepsphere-gen cosmo train --methods {method} {option} {n}` and this run's other options, "
            f"{other}")


def untrained_message(config: CosmoExperimentConfig) -> str | None:
    """None where every member of every method of ``config.methods`` has a checkpoint; else what
    ``deepsphere-gen cosmo evaluate`` refuses with (one line): :func:`untrained_method_message` of each method
    lacking one.  Evaluating without them would write a record lacking that method (or with fewer members) over
    OUT_DIR/cosmo.json."""
    parts = [m for m in (untrained_method_message(config, method) for method in config.methods) if m]
    return None if not parts else "not every requested network is trained, nothing evaluated: " + "; ".join(parts)
