"""The comparison with the power spectrum: S8 width ratios (graph / power spectrum and hand-crafted /
power spectrum) for three width measures, the targets, and their bootstrap intervals.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...datasets.cosmo_grid import s8
from .metrics import summary_fisher, summary_response

__all__ = ["s8_widths", "summarise", "bootstrap_ratios"]


def s8_widths(rec: dict) -> dict:
    """A method's three S8 widths from its record: the calibrated posterior std at the fiducial ("posterior"),
    the summary Fisher width ("summary", None where not computed) and the held-out RMSE ("rmse_test")."""
    f = rec["fiducial"]
    return {"posterior": f["s8"]["mean_std"], "summary": f["summary_width"]["s8"], "rmse_test": rec["test"]["s8"]["rmse"]}


def _ratio(a, b):
    return None if a is None or b is None else a / b


def summarise(records: list[dict]) -> dict:
    """S8 width ratios graph / power spectrum (and hand-crafted / power spectrum) for three
    width measures: the calibrated posterior std at the fiducial ("posterior"), the Fisher width
    of the point estimates used as summaries ("summary") and the held-out RMSE ("rmse_test").  Ensembles of
    more than one member add the graph members alone over the power spectrum (``members``) and the graph
    (ensemble) over each power-spectrum MLP member alone (``ps_members``: how much the baseline's own ensemble
    moves the ratio)."""
    by = {r["method"]: s8_widths(r) for r in records}
    out = {}
    for other in ("graph", "handcrafted"):
        if other in by and "power_spectrum" in by:
            for key, v in by[other].items():
                out[f"s8_{key}_ratio_{other}_over_ps"] = _ratio(v, by["power_spectrum"][key])
    if "s8_posterior_ratio_graph_over_ps" in out:
        cov68 = next(r for r in records if r["method"] == "graph")["test"]["s8"]["coverage_68"]
        out["target_gain"] = 0.16
        out["graph_s8_coverage_68"] = cov68
        out["target_reached"] = bool(out["s8_posterior_ratio_graph_over_ps"] <= 0.84 and 0.60 <= cov68 <= 0.76)
    graph = next((r for r in records if r["method"] == "graph"), None)
    if graph is not None and len(graph.get("members", ())) > 1 and "power_spectrum" in by:
        out["graph_members"] = graph["graph_members"]
        out["members"] = [{"member": m["member"], "seed": m["seed"],
                           **{f"s8_{key}_ratio_graph_over_ps": _ratio(m[key], by["power_spectrum"][key])
                              for key in ("posterior", "summary", "rmse_test")},
                           "graph_s8_coverage_68": m["coverage_68"],
                           "graph_s8_summary_coverage_68": m["summary_coverage_68"]} for m in graph["members"]]
    ps = next((r for r in records if r["method"] == "power_spectrum"), None)
    if graph is not None and ps is not None and len(ps.get("members", ())) > 1:
        out["mlp_members"] = ps["mlp_members"]
        out["ps_members"] = [{"member": m["member"], "init_seed": m["init_seed"],
                              **{f"s8_{key}_ratio_graph_over_ps_member": _ratio(by["graph"][key], m[key])
                                 for key in ("posterior", "summary", "rmse_test")},
                              "ps_s8_coverage_68": m["coverage_68"]} for m in ps["members"]]
    if out.get("s8_summary_ratio_graph_over_ps") is not None and "coverage" in graph["fiducial"]["summary_width"]:
        cov68 = graph["fiducial"]["summary_width"]["coverage"]["s8"]["coverage_68"]
        out["graph_s8_summary_coverage_68"] = cov68
        out["summary_target_reached"] = bool(out["s8_summary_ratio_graph_over_ps"] <= 0.84 and 0.60 <= cov68 <= 0.76)
    return out


def bootstrap_ratios(preds: dict, path, other: str = "graph", n_boot: int = 1000, seed: int = 0) -> dict:
    """95 % bootstrap intervals of the S8 width ratios ``other`` / power spectrum: held-out
    cosmologies and fiducial realisations (all footprint copies of a map together) are resampled
    with replacement (the summary widths' response stays the one fitted on the calibration data).
    Returns {"posterior": [lo, hi], "summary": [lo, hi], "rmse_test": [lo, hi]}."""
    cosmo = np.load(Path(path) / "ids_test.npy")[:, 0]
    real = np.load(Path(path) / "ids_fiducial.npy")[:, 1]
    groups_t = [np.flatnonzero(cosmo == c) for c in np.unique(cosmo)]
    groups_f = [np.flatnonzero(real == r) for r in np.unique(real)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 6007]))
    out = {"posterior": [], "summary": [], "rmse_test": []}
    response = {}  # fitted once per method: the calibration data are not resampled
    for m in (other, "power_spectrum"):
        try:
            response[m] = summary_response(preds[m]["calibration"]["mean"], preds[m]["calibration"]["theta"])[0]
        except (ValueError, np.linalg.LinAlgError):
            response[m] = None
    for _ in range(n_boot):
        it = np.concatenate([groups_t[i] for i in rng.integers(len(groups_t), size=len(groups_t))])
        jf = np.concatenate([groups_f[i] for i in rng.integers(len(groups_f), size=len(groups_f))])
        w = {}
        for m in (other, "power_spectrum"):
            t, f = preds[m]["test"], preds[m]["fiducial"]
            s8_true = s8(t["theta"][it, 0], t["theta"][it, 1])
            try:
                fisher = math.nan if response[m] is None else summary_fisher(response[m], f["mean"][jf])[2][1]
            except (ValueError, np.linalg.LinAlgError):
                fisher = math.nan
            w[m] = (np.sqrt(np.mean(f["cov"][jf, 1, 1])), fisher, np.sqrt(np.mean((t["mean"][it, 1] - s8_true) ** 2)))
        for k, key in enumerate(out):
            out[key].append(w[other][k] / w["power_spectrum"][k])
    return {k: (np.nanpercentile(v, [2.5, 97.5]).tolist() if np.isfinite(v).sum() >= 100 else None)
            for k, v in out.items()}
