"""Benchmark records as data: the record and JSON layout (:data:`RECORD_FIELDS`, :data:`SCHEMA`), the
run's metadata, the plain-text table and the JSON file."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from pathlib import Path

import torch

from .._io import atomic_write_json, plain_json
from .._platform import cpu_description
from .timing import TIMING

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


#: environment variables that change CPU timings, copied into the JSON metadata
_ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD", "MALLOC_CONF")


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
            _fmt(r["speedup"], ".2f"),  # 0.66 (1.52x the peer's time), not 0.7 (a 1.5x goal needs >= 0.67)
            _fmt(r["max_rel_diff"], ".1e"),
            _fmt(r["peak_mem_mb"], ".0f"),
            _fmt(r["extras"].get("x_floor"), ".1f"),
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def jsonable(obj):
    """Plain JSON types for benchmark records (:func:`~deepsphere_gen._io.plain_json`): NaN/inf -> None, an
    object of another type a ValueError."""
    return plain_json(obj, unknown=None)


def run_metadata(harness, argv=None) -> dict:
    """Where and how the figures were measured by ``harness`` (a :class:`~deepsphere_gen.bench.Harness`)."""
    meta = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "quick": harness.quick,
        "device": str(harness.device),
        "repeats": harness.repeats,
        "warmup": harness.warmup,
        "timing": TIMING,
        "memory_method": harness.memory_method(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "machine": harness.machine_rates,
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
    }
    if harness.device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(harness.device)
    return meta


def write_json(path, records: list[dict], meta: dict) -> Path:
    """Write ``{"meta": ..., "records": [...]}`` atomically (temporary file + rename)."""
    doc = {"meta": jsonable(meta), "records": [jsonable(r) for r in records]}
    return atomic_write_json(path, doc)
