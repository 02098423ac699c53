"""A small reusable training loop: seeds, progress bars, atomic resumable checkpoints, DDP.

One function, :func:`fit`, trains a classifier (or anything with a loss) on a map-style
``Dataset`` whose items are ``(x, target, *extra)`` (extras, e.g. pixel indices, are
ignored).  The same call runs

- on one CPU or GPU (``device=None``: CUDA when present, else CPU);
- under ``torchrun --nproc_per_node N`` unchanged: :func:`distributed_context` reads the
  torchrun environment, starts the process group (gloo on CPU, nccl on CUDA), the model is
  wrapped in ``DistributedDataParallel`` and the data go through a ``DistributedSampler``.

``TrainConfig.batch_size`` is the GLOBAL batch (each of N processes takes batch_size / N):
the permutation of an epoch depends only on (seed, epoch), and the N local batches of a
step together are exactly the single-process batch, so a model without batch statistics
follows the single-process loss trajectory up to float rounding (BatchNorm layers see
their local batch only).  Every epoch re-seeds torch's RNG from (seed, epoch), so a run
resumed from a checkpoint continues exactly like an uninterrupted one.

Checkpoints hold only tensors and plain containers (``torch.save``; written to a temporary
file, fsynced and renamed: never half-written) and are loaded with
``torch.load(weights_only=True)``; a file that is not such a checkpoint, or one that does
not fit the model, gives a one-line :class:`CheckpointError` naming the file and the
problem.  ``fit(..., meta={"fingerprint": ..., "fields": {...}})`` stores a fingerprint of
everything that determines the run in every checkpoint and refuses to resume a checkpoint
with another fingerprint (:class:`CheckpointMismatch`, naming the differing fields).
Ctrl-C during :func:`fit` raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``)
that says after which epoch the last checkpoint was written.

Progress bars (tqdm) are drawn only when the terminal is interactive (``disable=None``:
off when stderr is not a TTY, so log files get the plain per-epoch lines, no ``\r``).

BatchNorm: after every epoch (``TrainConfig.recalibrate_bn``) the running statistics are
recomputed from the training set with the current weights (:func:`recalibrate_batchnorm`).
The default exponential running averages lag behind the weights when a run has few steps
(60 full-sky maps at batch 32: 2 steps per epoch), and a classifier whose decision rests on
a small shift of a global statistic (a 6 % amplitude difference) then predicts one class for
every evaluation input.  Training itself is unchanged (train mode uses batch statistics).
"""
from __future__ import annotations

import math
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ._io import atomic_write, interrupts_deferred
from ._fingerprint import differing_fields

__all__ = [
    "TrainConfig",
    "check_fingerprint",
    "check_settings",
    "batch_outputs",
    "DistContext",
    "distributed_context",
    "shutdown_distributed",
    "seed_everything",
    "save_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "trained_weights",
    "CheckpointError",
    "CheckpointMismatch",
    "TrainingInterrupted",
    "evaluate",
    "recalibrate_batchnorm",
    "learning_rate",
    "LR_SCHEDULES",
    "fit",
]

#: keys of TrainConfig that must agree between a checkpoint and the run resuming it (and ``epochs`` under a
#: non-constant schedule): compared by :func:`check_settings`, the one place that lists them
_RESUME_KEYS = ("batch_size", "lr", "weight_decay", "seed", "lr_schedule", "warmup", "keep_best")
#: what a refused resume tells the user to do
_RESUME_REMEDY = "pass resume=False (command line: --restart) or another checkpoint path"

#: learning-rate schedules of :func:`learning_rate`
LR_SCHEDULES = ("constant", "cosine")

