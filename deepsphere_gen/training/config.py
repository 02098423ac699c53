"""Settings of a training run: :class:`TrainConfig`, the learning-rate schedule
(:func:`learning_rate`, a pure function of the step so a resumed run continues it exactly) and the
plain-data form stored in checkpoints (:func:`plain_settings`)."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from .._devices import check_device
from .._validation import check_nonnegative_int, check_positive_int

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
    present (``cuda:LOCAL_RANK`` under torchrun), else CPU (a device this machine lacks, or a
    name torch does not know, is refused here, listing the valid ones); checkpoint: file written after
    every epoch and resumed from when present (None: no checkpoint); resume: False
    ignores an existing checkpoint (it is overwritten); progress: tqdm bars (rank 0 only);
    desc: label of bars and log lines; num_workers: DataLoader workers;
    recalibrate_bn: recompute BatchNorm running statistics on the training set after every
    epoch (before validation and checkpoint; no effect on models without BatchNorm);
    recalibrate_samples: use at most this many evenly spaced training samples for it
    (None: all);
    lr_schedule: "constant" or "cosine" (linear warm-up over the first ``warmup`` fraction
    of all steps, then cosine decay that would reach 0 one step after the last step of epoch
    ``epochs``: the last step's rate is above 0, see :func:`learning_rate`);
    keep_best: None (default: the model ends with the last epoch's weights), "val_loss"
    (regression: the epoch of lowest validation loss) or "val_accuracy" (classification:
    highest validation accuracy; the earliest epoch wins ties; :func:`fit` refuses it before
    training where the task is not a classification): :func:`fit` ends with that
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
        self.epochs = check_nonnegative_int(self.epochs, "epochs")
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        self.device = check_device(self.device)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.recalibrate_samples = check_positive_int(self.recalibrate_samples, "recalibrate_samples", optional=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not (math.isfinite(self.warmup) and 0 <= self.warmup < 1):
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if self.keep_best is not None and self.keep_best not in KEEP_BEST:
            raise ValueError(f"keep_best must be None or one of {tuple(KEEP_BEST)}, got {self.keep_best!r}")


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of (0-based) optimisation ``step`` out of ``total_steps`` T (a pure function,
    so a resumed run continues the schedule exactly).

    "cosine" (T > 1): W = round(warmup T) warm-up steps at ``lr (step + 1) / W``, then
    ``lr 0.5 (1 + cos(pi (step - W) / (T - W)))``: the rate would be 0 at step T, one step after
    the last, so the last step runs at ``lr 0.5 (1 + cos(pi (T - 1 - W) / (T - W)))`` > 0 (T = 4,
    warmup 0.5: [0.5, 1, 1, 0.5] lr).  Recorded runs depend on these numbers."""
    if config.lr_schedule == "constant" or total_steps <= 1:
        return config.lr
    warm = int(round(config.warmup * total_steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    t = (step - warm) / max(total_steps - warm, 1)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def plain_settings(config: TrainConfig) -> dict:
    """``config`` as plain data (the checkpoint path a string): what :func:`~deepsphere_gen.training.fit`
    stores in every checkpoint (``state["config"]``) and :func:`~deepsphere_gen.training.check_settings` reads."""
    d = asdict(config)
    d["checkpoint"] = None if d["checkpoint"] is None else str(d["checkpoint"])
    return d
