"""Evaluation of the mass-map experiment: every method on the test maps, one record per (method, sky,
noise) (:func:`evaluate_all`); networks read from their checkpoints (ensembles and symmetric views
averaged), baselines fitted here or taken from a :class:`~.parallel.ParallelRun`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..._fingerprint import field_changes
from ...datasets import MassMapDataset
from ...training import (
    CheckpointError,
    DistContext,
    batch_outputs,
    check_fingerprint,
    distributed_context,
    load_checkpoint,
    load_model_state,
)
from .baseline_records import baseline_records
from .config import BASELINES, METHODS, ExperimentConfig, SkySetting, sky_settings
from .data import datasets_of, generate
from .records import accuracy_fields, base_record
from .settings import NoiseSetting, methods_for, noise_settings
from .symmetry import SymmetryAverage, evaluation_symmetries, log_mean_probabilities
from .training import members_of, network_run

__all__ = ["evaluate_all"]


def _other_settings(ckpt: Path, meta: dict, most: int = 3) -> str:
    """For a missing checkpoint ``ckpt`` of the run ``meta``: the other fingerprints of its name in the same folder
    (networks of the same method, sky, noise and member trained with other settings), each with the settings that
    differ ("; trained there with other settings: F (experiment.sky_rotations (2 there, missing here))"), else ""."""
    name = ckpt.stem.removesuffix("-" + meta["fingerprint"])
    described = []
    for other in sorted(ckpt.parent.glob(f"{name}-*.pt")):
        if other.stem.rsplit("-", 1)[0] != name or len(described) == most:  # not another member's
            continue
        try:
            fields = (load_checkpoint(other).get("meta") or {}).get("fields") or {}
        except (CheckpointError, ValueError):
            continue
        described.append(f"{other.name} ({'; '.join(field_changes(fields, meta['fields'], 'there', 'here', most))})")
    return f"; trained there with other settings: {', '.join(described)}" if described else ""


def _trained_member(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                    train_set: MassMapDataset, ctx: DistContext, log, member: int):
    """(model with the trained weights of ensemble ``member``, its checkpoint state), or None (reported)
    where its checkpoint is missing or unfinished; ValueError for an unavailable hybrid,
    :class:`~deepsphere_gen.training.CheckpointMismatch` for a file of another run's fingerprint."""
    run = network_run(config, path, method, sky, noise, train_set, ctx.world_size, member)
    model, tc = run.model, run.train_config
    ckpt = tc.checkpoint
    if not ckpt.is_file():
        if ctx.is_main and log:  # an unavailable hybrid raised ValueError above: this one was never trained
            log(f"massmaps: no checkpoint {ckpt} for these settings: "
                "run `deepsphere-gen massmaps train` with the same options first" + _other_settings(ckpt, run.meta))
        return None
    state = load_checkpoint(ckpt, map_location=ctx.device)
    if int(state.get("epoch", 0)) < tc.epochs:
        if ctx.is_main and log:
            log(f"massmaps: {ckpt} stopped after epoch {state.get('epoch', 0)} of {tc.epochs}; "
                "not evaluated: run `deepsphere-gen massmaps train` with the same options to finish it")
        return None
    check_fingerprint(state, run.meta, ckpt, "not evaluated: remove it, or rerun `deepsphere-gen massmaps train` "
                      "with --restart")
    load_model_state(model, state, ckpt)
    return model.to(ctx.device), state


def _gather_correct(local, n: int, ctx: DistContext) -> np.ndarray:
    """(n,) booleans of the whole test set from this process's per-batch correctness ``local`` (its
    shard: samples rank, rank + world_size, ...), summed over the processes."""
    mine = torch.cat(local) if local else torch.zeros(0, dtype=torch.bool, device=ctx.device)
    if not ctx.distributed:
        return mine.cpu().numpy().astype(bool)
    full = torch.zeros(n, dtype=torch.int64, device=ctx.device)
    full[ctx.rank::ctx.world_size] = mine.to(torch.int64)
    torch.distributed.all_reduce(full)
    return full.cpu().numpy().astype(bool)


