"""The run's text table and JSON record."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..._io import atomic_write_json, plain_json
from ..._platform import cpu_description
from ..reporting import align_rows
from .config import METHODS, CosmoExperimentConfig

__all__ = ["format_table", "write_json"]


def format_table(result: dict) -> str:
    """One row per method: held-out RMSE and coverage, fiducial constraint widths."""
    head = ["method", "RMSE Om", "RMSE S8", "RMSE sig8", "cov68 S8", "cov95 S8", "cov68 Om", "cov68 2d",
            "fid sd(S8)", "fid F(S8)", "fid sd(Om)", "calib Om,S8", "deg, at fid"]
    rows = [head]
    for r in result["records"]:
        t, f = r["test"], r["fiducial"]
        rows.append([r["method"], f"{t['omega_m']['rmse']:.4f}", f"{t['s8']['rmse']:.4f}", f"{t['sigma8']['rmse']:.4f}",
                     f"{100 * t['s8']['coverage_68']:.0f}%", f"{100 * t['s8']['coverage_95']:.0f}%",
                     f"{100 * t['omega_m']['coverage_68']:.0f}%", f"{100 * t['joint']['coverage_68']:.0f}%",
                     f"{f['s8']['mean_std']:.4f}",
                     "-" if f["summary_width"]["s8"] is None else f"{f['summary_width']['s8']:.4f}",
                     f"{f['omega_m']['mean_std']:.4f}",
                     "{:.2f},{:.2f}".format(*r["calibration_scales"])
                     + ("" if not (r.get("calibration") or {}).get("scales_bootstrap_sd")
                        else " (sd {:.2f},{:.2f})".format(*r["calibration"]["scales_bootstrap_sd"])),
                     _degree_cell(r)])
    lines = align_rows(rows)
    lines.append("(Om = Omega_m, sig8 = sigma_8, S8 = sigma_8 sqrt(Omega_m / 0.3); "
                 "RMSE and coverage of the calibrated intervals on the held-out cosmologies; at the fiducial: fid sd = "
                 "mean calibrated posterior std, fid F = Fisher width of the point estimates used as summaries (response "
                 "fitted on the validation and calibration cosmologies); "
                 "calib = global variance scales fitted on the validation and calibration cosmologies, bootstrap sd over them; "
                 "deg = degree of each parameter's variance factor chosen by cross-validation, at fid = its mean at the "
                 "fiducial predictions: the one applied)")
    missing = {r["method"]: r["fiducial"]["summary_width"]["missing"] for r in result["records"]
               if r["fiducial"]["summary_width"].get("missing")}
    for reason in dict.fromkeys(missing.values()):
        lines.append(f"(fid F = - for {', '.join(m for m in missing if missing[m] == reason)}: {reason})")
    s = result["summary"]
    for other in ("graph", "handcrafted"):
        if f"s8_posterior_ratio_{other}_over_ps" in s:
            r = {k: s[f"s8_{k}_ratio_{other}_over_ps"] for k in ("posterior", "summary", "rmse_test")}
            r = {k: "-" if v is None else f"{v:.3f}" for k, v in r.items()}
            lines.append(f"S8 width {other} / power spectrum: calibrated posterior at the fiducial {r['posterior']}, "
                         f"summary Fisher width {r['summary']}, held-out RMSE {r['rmse_test']}")
    for m in s.get("members", []):
        r = {k: m[f"s8_{k}_ratio_graph_over_ps"] for k in ("posterior", "summary", "rmse_test")}
        r = {k: "-" if v is None else f"{v:.3f}" for k, v in r.items()}
        cov = [m["graph_s8_coverage_68"], m["graph_s8_summary_coverage_68"]]
        cov = ["-" if v is None else f"{100 * v:.0f} %" for v in cov]
        lines.append(f"  graph member {m['member']} of {s['graph_members']} alone (training seed {m['seed']}): "
                     f"posterior {r['posterior']}, summary {r['summary']}, held-out RMSE {r['rmse_test']}; "
                     f"held-out 68 % coverage {cov[0]} (posterior), {cov[1]} (summary)")
    for m in s.get("ps_members", []):
        r = {k: m[f"s8_{k}_ratio_graph_over_ps_member"] for k in ("posterior", "summary", "rmse_test")}
        r = {k: "-" if v is None else f"{v:.3f}" for k, v in r.items()}
        lines.append(f"  graph / power-spectrum member {m['member']} of {s['mlp_members']} alone (initial-weight seed "
                     f"{m['init_seed']}): posterior {r['posterior']}, summary {r['summary']}, held-out RMSE "
                     f"{r['rmse_test']}; its held-out 68 % coverage {100 * m['ps_s8_coverage_68']:.0f} %")
    if "bootstrap_95" in s:
        b = s["bootstrap_95"]
        lines.append("  95 % bootstrap over held-out cosmologies and fiducial maps: " + ", ".join(
            f"{k} [{v[0]:.3f}, {v[1]:.3f}]" if v else f"{k} -" for k, v in b.items()))
    if "fisher_forecast" in s:
        f = s["fisher_forecast"]
        ratios = ", ".join(f"{m} {f[f's8_width_{m}_over_forecast']:.2f}" for m in METHODS
                           if f"s8_width_{m}_over_forecast" in f)
        lines.append(f"power-spectrum Fisher forecast (Gaussian covariance, f_sky {f['fsky']:.4f}): sd(S8) {f['s8']:.4f} "
                     f"({f['s8_with_box_prior']:.4f} with the prior box), sd(Om) {f['omega_m']:.4f}; "
                     f"posterior sd(S8) / forecast: {ratios}")
        if "simulated_over_knox_variance" in f:
            v = f["simulated_over_knox_variance"]
            lines.append(f"  band powers at the fiducial: simulated / Gaussian variance median {v['median']:.2f} "
                         f"[{v['min']:.2f}, {v['max']:.2f}]")
    if "target_reached" in s:
        lines.append(f"target (graph S8 posterior >= 16 % tighter, 68 % coverage in [60, 76] %): "
                     f"{'reached' if s['target_reached'] else 'NOT reached'}")
    if "summary_target_reached" in s:
        lines.append(f"  the same with the estimates as summaries (Fluri et al.'s likelihood; held-out 68 % coverage "
                     f"{100 * s['graph_s8_summary_coverage_68']:.0f} %): "
                     f"{'reached' if s['summary_target_reached'] else 'NOT reached'}")
    elif "target_reached" in s and ("graph" in missing or "power_spectrum" in missing):
        lines.append(f"  the same with the estimates as summaries: not evaluated ("
                     f"{missing.get('graph') or missing['power_spectrum']})")
    return "\n".join(lines)


def _degree_cell(rec: dict) -> str:
    c = rec.get("calibration") or {}
    if "model" not in c:
        return "-"
    return "{},{} / {:.2f},{:.2f}".format(*c["model"]["degree"], *c["scales_at_fiducial"])


def write_json(path, result: dict, config: CosmoExperimentConfig, extra: dict | None = None,
               quick: bool = False) -> Path:
    """JSON {"config", "cpu" (the processor: trained networks are bit-identical only on one
    processor type), "records", "summary", **extra} (predictions left out), written atomically;
    through :func:`~deepsphere_gen._io.plain_json`: ``--ngal inf`` is recorded as ``"ngal": "inf"``, a NaN as null.
    The config's fields are those of ``config`` and ``quick``: whether the run was ``--quick``'s smoke test (no
    config field: the settings it stands for are the others); ``config.grid`` adds ``footprint_id`` beside the
    footprint as given (a path as typed): the mask by its content
    (:func:`~deepsphere_gen.datasets.cosmo_grid.footprint_id`, "stage3" or "mask-sha256:...", the name the data
    set's metadata and the checkpoints' fingerprints hold)."""
    from ...datasets.cosmo_grid import footprint_id

    fields = asdict(config)
    fields["grid"]["footprint_id"] = footprint_id(config.grid)
    payload = {"config": dict(fields, quick=bool(quick)), "cpu": cpu_description(),
               "records": result["records"], "summary": result["summary"], **(extra or {})}
    return atomic_write_json(path, plain_json(payload, infinity=True))
