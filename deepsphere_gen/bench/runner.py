"""Suites found (:func:`discover_suites`) and run case by case (:func:`run_suites`); a failing case
becomes a record with an ``error`` extra instead of stopping the run."""
from __future__ import annotations

import gc
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from . import suites as suite_package
from .harness import Harness
from .records import RECORD_FIELDS, jsonable


def discover_suites(suite_dir=None) -> dict:
    """The benchmark suites: {NAME: module}, sorted by name.

    Default: every module of :mod:`deepsphere_gen.bench.suites` (installed with the package,
    so an ordinary install runs them).  ``suite_dir``: a folder of ``*.py`` suites
    (imported by path; they replace the installed ones), e.g. a suite under development; ValueError where it is not a folder,
    named as ``deepsphere-gen bench`` names it ("--suite-dir DIR does not exist").
    """
    if suite_dir is None:
        modules = [importlib.import_module(f"{suite_package.__name__}.{info.name}")
                   for info in pkgutil.iter_modules(suite_package.__path__) if not info.name.startswith("_")]
    else:
        suite_dir = Path(suite_dir)
        if not suite_dir.is_dir():
            what = "is a file, not a folder" if suite_dir.exists() else "does not exist"
            raise ValueError(f"--suite-dir {suite_dir} {what}")
        modules = []
        for path in sorted(suite_dir.glob("*.py")):
            if path.name.startswith("_"):
                continue
            modname = f"_deepsphere_gen_bench_{path.stem}"
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
            modules.append(module)
    suites = {}
    for module in modules:
        where = getattr(module, "__file__", None) or module.__name__  # the file to fix, not its import name
        for attr in ("NAME", "cases", "run"):
            if not hasattr(module, attr):
                raise ValueError(f"benchmark suite {where} lacks {attr} (see benchmarks/README.md)")
        if module.NAME in suites:
            raise ValueError(f"two benchmark suites are named {module.NAME!r}: {suites[module.NAME].__file__} and {where}")
        suites[module.NAME] = module
    return dict(sorted(suites.items()))


def _case_label(case: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items())


def run_suites(suites: dict, harness: Harness, progress: bool = True,
               after_case: Callable[[list], Any] | None = None) -> list[dict]:
    """Run every case of every suite; a failing case gives a record with an ``error`` extra.

    ``after_case(records)`` is called with the records so far after each case (e.g. to
    save partial results of a long run).
    """
    jobs = [(name, mod, case) for name, mod in suites.items() for case in mod.cases(harness.quick)]
    records: list[dict] = []
    bar = tqdm(jobs, desc="bench", unit="case", disable=None if progress else True, file=sys.stderr)
    for name, mod, case in bar:
        bar.set_postfix_str(f"{name} {_case_label(case)}"[:60])
        harness.suite = name
        try:
            out = mod.run(case, harness.device, harness)
            for rec in out:
                missing = [k for k in RECORD_FIELDS if k not in rec]
                if missing:
                    raise ValueError(f"suite {name} returned a record without {missing}; use harness.record")
            records.extend(out)
        except Exception as exc:  # one broken case must not lose the others' figures
            records.append({
                "suite": name, "name": name, "params": jsonable(case), "ours_s": None, "peer": None,
                "peer_s": None, "speedup": None, "max_rel_diff": None, "peak_mem_mb": None,
                "device": str(harness.device), "extras": {"error": f"{type(exc).__name__}: {exc}"},
            })
            tqdm.write(f"bench: {name} {_case_label(case)} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            harness.suite = ""
            gc.collect()
        if after_case is not None:
            after_case(records)
    return records
