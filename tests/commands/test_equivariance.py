"""``deepsphere-gen equivariance``: table, JSON records, PNG plot (small task list), --quick, options."""
import json

import pytest
import torch

from deepsphere_gen.experiments import equivariance_sweep as sw
from deepsphere_gen.cli import main


def test_command_writes_table_json_and_plot(tmp_path, monkeypatch, capsys):
    threads_before = torch.get_num_threads()
    def small(quick=False, seed=0, graphs=False):
        return sw.graph_operator_tasks((4,), (8,), {4: (2, 3)}, ("deepsphere-v2",), n_signals=1, n_rotations=1,
                                       seed=seed)

    monkeypatch.setattr(sw, "sweep_tasks", small)
    out, png = tmp_path / "r.json", tmp_path / "figs" / "new" / "r.png"  # a missing folder of --plot is created
    assert main(["equivariance", "--json", str(out), "--plot", str(png), "--seed", "3", "--no-progress",
                 "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "laplacian" in text and "wrote 4 record(s)" in text
    data = json.loads(out.read_text())
    assert data["meta"]["seed"] == 3 and len(data["records"]) == 4
    rec = data["records"][1]
    assert rec["layer"] == "laplacian" and rec["variant"] == "deepsphere-v2" and rec["k"] == 8
    for key in ("backend", "sampling", "resolution", "degree", "dtype", "mean", "mean_sq", "max", "seconds"):
        assert key in rec
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert data["meta"]["threads"] == 1 and torch.get_num_threads() == threads_before


@pytest.mark.parametrize("seed", ["-1", str(2**32), "99999999999999999999"])
def test_a_seed_outside_the_range_of_the_other_commands_is_refused(seed, monkeypatch, capsys):
    """-1 was accepted, 2**32 gave the records of seed 0 while the JSON said 4294967296, 10**20 ended with
    "Overflow when unpacking long long": refused before the sweep, as the other commands refuse them."""
    def no_work(*args, **kwargs):
        raise AssertionError("the sweep started with an unchecked seed")

    monkeypatch.setattr(sw, "sweep_tasks", no_work)
    assert main(["equivariance", "--quick", "--no-progress", "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert err == f"deepsphere-gen equivariance: error: --seed must be >= 0 and < 2**32, got {seed}\n", err


@pytest.mark.parametrize("option, value, message", [
    ("--json", "{tmp}", "--json {tmp} is a folder, not a file"),
    ("--plot", "{tmp}", "--plot {tmp} is a folder, not a file"),
    ("--plot", "{tmp}/p.txt", "--plot {tmp}/p.txt: unsupported figure format 'txt'; supported: "),
    ("--json", "{tmp}/a-file/r.json", "the folder of --json {tmp}/a-file is a file, not a folder"),
])
def test_output_paths_checked_before_the_sweep(tmp_path, monkeypatch, capsys, option, value, message):
    def no_work(*args, **kwargs):
        raise AssertionError("the sweep started before the output paths were checked")

    monkeypatch.setattr(sw, "run_tasks", no_work)
    (tmp_path / "a-file").write_text("x")
    assert main(["equivariance", "--quick", "--no-progress", option, value.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"deepsphere-gen equivariance: error: {message.format(tmp=tmp_path)}" in err
    assert len(err.strip().splitlines()) == 1


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    """Without --no-progress and with stderr not a terminal (a log file; here pytest's capture), no bar."""
    monkeypatch.setattr(sw, "sweep_tasks", lambda quick=False, seed=0, graphs=False: sw.graph_operator_tasks(
        (4,), (8,), {4: (2,)}, ("deepsphere-v2",), n_signals=1, n_rotations=1, seed=seed))
    assert main(["equivariance", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "equivariance:" not in err


def test_bad_arguments(capsys):
    assert main(["equivariance", "--threads", "0", "--no-progress"]) == 2
    assert "--threads" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["equivariance", "--quick", "--graphs"])


def test_graphs_sweep_lists_the_figure_curves():
    tasks = sw.sweep_tasks(graphs=True)
    # nside 32: 9 degrees x (floor + 3 v2 + 1 optimized); nside 64: 8 x 5; nside 128, l = 350: floor + 3
    assert len(tasks) == 9 * 5 + 8 * 5 + 4


def test_quick_covers_the_required_cases(tmp_path):  # ~2 s idle, ~20 s on a busy 2-core box
    out = tmp_path / "q.json"
    assert main(["equivariance", "--quick", "--json", str(out), "--no-progress"]) == 0
    recs = json.loads(out.read_text())["records"]
    lap = {(r["k"], r["degree"]) for r in recs if r["layer"] == "laplacian" and r["resolution"] == 32}
    assert lap == {(k, l) for k in (8, 20, 40) for l in (10, 50)}
    assert {r["dtype"] for r in recs if r["backend"] == "harmonic"} == {"float32", "float64"}
    assert any("ReLU" in r["layer"] for r in recs)
    assert all(r["mean"] <= r["published"] for r in recs if "published" in r and r["backend"] == "graph")
