"""What the suites share to compare with a peer: one torch thread for a block, optional peers imported
without failing the run, ours and the peers timed in interleaved rounds, the relative difference of outputs."""
from __future__ import annotations

import importlib
import time
from contextlib import contextmanager

import numpy as np
import torch

#: rounds of the interleaved timing where every side's call is under 1 ms (see :func:`paired`)
MICRO_ROUNDS = 30


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


def first_call(harness, fn) -> tuple:
    """(output, wall seconds) of a first call of ``fn`` (engines and tables built, the device synchronised):
    the once-seconds :func:`paired` takes."""
    t0 = time.perf_counter()
    out = fn()
    harness.sync()
    return out, time.perf_counter() - t0


def paired(harness, fns: dict) -> dict:
    """(Best, median) time of one call of each ``fns[name] = (fn, first call's seconds)``,
    timed in interleaved rounds (ours, then each peer, round after round), so that every side
    sees the same machine load.  The best round is the figure reported: on a shared machine
    it is the least disturbed one (medians moved by up to 2x between runs).  CPU time
    (``time.process_time``, all threads': per-core figures need one thread) on CPU, wall time on CUDA.  Calls shorter than 1 ms are
    timed in loops of ~1 ms (per-call time reported): single calls of tens of microseconds
    measure the scheduler more than the code; calls under 50 ms get one untimed call before
    each timed loop (warm caches for every side).  Rounds: ``harness.repeats`` at most, or
    :data:`MICRO_ROUNDS` where every side's call is under 1 ms (sht suite, MW L = 32 synthesis / ducc0, 6
    repeats at load 3.6: best of 7 ~5 ms loops 1.30-1.37x, best of 35 ~1 ms loops 1.30-1.31x),
    stopped after 3 once 4 s of timed calls are spent."""
    clock = time.process_time if harness.device.type == "cpu" else time.perf_counter
    loops = {name: (fn, *(_calls_per_ms(harness, fn, clock) if once < 0.05 else (1, once)))
             for name, (fn, once) in fns.items()}
    rounds = max(harness.repeats, MICRO_ROUNDS) if all(t < 0.001 for _, _, t in loops.values()) else harness.repeats
    times = {name: [] for name in fns}
    spent = 0.0
    for r in range(rounds):
        for name, (fn, inner, once) in loops.items():
            if once < 0.05:  # one untimed call: the previous side (e.g. torch-harmonics' L^3 table) evicted the caches
                fn()
            t0 = clock()
            for _ in range(inner):
                fn()
            harness.sync()
            dt = clock() - t0
            spent += dt
            times[name].append(dt / inner)
        if r >= 2 and spent > 4.0:
            break
    return {name: (float(np.min(t)), float(np.median(t))) for name, t in times.items()}


def _calls_per_ms(harness, fn, clock) -> tuple[int, float]:
    """(Calls in a ~1 ms loop (1 to 1000), seconds of one call) of ``fn``, from warm calls (a
    first call, which builds engines and tables, says little about the next ones)."""
    fn()
    harness.sync()
    n, t0 = 0, clock()
    while True:
        fn()
        harness.sync()
        n, dt = n + 1, clock() - t0
        if dt >= 0.001 or n >= 1000:
            return min(1000, max(1, round(n * 0.001 / max(dt, 1e-9)))), dt / n
