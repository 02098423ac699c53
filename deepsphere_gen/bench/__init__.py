"""Benchmarks behind ``deepsphere-gen bench``: :mod:`.harness` (timing, memory, records,
JSON), :mod:`.suites` (one module per suite, each ``NAME``, ``cases(quick)``,
``run(case, device, harness)``) and :mod:`.e3nn_basis` (e3nn's harmonics in our basis,
for the tensor-product peer).  Recorded runs live in ``benchmarks/results/``.
"""
