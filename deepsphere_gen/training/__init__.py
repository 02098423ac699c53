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

| module | holds |
| --- | --- |
| :mod:`.config` | :class:`TrainConfig`, the learning-rate schedule (:func:`learning_rate`) |
| :mod:`.distributed` | :class:`DistContext`, the torchrun process group, the all-reduce of the loop |
| :mod:`.checkpoints` | atomic save, safe load, :class:`CheckpointError`, the resume and fingerprint checks |
| :mod:`.classification` | the channels-last convention: :func:`cross_entropy` (the default loss), accuracies |
| :mod:`.evaluation` | outputs batch by batch (:func:`batch_outputs`), :func:`evaluate` |
| :mod:`.batchnorm` | :func:`recalibrate_batchnorm` |
| :mod:`.loop` | :func:`fit`, :func:`seed_everything`, :class:`TrainingInterrupted` |
"""
from .batchnorm import recalibrate_batchnorm
from .checkpoints import (
    CheckpointError,
    CheckpointMismatch,
    check_fingerprint,
    check_settings,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    trained_weights,
)
from .classification import cross_entropy
from .config import LR_SCHEDULES, TrainConfig, learning_rate
from .distributed import DistContext, distributed_context, shutdown_distributed
from .evaluation import batch_outputs, evaluate
from .loop import TrainingInterrupted, fit, seed_everything

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
    "cross_entropy",
    "recalibrate_batchnorm",
    "learning_rate",
    "LR_SCHEDULES",
    "fit",
]
