"""Cached model build suite: ``DeepSphereClassifier(nside, 1)`` from a warm graph cache, where its time goes.

Case (nside 256 and 1024, k = 20; quick: 64): a first fresh process fills a temporary graph
cache (``fill_s``, CPU time, and the bytes the cache then holds: ``cache_npz_mb`` for the
kNN patterns, ``cache_values_mb`` for the float32 rescaled values kept for graphs over 16M
non-zeros); then, each in a fresh process, one torch thread, CPU time (``time.process_time``):

- ``ours``: the cached build as the library does it (lmax from the entry, large graphs' values
  memory-mapped from it, CRC-checked);
- ``peer`` ("values recomputed"): the same build with the stored values neither read nor
  written (``DEEPSPHERE_GEN_GRAPH_CACHE_VALUES=0``), i.e. what every cached build did before
  the values were cached: one values pass (kernel weights from the pixel coordinates,
  degrees, float32 rescaling) per graph.

Each side's time is split (:func:`deepsphere_gen.graph.build_steps`: exclusive CPU times,
seconds; ``other_s`` is the rest of the build:
the layers' parameters, pooling, Python): ``load_pattern_s`` (the entry's npz: index arrays),
``load_values_s`` (memory map + CRC of the stored values), ``values_s`` (values passes),
``rescale_s`` (float32 ``2 L / lmax - I``), ``lanczos_s`` (and ``lanczos_calls``: 0 expected
from a warm cache), ``save_s`` (cache writes: none expected), ``tensors_s`` (the layers'
``Laplacian.from_graph``: the CSR tensors and their checks).  ``peak_mb`` / ``kept_mb``: what
the build adds to the resident set (:func:`deepsphere_gen.bench.memory.cpu_peak_mb`; memory-
mapped values count once touched).  ``values_crc32``: CRC-32 of each level's float32 Laplacian
values; ``max_rel_diff`` is 0 when every call of both sides gave the same bits.  :data:`CALLS` calls per
side, each in its own process, alternated; a side's figures are those of its fastest call
(``build_s_calls`` / ``peer_build_s_calls``: all of them).
"""
from __future__ import annotations

import os
import tempfile

from ..memory import fresh_process_result

NAME = "graph_cached_build"

#: a side's process is stopped after this many seconds
TIMEOUT_S = 900

#: fresh processes per side, alternated (ours, peer, ours, ...); the faster call of each side is recorded
CALLS = 2

SECTIONS = ("load_pattern", "load_values", "values", "rescale", "lanczos", "save", "tensors")


def cases(quick: bool) -> list[dict]:
    """See the module docstring."""
    return [{"nside": 64, "k": 20}] if quick else [{"nside": 256, "k": 20}, {"nside": 1024, "k": 20}]


def child(nside: int, k: int, cache_dir: str, side: str) -> dict:
    """One process of the case: ``side`` "fill", "ours" or "peer" (see the module docstring)."""
    import time
    from pathlib import Path

    import torch

    from deepsphere_gen._io import array_crc32
    from deepsphere_gen.bench.memory import cpu_peak_mb, process_timed, resident_mb
    from deepsphere_gen.graph import VALUES_ENV_VAR, build_steps
    from deepsphere_gen.models import DeepSphereClassifier
    from deepsphere_gen.nn import ChebConv, Laplacian

    torch.set_num_threads(1)
    build = (lambda: DeepSphereClassifier(nside, 1, k=k, cache_dir=cache_dir))
    if side == "fill":
        t0 = time.process_time()
        build()
        files = list((Path(cache_dir) / "graphs").iterdir())
        return {"fill_s": time.process_time() - t0,
                "cache_npz_mb": sum(f.stat().st_size for f in files if f.suffix == ".npz") / 2**20,
                "cache_values_mb": sum(f.stat().st_size for f in files if f.suffix == ".npy") / 2**20}
    if side == "peer":
        os.environ[VALUES_ENV_VAR] = "0"  # the stored values neither read nor written
    tensors = [0.0]
    from_graph = Laplacian.from_graph

    def timed_from_graph(*args, **kwargs):  # the layers' tensors: from_graph less the graph steps inside it
        t0, s0 = time.process_time(), sum(v["s"] for v in steps.values())
        try:
            return from_graph(*args, **kwargs)
        finally:
            tensors[0] += time.process_time() - t0 - (sum(v["s"] for v in steps.values()) - s0)

    Laplacian.from_graph = staticmethod(timed_from_graph)
    r0, box, t = resident_mb(), {}, {}

    with build_steps() as steps:
        peak = cpu_peak_mb(process_timed(t, "build_s", lambda: box.setdefault("model", build())))
    crcs, seen = [], set()
    for conv in box["model"].modules():
        if isinstance(conv, ChebConv) and id(conv.laplacian) not in seen:
            seen.add(id(conv.laplacian))
            crcs.append([int(conv.laplacian.shape[0]), array_crc32(conv.laplacian.values().numpy())])
    out = {f"{s}_s": steps.get(s, {"s": 0.0})["s"] for s in SECTIONS if s != "tensors"}
    out["tensors_s"] = tensors[0]
    out["other_s"] = t["build_s"] - sum(out.values())
    return {"build_s": t["build_s"], **out, "lanczos_calls": steps.get("lanczos", {"calls": 0})["calls"],
            "values_calls": steps.get("values", {"calls": 0})["calls"], "peak_mb": peak,
            "kept_mb": resident_mb() - r0, "values_crc32": crcs}


def run(case: dict, device, harness) -> list[dict]:
    """One case in fresh processes (see the module docstring)."""
    if str(device) != "cpu":
        raise ValueError("the graph_cached_build suite measures CPU construction")
    nside, k = int(case["nside"]), int(case["k"])

    def side(cache_dir, name):
        code = ("import json; from deepsphere_gen.bench.suites.graph_cached_build import child; "
                f"print('RESULT ' + json.dumps(child({nside}, {k}, {cache_dir!r}, {name!r})))")
        return fresh_process_result(code, TIMEOUT_S, f"{name} process")

    with tempfile.TemporaryDirectory() as cache_dir:
        fill = side(cache_dir, "fill")
        runs = [side(cache_dir, name) for _ in range(CALLS) for name in ("ours", "peer")]
    ours = min(runs[0::2], key=lambda r: r["build_s"])
    peer = min(runs[1::2], key=lambda r: r["build_s"])
    same = all(r["values_crc32"] == ours["values_crc32"] for r in runs)
    extras = dict(torch_threads=1, omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
                  clock="process_time", timed_calls=CALLS, same_values=same, **fill, **ours,
                  build_s_calls=[r["build_s"] for r in runs[0::2]], peer_build_s_calls=[r["build_s"] for r in runs[1::2]],
                  **{f"peer_{key}": v for key, v in peer.items() if key != "values_crc32"})
    return [harness.record("DeepSphereClassifier cached build", case, ours["build_s"],
                           peer="values recomputed", peer_s=peer["build_s"], max_rel_diff=0.0 if same else None,
                           peak_mem_mb=ours["peak_mb"], **extras)]
