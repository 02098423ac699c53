"""CPU time of the steps of graph builds, for benchmarks: ``with build_steps() as steps: ...``.

Inside the block, every step of :func:`~deepsphere_gen.graph.build_graph` and of the
graphs' matrix exports run by the same thread is timed (``time.process_time``, exclusive of
the steps it runs inside it) into ``steps[name] = {"s": seconds, "calls": n}``; names:
``load_pattern`` (the entry's stored matrix), ``load_values`` (stored float32 values: memory
map and CRC), ``values`` (a values pass: weights, degrees, Laplacian entries), ``lanczos``
(the lmax estimate), ``rescale`` (float32 ``2 L / lmax - I``), ``save`` (cache writes).  The
names and the split are diagnostics for benchmarks, not a stable contract: they follow the
code.  Outside a block a step costs one attribute check.  The recorders and the stack of
open steps are per thread (``threading.local``), so builds in other threads neither enter
a block's dict nor break its nesting; ``process_time`` is the process's CPU time, so what
other threads run meanwhile is counted in the step that is open.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

__all__ = ["build_steps", "step"]


class _State(threading.local):
    def __init__(self):
        self.recorders: list[dict] = []
        self.running: list[list] = []  # [name, start] of the open steps, innermost last


_state = _State()


@contextmanager
def build_steps():
    """Record the steps this thread runs inside the block (module docstring); yields the dict it fills."""
    steps: dict = {}
    _state.recorders.append(steps)
    try:
        yield steps
    finally:  # by identity (list.remove compares contents: an inner block's equal dict would go instead)
        del _state.recorders[next(i for i, r in enumerate(_state.recorders) if r is steps)]


def _add(name: str, seconds: float, calls: int = 0) -> None:
    for steps in _state.recorders:
        entry = steps.setdefault(name, {"s": 0.0, "calls": 0})
        entry["s"] += seconds
        entry["calls"] += calls


@contextmanager
def step(name: str):
    """Time the block as step ``name`` (its parent step's clock paused meanwhile)."""
    state = _state
    if not state.recorders:
        yield
        return
    running = state.running
    now = time.process_time()
    if running:
        _add(running[-1][0], now - running[-1][1])
    running.append([name, now])
    _add(name, 0.0, 1)
    try:
        yield
    finally:
        now = time.process_time()
        _add(name, now - running.pop()[1])
        if running:
            running[-1][1] = now
