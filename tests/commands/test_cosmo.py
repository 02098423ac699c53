"""``deepsphere-gen cosmo``: a tiny end-to-end run writes the table, JSON and figures."""
import json

import numpy as np
import pytest
import torch

from deepsphere_gen.cli import main

TINY = ["--quick", "--n-train", "8", "--n-test", "2", "--n-real", "1", "--n-fiducial", "2", "--epochs", "2",
        "--mlp-epochs", "3", "--no-progress"]


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_cosmo_quick_end_to_end(tmp_path, capsys):
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["cosmo", *TINY, *dirs]) == 0
    text = capsys.readouterr().out
    assert "power_spectrum" in text and "S8 width graph / power spectrum" in text
    rec = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    methods = {r["method"] for r in rec["records"]}
    assert methods == {"graph", "power_spectrum", "handcrafted"}
    for r in rec["records"]:
        assert 0 <= r["test"]["s8"]["coverage_68"] <= 1 and r["fiducial"]["s8"]["mean_std"] > 0
    assert "s8_posterior_ratio_graph_over_ps" in rec["summary"] and rec["timing"]["process_cpu_seconds"] > 0
    # the calibration pools the validation cosmology (1 of 8, 4 footprint copies) with the 8 calibration
    # cosmologies of --quick, 2 noise draws each
    for r in rec["records"]:
        c = r["calibration"]
        assert c["n_cosmologies"] == 1 + 8 and c["n_samples"] == 4 + 8 * 4 * 2 and c["scales"] == r["calibration_scales"]
        assert all(v > 0 for v in c["scales_bootstrap_sd"]) and c["validation_only_bootstrap_sd"] is None
    assert (tmp_path / "out" / "cosmo_fiducial_ellipses.png").is_file()
    # the graph network keeps its epoch of lowest validation loss; regression logs print no accuracy
    state = torch.load(tmp_path / "out" / "checkpoints" / "cosmo-graph.pt", weights_only=True)
    val = [h["val_loss"] for h in state["history"]]
    graph = next(r for r in rec["records"] if r["method"] == "graph")
    assert graph["epochs"] == state["best"]["epoch"] == val.index(min(val)) + 1 and graph["epochs_run"] == 2
    assert f"kept epoch {graph['epochs']} of 2" in text and " acc " not in text
    # the record keeps each member's own training (3 members by default); the top-level epochs and losses are
    # member 0's, train_seconds is every member's
    assert graph["graph_members"] == len(graph["members"]) == 3
    for i, m in enumerate(graph["members"]):
        st = torch.load(tmp_path / "out" / "checkpoints" / ("cosmo-graph.pt" if i == 0 else f"cosmo-graph-m{i}.pt"),
                        weights_only=True)
        val = [h["val_loss"] for h in st["history"]]
        assert m["member"] == i and m["seed"] == st["config"]["seed"] and m["epochs_run"] == 2
        assert m["epochs"] == m["best_epoch"] == st["best"]["epoch"] == val.index(min(val)) + 1
        assert m["history"] == [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "best_epoch", "seconds")}
                                for h in st["history"]]
        assert m["val_loss"] == val[m["epochs"] - 1] and m["train_loss"] == st["history"][m["epochs"] - 1]["train_loss"]
        assert m["train_seconds"] == pytest.approx(sum(h["seconds"] for h in st["history"]), rel=1e-12)
    assert len({m["history"][0]["val_loss"] for m in graph["members"]}) == 3  # each member's own, not member 0's
    assert {k: graph[k] for k in ("epochs", "epochs_run", "train_loss", "val_loss")} == \
        {k: graph["members"][0][k] for k in ("epochs", "epochs_run", "train_loss", "val_loss")}
    assert graph["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in graph["members"]), rel=1e-12)
    assert all("members" not in r for r in rec["records"] if r["method"] != "graph")
    # the power spectrum's Fisher forecast beside the networks' widths
    f = rec["summary"]["fisher_forecast"]
    assert f["s8"] > 0 and 0 < f["fsky"] < 0.05 and "Fisher forecast" in text
    ps = next(r for r in rec["records"] if r["method"] == "power_spectrum")
    assert f["s8_width_power_spectrum_over_forecast"] == pytest.approx(ps["fiducial"]["s8"]["mean_std"] / f["s8"])
    # evaluate alone reuses data and checkpoints; --graph-weights last: the last epoch's weights
    assert main(["cosmo", "evaluate", *TINY, *dirs, "--no-plots", "--graph-weights", "last"]) == 0
    last = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    last_graph = next(r for r in last["records"] if r["method"] == "graph")
    assert last_graph["epochs"] == 2 and [m["epochs"] for m in last_graph["members"]] == [2, 2, 2]
    assert [m["best_epoch"] for m in last_graph["members"]] == [m["best_epoch"] for m in graph["members"]]
    assert last["config"]["graph_weights"] == "last"


def test_cosmo_bad_input(tmp_path, capsys):
    assert main(["cosmo", "--quick", "--ngal", "-1", "--data-dir", str(tmp_path)]) == 2
    assert "ngal" in capsys.readouterr().err


def test_config_defaults_named_by_the_help_match_the_data_set():
    # cosmo.config keeps, without torch, defaults that the data-set modules define
    from dataclasses import fields

    from deepsphere_gen.commands import cosmo as cmd
    from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
    from deepsphere_gen.datasets.shape_noise import DEFAULT_SIGMA_E
    from deepsphere_gen.experiments.cosmo import GRID_DEFAULTS, CosmoExperimentConfig

    grid = {f.name: f.default for f in fields(CosmoGridConfig)}
    assert GRID_DEFAULTS == {name: grid[name] for name in GRID_DEFAULTS}
    assert CosmoExperimentConfig.sigma_e == DEFAULT_SIGMA_E
    d, g = cmd._defaults()
    built = CosmoExperimentConfig()
    assert vars(g) == {name: getattr(built.grid, name) for name in GRID_DEFAULTS}
    assert vars(d) == {name: getattr(built, name) for name in vars(d)} and len(vars(d)) == len(fields(built)) - 1


def test_cosmo_graph_members_train_one_after_another_and_combine(tmp_path, capsys):
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"), "--no-plots"]
    two = ["--methods", "graph", "power_spectrum", "--graph-members", "2"]
    assert main(["cosmo", *TINY, *dirs, *two]) == 0
    text = capsys.readouterr().out
    ckpts = tmp_path / "out" / "checkpoints"
    assert (ckpts / "cosmo-graph.pt").is_file() and (ckpts / "cosmo-graph-m1.pt").is_file()
    seeds = [torch.load(ckpts / name, weights_only=True)["config"]["seed"] for name in ("cosmo-graph.pt", "cosmo-graph-m1.pt")]
    assert seeds[0] == 0 and seeds[1] != 0
    rec = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    assert rec["config"]["graph_members"] == 2 and rec["summary"]["graph_members"] == 2
    members = rec["summary"]["members"]
    assert [m["member"] for m in members] == [0, 1] and "graph member 1 of 2 alone" in text
    # the ensemble's mean is the members' average: its held-out S8 errors are no worse than their mean error
    graph = next(r for r in rec["records"] if r["method"] == "graph")
    assert graph["test"]["s8"]["rmse"] <= np.mean([m["rmse_test"] for m in graph["members"]]) + 1e-12
    # member 0 alone is exactly the single network (--graph-members 1 reuses its checkpoint)
    assert main(["cosmo", *TINY, *dirs, "--methods", "graph", "power_spectrum", "--graph-members", "1",
                 "--json", str(tmp_path / "one.json")]) == 0
    assert "finished run found" in capsys.readouterr().out
    one = json.loads((tmp_path / "one.json").read_text())["summary"]
    for key in ("s8_posterior_ratio_graph_over_ps", "s8_summary_ratio_graph_over_ps", "s8_rmse_test_ratio_graph_over_ps"):
        assert members[0][key] == one[key]
    assert "members" not in one and "graph_members" not in one
    # one member: its entry is the record's own training and widths
    single = next(r for r in json.loads((tmp_path / "one.json").read_text())["records"] if r["method"] == "graph")
    (m0,) = single["members"]
    assert single["graph_members"] == 1 and m0["history"] == graph["members"][0]["history"]
    assert {k: m0[k] for k in ("epochs", "epochs_run", "train_seconds", "train_loss", "val_loss")} == \
        {k: single[k] for k in ("epochs", "epochs_run", "train_seconds", "train_loss", "val_loss")}
    assert m0["posterior"] == single["fiducial"]["s8"]["mean_std"] and m0["rmse_test"] == single["test"]["s8"]["rmse"]
    # training is reproducible (member 0's initial weights are seeded) and the MLPs do not depend on the members
    assert main(["cosmo", "train", *TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "single"),
                 "--methods", "graph", "power_spectrum", "--graph-members", "1"]) == 0
    for name in ("cosmo-graph.pt", "cosmo-power_spectrum.pt"):
        a, b = (torch.load(d / "checkpoints" / name, weights_only=True)["model"] for d in (tmp_path / "out", tmp_path / "single"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    # a member checkpoint of other settings is neither resumed nor evaluated (member 0's included)
    assert main(["cosmo", *TINY, *dirs, *two, "--ngal", "3"]) == 2
    assert "cosmo-graph.pt belongs to another run" in capsys.readouterr().err
    (ckpts / "cosmo-graph.pt").rename(tmp_path / "graph0.pt")
    assert main(["cosmo", "evaluate", *TINY, *dirs, *two, "--ngal", "3"]) == 2
    assert "cosmo-graph-m1.pt belongs to another run" in capsys.readouterr().err
    (tmp_path / "graph0.pt").rename(ckpts / "cosmo-graph.pt")
    assert main(["cosmo", "evaluate", *TINY, *dirs, *two, "--ngal", "3"]) == 2
    err = capsys.readouterr().err
    assert "cosmo-graph.pt belongs to another run" in err and "differing: ngal)" in err
    # a member-0 checkpoint written before the fingerprints is still reused (its training settings checked)
    state = torch.load(ckpts / "cosmo-graph.pt", weights_only=True)
    torch.save({**state, "meta": {}}, ckpts / "cosmo-graph.pt")
    assert main(["cosmo", *TINY, *dirs, "--methods", "graph", "power_spectrum", "--graph-members", "1",
                 "--json", str(tmp_path / "old.json")]) == 0
    out = capsys.readouterr().out
    assert "predates checkpoint fingerprints" in out and "finished run found" in out
    assert json.loads((tmp_path / "old.json").read_text())["summary"]["s8_posterior_ratio_graph_over_ps"] == \
        one["s8_posterior_ratio_graph_over_ps"]


def test_stored_records_stay_readable():
    """The records in docs/results (written before the per-member training entries; single networks
    without ``members``) are read by the table and reproduce their summary."""
    from pathlib import Path

    from deepsphere_gen.experiments.cosmo import format_table
    from deepsphere_gen.experiments.cosmo.comparison import summarise

    paths = sorted((Path(__file__).parents[2] / "docs" / "results").glob("cosmo_*.json"))
    assert len(paths) >= 15
    for path in paths:
        rec = json.loads(path.read_text())
        summary = summarise(rec["records"])
        assert summary == {k: rec["summary"][k] for k in summary}, path.name
        assert "S8 width graph / power spectrum" in format_table(rec)
