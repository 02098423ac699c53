"""``deepsphere-gen bench``: run the benchmark suites of ``deepsphere_gen/bench/suites`` and write JSON records.

Each record: suite, name, params, ours_s (seconds: the median of the timed calls, except in the suites
that time their own way, :data:`deepsphere_gen.bench.timing.REPORTED`), peer, peer_s, speedup
(peer_s / ours_s, printed with two decimals), max_rel_diff, peak_mem_mb, device, extras.  How suites are written and
how time and memory are measured: ``benchmarks/README.md`` and ``deepsphere_gen.bench``.
Imports torch and the harness only when the command runs (``--help`` stays fast; :mod:`deepsphere_gen.bench`
loads its torch modules at first use).
"""
from __future__ import annotations

import sys

from ._argv import path_arg
from ._preflight import check_output_file
from ._exits import fail
from ..bench.timing import REPEATS_HELP

HELP = "Run the benchmark suites (deepsphere_gen/bench/suites), print a table and write JSON records."


def add_arguments(parser) -> None:
    parser.add_argument("--json", required=True, type=path_arg, metavar="PATH", help="where to write the records (JSON, atomically)")
    parser.add_argument("--quick", action="store_true", help="small cases and fewer repeats (minutes on a laptop)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="run only these suites")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help=f"timed calls per measurement (default 7, quick 3), {REPEATS_HELP}")
    parser.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed calls first (default 1)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--suite-dir", type=path_arg, default=None, metavar="DIR",
                        help="folder of *.py suites that replaces the installed ones (deepsphere_gen.bench.suites): "
                             "only its suites run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch  # here, not at the top: ``bench --help`` and argument errors stay fast

    from .. import bench as _bench  # (torch, as above)

    if args.threads is not None:
        if args.threads < 1:
            return fail("bench", f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:  # before any suite runs (the records are saved after every case)
        check_output_file(args.json, "--json")
    except ValueError as exc:
        return fail("bench", str(exc))
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    try:
        harness = _bench.Harness(args.device, repeats=repeats, warmup=args.warmup, quick=args.quick)
        suites = _bench.discover_suites(args.suite_dir)
    except ValueError as exc:
        return fail("bench", str(exc))
    if args.only:
        unknown = sorted(set(args.only) - set(suites))
        if unknown:
            return fail("bench", f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(suites) or 'none'}")
        suites = {k: v for k, v in suites.items() if k in args.only}
    if not suites:
        where = (f"--suite-dir {args.suite_dir} (its *.py files not starting with _; see benchmarks/README.md)"
                 if args.suite_dir is not None else "deepsphere_gen.bench.suites")
        return fail("bench", f"no benchmark suites found in {where}")
    def save(records):  # after every case: a long run interrupted keeps its figures
        return _bench.write_json(args.json, records, _bench.run_metadata(harness))

    records = _bench.run_suites(suites, harness, progress=not args.no_progress, after_case=save)
    print(_bench.format_table(records))
    path = save(records)
    print(f"wrote {len(records)} record(s) to {path}")
    failed = [r for r in records if "error" in r["extras"]]
    if failed:
        print(f"deepsphere-gen bench: {len(failed)} case(s) failed", file=sys.stderr)
        return 1
    return 0
