"""Benchmark suites, one module each (found by :func:`deepsphere_gen.bench.harness.discover_suites`)."""