#: ``TrainConfig.keep_best`` criteria: validation record key -> True when larger is better
KEEP_BEST = {"val_loss": False, "val_accuracy": True}


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    epochs: total epochs (a resumed run continues up to this number); batch_size: global
    batch (divisible by the number of processes); lr, weight_decay: Adam(W) settings;
    seed: seeds data order, initial RNG and per-epoch RNG; device: None = CUDA when
    present (``cuda:LOCAL_RANK`` under torchrun), else CPU; checkpoint: file written after
    every epoch and resumed from when present (None: no checkpoint); resume: False
    ignores an existing checkpoint (it is overwritten); progress: tqdm bars (rank 0 only);
    desc: label of bars and log lines; num_workers: DataLoader workers;
    recalibrate_bn: recompute BatchNorm running statistics on the training set after every
    epoch (before validation and checkpoint; no effect on models without BatchNorm);
    recalibrate_samples: use at most this many evenly spaced training samples for it
    (None: all);
    lr_schedule: "constant" or "cosine" (linear warm-up over the first ``warmup`` fraction
    of all steps, then cosine decay to 0 at the last step of epoch ``epochs``);
    keep_best: None (default: the model ends with the last epoch's weights), "val_loss"
    (regression: the epoch of lowest validation loss) or "val_accuracy" (classification:
    highest validation accuracy; the earliest epoch wins ties): :func:`fit` ends with that
    epoch's weights and stores them in every checkpoint (``state["best"]``), so a resumed
    run keeps the same choice.  Needs a validation set.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str | None = None
    checkpoint: str | os.PathLike | None = None
    resume: bool = True
    progress: bool = True
    desc: str = "train"
    num_workers: int = 0
    recalibrate_bn: bool = True
    recalibrate_samples: int | None = None
    lr_schedule: str = "constant"
    warmup: float = 0.0
    keep_best: str | None = None

    def __post_init__(self):
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.recalibrate_samples is not None and (int(self.recalibrate_samples) != self.recalibrate_samples
                                                     or self.recalibrate_samples < 1):
            raise ValueError(f"recalibrate_samples must be a positive integer or None, got {self.recalibrate_samples!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not (math.isfinite(self.warmup) and 0 <= self.warmup < 1):
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if self.keep_best is not None and self.keep_best not in KEEP_BEST:
            raise ValueError(f"keep_best must be None or one of {tuple(KEEP_BEST)}, got {self.keep_best!r}")


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: rank, world size, local rank and torch device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def distributed_context(device: str | None = None) -> DistContext:
    """Start (once) the process group when launched by torchrun; return this process's context.

    Without torchrun's WORLD_SIZE/RANK environment (or with WORLD_SIZE=1) nothing is
    started: rank 0 of 1.  Backend: nccl when the device is CUDA, else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local, dev)


def shutdown_distributed() -> None:
    """Destroy the process group if one was started (call once at the end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); cuDNN in deterministic mode."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically; Ctrl-C
    during the write is delivered once the file is in place (:func:`._io.interrupts_deferred`)."""
    with interrupts_deferred():
        return atomic_write(path, lambda fh: torch.save(state, fh))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written by another run (other fingerprint): not resumed."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: ``desc``, ``epoch`` (last epoch saved to ``checkpoint``, 0 if
    none), ``epochs`` (the run's total), ``checkpoint`` (path or None)."""

    def __init__(self, desc: str, epoch: int, epochs: int, checkpoint):
        super().__init__(f"{desc}: interrupted after epoch {epoch} of {epochs}")
        self.desc, self.epoch, self.epochs, self.checkpoint = desc, epoch, epochs, checkpoint


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises :class:`CheckpointError` (one line: file and problem) for a missing or empty
    file, a file that is not a ``torch.save`` archive (text, anything else), one holding
    objects other than tensors and plain containers (refused, never unpickled), or one
    whose content is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain containers; "
                                  "refused (only checkpoints written by deepsphere_gen's training are read)") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (not a torch.save file)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for damaged files
        with open(path, "rb") as f:
            zip_header = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if not zip_header:
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (not a torch.save file)") from None
        raise CheckpointError(f"checkpoint {path} is damaged or truncated ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of training state")
    return state


def load_model_state(model: nn.Module, state: dict, path="checkpoint") -> nn.Module:
    """``model.load_state_dict(state["model"])`` with one-line :class:`CheckpointError` messages.

    Checks first that ``state`` is a training checkpoint (a ``"model"`` dict of tensors),
    then that its keys and tensor shapes are exactly the model's (names the first missing,
    unexpected or mismatching entry and how many there are).
    """
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path} has no model weights (not a training checkpoint)")
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    if not weights:
        raise CheckpointError(f"checkpoint {path} has an empty state dict ({len(own)} entries expected)")
    if missing or extra:
        parts = ([f"{len(missing)} of {len(own)} entries missing (first: {missing[0]!r})"] if missing else []) + \
                ([f"{len(extra)} unexpected (first: {extra[0]!r})"] if extra else [])
        raise CheckpointError(f"checkpoint {path} does not fit this network: {'; '.join(parts)}")
    for k, v in own.items():
        w = weights[k]
        if not isinstance(w, torch.Tensor) or w.shape != v.shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise CheckpointError(f"checkpoint {path} does not fit this network: {k!r} is {got} in the file, "
                                  f"{tuple(v.shape)} in the network")
    model.load_state_dict(weights)
    return model


