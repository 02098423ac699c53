"""``deepsphere-gen digits``: the rotation benchmark on spherical digits (NR/NR, R/R, NR/R).

Trains every model family (planar, DeepSphere graph, harmonic MST / RMST, hybrid, Cohen
S2/SO(3)) on scikit-learn's 8x8 digits projected onto the sphere, prints the accuracy
table (and Cobb et al. 2021's spherical-MNIST table beside it), and optionally writes the
records as JSON and a PNG of a few projected digits, unrotated and rotated.  See
``deepsphere_gen.experiments.digits``.  Imports torch and the experiment only when the command
runs (the help reads ``experiments.digits_config``).
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..experiments import digits_config as cfg
from .. import _cache_dirs
from .._io import atomic_write_json
from .._platform import cpu_description
from ._argv import path_arg
from ._preflight import check_device, check_output_file, check_seed, check_writable_dir
from ._exits import fail

HELP = "Rotation benchmark on spherical digits: models x splits NR/NR, R/R, NR/R (table, JSON, PNG)."


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"subset and fewer epochs ({cfg.QUICK}); about 1.5 minutes on 1 CPU thread (95 s measured; the full run: about 6 min)")
    parser.add_argument("--json", type=path_arg, metavar="PATH", help="write one record per model and split (JSON, atomically)")
    parser.add_argument("--plot", type=path_arg, metavar="PNG", help="write a figure of a few projected digits, unrotated and rotated")
    parser.add_argument("--models", nargs="+", metavar="NAME", choices=cfg.MODEL_NAMES,
                        help=f"models to run (default: those available of {', '.join(cfg.MODEL_NAMES)})")
    parser.add_argument("--seed", type=int, default=0, help="data split, rotations, init and batch order (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N", help="override the epochs")
    parser.add_argument("--n-train", type=int, default=None, metavar="N", help="override the training-set size")
    parser.add_argument("--n-test", type=int, default=None, metavar="N", help="override the test-set size")
    parser.add_argument("--bandwidth", type=int, default=None, metavar="B",
                        help="Driscoll-Healy grid 2B x 2B of the harmonic, S2/SO(3) and planar inputs (default 20; >= 10)")
    parser.add_argument("--nside", type=int, default=None, metavar="N",
                        help="HEALPix grid of the graph and hybrid inputs (default 8; a power of 2 >= 8)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--data-dir", type=path_arg, default=None, metavar="DIR",
                        help=f"digit cache directory (default {_cache_dirs.digits_data_dir()}: "
                             f"${_cache_dirs.ENV_VAR} or $XDG_CACHE_HOME move it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args) -> cfg.DigitsConfig:
    config = cfg.DigitsConfig(seed=args.seed, device=args.device, data_dir=args.data_dir)
    if args.quick:
        config = cfg.with_quick(config)
    pairs = (("epochs", args.epochs), ("n_train", args.n_train), ("n_test", args.n_test),
             ("bandwidth", args.bandwidth), ("nside", args.nside))
    overrides = {k: v for k, v in pairs if v is not None}
    return replace(config, **overrides)


def _check_outputs(args) -> None:
    """--data-dir, --json and --plot usable, before any work (one-line ValueError); missing folders are created."""
    check_writable_dir(args.data_dir or _cache_dirs.digits_data_dir(), "--data-dir")
    if args.json:
        args.json = str(check_output_file(args.json, "--json"))
    if args.plot:
        args.plot = str(check_output_file(args.plot, "--plot", figure=True))


def _paper_table() -> str:
    rows = [("Cobb et al. 2021, spherical MNIST", "NR/NR", "R/R", "NR/R")]
    rows += [(k, *(f"{v:.2f}" for v in vals)) for k, vals in cfg.PAPER.items()]
    w = [max(len(r[c]) for r in rows) for c in range(4)]
    return "\n".join("  ".join(v.ljust(w[c]) if c == 0 else v.rjust(w[c]) for c, v in enumerate(r)) for r in rows)


def _write_json(path, records, meta) -> Path:
    return atomic_write_json(path, {"meta": meta, "records": records})


def _plot(path, config: cfg.DigitsConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..datasets.digits import build_split, plot_digits
    from ..sampling import DriscollHealySampling

    s = build_split("NR/R", DriscollHealySampling(config.bandwidth), seed=config.seed,
                    n_train=config.n_train, n_test=config.n_test, data_dir=config.data_dir)
    n = min(6, len(s.y_test))
    fig = plot_digits(s.images_test[:n].numpy(), s.sampling, s.rotations_test[:n],
                      labels=s.y_test[:n].tolist(), path=path)
    plt.close(fig)


def run(args) -> int:
    import torch  # here, not at the top: ``digits --help`` and argument errors stay fast

    from ..experiments import digits as exp

    try:
        check_device(args.device)
    except ValueError as exc:
        return fail("digits", str(exc))
    if args.threads is not None:
        if args.threads < 1:
            return fail("digits", f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        check_seed(args.seed)
        config = _config(args)
        _check_outputs(args)
    except ValueError as exc:
        return fail("digits", str(exc))
    models = args.models or cfg.available_models()
    if "hybrid" in models and "hybrid" not in cfg.available_models():
        return fail("digits", "model 'hybrid' needs deepsphere_gen.models.hybrid, which is not available in this install")
    t0 = time.perf_counter()
    if args.plot:
        _plot(args.plot, config)
        print(f"wrote {args.plot}")
    try:
        records = exp.run_experiment(config, models, progress=not args.no_progress)
    except ValueError as exc:
        return fail("digits", str(exc))
    wall = time.perf_counter() - t0
    print()
    print(f"Spherical digits (scikit-learn 8x8 digits, {records[0]['n_train']} train / {records[0]['n_test']} test,"
          f" {config.epochs} epochs, seed {config.seed}; accuracy %, train s of the NR training,"
          f" inference ms/sample):")
    print(exp.format_table(records))
    print()
    print(_paper_table())
    print(f"\ntotal {wall:.0f} s ({torch.get_num_threads()} torch thread(s), device {config.device})")
    if args.json:
        meta = {
            "command": "deepsphere-gen digits" + (" --quick" if args.quick else ""),
            "config": asdict(config),
            "models": models,
            "total_seconds": wall,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": cpu_description(),  # trained results are bit-identical only on one processor type
            "dataset": "scikit-learn load_digits (1,797 8x8 images), stratified train/test 0.75/0.25",
            "paper": {k: dict(zip(("NR/NR", "R/R", "NR/R"), v)) for k, v in cfg.PAPER.items()},
        }
        print(f"wrote {len(records)} record(s) to {_write_json(args.json, records, meta)}")
    return 0
