"""Checkpoints: atomic writes (:func:`save_checkpoint`), safe reads (:func:`load_checkpoint`,
``weights_only=True``), one-line :class:`CheckpointError` messages naming the file and the problem,
and the checks that decide whether a checkpoint may be resumed or reused (:func:`check_fingerprint`,
:func:`check_settings`, :func:`check_resumable`)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._devices import check_map_location
from .._fingerprint import field_changes
from .._io import atomic_write, interrupts_deferred, load_torch_file, load_weights
from .config import TrainConfig

#: keys of TrainConfig that must agree between a checkpoint and the run resuming it (and ``epochs`` under a
#: non-constant schedule): compared by :func:`check_settings`, the one place that lists them
RESUME_KEYS = ("batch_size", "lr", "weight_decay", "seed", "lr_schedule", "warmup", "keep_best")
#: what a refused resume tells the user to do
RESUME_REMEDY = "pass resume=False (command line: --restart) or another checkpoint path"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written by another run (other fingerprint): not resumed."""


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically; Ctrl-C
    during the write is delivered once the file is in place (:func:`deepsphere_gen._io.interrupts_deferred`)."""
    with interrupts_deferred():
        return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises :class:`CheckpointError` (one line: file and problem) for a missing or empty
    file, a file that is not a ``torch.save`` archive (text, anything else), one holding
    objects other than tensors and plain containers (refused, never unpickled), a damaged one
    (a record whose bytes differ from the zip's CRC-32 of them included: a flipped bit in a tensor), or one
    whose content is not a dict.  A ``map_location`` device this machine lacks is a ValueError
    naming it and the valid devices, before the file is read (:func:`deepsphere_gen._devices.check_map_location`).
    """
    state = load_torch_file(path, check_map_location(map_location), CheckpointError)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of training state")
    return state


def load_model_state(model: nn.Module, state: dict, path="checkpoint") -> nn.Module:
    """``model.load_state_dict(state["model"])`` with one-line :class:`CheckpointError` messages.

    Checks first that ``state`` is a training checkpoint (a ``"model"`` dict of tensors),
    then that its keys and tensor shapes are exactly the model's (names the first missing,
    unexpected or mismatching entry and how many there are: :func:`deepsphere_gen._io.load_weights`).
    """
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path} has no model weights (not a training checkpoint)")
    return load_weights(model, weights, path, CheckpointError)


def trained_weights(state: dict) -> dict:
    """The weights a finished :func:`fit` left in the model, from its checkpoint ``state``: the
    best epoch's (``state["best"]["model"]``) when it ran with ``keep_best``, else the last
    epoch's (``state["model"]``).  Load them with ``load_model_state(model, {"model": ...})``."""
    best = state.get("best") if isinstance(state, dict) else None
    return best["model"] if isinstance(best, dict) and "model" in best else state.get("model")


def check_fingerprint(state: dict, meta: dict | None, path,
                      remedy: str = "not resumed: pass resume=False (command line: --restart) to start afresh, "
                                    "or another checkpoint path", options: dict[str, str] | None = None) -> None:
    """Raise :class:`CheckpointMismatch` (naming the differing fields with both values, then ``remedy``) where
    checkpoint ``state`` was written by ``fit`` with another ``meta["fingerprint"]`` than ``meta``'s; nothing to
    check where ``meta`` carries no fingerprint.  ``options``: the command-line option that sets a field, by dotted
    field name, named beside it (``train.epochs (3 in the file, 4 now; set by --epochs)``)."""
    if meta is None or "fingerprint" not in meta:
        return
    saved_meta = state.get("meta") or {}
    if saved_meta.get("fingerprint") != meta["fingerprint"]:
        saved, asked, options = saved_meta.get("fields", {}), meta.get("fields", {}), options or {}
        diff = field_changes(saved, asked, "in the file", "now", notes={n: f"set by {o}" for n, o in options.items()})
        raise CheckpointMismatch(
            f"checkpoint {path} belongs to another run (fingerprint {saved_meta.get('fingerprint', 'none')} vs "
            f"{meta['fingerprint']}; differing: {', '.join(diff) or 'unknown fields'}); {remedy}")


def check_settings(state: dict, config: TrainConfig, path, remedy: str = RESUME_REMEDY, ignore: tuple[str, ...] = (),
                   absent_differs: bool = False) -> None:
    """Raise :class:`CheckpointMismatch` (naming the differing fields with both values, then ``remedy``)
    where the training settings stored in checkpoint ``state`` (``state["config"]``, written by :func:`fit`)
    differ from ``config``'s in a field that fixes the training: those of ``RESUME_KEYS`` (batch_size, lr,
    weight_decay, seed, lr_schedule, warmup, keep_best) and ``epochs`` under a non-constant schedule (its
    length is part of the schedule); fields in ``ignore`` are not compared.  A field the checkpoint does
    not store (written before the field existed) is not compared, or counts as differing with
    ``absent_differs`` (where nothing else vouches for the checkpoint)."""
    saved = state.get("config") or {}
    keys = RESUME_KEYS + (("epochs",) if config.lr_schedule != "constant" else ())
    diff = [k for k in keys if k not in ignore and (k in saved or absent_differs)
            and saved.get(k) != getattr(config, k)]
    if diff:
        raise CheckpointMismatch(f"checkpoint {path} was written with different settings ({', '.join(diff)}: "
                                 f"{[saved.get(k) for k in diff]} vs {[getattr(config, k) for k in diff]}); {remedy}")


def check_resumable(state: dict, config: TrainConfig, path, meta: dict | None) -> None:
    for key in ("model", "optimizer", "epoch", "history"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path} is not a training checkpoint (no {key!r})")
    if config.keep_best and int(state["epoch"]) > 0 and not isinstance(state.get("best"), dict):
        raise CheckpointMismatch(f"checkpoint {path} was written without keep_best (its best epoch's weights are "
                                 f"not stored); {RESUME_REMEDY}")
    check_fingerprint(state, meta, path)
    check_settings(state, config, path)


def saved_epoch(ckpt: Path) -> int | None:
    """The epoch stored in ``ckpt`` (None if unreadable).  Ctrl-C can land after :func:`fit`
    replaced its checkpoint but before it noted so (e.g. during the directory fsync): then the
    file, not the bookkeeping, says which epoch was saved."""
    try:
        return int(load_checkpoint(ckpt).get("epoch", -1))
    except (CheckpointError, OSError):
        return None