def trained_weights(state: dict) -> dict:
    """The weights a finished :func:`fit` left in the model, from its checkpoint ``state``: the
    best epoch's (``state["best"]["model"]``) when it ran with ``keep_best``, else the last
    epoch's (``state["model"]``).  Load them with ``load_model_state(model, {"model": ...})``."""
    best = state.get("best") if isinstance(state, dict) else None
    return best["model"] if isinstance(best, dict) and "model" in best else state.get("model")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _all_sum(values, ctx: DistContext) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(t)
    return t.tolist()


def _inputs(batch, device):
    x, y = batch[0], batch[1]
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def batch_outputs(model: nn.Module, dataset: Dataset, batch_size: int = 64,
                  ctx: DistContext | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yields ``(output, target)`` per batch: ``model``'s outputs in eval mode on this process's shard
    of ``dataset`` (samples rank, rank + world_size, ...; the whole set on one process), batches of
    ``batch_size`` in dataset order, on ``ctx.device``.  The model's mode is restored when the
    iteration ends (exhausted, closed or failed).  Memory: one batch at a time (``list(...)`` keeps
    them all)."""
    ctx = ctx or distributed_context()
    was_training = model.training
    model.eval()
    try:
        shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.distributed else dataset
        for batch in DataLoader(shard, batch_size=batch_size, shuffle=False):
            x, y = _inputs(batch, ctx.device)
            yield model(x), y
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 64, ctx: DistContext | None = None,
             loss_fn: Callable = nn.functional.cross_entropy, return_predictions: bool = False) -> dict:
    """Mean loss and accuracy of ``model`` on ``dataset`` (:func:`batch_outputs`: sharded over
    processes, summed).

    Returns ``{"loss", "accuracy", "n"}``; with ``return_predictions`` also
    ``"predictions"``: argmax classes in dataset order (single process only).
    """
    ctx = ctx or distributed_context()
    loss_sum, correct, count, preds = 0.0, 0.0, 0.0, []
    for out, y in batch_outputs(model, dataset, batch_size, ctx):
        loss_sum += float(loss_fn(out, y, reduction="sum"))
        if out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
            p = out.argmax(-1)
            correct += float((p == y).sum())
            preds.append(p.cpu())
        count += len(y)
    loss_sum, correct, count = _all_sum([loss_sum, correct, count], ctx)
    if count == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    out = {"loss": loss_sum / count, "accuracy": correct / count, "n": int(count)}
    if return_predictions:
        if ctx.distributed:
            raise ValueError("return_predictions needs a single process")
        out["predictions"] = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return out


_NORMS = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, dataset: Dataset, batch_size: int = 64,
                          ctx: DistContext | None = None) -> int:
    """Set every BatchNorm's running mean/variance to the statistics of its input over ``dataset``.

    One pass over ``dataset`` (sharded over processes, sums all-reduced) with the BatchNorm
    layers in train mode (they normalise with batch statistics, as during training) and
    every other module in eval mode (no dropout, nothing random); the count-weighted
    mean and the unbiased variance over all batches replace the running averages.  The
    training mode of every module is restored.  Returns the number of BatchNorm layers
    (0: nothing done, no pass).
    """
    norms = [m for m in _unwrap(model).modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms:
        return 0
    if len(dataset) == 0:
        raise ValueError("cannot recalibrate BatchNorm on an empty dataset")
    ctx = ctx or distributed_context(str(norms[0].running_mean.device))  # batches go where the model is
    modes = {m: m.training for m in model.modules()}
    model.eval()
    momenta = {m: m.momentum for m in norms}
    sums = {}

    def hook(module, args, output):
        # momentum 1: the running buffers now hold this batch's mean and unbiased variance
        n = args[0].numel() // module.num_features
        mean = module.running_mean.double()
        sq = module.running_var.double() * (n - 1) + mean.square() * n  # sum of squares
        prev = sums.get(module)
        sums[module] = (mean * n, sq, n) if prev is None else (prev[0] + mean * n, prev[1] + sq, prev[2] + n)

    handles = [m.register_forward_hook(hook) for m in norms]
    try:
        for m in norms:
            m.train()
            m.momentum = 1.0
        shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.distributed else dataset
        for batch in DataLoader(shard, batch_size=batch_size, shuffle=False):
            model(batch[0].to(ctx.device))
    finally:
        for h in handles:
            h.remove()
        for m in norms:
            m.momentum = momenta[m]
        for m, mode in modes.items():
            m.train(mode)
    for m in norms:
        s1, s2, n = sums.get(m, (None, None, 0))
        if s1 is None:
            s1 = torch.zeros(m.num_features, dtype=torch.float64, device=ctx.device)
            s2 = torch.zeros_like(s1)
        packed = torch.cat([s1, s2, torch.tensor([float(n)], dtype=torch.float64, device=s1.device)])
        if ctx.distributed:
            dist.all_reduce(packed)
        s1, s2, n = packed[:-1].chunk(2) + (float(packed[-1]),)
        if n < 2:
            continue
        mean = s1 / n
        var = (s2 / n - mean.square()).clamp_min(0.0) * (n / (n - 1))
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
    return len(norms)


def _evenly_spaced(dataset: Dataset, n: int | None) -> Dataset:
    """At most ``n`` samples of ``dataset``, evenly spaced (deterministic, no RNG)."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, np.linspace(0, len(dataset) - 1, int(n)).round().astype(np.int64).tolist())


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of (0-based) optimisation ``step`` out of ``total_steps`` (a pure function,
    so a resumed run continues the schedule exactly)."""
    if config.lr_schedule == "constant" or total_steps <= 1:
        return config.lr
    warm = int(round(config.warmup * total_steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    t = (step - warm) / max(total_steps - warm, 1)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def check_fingerprint(state: dict, meta: dict | None, path,
                      remedy: str = "not resumed: pass resume=False (command line: --restart) to start afresh, "
                                    "or another checkpoint path") -> None:
    """Raise :class:`CheckpointMismatch` (naming the differing fields, then ``remedy``) where checkpoint
    ``state`` was written by ``fit`` with another ``meta["fingerprint"]`` than ``meta``'s; nothing to check
    where ``meta`` carries no fingerprint."""
    if meta is None or "fingerprint" not in meta:
        return
    saved_meta = state.get("meta") or {}
    if saved_meta.get("fingerprint") != meta["fingerprint"]:
        diff = differing_fields(saved_meta.get("fields", {}), meta.get("fields", {}))
        raise CheckpointMismatch(
            f"checkpoint {path} belongs to another run (fingerprint {saved_meta.get('fingerprint', 'none')} vs "
            f"{meta['fingerprint']}; differing: {', '.join(diff) or 'unknown fields'}); {remedy}")


def check_settings(state: dict, config: TrainConfig, path, remedy: str = _RESUME_REMEDY, ignore: tuple[str, ...] = (),
                   absent_differs: bool = False) -> None:
    """Raise :class:`CheckpointMismatch` (naming the differing fields with both values, then ``remedy``)
    where the training settings stored in checkpoint ``state`` (``state["config"]``, written by :func:`fit`)
    differ from ``config``'s in a field that fixes the training: those of ``_RESUME_KEYS`` (batch_size, lr,
    weight_decay, seed, lr_schedule, warmup, keep_best) and ``epochs`` under a non-constant schedule (its
    length is part of the schedule); fields in ``ignore`` are not compared.  A field the checkpoint does
    not store (written before the field existed) is not compared, or counts as differing with
    ``absent_differs`` (where nothing else vouches for the checkpoint)."""
    saved = state.get("config") or {}
    keys = _RESUME_KEYS + (("epochs",) if config.lr_schedule != "constant" else ())
    diff = [k for k in keys if k not in ignore and (k in saved or absent_differs)
            and saved.get(k) != getattr(config, k)]
    if diff:
        raise CheckpointMismatch(f"checkpoint {path} was written with different settings ({', '.join(diff)}: "
                                 f"{[saved.get(k) for k in diff]} vs {[getattr(config, k) for k in diff]}); {remedy}")


def _check_resume(state: dict, config: TrainConfig, path, meta: dict | None) -> None:
    for key in ("model", "optimizer", "epoch", "history"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path} is not a training checkpoint (no {key!r})")
    if config.keep_best and int(state["epoch"]) > 0 and not isinstance(state.get("best"), dict):
        raise CheckpointMismatch(f"checkpoint {path} was written without keep_best (its best epoch's weights are "
                                 f"not stored); {_RESUME_REMEDY}")
    check_fingerprint(state, meta, path)
    check_settings(state, config, path)


def fit(model: nn.Module, train_set: Dataset, config: TrainConfig, val_set: Dataset | None = None,
        loss_fn: Callable = nn.functional.cross_entropy, log: Callable[[str], None] | None = print,
        ctx: DistContext | None = None, meta: dict | None = None) -> list[dict]:
    """Train ``model`` in place with Adam(W); returns the history, one dict per epoch.

    Each record: ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (running, over
    the epoch's batches), ``val_loss``/``val_accuracy`` (when ``val_set`` is given),
    ``seconds``, ``step_losses`` (global mean loss of every step).  Records of epochs
    restored from a checkpoint are included.  After every epoch the BatchNorm statistics
    are recalibrated on the training set (``config.recalibrate_bn``), so validation,
    checkpoints and the returned model use statistics of the final weights.  ``log`` receives
    one line per epoch (rank 0): training loss, and validation loss; accuracies only for
    classification (outputs (B, classes) and integer targets (B,)).

    ``config.keep_best`` ("val_loss" / "val_accuracy"): every record also holds ``best_epoch``
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
    seed_everything(config.seed)
    model.to(ctx.device)
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
        _check_resume(state, config, ckpt, meta)
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
    classify = None  # outputs (B, classes) with integer targets (B,): accuracies are meaningful
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
                x, y = _inputs(batch, ctx.device)
                out = net(x)
                loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    raise ValueError(f"{config.desc}: non-finite training loss at epoch {epoch + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n = len(y)
                if classify is None:
                    classify = out.dim() == 2 and y.dim() == 1 and not y.is_floating_point()
                correct = float((out.argmax(-1) == y).sum()) if classify else 0.0
                g_loss, g_correct, g_n = _all_sum([float(loss.detach()) * n, correct, n], ctx)
                step_losses.append(g_loss / g_n)
                sums = [sums[0] + g_loss, sums[1] + g_correct, sums[2] + g_n]
                bar.set_postfix(loss=f"{g_loss / g_n:.4f}")
            bar.close()
            rec = {"epoch": epoch + 1, "train_loss": sums[0] / sums[2], "train_accuracy": sums[1] / sums[2]}
            if config.recalibrate_bn:
                recalibrate_batchnorm(model, _evenly_spaced(train_set, config.recalibrate_samples),
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
                pending = epoch + 1  # being written: see _saved_epoch
                if ctx.is_main:
                    save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "epoch": epoch + 1, "history": history, "config": _plain(config),
                                           "world_size": ctx.world_size, "meta": meta or {},
                                           **({"best": best} if best is not None else {})})
                ctx.barrier()
                saved, pending = epoch + 1, None
            if log and ctx.is_main:
                log(_epoch_line(config, rec, classify, val_set is not None))
    except KeyboardInterrupt:
        if pending is not None and ctx.is_main and _saved_epoch(ckpt) == pending:
            saved = pending
        raise TrainingInterrupted(config.desc, saved, config.epochs, ckpt) from None
    if best is not None:
        model.load_state_dict(best["model"])
        if log and ctx.is_main:
            log(f"{config.desc}: kept epoch {best['epoch']} of {len(history)} "
                f"({best['key'].replace('_', ' ')} {best['value']:.4f})")
    return history


def _epoch_line(config: TrainConfig, rec: dict, classify: bool, validated: bool) -> str:
    """One log line per epoch: losses always, accuracies only for a classifier."""
    parts = [f"loss {rec['train_loss']:.4f}"] + ([f"acc {rec['train_accuracy']:.3f}"] if classify else [])
    if validated:
        parts += [f"val loss {rec['val_loss']:.4f}"] + ([f"val acc {rec['val_accuracy']:.3f}"] if classify else [])
    if "best_epoch" in rec:
        parts.append(f"best epoch {rec['best_epoch']}")
    return f"{config.desc} epoch {rec['epoch']}/{config.epochs}: {', '.join(parts)} ({rec['seconds']:.1f} s)"


def _saved_epoch(ckpt: Path) -> int | None:
    """The epoch stored in ``ckpt`` (None if unreadable).  Ctrl-C can land after :func:`fit`
    replaced its checkpoint but before it noted so (e.g. during the directory fsync): then the
    file, not the bookkeeping, says which epoch was saved."""
    try:
        return int(load_checkpoint(ckpt).get("epoch", -1))
    except (CheckpointError, OSError):
        return None


def _plain(config: TrainConfig) -> dict:
    d = asdict(config)
    d["checkpoint"] = None if d["checkpoint"] is None else str(d["checkpoint"])
    return d
