"""The training loop, :func:`fit`: AdamW, seeded per epoch, progress bars, a checkpoint after every
epoch, exact resume, DDP under torchrun, Ctrl-C reported as :class:`TrainingInterrupted`."""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .batchnorm import evenly_spaced, recalibrate_batchnorm
from .checkpoints import check_resumable, load_checkpoint, load_model_state, save_checkpoint, saved_epoch
from .classification import correct_samples, cross_entropy, is_classification
from .config import KEEP_BEST, TrainConfig, learning_rate, plain_settings
from .distributed import DistContext, all_sum, distributed_context
from .evaluation import batch_to_device, evaluate, first_sample_outputs


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: ``desc``, ``epoch`` (last epoch saved to ``checkpoint``, 0 if
    none), ``epochs`` (the run's total), ``checkpoint`` (path or None)."""

    def __init__(self, desc: str, epoch: int, epochs: int, checkpoint):
        super().__init__(f"{desc}: interrupted after epoch {epoch} of {epochs}")
        self.desc, self.epoch, self.epochs, self.checkpoint = desc, epoch, epochs, checkpoint


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); cuDNN in deterministic mode."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def fit(model: nn.Module, train_set: Dataset, config: TrainConfig, val_set: Dataset | None = None,
        loss_fn: Callable = cross_entropy, log: Callable[[str], None] | None = print,
        ctx: DistContext | None = None, meta: dict | None = None) -> list[dict]:
    """Train ``model`` in place with Adam(W); returns the history, one dict per epoch.

    ``loss_fn(out, y)``: the MEAN loss of a batch as a scalar (any callable; validation takes its
    sample-weighted mean over batches, :func:`evaluate`, so ``val_loss`` and ``train_loss`` are on one scale).
    The default, :func:`~deepsphere_gen.training.cross_entropy`, takes the library's channels-last
    outputs: (B, classes) with integer targets (B,) (torch's cross_entropy), or (B, npix, classes) with
    targets (B, npix) (segmentation, e.g. ``SphericalUNet``); other shapes are refused in one line.

    Each record: ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (running, over
    the epoch's batches), ``val_loss``/``val_accuracy`` (when ``val_set`` is given),
    ``seconds``, ``step_losses`` (global mean loss of every step).  Accuracies are None (JSON
    null) unless the task is a classification (integer targets, outputs with one more axis of classes:
    :func:`~deepsphere_gen.training.classification.is_classification`; per pixel, the mean fraction
    of correct pixels).  Records of epochs
    restored from a checkpoint are included.  After every epoch the BatchNorm statistics
    are recalibrated on the training set (``config.recalibrate_bn``), so validation,
    checkpoints and the returned model use statistics of the final weights.  ``log`` receives
    one line per epoch (rank 0): training loss ("train loss", the running mean over the epoch's
    batches), and validation loss ("val loss"); accuracies ("train acc", "val acc") only for
    classification.

    ``config.keep_best`` ("val_loss" / "val_accuracy"; "val_accuracy" on a task that is not a
    classification is refused before training: one forward pass of the first training sample decides):
    every record also holds ``best_epoch``
    (the best epoch so far), the checkpoint holds ``"best"`` = {"epoch", "key", "value",
    "model"} besides the last epoch's weights and optimizer (so resuming continues the last
    epoch and keeps the best one), and the model ends with the best epoch's weights
    (:func:`trained_weights` reads them from a checkpoint).

    ``meta``: plain data stored with every checkpoint (``state["meta"]``); when it holds a
    ``"fingerprint"``, an existing checkpoint is resumed only if its fingerprint is the
    same (else :class:`CheckpointMismatch`, naming the differing entries of
    ``meta["fields"]``; ``config.resume=False`` starts afresh and overwrites it).  Ctrl-C
    raises :class:`TrainingInterrupted`.
    """
    if len(train_set) == 0:
        raise ValueError("training set is empty")
    if config.keep_best and val_set is None:
        raise ValueError(f"keep_best={config.keep_best!r} needs a validation set (val_set)")
    ctx = ctx or distributed_context(config.device)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {ctx.world_size} processes")
    local_batch = config.batch_size // ctx.world_size
    model.to(ctx.device)
    if config.keep_best == "val_accuracy":
        _check_classification(model, train_set, ctx.device)
    seed_everything(config.seed)
    net = model
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # constant sparse buffers (graph Laplacians) cannot be broadcast; every rank built the same ones
        sparse = [name for name, b in model.named_buffers() if b.layout != torch.strided]
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sparse)
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    history, start, best = [], 0, None  # best: {"epoch", "key", "value", "model"} with keep_best
    ckpt = Path(config.checkpoint) if config.checkpoint is not None else None
    if ckpt is not None and config.resume and ckpt.is_file():
        state = load_checkpoint(ckpt, map_location=ctx.device)
        check_resumable(state, config, ckpt, meta)
        load_model_state(model, state, ckpt)
        opt.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
        if config.keep_best and start > 0:
            best = dict(state["best"])
        if log and ctx.is_main:
            log(f"{config.desc}: finished run found at {ckpt} (epoch {start} of {config.epochs}); not trained again"
                if start >= config.epochs else f"{config.desc}: resumed from {ckpt} after epoch {start}")

    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, num_workers=config.num_workers,
                        pin_memory=ctx.device.type == "cuda")
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * config.epochs
    from tqdm.auto import tqdm

    saved = start if ckpt is not None else 0  # last epoch written to the checkpoint
    pending = None  # the epoch whose checkpoint is being written
    classify = None  # integer targets, classes on the outputs' last axis: accuracies are meaningful
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            net.train()
            sums = [0.0, 0.0, 0.0]  # loss * n, correct, n
            step_losses = []
            bar = tqdm(loader, desc=f"{config.desc} {epoch + 1}/{config.epochs}", leave=False,
                       disable=None if (config.progress and ctx.is_main) else True)  # None: only on a terminal
            for i, batch in enumerate(bar):
                for group in opt.param_groups:
                    group["lr"] = learning_rate(config, epoch * steps_per_epoch + i, total_steps)
                x, y = batch_to_device(batch, ctx.device)
                out = net(x)
                loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    raise ValueError(f"{config.desc}: non-finite training loss at epoch {epoch + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n = len(y)
                if classify is None:
                    classify = is_classification(out, y)
                correct = correct_samples(out.argmax(-1), y) if classify else 0.0
                g_loss, g_correct, g_n = all_sum([float(loss.detach()) * n, correct, n], ctx)
                step_losses.append(g_loss / g_n)
                sums = [sums[0] + g_loss, sums[1] + g_correct, sums[2] + g_n]
                bar.set_postfix(loss=f"{g_loss / g_n:.4f}")
            bar.close()
            rec = {"epoch": epoch + 1, "train_loss": sums[0] / sums[2],
                   "train_accuracy": sums[1] / sums[2] if classify else None}
            if config.recalibrate_bn:
                recalibrate_batchnorm(model, evenly_spaced(train_set, config.recalibrate_samples),
                                      batch_size=local_batch, ctx=ctx)
            if val_set is not None:
                v = evaluate(model, val_set, batch_size=max(local_batch, 1), ctx=ctx, loss_fn=loss_fn)
                rec.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
            if config.keep_best:
                value, larger = rec[config.keep_best], KEEP_BEST[config.keep_best]
                if (best is None or (math.isnan(best["value"]) and not math.isnan(value))  # NaN: never better
                        or (value > best["value"] if larger else value < best["value"])):
                    best = {"epoch": epoch + 1, "key": config.keep_best, "value": value,
                            "model": {k: t.detach().clone() for k, t in model.state_dict().items()}}
                rec["best_epoch"] = best["epoch"]
            rec["seconds"] = time.perf_counter() - t0
            rec["step_losses"] = step_losses
            history.append(rec)
            if ckpt is not None:
                pending = epoch + 1  # being written: see saved_epoch
                if ctx.is_main:
                    save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "epoch": epoch + 1, "history": history, "config": plain_settings(config),
                                           "world_size": ctx.world_size, "meta": meta or {},
                                           **({"best": best} if best is not None else {})})
                ctx.barrier()
                saved, pending = epoch + 1, None
            if log and ctx.is_main:
                log(_epoch_line(config, rec, classify, val_set is not None))
    except KeyboardInterrupt:
        if pending is not None and ctx.is_main and saved_epoch(ckpt) == pending:
            saved = pending
        raise TrainingInterrupted(config.desc, saved, config.epochs, ckpt) from None
    if best is not None:
        model.load_state_dict(best["model"])
        if log and ctx.is_main:
            log(f"{config.desc}: kept epoch {best['epoch']} of {len(history)} "
                f"({best['key'].replace('_', ' ')} {best['value']:.4f})")
    return history


