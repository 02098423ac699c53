"""``deepsphere-gen equivariance``: equivariance error of graph, harmonic and hybrid layers and models.

Protocol and records: ``deepsphere_gen.experiments.equivariance_sweep``.  Prints a table, optionally
writes the records as JSON (``--json``) and a PNG of the Laplacian's error against the
degree per (nside, k) like DeepSphere's figure (``--plot``).
"""
from __future__ import annotations

import platform
import time

from .._io import atomic_write_json
from ._argv import path_arg
from ._preflight import check_output_file, check_seed
from ._exits import fail

HELP = "Measure the rotation-equivariance error of graph / harmonic / hybrid layers and models."


def add_arguments(parser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true",
                       help="nside 32 (k = 8, 20, 40; l = 10, 50), harmonic layers, baselines, small models (< 1 min)")
    which.add_argument("--graphs", action="store_true",
                       help="only the graph Laplacian curves: v2 k = 8, 20, 40 and the optimised graph at k = 20 "
                            "on nside 32 and 64, and the published nside-128 point (builds the optimised graphs: "
                            "minutes, cached)")
    parser.add_argument("--json", type=path_arg, metavar="PATH", default=None, help="write the records as JSON (atomically)")
    parser.add_argument("--plot", type=path_arg, metavar="PNG", default=None, help="write a PNG of error vs degree per (nside, k)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rotations and test signals (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads during the sweep (default 1: its many small FFTs and sparse products "
                             "run faster without a thread pool, by far on a busy machine)")


def run(args) -> int:
    import torch  # here, not at the top: ``equivariance --help`` and argument errors stay fast

    from ..experiments import equivariance_sweep as sweep

    if args.threads < 1:
        return fail("equivariance", f"--threads must be >= 1, got {args.threads}")
    try:  # before the sweep: a wrong seed or path is reported in the first second
        check_seed(args.seed)
        if args.json:
            args.json = str(check_output_file(args.json, "--json"))
        if args.plot:
            args.plot = str(check_output_file(args.plot, "--plot", figure=True))
    except ValueError as exc:
        return fail("equivariance", str(exc))
    t0 = time.perf_counter()
    threads, before = args.threads, torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tasks = sweep.sweep_tasks(quick=args.quick, seed=args.seed, graphs=args.graphs)
        records = sweep.run_tasks(tasks, progress=not args.no_progress)
    except ValueError as exc:
        return fail("equivariance", str(exc))
    finally:
        torch.set_num_threads(before)
    print(sweep.format_records(records))
    elapsed = time.perf_counter() - t0
    print(f"{len(records)} measurement(s) in {elapsed:.1f} s")
    if args.json:
        meta = {"quick": bool(args.quick), "graphs": bool(args.graphs), "seed": args.seed, "torch": torch.__version__,
                "threads": threads,
                "python": platform.python_version(), "seconds": elapsed}
        out = atomic_write_json(args.json, {"meta": meta, "records": records})
        print(f"wrote {len(records)} record(s) to {out}")
    if args.plot:
        sweep.plot_records(records, args.plot)
        print(f"wrote plot to {args.plot}")
    return 0
