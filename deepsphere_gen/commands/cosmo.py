"""``deepsphere-gen cosmo``: partial-sky cosmological parameter inference on a survey footprint.

    deepsphere-gen cosmo                  # generate + train + evaluate (default settings)
    deepsphere-gen cosmo --quick          # CI-sized run
    deepsphere-gen cosmo generate|train|evaluate [options]

Runs unchanged under ``torchrun --nproc_per_node N -m deepsphere_gen.cli cosmo ...`` and on
CUDA where present (``--device``).
"""
from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import MISSING, fields, replace
from types import SimpleNamespace

from ..experiments import cosmo as exp  # its settings only: the rest (torch) is imported on first use in run()
from ..experiments.cosmo import CALIBRATIONS, GRAPH_WEIGHTS, GRID_DEFAULTS, METHODS, CosmoExperimentConfig

HELP = "cosmological inference (Omega_m, sigma_8, S8) on a survey footprint: DeepSphere vs power spectrum"

#: --quick: CI-sized run (about a minute on one core)
QUICK = dict(nside=32, n_train=32, n_test=8, n_real=2, n_fiducial=4, n_calib=8, epochs=4, mlp_epochs=40,
             channels=(8, 16, 16))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _defaults() -> tuple[SimpleNamespace, SimpleNamespace]:
    """CosmoExperimentConfig's and the grid's defaults, read without building a config (that
    imports torch and the data sets: seconds; ``--help`` and argument errors need none of it)."""
    d = {f.name: f.default for f in fields(CosmoExperimentConfig) if f.default is not MISSING}
    return SimpleNamespace(**d), SimpleNamespace(**GRID_DEFAULTS)


def _common(p, with_outputs: bool = True) -> None:
    d, g = _defaults()
    p.add_argument("--quick", action="store_true", help="CI-sized settings (nside 32, 40 cosmologies, few epochs)")
    p.add_argument("--nside", type=int, default=None, help=f"HEALPix resolution (default {g.nside})")
    p.add_argument("--bins", type=int, default=g.n_bins, help="tomographic redshift bins (equal-count split)")
    p.add_argument("--n-train", type=int, default=None, help=f"training cosmologies (default {g.n_train})")
    p.add_argument("--n-test", type=int, default=None, help=f"held-out cosmologies (default {g.n_test})")
    p.add_argument("--n-real", type=int, default=None,
                   help=f"full-sky realisations per cosmology (default {g.n_real}; each gives one sample per footprint copy)")
    p.add_argument("--n-fiducial", type=int, default=None, help=f"realisations at the fiducial (default {g.n_fiducial})")
    p.add_argument("--n-calib", type=int, default=None,
                   help=f"calibration cosmologies, never trained on (default {g.n_calib}; they fit the variance calibration)")
    p.add_argument("--calib-noise-draws", type=int, default=d.calib_noise_draws,
                   help="noise realisations of every calibration map in the variance calibration")
    p.add_argument("--calibration", choices=CALIBRATIONS, default=d.calibration,
                   help="variance calibration: cv (global, linear or quadratic in the parameters, chosen by "
                        "cross-validation on the calibration cosmologies) or global (one factor per parameter)")
    p.add_argument("--footprint", default=g.footprint, metavar="stage3|FITS",
                   help="built-in ~1,000 deg^2 footprint (stage3) or a HEALPix FITS mask")
    p.add_argument("--ngal", type=float, default=d.ngal, help="galaxies per arcmin^2, all bins together (inf: no noise)")
    p.add_argument("--sigma-e", type=float, default=d.sigma_e, help="ellipticity dispersion per component")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(METHODS)} (default all)")
    p.add_argument("--epochs", type=int, default=None, help=f"graph network epochs (default {d.epochs})")
    p.add_argument("--mlp-epochs", type=int, default=None, help=f"summary-statistic MLP epochs (default {d.mlp_epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size of the graph network")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (cosine schedule)")
    p.add_argument("--graph-weights", choices=GRAPH_WEIGHTS, default=d.graph_weights,
                   help="evaluate the graph network's epoch of lowest validation loss (best) or its last epoch")
    p.add_argument("--graph-members", type=int, default=d.graph_members,
                   help="graph networks trained with different seeds on the same data, their posteriors combined "
                        f"(default {d.graph_members}; member 0: the single network and its checkpoint; member i: "
                        "checkpoint cosmo-graph-m<i>.pt)")
    p.add_argument("--seed", type=int, default=0, help="seed of the design, maps, noise and training")
    p.add_argument("--data-dir", default=None, help="simulation cache (default <cache root>/cosmo, cache root ~/.cache/deepsphere_gen or $DEEPSPHERE_GEN_CACHE)")
    p.add_argument("--out-dir", default=d.out_dir, help="checkpoints, JSON and plots")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if with_outputs:
        p.add_argument("--json", default=None, metavar="PATH", help="write the records (default OUT_DIR/cosmo.json)")
        p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")


