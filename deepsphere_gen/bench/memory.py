"""Peak memory of one call on the CPU (the process's resident set; see :mod:`deepsphere_gen.bench`
for the method and its fallback)."""
from __future__ import annotations

import re
import resource
import sys
from typing import Any, Callable

from .._memory import release_free_memory

#: bytes per MiB
MB = 1024.0**2


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


def status_mb(key: str) -> float | None:
    """A memory field of /proc/self/status (``VmRSS``: resident now, ``VmHWM``: its peak) in MiB; None where
    unknown."""
    kb = _proc_status_kb(key)
    return None if kb is None else kb * 1024 / MB


def resident_mb() -> float | None:
    """The process's resident set now (MiB), after returning freed heap pages to the system and a garbage
    collection (what a computation keeps); None where /proc/self/status is not available."""
    import gc

    gc.collect()
    release_free_memory()
    return status_mb("VmRSS")


def fresh_process_result(code: str, timeout_s: float, what: str) -> dict:
    """Run Python ``code`` in a fresh interpreter (this one's ``sys.path`` on its PYTHONPATH) and return the
    JSON it prints on its last line starting ``RESULT `` (a suite's whole-process peaks are then its own).
    RuntimeError naming ``what``, the exit status and the end of stderr if it fails or prints none."""
    import json
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(lines[-1][len("RESULT "):])


def cpu_memory_method() -> str:
    """Name of the CPU peak-memory method available in this process."""
    if _proc_status_kb("VmHWM") is not None and _reset_rss_peak():
        return "rss-hwm-reset"
    return "ru_maxrss-delta (lower bound)"


def cpu_peak_mb(fn: Callable[[], Any]) -> float:
    """Peak resident memory (MiB) that one call of ``fn`` adds to the process's resident set before it
    (:func:`cpu_memory_method` names the method; freed heap pages are returned to the system first).
    The call's return value is dropped only after the peak is read, so outputs count."""
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
    return max(peak - base, 0) * 1024 / MB


def process_timed(times: dict, key: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` wrapped to store its CPU time (``time.process_time``, s) in ``times[key]`` when called
    (for :func:`cpu_peak_mb`, which takes a function: the peak and the time of one call)."""
    import time

    def call():
        t0 = time.process_time()
        out = fn()
        times[key] = time.process_time() - t0
        return out

    return call
