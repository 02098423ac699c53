"""Benchmark harness behind ``deepsphere-gen bench``: suites, timing, memory, records, JSON.

A *suite* is a module of :mod:`deepsphere_gen.bench.suites` (see ``benchmarks/README.md``) with

- ``NAME``: short name used by ``--only``;
- ``cases(quick: bool) -> list[dict]``: JSON-serialisable parameters of each case;
- ``run(case: dict, device: torch.device, harness: Harness) -> list[dict]``: the records
  of one case, each made by :meth:`Harness.record`.

Timing: ``warmup`` untimed calls, then ``repeats`` timed calls (CUDA synchronised around
each); the reported time is the median.  Peak memory of one call, beyond what was
allocated before it:

- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
  ``memory_allocated()`` before the call (tensors only, not the caching allocator's slack);
- CPU: the process resident-set high-water mark (``VmHWM`` in ``/proc/self/status``),
  reset before the call by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0),
  minus the resident set before the call, measured after ``gc.collect()`` and glibc's
  ``malloc_trim(0)`` so that freed heap pages are not silently reused.  Where the reset is
  not allowed, the ``getrusage`` maximum-RSS delta is used instead (a lower bound: it is
  0 unless the call exceeds the earlier peak of the process).  ``tracemalloc`` is not
  used: it does not see torch's allocations.
"""
from __future__ import annotations

import datetime as _dt
import gc
import importlib
import importlib.util
import pkgutil
import math
import os
import platform
import re
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from .._io import atomic_write_json
from .._memory import release_free_memory
from .._validation import check_positive_int
from . import suites as suite_package

__all__ = [
    "one_torch_thread",
    "SCHEMA",
    "RECORD_FIELDS",
    "Timing",
    "Harness",
    "max_rel_diff",
    "optional_peer",
    "roofline_floor",
    "measure_machine",
    "discover_suites",
    "run_suites",
    "run_metadata",
    "cpu_memory_method",
    "format_table",
    "write_json",
]

#: identifier of the JSON document layout written by :func:`write_json`.
SCHEMA = "deepsphere_gen.bench/1"

#: keys of every record, in table order (``extras`` holds free-form suite figures).
RECORD_FIELDS = (
    "suite",
    "name",
    "params",
    "ours_s",
    "peer",
    "peer_s",
    "speedup",
    "max_rel_diff",
    "peak_mem_mb",
    "device",
    "extras",
)

_MB = 1024.0**2

#: environment variables that change CPU timings, copied into the JSON metadata
_ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD", "MALLOC_CONF")


@dataclass
class Timing:
    """Times (seconds) of the timed calls of :meth:`Harness.time`; ``median`` is the figure reported."""

    times: list[float]
    warmup: int
    median: float = field(init=False)

    def __post_init__(self):
        if not self.times:
            raise ValueError("a timing needs at least one timed call")
        self.median = float(statistics.median(self.times))

    @property
    def min(self) -> float:
        return float(min(self.times))


# ----------------------------------------------------------------------------- memory


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+)\s+kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _ru_maxrss_kb() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, kB on Linux


def cpu_memory_method() -> str:
    """Name of the CPU peak-memory method available in this process."""
    if _proc_status_kb("VmHWM") is not None and _reset_rss_peak():
        return "rss-hwm-reset"
    return "ru_maxrss-delta (lower bound)"


# ----------------------------------------------------------------------------- harness