def _check_classification(model: nn.Module, train_set: Dataset, device) -> None:
    """Refuse ``keep_best="val_accuracy"`` before any training where the task is not a classification
    (:func:`is_classification` of the model's output for the first training sample): its accuracy is None."""
    out, y = first_sample_outputs(model, train_set, device)
    if not is_classification(out, y):
        raise ValueError(f"keep_best='val_accuracy' needs a classification (outputs (B, classes) or (B, npix, classes), "
                         f"integer targets (B,) or (B, npix)); this model gives outputs {tuple(out.shape)} for {y.dtype} targets "
                         f"{tuple(y.shape)}, which have no accuracy: use keep_best='val_loss'")


def _epoch_line(config: TrainConfig, rec: dict, classify: bool, validated: bool) -> str:
    """One log line per epoch: losses always, accuracies only for a classifier.  The training figures are
    labelled "train" (running means over the epoch's batches, the weights changing under them; not a held-out
    accuracy), the validation ones "val"."""
    parts = [f"train loss {rec['train_loss']:.4f}"] + ([f"train acc {rec['train_accuracy']:.3f}"] if classify else [])
    if validated:
        parts += [f"val loss {rec['val_loss']:.4f}"] + ([f"val acc {rec['val_accuracy']:.3f}"] if classify else [])
    if "best_epoch" in rec:
        parts.append(f"best epoch {rec['best_epoch']}")
    return f"{config.desc} epoch {rec['epoch']}/{config.epochs}: {', '.join(parts)} ({rec['seconds']:.1f} s)"
