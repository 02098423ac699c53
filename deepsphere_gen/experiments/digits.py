"""Rotation benchmark on spherical digits: every model family on NR/NR, R/R and NR/R.

The canonical spherical-CNN test (Cohen et al. 2018; Cobb et al. 2021, "Spherical MNIST"),
here on scikit-learn's 8x8 digits (1,797 images) projected onto the sphere by
:mod:`deepsphere_gen.datasets.digits`.  Each model is trained once on unrotated and once
on rotated training maps; the unrotated model is tested on the unrotated (NR/NR) and the
rotated (NR/R) test maps, the rotated model on the rotated ones (R/R).  The rotated test
maps of NR/R and R/R are the same (``build_split``).

Inputs per model family:

* ``planar`` -- :class:`PlanarCNN` on the maps carried back to the 8x8 tangent-plane grid
  (:meth:`DigitSplit.planar`): a rotated digit mostly leaves its view.
* ``planar-grid`` -- :class:`PlanarCNN` on the Driscoll-Healy grid read as a 2b x 2b image
  (colatitude rows, longitude columns): Cohen et al. 2018's planar baseline, which sees
  the whole sphere and so can learn rotated digits (R/R) but not generalise to them (NR/R).
* ``graph`` -- :class:`DeepSphereClassifier` on HEALPix (NESTED), global average head.
* ``harmonic-mst`` / ``harmonic-rmst`` -- :class:`HarmonicClassifier` (S2 input layer on a
  Driscoll-Healy grid, efficient generalized layers, invariant readout).
* ``hybrid`` -- :class:`HybridClassifier` (graph blocks on HEALPix, bridge, harmonic layers),
  when ``deepsphere_gen.models.hybrid`` is available.
* ``cohen`` -- :class:`CohenS2CNN` (S2 -> SO(3) conv, SO(3) ReLU, SO(3) conv, SO(3) integral).

Sizes are chosen so that parameter counts are comparable (10k to 21k; printed).  Measured
results and their reading: the README section "Rotation benchmark: spherical digits".
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..datasets.digits import SPLITS, build_split
from ..models import (
    CohenS2CNN,
    DeepSphereClassifier,
    HarmonicClassifier,
    HybridClassifier,
    PlanarCNN,
)
from ..sampling import DriscollHealySampling, HealpixSampling
from ..training import TrainConfig, fit
from .digits_config import PAPER, QUICK, DigitsConfig, available_models, with_quick
from .reporting import wilson_interval

__all__ = [
    "DigitsConfig",
    "QUICK",
    "ModelSpec",
    "MODELS",
    "PAPER",
    "available_models",
    "load_inputs",
    "run_experiment",
    "format_table",
    "INTERVAL_NOTE",
    "count_parameters",
    "with_quick",
]

@dataclass(frozen=True)
class ModelSpec:
    """A model of the benchmark: display label, input kind and a factory.

    input : "planar" (n, 1, 8, 8 back-projected images), "grid" (n, 1, 2b, 2b: the DH maps as
        images), "dh" (maps (n, npix, 1) on the DH grid) or "healpix" (maps on HEALPix).
    build : (sampling of that input, or None for "planar") -> nn.Module returning 10 logits.
    lr_scale : multiplies the run's learning rate.
    """

    label: str
    input: str
    build: Callable[[object], nn.Module]
    lr_scale: float = 1.0


def _planar(_):
    return PlanarCNN(8, channels=(24, 48), n_classes=10)


def _planar_grid(sampling):
    return PlanarCNN(sampling.shape, channels=(12, 24, 32), n_classes=10)


def _graph(sampling):
    return DeepSphereClassifier(sampling.nside, 1, channels=(16, 32, 64), n_classes=10, K=5, k=8,
                                pool_levels=1, head="gap")


def _harmonic(mixing):
    def build(sampling):
        return HarmonicClassifier(10, bandlimits=(10, 8, 5, 3), channels=(6, 10, 16, 16), sampling=sampling,
                                  tau=2, mixing=mixing, hidden=(64,))

    return build


def _hybrid(sampling):
    # one graph block at the input resolution (no pooling), bridge at L = 10, then the harmonic model's layers
    return HybridClassifier(sampling.nside, 1, n_classes=10, graph_channels=(8,), K=5, k=8, pool_levels=0,
                            bandlimits=(10, 8, 5, 3), harmonic_channels=(10, 16, 16), tau=2, mixing="mst",
                            hidden=(64,))


def _cohen(sampling):
    # equivariant BatchNorm before each SO(3) ReLU (without it the digits' large common degree 0
    # leaves dead / linear ReLU channels), kernel radius scaled to bandlimit 5 (pi/8 is below its
    # resolution: near-isotropic filters), oversampled ReLU grids (the readout ReLU's aliasing is
    # the NR/R gap).  Measured: README section "Rotation benchmark: spherical digits".
    return CohenS2CNN(10, bandlimits=(10, 5, 3), channels=(12, 24), sampling=sampling, batchnorm=True,
                      kernel_beta=(math.pi / 2.5, math.pi / 2.5), grid="gl", oversampling=1.5,
                      readout_grid="soft", readout_oversampling=2.0)


#: the models by name (keys: ``digits_config.MODEL_NAMES``, which the command's help reads without torch)
MODELS: dict[str, ModelSpec] = {
    "planar": ModelSpec("planar CNN", "planar", _planar),
    "planar-grid": ModelSpec("planar CNN, DH grid", "grid", _planar_grid),
    "graph": ModelSpec("DeepSphere graph", "healpix", _graph),
    "harmonic-mst": ModelSpec("harmonic MST", "dh", _harmonic("mst")),
    "harmonic-rmst": ModelSpec("harmonic RMST", "dh", _harmonic("rmst")),
    "hybrid": ModelSpec("hybrid graph+harmonic", "healpix", _hybrid),
    "cohen": ModelSpec("Cohen S2/SO(3)", "dh", _cohen),
}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _sampling(kind: str, config: DigitsConfig):
    if kind == "healpix":
        return HealpixSampling(config.nside)
    return DriscollHealySampling(config.bandwidth)


def load_inputs(kinds, config: DigitsConfig, progress: bool = False) -> dict:
    """Train / test inputs of every split for each input kind.

    Returns {kind: {split: (x_train, y_train, x_test, y_test)}}; "planar" tensors are
    (n, 1, 8, 8) back-projections of the DH maps, "grid" the DH maps as (n, 1, 2b, 2b)
    images, the others (n, npix, 1) maps.
    """
    out = {}
    needed = {"dh" if k in ("planar", "grid") else k for k in kinds}
    for grid in sorted(needed):
        sampling = _sampling(grid, config)
        for split in SPLITS:
            if progress:
                print(f"digits: building {split} on {type(sampling).__name__} ({sampling.npix} pixels)",
                      file=sys.stderr, flush=True)
            s = build_split(split, sampling, seed=config.seed, n_train=config.n_train, n_test=config.n_test,
                            data_dir=config.data_dir)
            if grid in kinds:
                out.setdefault(grid, {})[split] = (s.x_train, s.y_train, s.x_test, s.y_test)
            if grid == "dh" and "planar" in kinds:
                ptr, pte = s.planar()
                out.setdefault("planar", {})[split] = (ptr, s.y_train, pte, s.y_test)
            if grid == "dh" and "grid" in kinds:
                image = lambda x: x.reshape(len(x), 1, *sampling.shape)
                out.setdefault("grid", {})[split] = (image(s.x_train), s.y_train, image(s.x_test), s.y_test)
    return out


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: DigitsConfig, lr: float, desc: str,
         progress: bool) -> float:
    """Train with the project's loop (:func:`deepsphere_gen.training.fit`) and a step learning-rate
    schedule: ``lr`` for the first ``round(decay_at * epochs)`` epochs, then ``lr * decay`` (a
    second ``fit`` call, fresh Adam state, batch order from seed + 1).  Returns the seconds of all epochs."""
    first = min(max(round(config.decay_at * config.epochs), 1), config.epochs)
    phases = [(first, lr, config.seed), (config.epochs - first, lr * config.decay, config.seed + 1)]
    seconds = 0.0
    for epochs, phase_lr, seed in phases:
        if epochs == 0:
            continue
        tc = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=phase_lr, seed=seed, device=config.device,
                         progress=progress, desc=f"{desc} lr {phase_lr:.0e}")
        history = fit(model, TensorDataset(x, y), tc, log=None)
        seconds += float(sum(rec["seconds"] for rec in history))
    return seconds


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, config: DigitsConfig) -> tuple[torch.Tensor, float]:
    """Predicted labels (n,) and the wall seconds of the forward passes."""
    device = torch.device(config.device)
    model.eval()
    xs = [x[i : i + config.infer_batch].to(device) for i in range(0, len(x), config.infer_batch)]
    model(xs[0])  # warm-up (caches, lazy tables)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    preds = [model(xb).argmax(1) for xb in xs]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return torch.cat(preds).cpu(), time.perf_counter() - t0


def run_experiment(config: DigitsConfig, models=None, progress: bool = True, log=print) -> list[dict]:
    """Train and evaluate ``models`` (names of MODELS; default: all available) on every split.

    Returns one record per model and split: model, label, split, accuracy (%), correct,
    n_test, ci95 ([lo, hi] in %: the Wilson interval of correct of n_test, binomial over the
    test images; see :data:`INTERVAL_NOTE`), params, n_train, epochs, train_seconds (of the
    training behind that split), infer_ms_per_sample (forward only, batch ``infer_batch``, on
    that split's test maps).
    """
    names = list(models) if models else available_models()
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if "hybrid" in names and "hybrid" not in available_models():
        raise ValueError("model 'hybrid' needs deepsphere_gen.models.hybrid, which is not installed yet")
    specs = {m: MODELS[m] for m in names}
    data = load_inputs({s.input for s in specs.values()}, config, progress)
    records = []
    for name, spec in specs.items():
        trained = {}  # rotate-train flag -> (model, seconds)
        for split, (rot_train, _) in SPLITS.items():
            x_train, y_train, x_test, y_test = data[spec.input][split]
            if rot_train not in trained:
                torch.manual_seed(config.seed)
                sampling = None if spec.input == "planar" else _sampling(spec.input, config)  # grid: DH
                model = spec.build(sampling).to(config.device)
                if not trained:
                    log(f"{name}: {count_parameters(model):,d} parameters")
                desc = f"{name} train {'R' if rot_train else 'NR'}"
                seconds = _fit(model, x_train, y_train, config, config.lr * spec.lr_scale, desc, progress)
                trained[rot_train] = (model, seconds)
            model, seconds = trained[rot_train]
            pred, infer_s = _predict(model, x_test, config)
            correct = int((pred == y_test).sum())
            rec = {
                "model": name,
                "label": spec.label,
                "split": split,
                "accuracy": 100.0 * correct / len(y_test),
                "correct": correct,
                "n_test": len(y_test),
                "ci95": [100.0 * b for b in wilson_interval(correct, len(y_test))],
                "params": count_parameters(model),
                "n_train": len(y_train),
                "epochs": config.epochs,
                "train_seconds": seconds,
                "infer_ms_per_sample": 1000.0 * infer_s / len(y_test),
            }
            records.append(rec)
            log(f"{name} {split}: accuracy {rec['accuracy']:.2f}% ({correct}/{len(y_test)})")
    return records


#: what the intervals of the records and the table cover, printed under the table
INTERVAL_NOTE = ("[lo, hi]: 95 % Wilson interval of an accuracy, binomial over the test images. Every model and "
                 "split is scored on the same test images (R/R and NR/R on the same rotated ones), so a difference "
                 "between two cells is a paired comparison, resolved better than overlapping intervals suggest; "
                 "the intervals do not cover the training seed.")


def _accuracy_cell(rec: dict) -> str:
    """"97.78 [95.9, 98.8]" (accuracy and its interval in %), or the accuracy alone for a record
    without ``ci95`` (written before the field existed)."""
    ci = rec.get("ci95")
    return f"{rec['accuracy']:.2f}" + ("" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]")


def format_table(records: list[dict]) -> str:
    """Rows = models; columns NR/NR, R/R, NR/R (% accuracy, with its 95 % interval where the
    records have one, and :data:`INTERVAL_NOTE` under the table), params, train s (NR
    training), inference ms per sample (NR/NR test)."""
    by_model: dict[str, dict] = {}
    for r in records:
        by_model.setdefault(r["model"], {})[r["split"]] = r
    head = ["model", *SPLITS, "params", "train s", "infer ms"]
    rows = [head]
    for name, recs in by_model.items():
        first = recs.get("NR/NR") or next(iter(recs.values()))
        rows.append([
            recs[next(iter(recs))]["label"],
            *(_accuracy_cell(recs[s]) if s in recs else "-" for s in SPLITS),
            f"{first['params']:,d}",
            f"{first['train_seconds']:.0f}",
            f"{first['infer_ms_per_sample']:.2f}",
        ])
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    fmt = lambda r: "  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths)))
    note = [INTERVAL_NOTE] if any("ci95" in r for r in records) else []
    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths), *map(fmt, rows[1:]), *note])