class Harness:
    """Times calls, measures their peak memory and makes records.

    Parameters
    ----------
    device : "cpu" or "cuda" (or a torch.device); CUDA must be available.
    repeats : timed calls per measurement (median reported).
    warmup : untimed calls before them.
    quick : the run is a quick one (suites read it through ``cases(quick)``; the machine
        rates use smaller arrays).
    timer : clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        device="cpu",
        repeats: int = 5,
        warmup: int = 1,
        quick: bool = False,
        timer: Callable[[], float] = time.perf_counter,
    ):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available (torch {torch.__version__})"
            )
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {device!r}")
        check_positive_int(repeats, "repeats")
        if int(warmup) != warmup or warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
        self.repeats, self.warmup, self.quick = int(repeats), int(warmup), bool(quick)
        self.timer = timer
        self.suite = ""  # set by run_suites while a suite runs
        self._machine: dict | None = None
        self._on_timers: dict = {}  # harnesses of with_timer, one per clock

    # -- timing -------------------------------------------------------------------------
    def sync(self) -> None:
        """Wait for queued device work (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def with_timer(self, timer: Callable[[], float]) -> "Harness":
        """This harness's settings (device, repeats, warm-up, quick, current suite) timing on
        ``timer``: its :meth:`time`, :meth:`measure` and :meth:`machine` rates use that clock
        (e.g. ``time.process_time`` for a suite that reports CPU time).  One per clock and
        harness, so the rates are measured once per run; ``self`` where ``timer`` is its own."""
        if timer is self.timer:
            return self
        other = self._on_timers.get(timer)
        if other is None:
            other = self._on_timers[timer] = Harness(self.device, self.repeats, self.warmup, self.quick, timer)
        other.suite = self.suite
        return other

    def time(self, fn: Callable[[], Any], repeats: int | None = None, warmup: int | None = None,
             budget_s: float | None = None, min_repeats: int = 1) -> Timing:
        """Call ``fn`` ``warmup`` times untimed, then up to ``repeats`` times timed.

        ``budget_s``: stop once the timed calls have used this many seconds, after at least
        ``min_repeats`` of them (for slow peers).
        """
        repeats = self.repeats if repeats is None else check_positive_int(repeats, "repeats")
        warmup = self.warmup if warmup is None else int(warmup)
        for _ in range(warmup):
            fn()
        self.sync()
        times: list[float] = []
        for _ in range(repeats):
            t0 = self.timer()
            fn()
            self.sync()
            times.append(self.timer() - t0)
            if budget_s is not None and len(times) >= min_repeats and sum(times) >= budget_s:
                break
        return Timing(times, warmup)

    # -- memory -------------------------------------------------------------------------
    def memory_method(self) -> str:
        """How :meth:`peak_memory_mb` measures on this device (written to the JSON metadata)."""
        if self.device.type == "cuda":
            return "cuda-max-memory-allocated"
        return cpu_memory_method()

    def peak_memory_mb(self, fn: Callable[[], Any]) -> float:
        """Peak memory (MiB) that one call of ``fn`` adds to what was allocated before it.

        The call's return value is dropped only after the peak is read, so outputs count.
        """
        gc.collect()
        if self.device.type == "cuda":
            self.sync()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            out = fn()
            self.sync()
            peak = torch.cuda.max_memory_allocated(self.device)
            del out
            return max(peak - base, 0) / _MB
        release_free_memory()
        if _proc_status_kb("VmHWM") is not None and _reset_rss_peak():
            base = _proc_status_kb("VmRSS")
            out = fn()
            peak = _proc_status_kb("VmHWM")
        else:
            base = _ru_maxrss_kb()
            out = fn()
            peak = _ru_maxrss_kb()
        del out
        return max(peak - base, 0) * 1024 / _MB

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float, float]:
        """One call of ``fn``: (its output, seconds, peak MiB as in :meth:`peak_memory_mb`).

        For a first call (warm-up) of an expensive peer whose output is compared.
        """
        box = {}

        def timed():
            t0 = self.timer()
            box["out"] = fn()
            self.sync()
            box["s"] = self.timer() - t0

        mem = self.peak_memory_mb(timed)
        return box["out"], box["s"], mem

    # -- machine rates ------------------------------------------------------------------
    def machine(self) -> dict:
        """Memory bandwidth and GEMM rate of this device, measured once per harness."""
        if self._machine is None:
            self._machine = measure_machine(self.device, quick=self.quick, timer=self.timer)
        return self._machine

    # -- records ------------------------------------------------------------------------
    def record(
        self,
        name: str,
        params: dict,
        ours_s: float,
        *,
        peer: str | None = None,
        peer_s: float | None = None,
        max_rel_diff: float | None = None,
        peak_mem_mb: float | None = None,
        **extras,
    ) -> dict:
        """One measurement as a JSON-ready dict with the keys :data:`RECORD_FIELDS`.

        ``speedup = peer_s / ours_s`` (None without a peer time); ``extras`` are free-form
        JSON-serialisable figures (e.g. ``x_floor``, ``peer_config``).
        """
        if not isinstance(name, str) or not name:
            raise ValueError("a record needs a non-empty name")
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict, got {type(params).__name__}")
        ours_s = float(ours_s)
        if not ours_s > 0 or not math.isfinite(ours_s):
            raise ValueError(f"ours_s must be a positive time in seconds, got {ours_s}")
        if peer_s is not None and peer is None:
            raise ValueError("peer_s given without naming the peer")
        peer_s = None if peer_s is None else float(peer_s)
        rec = {
            "suite": self.suite,
            "name": name,
            "params": _jsonable(params),
            "ours_s": ours_s,
            "peer": peer,
            "peer_s": peer_s,
            "speedup": None if peer_s is None else peer_s / ours_s,
            "max_rel_diff": None if max_rel_diff is None else float(max_rel_diff),
            "peak_mem_mb": None if peak_mem_mb is None else float(peak_mem_mb),
            "device": str(self.device),
            "extras": _jsonable(extras),
        }
        return rec


