"""CPU time of the steps of graph builds, for benchmarks: ``with build_steps() as steps: ...``.

Inside the block, every step of :func:`~deepsphere_gen.graph.build_graph` and of the
graphs' matrix exports is timed (``time.process_time``, exclusive of the steps it runs
inside it) into ``steps[name] = {"s": seconds, "calls": n}``; names: ``load_pattern`` (the
entry's stored matrix), ``load_values`` (stored float32 values: memory map and CRC),
``values`` (a values pass: weights, degrees, Laplacian entries), ``lanczos`` (the lmax
estimate), ``rescale`` (float32 ``2 L / lmax - I``), ``save`` (cache writes).  Outside a
block a step costs one list check.  One thread: steps run in other threads are not separated.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["build_steps", "step"]

_recorders: list[dict] = []
_running: list[list] = []  # [name, start] of the open steps, innermost last


@contextmanager
def build_steps():
    """Record the steps run inside the block (module docstring); yields the dict it fills."""
    steps: dict = {}
    _recorders.append(steps)
    try:
        yield steps
    finally:
        _recorders.remove(steps)


def _add(name: str, seconds: float, calls: int = 0) -> None:
    for steps in _recorders:
        entry = steps.setdefault(name, {"s": 0.0, "calls": 0})
        entry["s"] += seconds
        entry["calls"] += calls


@contextmanager
def step(name: str):
    """Time the block as step ``name`` (its parent step's clock paused meanwhile)."""
    if not _recorders:
        yield
        return
    now = time.process_time()
    if _running:
        _add(_running[-1][0], now - _running[-1][1])
    _running.append([name, now])
    _add(name, 0.0, 1)
    try:
        yield
    finally:
        now = time.process_time()
        _add(name, now - _running.pop()[1])
        if _running:
            _running[-1][1] = now