def _network_record(config: ExperimentConfig, path: Path, method: str, sky: SkySetting, noise: NoiseSetting,
                    sets, ctx: DistContext, log) -> dict | None:
    """The record of one network run (see :func:`evaluate_all`), or None where a member's checkpoint
    is missing or unfinished (reported) or the hybrid is unavailable."""
    train_set, test_set = sets
    t0 = time.perf_counter()
    members = []
    for member in range(members_of(config, method)):
        try:
            found = _trained_member(config, path, method, sky, noise, train_set, ctx, log, member)
        except ValueError:
            if method == "hybrid":
                return None  # not available in this build (train said so)
            raise
        if found is None:
            return None
        members.append(found)
    perms = evaluation_symmetries(test_set.nside, sky.level) if config.average_views else None
    models = [m for m, _ in members]
    # every member's outputs once per view setting (one forward pass per member, batch and view); the
    # members' and the ensemble's predictions all come from them
    one = [list(batch_outputs(m, test_set, config.batch_size, ctx)) for m in models]
    views = one if perms is None else [
        list(batch_outputs(SymmetryAverage(m, perms).to(ctx.device), test_set, config.batch_size, ctx))
        for m in models]
    labels = [y for _, y in one[0]]

    def correct(outputs) -> np.ndarray:
        """(n,) correctness over the whole test set of the members ``outputs`` (one member: its own
        prediction, several: :func:`log_mean_probabilities`, batch by batch)."""
        local = [(out[0][0] if len(out) == 1 else log_mean_probabilities([o for o, _ in out])).argmax(-1) == y
                 for out, y in zip(zip(*outputs), labels)]
        return _gather_correct(local, len(test_set), ctx)

    def scores(outputs_one, outputs_views, with_samples: bool) -> dict:
        c_one = correct(outputs_one)
        c_views = c_one if outputs_views is outputs_one else correct(outputs_views)  # no view averaging: the same
        out = accuracy_fields(c_views, test_set if with_samples else None)
        out["accuracy_one_view"] = accuracy_fields(c_one)["accuracy"]
        return out

    def warm_start(st):  # the run a member's training started from (--warm-start), else None
        return ((st.get("meta") or {}).get("fields") or {}).get("init")

    state = members[0][1]
    rec = {"method": method, **scores(one, views, True), "views": 1 if perms is None else len(perms),
           "epochs": int(state["epoch"]), "warm_start": warm_start(state)}
    rec.update({k_: state["config"][k_] for k_ in ("batch_size", "lr") if k_ in state.get("config", {})})
    if len(members) > 1:
        rec["members"] = [{"member": i, "seed": int(st["config"]["seed"]), **scores([one[i]], [views[i]], False),
                           "fingerprint": (st.get("meta") or {}).get("fingerprint"), "warm_start": warm_start(st),
                           "train_seconds": sum(h["seconds"] for h in st["history"])}
                          for i, (_, st) in enumerate(members)]
    rec["seconds"] = sum(h["seconds"] for _, st in members for h in st["history"]) + time.perf_counter() - t0
    rec["history"] = [{k_: v for k_, v in h.items() if k_ != "step_losses"} for h in state["history"]]
    return rec


def evaluate_all(config: ExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
                 log=print, baselines: dict | None = None) -> list[dict]:
    """Accuracy of every method on the test maps: one record per (method, sky, noise).

    Networks are read from their checkpoints (missing ones are reported and skipped);
    baselines are fitted here (training maps, C chosen on the validation maps).  Record keys:
    method, sky_fraction (float), sky (name), nside (of the samples), noise (setting name),
    noise_label, ngal, deepsphere_level, noise_std (per pixel), accuracy, n_correct, ci95
    ([lo, hi], Wilson, approximate), ci95_maps ([lo, hi]: percentiles of a bootstrap over the
    test maps; Wilson over the test maps, or null, with ``ci95_maps_note`` where every resample is the same:
    :func:`..reporting.map_interval_fields`), correct (per test sample in test-sample order,
    "1" correct / "0" wrong), test_maps ([[class, map number, consecutive samples], ...]: the map
    of every test sample, run-length encoded; every method of one (sky, noise) is scored on the
    same test samples in the same order, with the data set's fixed noise), n_train, n_val,
    n_test, seconds (training + test for networks, features + fit + test for baselines), epochs,
    batch_size, lr, history (networks), views, accuracy_one_view (networks: with
    ``config.average_views`` the test accuracy is that of the class probabilities averaged over
    ``views`` symmetries of the input, :func:`evaluation_symmetries`; accuracy_one_view that of the
    input as it is), warm_start (networks: the run it started from and its fingerprint, or None),
    members (networks with ``config.fcn_members`` > 1: per ensemble member its seed, fingerprint,
    train_seconds and own accuracy, n_correct, ci95, accuracy_one_view; the record's accuracy is
    then the ensemble's, its class probabilities averaged over the members,
    :func:`log_mean_probabilities`; seconds count every member's training, history and epochs are
    member 0's), C, val_accuracy, features (baselines).  ``baselines``: the futures of a
    :class:`~.parallel.ParallelRun` (records computed in worker processes), else fitted here.
    """
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx)
    records = []
    for sky in sky_settings(config):
        for noise in noise_settings(config):
            train_set, val_set, test_set = datasets_of(path, sky, noise, config)
            base = base_record(sky, noise, (train_set, val_set, test_set))
            methods = methods_for(sky, config.methods)
            baseline_methods = [m for m in methods if m in BASELINES]
            for method in methods:
                if method in BASELINES:
                    continue
                rec = _network_record(config, path, method, sky, noise, (train_set, test_set), ctx, log)
                if rec is not None:
                    records.append({**base, **rec})
            if baseline_methods and ctx.is_main:
                job = (baselines or {}).get((sky.name, noise.name))
                records.extend(job.result() if job is not None
                               else baseline_records(path, sky, noise, config, baseline_methods))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(records, key=lambda r: (config.sky_fractions.index(r["sky"]),
                                          [n.name for n in noise_settings(config)].index(r["noise"]),
                                          order[r["method"]]))