@contextmanager
def one_torch_thread():
    """Run the block with one torch CPU thread, restoring the caller's count after it
    (suites of small kernels, whose per-core speed is what they compare)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def optional_peer(module: str):
    """Import an optional benchmark peer: ``(module, None)``, or ``(None, reason)`` when it is
    not installed (or fails to import).  Suites then record ``peer_unavailable=reason`` with
    their own figures instead of failing the case (``pip install -e ".[bench]"`` installs
    every peer)."""
    try:
        return importlib.import_module(module), None
    except Exception as exc:  # ImportError, or a broken install of the peer
        return None, f"{module}: {type(exc).__name__}: {exc}"


def max_rel_diff(ours, peer) -> float:
    """max |ours - peer| / max |peer| over tensors (or matching sequences of tensors).

    Normalised by the peer's largest magnitude (not element-wise, which blows up near
    zeros); for a sequence (e.g. output and gradients), the worst of the pairs.
    """
    if torch.is_tensor(ours):
        ours, peer = [ours], [peer]
    if len(ours) != len(peer):
        raise ValueError(f"cannot compare {len(ours)} outputs with {len(peer)}")
    worst = 0.0
    for a, b in zip(ours, peer):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"shape mismatch: ours {tuple(a.shape)} vs peer {tuple(b.shape)}")
        a, b = a.detach().double(), b.detach().to(a.device).double()
        scale = float(b.abs().max()) if b.numel() else 0.0
        diff = float((a - b).abs().max()) if b.numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def roofline_floor(phases: Sequence[tuple[float, float]], machine: dict) -> float:
    """Lower bound (seconds) of a sequence of kernels given as (bytes moved, flops) pairs.

    Each kernel takes at least max(bytes / bandwidth, flops / GEMM rate) and kernels do
    not overlap: floor = sum over kernels.
    """
    bw = machine["bandwidth_gbs"] * 1e9
    rate = machine["gemm_gflops"] * 1e9
    return float(sum(max(b / bw, f / rate) for b, f in phases))


def measure_machine(device="cpu", quick: bool = False, timer=time.perf_counter) -> dict:
    """Measure memory bandwidth (copy and triad, GB/s) and float32 GEMM rate (GFLOP/s).

    Copy ``b <- a`` counts 2 x size bytes, triad ``a <- b + s c`` 3 x size; the bandwidth
    used for rooflines is the better of the two (best of several runs); GEMM: square
    float32 matmul, 2 n^3 flops, best of several runs.  Arrays: 64 MiB each on CPU
    (16 MiB with ``quick``), 512 MiB on CUDA.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def best(fn, reps):
        fn()
        sync()
        ts = []
        for _ in range(reps):
            t0 = timer()
            fn()
            sync()
            ts.append(timer() - t0)
        return min(ts)

    n = (512 if cuda else (16 if quick else 64)) * 1024 * 1024 // 4
    a = torch.rand(n, device=device)
    b = torch.rand(n, device=device)
    c = torch.rand(n, device=device)
    reps = 5 if quick else 10
    t_copy = best(lambda: b.copy_(a), reps)
    t_triad = best(lambda: torch.add(b, c, alpha=3.0, out=a), reps)
    copy_gbs = 2 * 4 * n / t_copy / 1e9
    triad_gbs = 3 * 4 * n / t_triad / 1e9
    a = b = c = None  # free the 3 arrays before the GEMM (the lambdas above hold names, not arrays)
    m = 4096 if cuda else (768 if quick else 1536)
    x = torch.rand(m, m, device=device)
    y = torch.rand(m, m, device=device)
    t_mm = best(lambda: torch.mm(x, y), 3 if quick else 5)
    return {
        "bandwidth_gbs": max(copy_gbs, triad_gbs),
        "copy_gbs": copy_gbs,
        "triad_gbs": triad_gbs,
        "gemm_gflops": 2.0 * m**3 / t_mm / 1e9,
        "gemm_n": m,
        "array_mb": 4 * n / _MB,
        "threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------------------- suites


def discover_suites(suite_dir=None) -> dict:
    """The benchmark suites: {NAME: module}, sorted by name.

    Default: every module of :mod:`deepsphere_gen.bench.suites` (installed with the package,
    so an ordinary install runs them).  ``suite_dir``: a folder of extra ``*.py`` suites
    (imported by path), e.g. a suite under development.
    """
    if suite_dir is None:
        modules = [importlib.import_module(f"{suite_package.__name__}.{info.name}")
                   for info in pkgutil.iter_modules(suite_package.__path__) if not info.name.startswith("_")]
    else:
        suite_dir = Path(suite_dir)
        if not suite_dir.is_dir():
            raise ValueError(f"benchmark suite directory {str(suite_dir)!r} does not exist (pass --suite-dir)")
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
        for attr in ("NAME", "cases", "run"):
            if not hasattr(module, attr):
                raise ValueError(f"benchmark suite {module.__name__} lacks {attr} (see benchmarks/README.md)")
        if module.NAME in suites:
            raise ValueError(f"two benchmark suites are named {module.NAME!r}")
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
    bar = tqdm(jobs, desc="bench", unit="case", disable=not progress, file=sys.stderr)
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
                "suite": name, "name": name, "params": _jsonable(case), "ours_s": None, "peer": None,
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


# ----------------------------------------------------------------------------- output


def _fmt_s(t) -> str:
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def _fmt(v, spec) -> str:
    return "-" if v is None else format(v, spec)


def format_table(records: list[dict]) -> str:
    """Plain-text table: one line per record (errors shown as such)."""
    head = ("suite", "name", "params", "ours", "peer", "peer time", "speedup", "max rel diff", "peak MB", "x floor")
    rows = [head]
    for r in records:
        err = r.get("extras", {}).get("error")
        params = " ".join(f"{k}={v}" for k, v in r["params"].items())
        if err:
            rows.append((r["suite"], r["name"], params, "ERROR", err[:60], "", "", "", "", ""))
            continue
        rows.append((
            r["suite"],
            r["name"],
            params,
            _fmt_s(r["ours_s"]),
            r["peer"] or ("unavailable" if r["extras"].get("peer_unavailable") else "-"),
            _fmt_s(r["peer_s"]),
            _fmt(r["speedup"], ".1f"),
            _fmt(r["max_rel_diff"], ".1e"),
            _fmt(r["peak_mem_mb"], ".0f"),
            _fmt(r["extras"].get("x_floor"), ".1f"),
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _jsonable(obj):
    """Plain JSON types: numpy/torch scalars -> numbers, tuples -> lists, NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if torch.is_tensor(obj) and obj.numel() == 1:
        obj = obj.item()
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            pass
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    raise ValueError(f"benchmark records must be JSON-serialisable; got {type(obj).__name__}: {obj!r}")


def run_metadata(harness: Harness, argv=None) -> dict:
    """Where and how the figures were measured."""
    meta = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "quick": harness.quick,
        "device": str(harness.device),
        "repeats": harness.repeats,
        "warmup": harness.warmup,
        "timing": "median of the timed calls after the warm-up calls",
        "memory_method": harness.memory_method(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": harness._machine,
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
    }
    if harness.device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(harness.device)
    return meta


def write_json(path, records: list[dict], meta: dict) -> Path:
    """Write ``{"meta": ..., "records": [...]}`` atomically (temporary file + rename)."""
    doc = {"meta": _jsonable(meta), "records": [_jsonable(r) for r in records]}
    return atomic_write_json(path, doc)
