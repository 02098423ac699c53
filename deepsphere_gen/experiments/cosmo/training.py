"""Training of every estimator of ``config.methods``: the graph ensemble's members through
:func:`deepsphere_gen.training.fit` (checkpointed, resumable, under DDP too), the summary-statistic
MLPs' ensemble members by AdamW with early stopping on the validation cosmologies.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ...datasets.cosmo_grid import CosmoMapDataset
from ...training import (DistContext, check_fingerprint, distributed_context, fit, load_checkpoint, save_checkpoint,
                         seed_everything)
from .config import MLP_TRAINING, CosmoExperimentConfig
from .data import (FEATURE_METHODS, Targets, generate, graph_input_scale, in_memory, mlp_scaler, pseudo_cl_estimator,
                   split_features, validation_mask)
from .members import (GRAPH_OPTIONS, RETRAIN_REMEDY, checkpoint_path, graph_train_config, is_legacy, member_meta,
                      member_seed, mlp_member_seeds, mlp_meta, mlp_state, remedy_for)
from .models import build_graph_model, build_mlp
from .posterior import ParameterSpace, gaussian_nll

__all__ = ["train", "check_checkpoints"]


def _fit_mlp(model: nn.Module, x: torch.Tensor, u: torch.Tensor, xv: torch.Tensor, uv: torch.Tensor,
             config: CosmoExperimentConfig, seed: int) -> tuple[dict, list[dict]]:
    """AdamW on the Gaussian NLL with early stopping on the validation NLL (learning rate, batch size and
    patience: :data:`~.config.MLP_TRAINING`); dropout and the batch order seeded by ``seed`` (the member's
    training seed, ``config.seed`` for member 0; the initial weights: by the caller,
    :func:`~.members.mlp_member_seeds`); returns (best state, history)."""
    lr, batch, patience = (MLP_TRAINING[k] for k in ("lr", "batch_size", "patience"))
    seed_everything(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history, since = math.inf, None, [], 0
    for epoch in range(config.mlp_epochs):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            loss = gaussian_nll(model(x[idx]), u[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(gaussian_nll(model(xv), uv))
        history.append({"epoch": epoch + 1, "train_loss": total / len(x), "val_loss": val,
                        "seconds": time.perf_counter() - t0})
        if val < best:
            best, since = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    return best_state, history


def train(config: CosmoExperimentConfig, path: Path | None = None, ctx: DistContext | None = None,
          log=print, restart: bool = False, check: bool = True) -> dict:
    """Train every method of ``config.methods`` on the training cosmologies minus the validation
    ones (checkpointed; the graph network resumes, a finished MLP is kept); returns the histories.
    Order: graph member 0, the MLPs (each method's ``config.mlp_members`` members in turn), graph members >= 1;
    every graph member's initial weights are seeded by :func:`~.members.member_seed`, every MLP member's by
    :func:`~.members.mlp_member_seeds` right before it is built, so that no network depends on what else the
    run trains, reuses or leaves out.

    ``check``: every existing checkpoint of the methods is checked first (:func:`check_checkpoints`), before
    the data are generated where ``path`` is None: one of other settings (another fingerprint,
    :func:`~.members.member_meta`, :func:`~.members.mlp_meta`) is refused before any work; False where the
    caller has checked them already (``deepsphere-gen cosmo``, before generating the data: once per command).
    ``restart``: the methods are trained from scratch instead, their checkpoints overwritten (nothing checked)."""
    if check and not restart:
        check_checkpoints(config)
    ctx = ctx or distributed_context(config.device)
    path = path or generate(config, ctx, log=log)
    space = ParameterSpace(config.grid)
    val = validation_mask(path, config.seed)
    tr_idx, val_idx = np.flatnonzero(~val).tolist(), np.flatnonzero(val).tolist()
    histories = {}

    if "graph" in config.methods:  # shared by the ensemble members: only the weights differ
        train_set = Subset(Targets(CosmoMapDataset(path, "train", config.noise_std(), fresh_noise=True,
                                                   seed=config.seed), space), tr_idx)
        val_set = in_memory(Subset(Targets(CosmoMapDataset(path, "train", config.noise_std(), seed=config.seed),
                                           space), val_idx))
        footprint, scale = np.load(path / "footprint.npy"), graph_input_scale(config, path)

    def train_graph(member: int) -> None:
        ckpt = checkpoint_path(config, "graph", member)
        state = None if restart or not ckpt.is_file() else load_checkpoint(ckpt)  # read once; fit reads it to resume
        legacy = is_legacy(member, state)  # member 0 only
        if legacy and log and ctx.is_main:
            log(f"cosmo graph: {ckpt} predates checkpoint fingerprints: only its training settings are checked")
        done = 0 if state is None else int(state.get("epoch", 0))  # epochs before
        seed_everything(member_seed(config.seed, member))  # the initial weights
        model = build_graph_model(config, footprint, scale)
        t0 = time.process_time()
        key = "graph" if member == 0 else f"graph-m{member}"
        tc = replace(graph_train_config(config, len(tr_idx), ctx.world_size, member), resume=not restart)
        histories[key] = fit(model, train_set, tc, val_set=val_set, loss_fn=gaussian_nll, log=log,
                             ctx=ctx, meta=None if legacy else member_meta(config, member))
        if log and ctx.is_main:
            log(f"cosmo {key}: reused the finished network (no epoch trained now)" if done >= config.epochs
                else f"cosmo {key}: trained, {time.process_time() - t0:.0f} s process CPU")

    if "graph" in config.methods:
        train_graph(0)
    feats = [m for m in FEATURE_METHODS if m in config.methods]
    if feats and ctx.is_main:
        est = pseudo_cl_estimator(config)
        x, theta = split_features(config, path, est, "train", config.ps_noise_draws)
        u = torch.as_tensor(space.to_u(theta), dtype=torch.float32)
        val_draws = np.tile(val, config.ps_noise_draws)
        for m in feats:
            scaler = mlp_scaler(config, x[m], val)
            xs = scaler(x[m])
            for member in range(config.mlp_members):
                histories[m if member == 0 else f"{m}-m{member}"] = _train_mlp(
                    config, m, member, xs, u, val_draws, restart, log)
    ctx.barrier()
    if "graph" in config.methods:
        for member in range(1, config.graph_members):  # one after another (under torchrun: all ranks each)
            train_graph(member)
        ctx.barrier()
    return histories


def _train_mlp(config: CosmoExperimentConfig, method: str, member: int, xs: torch.Tensor, u: torch.Tensor,
               val_draws: np.ndarray, restart: bool, log) -> list[dict]:
    """Train member ``member`` of MLP ``method`` on the scaled features ``xs`` (n, f) and targets ``u`` (n, 2)
    (``val_draws``: the validation rows), or reuse its checkpoint of the same settings; returns its history."""
    ckpt = checkpoint_path(config, method, member)
    name = method if member == 0 else f"{method} m{member}"
    state = None if restart else mlp_state(config, method, remedy=RETRAIN_REMEDY, member=member)
    if state is not None:
        if log:
            log(f"cosmo {name}: reused the checkpoint {ckpt} of the same settings (best epoch {state['epoch']} "
                f"of {len(state['history'])})")
        return state["history"]
    t0 = time.process_time()
    init_seed, train_seed = mlp_member_seeds(config.seed, method, member)
    seed_everything(init_seed)  # the initial weights
    model = build_mlp(xs.shape[1], config.mlp_hidden, config.mlp_dropout)
    state, hist = _fit_mlp(model, xs[~val_draws], u[~val_draws], xs[val_draws], u[val_draws], config, train_seed)
    best = int(np.argmin([h["val_loss"] for h in hist]))
    save_checkpoint(ckpt, {"model": state, "epoch": best + 1, "history": hist,
                           "meta": mlp_meta(config, method, member)})
    if log:
        log(f"cosmo {name}: best epoch {best + 1} of {len(hist)}, val loss {hist[best]['val_loss']:.3f} "
            f"(train {hist[best]['train_loss']:.3f}), {time.process_time() - t0:.0f} s process CPU")
    return hist


def check_checkpoints(config: CosmoExperimentConfig, remedy: str = RETRAIN_REMEDY) -> None:
    """Check every existing checkpoint of ``config.methods`` against ``config`` before any work (each is read
    once; a few ms): graph members by fingerprint (a member-0 checkpoint without one, :func:`~.members.is_legacy`,
    is left to ``fit``'s and the evaluation's check of its training settings), MLP members by
    :func:`~.members.mlp_state`; one of other settings raises :class:`~deepsphere_gen.training.CheckpointMismatch`
    naming the differing fields (and the option that sets each, :data:`~.members.GRAPH_OPTIONS`,
    :data:`~.members.MLP_OPTIONS`), then ``remedy`` (default: ``--methods METHOD --restart`` retrains it; ``{method}`` filled in by
    :func:`~.members.remedy_for`)."""
    if "graph" in config.methods:
        for member in range(config.graph_members):
            ckpt = checkpoint_path(config, "graph", member)
            if ckpt.is_file():
                state = load_checkpoint(ckpt)
                if not is_legacy(member, state):
                    check_fingerprint(state, member_meta(config, member), ckpt, remedy_for(remedy, "graph"),
                                      options=GRAPH_OPTIONS)
    for m in FEATURE_METHODS:
        if m in config.methods:
            for member in range(config.mlp_members):
                mlp_state(config, m, remedy=remedy, member=member)
