"""The benchmark harness and ``deepsphere-gen bench`` (no timing assertions)."""
from __future__ import annotations

import json
import textwrap

import pytest
import torch

import deepsphere_gen.bench as _bench
from deepsphere_gen.cli import main

TRIVIAL_SUITE = textwrap.dedent(
    '''
    import torch

    NAME = "trivial"

    def cases(quick):
        return [{"n": 8}] if quick else [{"n": 8}, {"n": 16}]

    def run(case, device, harness):
        x = torch.arange(case["n"], dtype=torch.float64, device=device)
        t = harness.time(lambda: x * 2)
        tp = harness.time(lambda: x + x)
        mem = harness.peak_memory_mb(lambda: torch.ones(1 << 20, device=device))
        return [harness.record("double", case, t.median, peer="add", peer_s=tp.median,
                               max_rel_diff=_bench_diff(x * 2, x + x), peak_mem_mb=mem,
                               timed_calls=len(t.times))]

    def _bench_diff(a, b):
        from deepsphere_gen.bench import max_rel_diff
        return max_rel_diff(a, b)
    '''
)

BROKEN_SUITE = textwrap.dedent(
    '''
    NAME = "broken"

    def cases(quick):
        return [{"n": 1}]

    def run(case, device, harness):
        raise RuntimeError("deliberate failure")
    '''
)


