"""Benchmarks behind ``deepsphere-gen bench`` (a top layer, beside the experiments).

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

| module | holds |
| --- | --- |
| :mod:`.harness` | :class:`Harness` (timing, peak memory, records) and :class:`Timing` |
| :mod:`.memory` | the CPU peak-memory method, a /proc/self/status field (`status_mb`), the resident set now (`resident_mb`), a suite side run in a fresh interpreter (`fresh_process_result`) |
| :mod:`.machine` | bandwidth and GEMM rates, roofline floors |
| :mod:`.peers` | one torch thread, optional peers, interleaved timing (`paired`), relative differences |
| :mod:`.runner` | suite discovery and the run over every case |
| :mod:`.records` | record and JSON layout, metadata, the table, the JSON file |
| :mod:`.timing` | what each suite's times are (torch-free: the command's ``--help`` reads it) |
| :mod:`.suites` | one module per suite, each with ``NAME``, ``cases(quick)``, ``run(case, device, harness)`` |
| :mod:`.e3nn_basis` | e3nn's real harmonics in our basis (for the tensor-product peer) |

Recorded runs live in ``benchmarks/results/``.
"""
from .._lazy import lazy_exports

#: the public names loaded at first use (:func:`deepsphere_gen._lazy.lazy_exports`): they import torch,
#: which the ``bench`` command's ``--help``, reading :mod:`.timing`, does without
_PUBLIC = {
    "harness": ("Harness", "Timing"),
    "machine": ("measure_machine", "roofline_floor"),
    "memory": ("cpu_memory_method",),
    "peers": ("one_torch_thread", "max_rel_diff", "optional_peer", "paired"),
    "records": ("SCHEMA", "RECORD_FIELDS", "run_metadata", "format_table", "write_json"),
    "runner": ("discover_suites", "run_suites"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _PUBLIC)
