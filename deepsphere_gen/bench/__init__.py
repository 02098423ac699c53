"""Benchmarks behind ``deepsphere-gen bench`` (a top layer, beside the experiments).

| module | holds |
| --- | --- |
| :mod:`.harness` | timing, memory, roofline floors, records, JSON output, suite discovery |
| :mod:`.suites` | one module per suite, each with ``NAME``, ``cases(quick)``, ``run(case, device, harness)`` |
| :mod:`.e3nn_basis` | e3nn's real harmonics in our basis (for the tensor-product peer) |

Recorded runs live in ``benchmarks/results/``.
"""
