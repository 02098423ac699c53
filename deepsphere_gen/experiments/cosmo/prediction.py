"""Trained networks run over the evaluated splits: raw outputs (n, 5) per split, an ensemble's members
(graph networks, MLPs) on one pass over the data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ...datasets.cosmo_grid import SPLITS, CosmoMapDataset
from ...training import trained_weights
from .config import CosmoExperimentConfig
from .data import graph_input_scale
from .models import build_graph_model

__all__ = ["predict_splits", "graph_outputs", "predict_members"]


def graph_outputs(config: CosmoExperimentConfig, path: Path, states: list[dict], val_idx: np.ndarray,
                  device) -> list[dict]:
    """Raw outputs (n, 5) on every evaluated split of each graph network (checkpoints ``states``, one
    per ensemble member, each evaluated with its ``best`` weights: :func:`~.evaluation.evaluate_all` puts the
    last epoch's there for ``graph_weights="last"``): the model and the data sets are built once and
    every batch is read once, only the weights change (:func:`predict_members`)."""
    model = build_graph_model(config, np.load(path / "footprint.npy"), graph_input_scale(config, path)).to(device)
    data = {split: CosmoMapDataset(path, split, config.noise_std(), seed=config.seed) for split in SPLITS}
    data["validation"] = Subset(data.pop("train"), val_idx.tolist())
    data["calibration"] = ConcatDataset([data["calibration"]] + [  # the noise draws of summary_features
        CosmoMapDataset(path, "calibration", config.noise_std(), seed=config.seed + 7919 * r)
        for r in range(1, config.calib_noise_draws)])
    return predict_splits(model, [trained_weights(state) for state in states], data, device)


def predict_splits(model: nn.Module, weights: list[dict], splits: dict, device, batch: int = 64) -> list[dict]:
    """:func:`predict_members` on each data set of ``splits`` ({split: Dataset}), regrouped per member:
    one ``{split: (n, 5) outputs}`` per state dict of ``weights`` (the graph and the MLP ensembles alike)."""
    per_split = {split: predict_members(model, weights, ds, device, batch) for split, ds in splits.items()}
    return [{split: out[i] for split, out in per_split.items()} for i in range(len(weights))]


@torch.no_grad()
def predict_members(model: nn.Module, weights: list[dict], dataset: Dataset, device, batch: int = 64) -> list[np.ndarray]:
    """Outputs (n, 5) of ``model`` with each state dict of ``weights`` (ensemble members) on ``dataset``:
    each batch is read, its noise drawn, once and run by every member in turn (a ``load_state_dict``
    per batch and member, ~1 ms; reading a batch of 64 maps with their fixed noise costs ~20 ms)."""
    model.eval()
    if len(weights) == 1:
        model.load_state_dict(weights[0])
    outs = [[] for _ in weights]
    for b in DataLoader(dataset, batch_size=batch):
        x = b[0].to(device)
        for w, out in zip(weights, outs):
            if len(weights) > 1:
                model.load_state_dict(w)
            out.append(model(x).double().cpu())
    return [torch.cat(out).numpy() for out in outs]
