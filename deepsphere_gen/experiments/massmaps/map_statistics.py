"""One-point and small-scale statistics of map samples: is an input like the training maps?

A network trained on maps of one amplitude and smoothness answers anything with confidence
(a white-noise map or a map 1000x too bright got ``P(class 1) = 1.000``).  Four cheap
statistics per sample summarise what the network was trained on and are stored with each
checkpoint (:func:`training_distribution`):

- ``log_std``: natural log of the pixel standard deviation (the amplitude);
- ``mean``: the pixel mean, in units of the median training pixel std (an offset);
- ``small_scale``: the fraction of the variance inside groups of 4 NESTED sibling pixels
  (the 4 children of one pixel at nside / 2), i.e. the share of the power at the highest
  multipoles: 0.75 for white noise, near 0 for a smooth map (the generated maps, measured on
  the single log-normal ones, whose C_l the shells share: about 0.5 at nside 16, 0.43 at 64, 0.38 at 128); a power-spectrum *shape*
  statistic that needs no transform (O(pixels)).  At nside 8 the maps are nearly white
  at the pixel scale (0.68) and white noise cannot be told apart by it;
- ``skew``: the pixel skewness (third standardised moment): positive for the generated
  convergence maps (the single log-normal nside-16 maps: 0.04 to 0.25), negative for a sign-flipped
  map (``-kappa``, which the other three statistics cannot tell apart).  Checkpoints written
  before it was added have no range for it: the check skips it there.

:func:`check_inputs` compares an input with the stored ranges, widened by half their
width plus a tolerance, and returns one message per statistic that lies outside.  An input
of fewer patches than a training map (a cut-sky map) is compared with the range of single
training patches, stored beside (``per_sample``), padded by the tolerance only.
"""
from __future__ import annotations

import math

import numpy as np

from .features import moments

__all__ = ["STATISTICS", "sample_statistics", "training_distribution", "check_inputs"]

#: statistic -> (label in messages, absolute tolerance added to the widened range)
STATISTICS = {"log_std": ("log pixel std", 0.1), "mean": ("pixel mean / trained std", 0.25),
              "small_scale": ("small-scale variance fraction", 0.05), "skew": ("pixel skewness", 0.05)}


def _sibling_groups(indices: np.ndarray) -> np.ndarray:
    """Positions (groups, 4) of complete groups of 4 NESTED siblings among sorted ``indices``."""
    idx = np.asarray(indices, dtype=np.int64)
    parent = idx // 4
    starts = np.flatnonzero((idx % 4 == 0)[: max(len(idx) - 3, 0)])
    if starts.size:
        ok = np.all(parent[starts[:, None] + np.arange(4)] == parent[starts][:, None], axis=1)
        starts = starts[ok]
    return starts[:, None] + np.arange(4)


