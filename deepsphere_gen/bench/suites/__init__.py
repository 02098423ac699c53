"""Benchmark suites, one module each (found by :func:`deepsphere_gen.bench.discover_suites`)."""