class FakeClock:
    """Advances by a scripted duration on each call made during a timed call."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0
        self.started = False

    def __call__(self):
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def test_time_discards_warmup_and_reports_median():
    calls = []
    clock = FakeClock([5.0, 1.0, 9.0, 3.0, 2.0])
    h = _bench.Harness("cpu", repeats=5, warmup=2, timer=clock)
    t = h.time(lambda: calls.append(1))
    assert len(calls) == 7  # 2 warm-up + 5 timed
    assert t.times == [5.0, 1.0, 9.0, 3.0, 2.0]
    assert t.median == 3.0 and t.min == 1.0 and t.warmup == 2


def test_time_even_count_median_and_budget():
    h = _bench.Harness("cpu", repeats=4, warmup=0, timer=FakeClock([4.0, 1.0, 2.0, 8.0]))
    assert h.time(lambda: None).median == 3.0
    # budget: stops once spent, after min_repeats calls
    h = _bench.Harness("cpu", repeats=10, warmup=0, timer=FakeClock([10.0] * 10))
    assert len(h.time(lambda: None, budget_s=1.0, min_repeats=3).times) == 3
    assert len(h.time(lambda: None, budget_s=25.0).times) == 3
    assert len(h.time(lambda: None, budget_s=0.0).times) == 1


def test_with_timer_times_on_its_clock_with_the_same_settings(monkeypatch):
    rates = []
    monkeypatch.setattr("deepsphere_gen.bench.harness.measure_machine",  # where Harness.machine looks it up
                        lambda device, quick, timer: rates.append(timer) or {"r": timer})
    h = _bench.Harness("cpu", repeats=3, warmup=1, quick=True)
    h.suite = "s"
    clock = FakeClock([2.0, 4.0, 6.0])
    t = h.with_timer(clock)
    assert t is not h and t is h.with_timer(clock) and h.with_timer(h.timer) is h
    assert (t.device, t.repeats, t.warmup, t.quick, t.suite) == (h.device, 3, 1, True, "s")
    assert t.time(lambda: None).times == [2.0, 4.0, 6.0]  # the warm-up call is not timed
    assert t.machine() == {"r": clock} and t.machine() == {"r": clock} and rates == [clock]  # measured once
    assert h._machine is None and h.timer is not clock  # the harness itself is unchanged
    h.suite = "next"
    assert h.with_timer(clock).suite == "next"
    assert t.record("x", {}, 1.0)["suite"] == "next"


def test_table_prints_the_speedup_to_two_decimals():
    # 0.658 (ours 1.52x the peer's time, outside a 1.5x goal) must not read as 0.7, like an in-goal 0.74
    r = _bench.Harness("cpu").record("x", {}, 1.0, peer="p", peer_s=0.658)
    row = _bench.format_table([r]).splitlines()[-1].split()
    assert "0.66" in row and "0.7" not in row


def test_the_timing_table_covers_every_suite_and_writes_both_accounts():
    # one table says what ours_s / peer_s are per suite: every installed suite and every development suite
    # of benchmarks/suites is in it, and each exception to the median is in the --repeats help and in meta.timing
    import inspect
    from pathlib import Path

    from deepsphere_gen.bench import timing
    from deepsphere_gen.commands import bench as cmd

    dev = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"
    suites = {*_bench.discover_suites(), *_bench.discover_suites(dev)}
    assert set(timing.REPORTED) == suites
    parser = __import__("argparse").ArgumentParser()
    cmd.add_arguments(parser)
    repeats_help = next(a.help for a in parser._actions if a.dest == "repeats")
    meta = _bench.run_metadata(_bench.Harness("cpu"), argv=[])["timing"]
    for suite, what in timing.REPORTED.items():
        if what != timing.MEDIAN:
            assert f"{suite}: {what}" in repeats_help and f"{suite}: {what}" in meta, suite
    # the harness's median is the figure exactly where a suite times with harness.time
    for suite, module in [*_bench.discover_suites().items(), *_bench.discover_suites(dev).items()]:
        assert (timing.REPORTED[suite] == timing.MEDIAN) == ("harness.time(" in inspect.getsource(module)), suite


def test_the_timing_table_states_the_budgets_of_the_suites_timing_their_own_loops():
    from deepsphere_gen.bench import timing
    from deepsphere_gen.bench.suites import disco, filtering

    assert f"until {disco.BUDGET_S:g} s are spent (at least {disco.MIN_CALLS})" in timing.REPORTED["disco"]
    assert f"until {filtering.BUDGET_S:g} s are spent (at least {filtering.MIN_ROUNDS} rounds)" in timing.REPORTED["filtering"]


def test_the_bench_command_module_imports_no_torch():
    # --help reads the timing table: deepsphere_gen.bench must load its torch modules at first use only
    import subprocess
    import sys

    code = "import sys, deepsphere_gen.commands.bench; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_paired_interleaves_the_sides_round_after_round(monkeypatch):
    # on a fake clock: ours then the peer, --repeats rounds of single calls (50 ms or more: no untimed call);
    # calls under 1 ms in loops of ~1 ms after an untimed call, MICRO_ROUNDS rounds
    from deepsphere_gen.bench import peers

    log, now = [], [0.0]
    monkeypatch.setattr(peers.time, "process_time", lambda: now[0])

    def side(name, dt):
        def fn():
            log.append(name)
            now[0] += dt
        return fn

    h = _bench.Harness("cpu", repeats=4)
    t = peers.paired(h, {"ours": (side("ours", 0.125), 0.125), "peer": (side("peer", 0.25), 0.25)})
    assert log == ["ours", "peer"] * 4 and t == {"ours": (0.125, 0.125), "peer": (0.25, 0.25)}
    log.clear()
    dt = 2.0 ** -12  # 0.24 ms: 5 calls reach 1 ms, loops of round(4.1) = 4 calls
    t = peers.paired(h, {"ours": (side("ours", dt), dt), "peer": (side("peer", 2 * dt), 2 * dt)})
    assert log[:10] == ["ours"] * 6 + ["peer"] * 4  # calibration: 1 + 5 calls; 1 + 3 (3 reach 1 ms: loops of 2)
    assert log[10:] == (["ours"] * (1 + 4) + ["peer"] * (1 + 2)) * peers.MICRO_ROUNDS
    assert t == {"ours": (dt, dt), "peer": (2 * dt, 2 * dt)}


def test_record_schema_and_speedup():
    h = _bench.Harness("cpu")
    r = h.record("x", {"nside": 4, "shape": (1, 2)}, 0.5, peer="p", peer_s=2.0, max_rel_diff=1e-7,
                 peak_mem_mb=3, note="hi", nan=float("nan"))
    assert tuple(r) == _bench.RECORD_FIELDS
    assert r["speedup"] == 4.0 and r["device"] == "cpu"
    assert r["params"] == {"nside": 4, "shape": [1, 2]}
    assert r["extras"] == {"note": "hi", "nan": None}
    assert h.record("y", {}, 1.0)["speedup"] is None
    with pytest.raises(ValueError, match="positive time"):
        h.record("x", {}, 0.0)
    with pytest.raises(ValueError, match="naming the peer"):
        h.record("x", {}, 1.0, peer_s=1.0)
    with pytest.raises(ValueError, match="JSON"):
        h.record("x", {"obj": object()}, 1.0)


def test_max_rel_diff():
    b = torch.tensor([1.0, -4.0, 2.0])
    a = b + torch.tensor([0.0, 0.0, 0.4])
    assert _bench.max_rel_diff(a, b) == pytest.approx(0.1)
    assert _bench.max_rel_diff([a, b], [b, b]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="shape"):
        _bench.max_rel_diff(a, b[:2])


def test_peak_memory_sees_torch_allocations():
    h = _bench.Harness("cpu")
    small = h.peak_memory_mb(lambda: torch.empty(0))
    big = h.peak_memory_mb(lambda: torch.ones(64 * 1024 * 1024 // 4))  # 64 MiB, touched
    assert 0 <= small < 16 and 0 <= big < 160  # never negative, never far above what was allocated
    from deepsphere_gen.bench.memory import _proc_status_kb, _reset_rss_peak  # the primitives, not the choice itself

    if _proc_status_kb("VmHWM") is not None and _reset_rss_peak():
        # Linux with a resettable peak: the exact method must be the one in use
        assert h.memory_method() == "rss-hwm-reset"
        assert 48 < big < 96
    else:  # ru_maxrss delta: a lower bound only (0 when the process was larger before)
        assert h.memory_method() == "ru_maxrss-delta (lower bound)"


def test_resident_mb_sees_what_is_kept():
    """bench.memory.resident_mb (the memory_scale suite's 'kept' figures): a touched 64 MiB array kept adds
    about 64 MiB; once freed it is no longer counted (freed heap returned to the system first)."""
    import numpy as np

    from deepsphere_gen.bench.memory import resident_mb

    r0 = resident_mb()
    if r0 is None:
        pytest.skip("no /proc/self/status")
    kept = np.ones(64 * 1024 * 1024 // 8)
    r1 = resident_mb()
    del kept
    r2 = resident_mb()
    assert 56 < r1 - r0 < 80 and r2 - r0 < 16


def test_memory_scale_suite_tiny_case():
    """The suite measures the SHT alone (its former cached-model case was graph_cached_build's build and
    figures); a tiny case runs our side and both peers, each in a fresh process."""
    pytest.importorskip("ducc0")
    pytest.importorskip("healpy")
    suite = _bench.discover_suites()["memory_scale"]
    assert suite.cases(True) == [{"what": "sht", "nside": 64}]
    assert [c["nside"] for c in suite.cases(False)] == [256, 512, 1024, 2048]
    assert {c["what"] for c in suite.cases(False)} == {"sht"}
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "memory_scale"
    (rec,) = suite.run({"what": "sht", "nside": 4}, h.device, h)
    ex = rec["extras"]
    assert rec["name"] == "memory sht healpix" and rec["peer"] == "ducc0" and rec["params"] == {"what": "sht", "nside": 4}
    assert ex["L"] == 12 and ex["map_mb"] == 192 * 4 / 2**20 and ex["alm_mb"] == 144 * 4 / 2**20
    assert rec["ours_s"] == ex["analysis_s"] and rec["peer_s"] == ex["ducc0_analysis_s"] and ex["timed_calls"] == 1
    assert rec["peak_mem_mb"] == ex["first_peak_mb"] and "healpy_reorder_s" in ex and "synthesis_s" in ex


def test_roofline_floor_is_sum_of_kernel_bounds():
    machine = {"bandwidth_gbs": 10.0, "gemm_gflops": 100.0}
    # kernel 1 memory-bound (1 s), kernel 2 compute-bound (2 s)
    assert _bench.roofline_floor([(10e9, 1e9), (1e9, 200e9)], machine) == pytest.approx(3.0)


def test_cli_writes_json(tmp_path):
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    out = tmp_path / "sub" / "out.json"
    rc = main(["bench", "--suite-dir", str(tmp_path), "--quick", "--only", "trivial", "--repeats", "2",
               "--no-progress", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["schema"] == _bench.SCHEMA and doc["meta"]["quick"] is True
    assert doc["meta"]["repeats"] == 2
    assert doc["meta"]["cpu"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    (rec,) = doc["records"]
    assert set(rec) == set(_bench.RECORD_FIELDS)
    assert rec["suite"] == "trivial" and rec["name"] == "double" and rec["params"] == {"n": 8}
    assert rec["peer"] == "add" and rec["speedup"] == pytest.approx(rec["peer_s"] / rec["ours_s"])
    assert rec["max_rel_diff"] == 0.0 and rec["extras"]["timed_calls"] == 2
    assert rec["peak_mem_mb"] >= 0 and rec["device"] == "cpu"
    assert [p.name for p in out.parent.iterdir()] == ["out.json"]  # no temporary left behind


def test_cli_failing_case_is_recorded(tmp_path, capsys):
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    (tmp_path / "bench_broken.py").write_text(BROKEN_SUITE)
    out = tmp_path / "out.json"
    rc = main(["bench", "--suite-dir", str(tmp_path), "--repeats", "1", "--no-progress", "--json", str(out)])
    assert rc == 1
    recs = json.loads(out.read_text())["records"]
    assert [r["suite"] for r in recs] == ["broken", "trivial", "trivial"]
    assert "deliberate failure" in recs[0]["extras"]["error"]
    assert "ERROR" in capsys.readouterr().out


def test_cli_cuda_unavailable_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    out = tmp_path / "out.json"
    rc = main(["bench", "--suite-dir", str(tmp_path), "--device", "cuda", "--json", str(out)])
    assert rc == 2 and not out.exists()
    assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(ValueError, match="CUDA is not available"):
        _bench.Harness("cuda")


def test_cli_unknown_suite_and_bad_dir(tmp_path, capsys):
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    rc = main(["bench", "--suite-dir", str(tmp_path), "--only", "nope", "--json", str(tmp_path / "o.json")])
    assert rc == 2 and "available: trivial" in capsys.readouterr().err
    rc = main(["bench", "--suite-dir", str(tmp_path / "missing"), "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err  # was: "... does not exist (pass --suite-dir)", though it was passed
    assert rc == 2 and f"error: --suite-dir {tmp_path / 'missing'} does not exist\n" in err and "pass" not in err
    rc = main(["bench", "--suite-dir", str(tmp_path / "bench_trivial.py"), "--json", str(tmp_path / "o.json")])
    assert rc == 2 and f"--suite-dir {tmp_path / 'bench_trivial.py'} is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # was: "no benchmark suites found", not naming the folder
    rc = main(["bench", "--suite-dir", str(tmp_path / "empty"), "--json", str(tmp_path / "o.json")])
    assert rc == 2 and f"no benchmark suites found in --suite-dir {tmp_path / 'empty'} (its *.py files" in \
        capsys.readouterr().err
    # one check, the library's, whose message the command prints (was: the command's beside it, in other words)
    with pytest.raises(ValueError, match="^--suite-dir .*missing does not exist$"):
        _bench.discover_suites(tmp_path / "missing")
    with pytest.raises(ValueError, match="^--suite-dir .*bench_trivial.py is a file, not a folder$"):
        _bench.discover_suites(tmp_path / "bench_trivial.py")


def test_suite_dir_replaces_the_installed_suites(tmp_path, capsys):
    # its help said "extra suites ... instead of the installed ones": instead is the behaviour
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    assert list(_bench.discover_suites(tmp_path)) == ["trivial"]
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "suites that replaces the installed ones" in help_text and "extra" not in help_text


def test_broken_suite_named_by_its_file(tmp_path, capsys):
    # was: "benchmark suite _deepsphere_gen_bench_bad lacks cases", the import name, not the file
    bad = tmp_path / "bad.py"
    bad.write_text('NAME = "bad"\n\ndef run(case, device, harness):\n    return []\n')
    rc = main(["bench", "--suite-dir", str(tmp_path), "--json", str(tmp_path / "o.json")])
    assert rc == 2 and f"benchmark suite {bad} lacks cases (see benchmarks/README.md)" in capsys.readouterr().err
    bad.write_text(TRIVIAL_SUITE)
    (tmp_path / "again.py").write_text(TRIVIAL_SUITE)
    with pytest.raises(ValueError, match=f"named 'trivial': {tmp_path / 'again.py'} and {bad}$"):
        _bench.discover_suites(tmp_path)


def test_cli_json_checked_before_any_suite(tmp_path, capsys):
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    (tmp_path / "a-file").write_text("x")
    for path, message in ((tmp_path, f"--json {tmp_path} is a folder, not a file"),
                          (tmp_path / "a-file" / "o.json", f"the folder of --json {tmp_path / 'a-file'} is a file")):
        rc = main(["bench", "--suite-dir", str(tmp_path), "--no-progress", "--json", str(path)])
        err = capsys.readouterr().err
        assert rc == 2 and f"deepsphere-gen bench: error: {message}" in err and len(err.strip().splitlines()) == 1


def test_cli_progress_bar_only_on_a_terminal(tmp_path, capsys):
    """Without --no-progress and with stderr not a terminal (a log file; here pytest's capture), no bar."""
    (tmp_path / "bench_trivial.py").write_text(TRIVIAL_SUITE)
    assert main(["bench", "--suite-dir", str(tmp_path), "--quick", "--repeats", "1", "--json",
                 str(tmp_path / "o.json")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "bench:" not in err


def test_repository_suites_are_discovered():
    suites = _bench.discover_suites()
    assert "chebconv" in suites
    assert suites["chebconv"].cases(True) == [c for c in suites["chebconv"].cases(False) if c["nside"] == 64]


def test_every_suite_is_described_in_the_benchmarks_readme():
    """benchmarks/README.md lists each installed suite module (it once listed 2 of 9)."""
    from pathlib import Path

    import deepsphere_gen.bench.suites as suites_pkg

    modules = sorted(p.name for p in Path(suites_pkg.__file__).parent.glob("*.py") if p.name != "__init__.py")
    text = (Path(__file__).resolve().parents[2] / "benchmarks" / "README.md").read_text()
    section = text[text.index("## Suites"):]
    assert len(modules) >= 9
    assert [m for m in modules if f"- `{m}`" not in section] == []


def test_chebconv_suite_tiny_case_matches_pyg():
    suite = _bench.discover_suites()["chebconv"]
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "chebconv"
    h._machine = {"bandwidth_gbs": 10.0, "gemm_gflops": 100.0}  # skip the rate measurement
    case = {"mode": "fwd+bwd", "nside": 2, "k": 8, "batch": 2, "c_in": 3, "c_out": 4, "K": 3}
    (rec,) = suite.run(case, h.device, h)
    assert rec["peer"] == "torch_geometric.nn.ChebConv" and rec["peer_s"] > 0
    assert rec["max_rel_diff"] < 1e-5  # output and gradients, float32
    ex = rec["extras"]
    assert ex["npix"] == 48 and ex["floor_s"] > 0 and "normalization=None" in ex["peer_config"]
    # byte count: K-1 = 2 sparse products forward and backward, 3 GEMMs
    assert len(suite.chebconv_phases(48, 400, 2, 3, 4, 3, backward=True)) == 2 + 1 + 2 + 2


def test_optional_peer_reports_a_missing_module():
    mod, why = _bench.optional_peer("json")
    assert mod is json and why is None
    mod, why = _bench.optional_peer("no_such_peer_module_xyz")
    assert mod is None and "no_such_peer_module_xyz" in why


def test_tensor_product_suite_records_unavailable_e3nn(monkeypatch):
    # without e3nn the suite times our layer and records why the peer is missing (no crash)
    from deepsphere_gen.bench.suites import tensor_product

    real = _bench.optional_peer
    monkeypatch.setattr(tensor_product, "optional_peer",
                        lambda name: (None, f"{name}: ImportError: hidden") if name.startswith("e3nn") else real(name))
    h = _bench.Harness("cpu", repeats=1, warmup=0)
    recs = tensor_product.run({"L": 3, "channels": 2, "batch": 2, "mixing": "mst"}, torch.device("cpu"), h)
    assert [r["name"] for r in recs] == ["channel-wise TP forward", "channel-wise TP fwd+bwd"]
    assert all(r["peer"] is None and "e3nn" in r["extras"]["peer_unavailable"] and r["ours_s"] > 0 for r in recs)
    assert "unavailable" in _bench.format_table(recs)


def test_sht_suite_tiny_cases_match_ducc0():
    from deepsphere_gen.bench.suites import sht

    h = _bench.Harness("cpu", repeats=1, warmup=0)
    for case in ({"kind": "mw", "L": 6, "dtype": "float64", "maps": 2},
                 {"kind": "healpix", "nside": 2, "L": 6, "dtype": "float32", "maps": 1}):
        recs = sht.run(case, torch.device("cpu"), h)
        assert [r["name"].split()[-1] for r in recs] == ["synthesis", "analysis"]
        tol = 1e-12 if case["dtype"] == "float64" else 1e-6
        assert all(r["peer"] == "ducc0" and r["max_rel_diff"] < tol for r in recs)
        assert all(r["extras"]["torch_engine_mb"] > 0 for r in recs)


def test_sht_survey_suite_runs_the_sht_healpix_cases_in_full_runs_only():
    """The survey set: HEALPix nside 256-1024 at L = 2 nside through the sht suite's run; a quick run
    (CI) gets none of it, and the sht suite's quick set stays the small one."""
    from deepsphere_gen.bench.suites import sht, sht_survey

    assert sht_survey.cases(True) == [] and sht_survey.run is sht.run
    full = sht_survey.cases(False)
    assert {(c["nside"], c["L"], c["dtype"], c["maps"]) for c in full} == {
        (n, 2 * n, d, 1) for n in (256, 512, 1024) for d in ("float32", "float64")} | {
        (n, 2 * n, "float64", 8) for n in (256, 512)}
    assert all(c["kind"] == "healpix" for c in full)
    assert [c.get("nside", c["L"]) for c in sht.cases(True)] == [32, 128] * 3 + [16, 64]


def test_meta_timing_says_where_a_suite_times_its_own_way():
    """meta.timing said "median of the timed calls" for every run, while the sht suite reports the best of
    interleaved rounds (its records' extras.timing): the meta text names the exceptions, and each sht record's own
    extras.timing still says what it reports."""
    from deepsphere_gen.bench.suites import sht

    h = _bench.Harness("cpu", repeats=1, warmup=0)
    timing = _bench.run_metadata(h, argv=[])["timing"]
    assert "extras.timing" in timing and "sht: the best of interleaved rounds" in timing
    (syn, ana) = sht.run({"kind": "gl", "L": 6, "dtype": "float64", "maps": 1}, torch.device("cpu"), h)
    assert syn["extras"]["timing"].startswith("best of interleaved rounds") and syn["ours_s"] <= syn["extras"]["ours_median_s"]


def test_disco_suite_tiny_case():
    import numpy as np

    from deepsphere_gen.graph import build_graph
    from deepsphere_gen.sampling import HealpixSampling

    suite = _bench.discover_suites()["disco"]
    assert [c["nside"] for c in suite.cases(True)] == [32] and [c["L"] for c in suite.cases(False)] == [78, 157]
    # reach of a filter: K = 1 stays on the pixel; on nside 1 with k = 11 (complete graph)
    # one hop reaches every pixel, the farthest being the antipode (pixel 0 <-> 10)
    g = build_graph(HealpixSampling(1), k=11, cache=False)
    assert suite.support_radius(g, K=1) < 1e-7
    assert abs(suite.support_radius(g, K=2) - np.pi) < 1e-7
    h = _bench.Harness("cpu", repeats=1, warmup=0, quick=True)
    h.suite = "disco"
    old = suite.BUDGET_S
    suite.BUDGET_S = 0.0
    try:
        recs = suite.run({"nside": 4, "L": 10, "k": 8, "K": 3, "batch": 1, "c_in": 2, "c_out": 3, "band": 4}, h.device, h)
    finally:
        suite.BUDGET_S = old
    ex = recs[0]["extras"]
    assert ex["npix"] == 192 and ex["peer_npix"] == 190 and 0 < ex["ours_equivariance"] < 1
    th, reason = _bench.optional_peer("torch_harmonics")
    if th is None:
        assert [r["name"] for r in recs] == ["chebconv_vs_disco"] and ex["peer_unavailable"] == reason
        return
    assert [r["name"] for r in recs] == ["disco_default", "disco_matched"]
    assert abs(recs[0]["extras"]["cutoff_rad"] - np.pi / 9) < 1e-12
    assert recs[1]["extras"]["cutoff_rad"] == ex["support_radius_rad"] > 0
    for r in recs:
        assert r["peer_s"] > 0 and 0 < r["extras"]["peer_equivariance"] < 2
    # the adapter puts our ring-major maps in torch-harmonics' (lat, lon) layout: a shift by one
    # longitude step (a rotation about z the grid holds exactly) commutes with the layer
    L = 10
    layer = suite._on_maps(suite._disco(th, 1, 2, L, None, torch.float32), L)
    x = torch.randn(2, L * (2 * L - 1), 1)

    def shift(m):
        return m.reshape(2, L, 2 * L - 1, -1).roll(1, dims=2).reshape(2, L * (2 * L - 1), -1)

    with torch.no_grad():
        torch.testing.assert_close(layer(shift(x)), shift(layer(x)), rtol=1e-5, atol=1e-5)


def test_the_texts_name_the_folder_of_the_suites():
    """The README said "bench --json bench.json  # every suite in benchmarks/" (and the command's docstring
    "the suites of benchmarks/"): the suites run by default are the modules of deepsphere_gen.bench.suites."""
    from pathlib import Path

    from deepsphere_gen.bench import suites
    from deepsphere_gen.commands import bench as cmd

    root = Path(cmd.__file__).resolve().parents[2]
    folder = Path(suites.__file__).resolve().parent.relative_to(root).as_posix()
    (line,) = [w for w in (root / "README.md").read_text().splitlines() if w.startswith("deepsphere-gen bench --json bench.json")]
    assert line.endswith(f"# every suite in {folder}")
    assert f"suites of ``{folder}``" in cmd.__doc__