def sample_statistics(values: np.ndarray, indices: np.ndarray | None = None, ref_std: float = 1.0) -> dict:
    """Per-sample statistics of ``values`` (samples, pixels) at NESTED pixel ``indices``
    (pixels,) (default ``arange(pixels)``: a full-sky map or a nested patch).

    Returns ``{name: (samples,) float64}`` for the names of :data:`STATISTICS`;
    ``mean`` is divided by ``ref_std``.  Needs at least one complete group of 4 siblings.
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    idx = np.arange(x.shape[1]) if indices is None else np.asarray(indices)
    groups = _sibling_groups(idx)
    if groups.size == 0:
        raise ValueError("samples need at least one complete group of 4 NESTED sibling pixels")
    mean, std = x.mean(axis=1), x.std(axis=1)
    g = x[:, groups]  # (samples, groups, 4)
    inner = ((g - g.mean(axis=2, keepdims=True)) ** 2).sum(axis=(1, 2))
    total = ((g - mean[:, None, None]) ** 2).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"log_std": np.log(std), "mean": mean / ref_std,
                "small_scale": np.where(total > 0, inner / np.where(total > 0, total, 1.0), 0.0),
                "skew": moments(x)[:, 2]}  # 0 for a constant map


def training_distribution(samples, per_map: int = 1, max_maps: int = 256, max_samples: int = 4096) -> dict:
    """Summary of the statistics over the training maps (evenly spaced, at most ``max_maps``
    maps and about ``max_samples`` samples).

    ``samples``: a sequence of ``(x, label, indices)`` items (``x``: (pixels, 1) tensor or
    array), e.g. a :class:`~deepsphere_gen.datasets.MassMapDataset`, whose consecutive
    runs of ``per_map`` items are the samples (patches) of one map.  Each statistic is
    summarised per map by its median over the map's samples, as :func:`check_inputs`
    does for an input map; one map is held in memory at a time.  Returns plain data
    (stored in checkpoints): ``{"maps": maps used, "samples_per_map", "ref_std": median
    pixel std, name: {"min", "max", "median"}}``, and where a map has several samples
    ``"per_sample": {name: {"min", "max", "median"}}`` over the single samples (what an input of
    fewer samples than a map, such as a cut-sky map of one patch, is compared with).
    """
    n_maps = len(samples) // per_map
    if n_maps == 0:
        raise ValueError("no training samples")
    n_use = max(1, min(n_maps, max_maps, max_samples // per_map))
    maps = np.unique(np.linspace(0, n_maps - 1, n_use).round().astype(np.int64))
    # a nested patch has the same sibling groups wherever it lies: one sample's indices serve all
    first = samples[0]
    idx = np.asarray(first[2], dtype=np.int64) if len(first) > 2 else None
    per_map_stats = []
    for m in maps:
        x = np.stack([np.asarray(samples[int(m) * per_map + k][0], dtype=np.float64).reshape(-1)
                      for k in range(per_map)])
        per_map_stats.append(sample_statistics(x, idx))
    ref = float(np.median([np.exp(st["log_std"]) for st in per_map_stats]))
    out = {"maps": int(len(maps)), "samples_per_map": int(per_map), "ref_std": ref}
    for name in STATISTICS:
        scale = ref if name == "mean" else 1.0
        out[name] = _summary(np.array([np.median(st[name] / scale) for st in per_map_stats]))
        if per_map > 1:
            out.setdefault("per_sample", {})[name] = _summary(np.concatenate([st[name] / scale for st in per_map_stats]))
    return out


def _summary(v: np.ndarray) -> dict:
    return {"min": float(v.min()), "max": float(v.max()), "median": float(np.median(v))}


def _range(entry: dict, tol: float, widen: bool = True) -> tuple[float, float]:
    """``[min, max]`` of ``entry`` padded by ``tol``, and by half its width where ``widen``."""
    lo, hi = entry["min"], entry["max"]
    pad = (0.5 * (hi - lo) if widen else 0.0) + tol
    return lo - pad, hi + pad


def check_inputs(values: np.ndarray, indices: np.ndarray | None, distribution: dict) -> list[str]:
    """Messages for the statistics of one map's ``values`` (samples, pixels) outside the trained ranges.

    The median over the samples (the patches of the map) is compared with the range
    ``[min, max]`` of the same median over the training maps, widened by half its width
    plus the statistic's tolerance (:data:`STATISTICS`); a statistic without a stored range (older
    checkpoints) is skipped.  An input of fewer samples than a training map (a cut-sky map covering
    some of the patches) is compared with the range of the single training samples (``per_sample``,
    where the checkpoint stores it; the median of fewer samples spreads wider than a whole map's, at
    most as wide as one sample's), padded by the tolerance only: those ranges span many samples, not a
    few maps.  Measured at nside 16 (1/12 patches of 256 pixels, 8 maps per class): single held-out
    patches flagged 1 of 48 (whole-map ranges: 5 of 48); white noise of their std 34 of 48 (47),
    1000x brighter 48 of 48, sign-flipped 7 of 48 (26).  Empty list: the input looks like the training maps.  Pixel std is
    reported as a std (not its log).
    """
    stats = sample_statistics(values, indices, distribution["ref_std"])
    fewer = len(stats["log_std"]) < distribution.get("samples_per_map", 1)
    ranges = distribution.get("per_sample", distribution) if fewer else distribution
    trained = "trained range of single patches" if ranges is not distribution else "trained range"
    msgs = []
    for name, (label, tol) in STATISTICS.items():
        if name not in ranges:  # a checkpoint written before the statistic was added
            continue
        entry = ranges[name]
        value = float(np.median(stats[name]))
        lo, hi = _range(entry, tol, widen=ranges is distribution)
        if not lo <= value <= hi:
            if name == "log_std":
                msgs.append(f"pixel std {math.exp(value):.3g} vs {trained} "
                            f"[{math.exp(entry['min']):.3g}, {math.exp(entry['max']):.3g}]")
            else:
                msgs.append(f"{label} {value:.3g} vs {trained} [{entry['min']:.3g}, {entry['max']:.3g}]")
    return msgs
