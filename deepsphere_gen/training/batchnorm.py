"""BatchNorm running statistics recomputed from a data set with the current weights
(:func:`recalibrate_batchnorm`), which :func:`~deepsphere_gen.training.fit` does after every epoch."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .distributed import DistContext, distributed_context


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


#: the layers whose running statistics are recomputed (torch's public BatchNorm classes)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
          nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)


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


def evenly_spaced(dataset: Dataset, n: int | None) -> Dataset:
    """At most ``n`` samples of ``dataset``, evenly spaced (deterministic, no RNG)."""
    if n is None or n >= len(dataset):
        return dataset
    return Subset(dataset, np.linspace(0, len(dataset) - 1, int(n)).round().astype(np.int64).tolist())