def add_arguments(parser) -> None:
    _common(parser)
    sub = parser.add_subparsers(dest="step", metavar="STEP")
    for name, text in (("generate", "generate (or reuse) the simulations"),
                       ("train", "train the estimators (checkpointed, resumable)"),
                       ("evaluate", "evaluate on held-out cosmologies and the fiducial: table, JSON, plots"),
                       ("run", "generate, train and evaluate (the default)")):
        _common(sub.add_parser(name, help=text, description=text), with_outputs=name in ("evaluate", "run"))


def _config(args):
    from ..datasets.cosmo_grid import CosmoGridConfig

    q = QUICK if args.quick else {}
    d, g = CosmoExperimentConfig(), CosmoGridConfig()
    pick = lambda v, key, default: v if v is not None else q.get(key, default)  # noqa: E731
    grid = CosmoGridConfig(nside=pick(args.nside, "nside", g.nside), n_bins=args.bins,
                           n_train=pick(args.n_train, "n_train", g.n_train), n_test=pick(args.n_test, "n_test", g.n_test),
                           n_real=pick(args.n_real, "n_real", g.n_real),
                           n_fiducial=pick(args.n_fiducial, "n_fiducial", g.n_fiducial),
                           n_calib=pick(args.n_calib, "n_calib", g.n_calib),
                           footprint=args.footprint, seed=args.seed)
    cfg = CosmoExperimentConfig(grid=grid, ngal=args.ngal, sigma_e=args.sigma_e,
                                methods=tuple(args.methods) if args.methods else d.methods,
                                epochs=pick(args.epochs, "epochs", d.epochs),
                                mlp_epochs=pick(args.mlp_epochs, "mlp_epochs", d.mlp_epochs),
                                calib_noise_draws=args.calib_noise_draws, calibration=args.calibration,
                                batch_size=args.batch_size, lr=args.lr, seed=args.seed, data_dir=args.data_dir,
                                out_dir=args.out_dir, device=args.device, progress=not args.no_progress,
                                graph_weights=args.graph_weights, graph_members=args.graph_members)
    return replace(cfg, channels=q["channels"]) if args.quick else cfg


def _fail(msg: str) -> int:
    print(f"deepsphere-gen cosmo: error: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    step = getattr(args, "step", None) or "run"
    if args.threads < 1:
        return _fail(f"--threads must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    from ..training import distributed_context, shutdown_distributed

    t0, c0 = time.perf_counter(), _cpu()
    try:
        config = _config(args)
        ctx = distributed_context(config.device)
        path = exp.generate(config, ctx)
        if step == "generate":
            if ctx.is_main:
                print(f"cosmo: data set at {path} ({_cpu() - c0:.0f} s process CPU)")
            return 0
        if step in ("train", "run"):
            exp.train(config, path, ctx)
        if step == "train":
            return 0
        result = exp.evaluate_all(config, path, ctx)
        if not ctx.is_main:
            return 0
        if not result["records"]:
            return _fail("nothing to evaluate")
        print(exp.format_table(result))
        timing = {"wall_seconds": time.perf_counter() - t0, "process_cpu_seconds": _cpu() - c0,
                  "torch_threads": torch.get_num_threads(), "step": step}
        json_path = args.json or f"{config.out_dir}/cosmo.json"
        exp.write_json(json_path, result, config, {"timing": timing, "data": str(path)})
        print(f"cosmo: wrote {json_path}")
        if not args.no_plots:
            for p in exp.plot_all(result, config):
                print(f"cosmo: wrote {p}")
        print(f"cosmo: done in {timing['wall_seconds']:.0f} s wall, {timing['process_cpu_seconds']:.0f} s process CPU "
              f"({math.ceil(timing['process_cpu_seconds'] / 60)} min)")
        return 0
    except ValueError as exc:
        return _fail(str(exc))
    finally:
        shutdown_distributed()
