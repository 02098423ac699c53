"""Check that ``torchrun`` training follows the single-process loss trajectory.

Trains a tiny DeepSphere classifier (no batch norm, nside 4) on fixed random maps with
:func:`deepsphere_gen.training.fit` and writes the history (rank 0) as JSON::

    python examples/ddp_check.py --out single.json
    torchrun --standalone --nproc_per_node 2 examples/ddp_check.py --out ddp.json
    python examples/ddp_check.py --compare single.json ddp.json

The global batch is the same in both runs (each of the 2 processes takes half), so the
per-step losses agree to float rounding.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.data import TensorDataset

from deepsphere_gen.models import DeepSphereClassifier
from deepsphere_gen.training import TrainConfig, distributed_context, fit, shutdown_distributed

NSIDE, N, EPOCHS, BATCH = 4, 64, 3, 16


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(123)
    y = torch.arange(N) % 2
    x = torch.randn(N, 12 * NSIDE**2, 1, generator=g, dtype=torch.float64) * (1.0 + 0.5 * y[:, None, None])
    return TensorDataset(x, y)


def train(out: str) -> None:
    ctx = distributed_context("cpu")
    torch.manual_seed(0)
    model = DeepSphereClassifier(NSIDE, 1, channels=(4, 8), K=3, k=8, batch_norm=False, dtype=torch.float64,
                                 cache=False)
    history = fit(model, data(), TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=1e-2, seed=0, progress=False,
                                             desc=f"ddp-check(world={ctx.world_size})"), ctx=ctx)
    if ctx.is_main:
        params = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
        with open(out, "w") as f:
            json.dump({"world_size": ctx.world_size, "history": history, "params": params}, f)
    shutdown_distributed()


def compare(a: str, b: str, rtol: float = 1e-9) -> float:
    """Largest relative difference of step losses and final parameters; raises if above rtol."""
    ra, rb = (json.load(open(p)) for p in (a, b))
    la = torch.tensor([s for h in ra["history"] for s in h["step_losses"]])
    lb = torch.tensor([s for h in rb["history"] for s in h["step_losses"]])
    if la.shape != lb.shape:
        raise SystemExit(f"different number of steps: {la.numel()} vs {lb.numel()}")
    pa, pb = torch.tensor(ra["params"]), torch.tensor(rb["params"])
    err = max(float(((la - lb).abs() / la.abs()).max()), float((pa - pb).abs().max() / pa.abs().max()))
    print(f"world sizes {ra['world_size']} vs {rb['world_size']}: {la.numel()} steps, max relative difference {err:.2e}")
    if err > rtol:
        raise SystemExit(f"trajectories differ: {err:.2e} > {rtol:.0e}")
    return err


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the history of a training run here")
    p.add_argument("--compare", nargs=2, metavar="JSON", help="compare two histories")
    args = p.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.out:
        train(args.out)
    else:
        sys.exit(p.format_usage())
