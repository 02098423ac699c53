"""Evaluation of a trained model: outputs batch by batch (:func:`batch_outputs`, sharded over
processes) and mean loss and accuracy (:func:`evaluate`; accuracy only for a classification,
:func:`~.classification.is_classification`)."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .classification import correct_samples, cross_entropy, is_classification
from .distributed import DistContext, all_sum, distributed_context


def batch_to_device(batch, device):
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
            x, y = batch_to_device(batch, ctx.device)
            yield model(x), y
    finally:
        model.train(was_training)


def first_sample_outputs(model: nn.Module, dataset: Dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(output, target)`` of ``model`` in eval mode for the first sample of ``dataset`` (a batch of one on
    ``device``; one forward pass, the model's mode restored): what :func:`is_classification` decides on
    before any training."""
    ((out, y),) = batch_outputs(model, Subset(dataset, [0]), 1, DistContext(0, 1, 0, torch.device(device)))
    return out, y


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 64, ctx: DistContext | None = None,
             loss_fn: Callable = cross_entropy, return_predictions: bool = False) -> dict:
    """Mean loss and accuracy of ``model`` on ``dataset`` (:func:`batch_outputs`: sharded over
    processes, summed).

    ``loss_fn(out, y)``: any callable returning the MEAN loss of a batch as a scalar (the loss
    :func:`~deepsphere_gen.training.fit` trains with); the result is its sample-weighted mean over
    batches (sum of loss x batch size / n), so it is on the training loss's scale (for ``mse_loss``:
    the mean over samples and outputs; for a per-pixel loss: the mean over pixels too) and equals
    ``loss_fn`` of the whole set for a per-sample mean loss.

    ``loss_fn`` defaults to the channels-last :func:`~.classification.cross_entropy`.

    Returns ``{"loss", "accuracy", "correct", "n"}``: accuracy is the fraction of correct argmax classes
    for a classification (:func:`is_classification`; per-pixel outputs (B, npix, classes) with targets
    (B, npix): the mean over samples of the fraction of correct pixels), None otherwise (regression);
    correct is accuracy's numerator, summed over all processes (:func:`~.classification.correct_samples`:
    the number of correctly classified samples, a whole float, for (B, classes); the sum of the samples'
    pixel accuracies for per-pixel outputs), None when accuracy is; with
    ``return_predictions`` also ``"predictions"``: argmax classes in dataset order, (n,) or (n, npix)
    (single process only; empty when not a classification).
    """
    ctx = ctx or distributed_context()
    loss_sum, correct, count, preds, classify = 0.0, 0.0, 0.0, [], None
    for out, y in batch_outputs(model, dataset, batch_size, ctx):
        loss_sum += float(loss_fn(out, y)) * len(y)
        if classify is None:
            classify = is_classification(out, y)
        if classify:
            p = out.argmax(-1)
            correct += correct_samples(p, y)
            if return_predictions:
                preds.append(p.cpu())
        count += len(y)
    # classified: on any process (one whose shard is empty saw no batch)
    loss_sum, correct, count, classified = all_sum([loss_sum, correct, count, float(bool(classify))], ctx)
    if count == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    out = {"loss": loss_sum / count, "accuracy": correct / count if classified else None,
           "correct": correct if classified else None, "n": int(count)}
    if return_predictions:
        if ctx.distributed:
            raise ValueError("return_predictions needs a single process")
        out["predictions"] = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return out
