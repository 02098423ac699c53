"""The construction and filtering benchmark suites run and record what they claim (tiny cases)."""
import pytest

import deepsphere_gen.bench as _bench


def test_graph_build_suite_tiny_case():
    suite = _bench.discover_suites()["graph_build"]
    assert suite.cases(True) == [{"nside": 64, "k": 20}]
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "graph_build"
    (rec,) = suite.run({"nside": 4, "k": 8}, h.device, h)
    ex = rec["extras"]
    assert ex["npix"] == 192 and ex["nnz"] > 192 * 8 and ex["shares_index_arrays"]
    assert rec["peak_mem_mb"] > ex["import_rss_mb"] > 0 and ex["cpu_s"] > 0


def test_filtering_suite_tiny_case(monkeypatch):
    pytest.importorskip("ducc0")
    suite = _bench.discover_suites()["filtering"]
    monkeypatch.setattr(suite, "BUDGET_S", 0.0)
    monkeypatch.setattr(suite, "MIN_ROUNDS", 1)
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "filtering"
    recs = suite.run({"nside": 4}, h.device, h)
    assert [r["params"]["k"] for r in recs] == list(suite.KS)
    for r in recs:
        ex = r["extras"]
        assert r["peer"].startswith("ducc0") and r["peer_s"] > 0 and ex["healpy_s"] > 0
        assert ex["ducc0_vs_healpy_max_rel_diff"] < 1e-10  # the two harmonic filters agree


def test_graph_cached_build_suite_tiny_case(monkeypatch):
    suite = _bench.discover_suites()["graph_cached_build"]
    monkeypatch.setattr(suite, "CALLS", 1)
    assert suite.cases(True) == [{"nside": 64, "k": 20}]
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "graph_cached_build"
    (rec,) = suite.run({"nside": 8, "k": 8}, h.device, h)
    ex = rec["extras"]
    assert ex["lanczos_calls"] == 0 and ex["peer_lanczos_calls"] == 0  # lmax from the cache on both sides
    assert ex["save_s"] == 0 and ex["peer_save_s"] == 0 and ex["fill_s"] > 0 and ex["cache_npz_mb"] > 0
    assert ex["same_values"] and rec["max_rel_diff"] == 0 and len(ex["values_crc32"]) == 3  # nside 8, 4, 2
    assert ex["timed_calls"] == 1 and ex["build_s_calls"] == [ex["build_s"]]
    assert ex["values_calls"] == ex["peer_values_calls"] == 3  # small graphs: no stored values
    # other_s is the build's time less the timed sections: negative if a section were counted twice
    assert min(ex["other_s"], ex["peer_other_s"]) > -1e-6 and ex["load_pattern_s"] > 0 and ex["tensors_s"] > 0
