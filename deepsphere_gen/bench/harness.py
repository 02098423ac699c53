"""The :class:`Harness` a suite's ``run`` receives: times calls (median of the timed calls after the
warm-up), measures their peak memory, knows the device's rates and makes records."""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._devices import check_device
from .._validation import check_nonnegative_int, check_positive_int
from .machine import measure_machine
from .memory import MB, cpu_memory_method, cpu_peak_mb
from .records import jsonable


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


class Harness:
    """Times calls, measures their peak memory and makes records.

    Parameters
    ----------
    device : "cpu", "cuda" or "cuda:i" (or a torch.device); one this machine lacks is refused by
        :func:`~deepsphere_gen._devices.check_device` (its message lists the devices here).
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
        self.device = torch.device(check_device(device))
        if self.device.type not in ("cpu", "cuda"):  # present here, but not one the clock and memory peak know
            raise ValueError(f"the benchmark harness times on cpu or cuda only (it waits for CUDA's queue and reads "
                             f"CUDA's or the process's memory peak), got {device!r}")
        self.repeats = check_positive_int(repeats, "repeats")
        self.warmup, self.quick = check_nonnegative_int(warmup, "warmup"), bool(quick)
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
        warmup = self.warmup if warmup is None else check_nonnegative_int(warmup, "warmup")
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
            return max(peak - base, 0) / MB
        return cpu_peak_mb(fn)

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

    @property
    def machine_rates(self) -> dict | None:
        """The rates :meth:`machine` measured, None where no suite asked for them (nothing measured)."""
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
            "params": jsonable(params),
            "ours_s": ours_s,
            "peer": peer,
            "peer_s": peer_s,
            "speedup": None if peer_s is None else peer_s / ours_s,
            "max_rel_diff": None if max_rel_diff is None else float(max_rel_diff),
            "peak_mem_mb": None if peak_mem_mb is None else float(peak_mem_mb),
            "device": str(self.device),
            "extras": jsonable(extras),
        }
        return rec
