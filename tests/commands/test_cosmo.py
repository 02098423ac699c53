"""``deepsphere-gen cosmo``: a tiny end-to-end run writes the table, JSON and figures; the robustness cases of
docs/robustness.md, section "cosmo" (option order, fingerprinted checkpoints, --restart, checks before any work,
Ctrl-C, footprint masks, help)."""
import json

import numpy as np
import pytest
import torch

from deepsphere_gen._platform import cpu_description
from deepsphere_gen.cli import main

from ._cli import refused as cli_refused
from ._cosmo_cli import TINY, refused


def test_cosmo_quick_end_to_end(tmp_path, capsys):
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["cosmo", *TINY, *dirs]) == 0
    text = capsys.readouterr().out
    assert "power_spectrum" in text and "S8 width graph / power spectrum" in text
    rec = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    # --quick says it is a smoke test, under the table and in the JSON's config (as massmaps does)
    from deepsphere_gen.commands.cosmo import QUICK_NOTE

    assert QUICK_NOTE in text and "smoke test" in QUICK_NOTE and rec["config"]["quick"] is True
    assert rec["config"]["grid"]["footprint"] == rec["config"]["grid"]["footprint_id"] == "stage3"
    methods = {r["method"] for r in rec["records"]}
    assert methods == {"graph", "power_spectrum", "handcrafted"}
    assert rec["cpu"] == cpu_description()  # results depend on the processor
    for r in rec["records"]:
        assert 0 <= r["test"]["s8"]["coverage_68"] <= 1 and r["fiducial"]["s8"]["mean_std"] > 0
        # scatter (std of the means) only at the fiducial's one truth, not across held-out cosmologies
        assert r["fiducial"]["s8"]["scatter"] > 0 and "scatter" not in r["test"]["s8"]
        assert "scatter" not in r["uncalibrated"]["test"]["omega_m"] and "scatter" in r["uncalibrated"]["fiducial"]["s8"]
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
    assert graph["kept_epoch"] == state["best"]["epoch"] == val.index(min(val)) + 1 and graph["epochs_run"] == 2
    assert "epochs" not in graph and rec["config"]["epochs"] == 2  # the epochs run are the config's
    assert f"kept epoch {graph['kept_epoch']} of 2" in text and " acc " not in text
    # the record keeps each member's own training (3 members by default); the top-level epochs and losses are
    # member 0's, train_seconds is every member's
    assert graph["graph_members"] == len(graph["members"]) == 3
    for i, m in enumerate(graph["members"]):
        st = torch.load(tmp_path / "out" / "checkpoints" / ("cosmo-graph.pt" if i == 0 else f"cosmo-graph-m{i}.pt"),
                        weights_only=True)
        val = [h["val_loss"] for h in st["history"]]
        assert m["member"] == i and m["seed"] == st["config"]["seed"] and m["epochs_run"] == 2
        assert m["kept_epoch"] == m["best_epoch"] == st["best"]["epoch"] == val.index(min(val)) + 1
        assert m["history"] == [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "best_epoch", "seconds")}
                                for h in st["history"]]
        assert m["val_loss"] == val[m["kept_epoch"] - 1] and m["train_loss"] == st["history"][m["kept_epoch"] - 1]["train_loss"]
        assert m["train_seconds"] == pytest.approx(sum(h["seconds"] for h in st["history"]), rel=1e-12)
    assert len({m["history"][0]["val_loss"] for m in graph["members"]}) == 3  # each member's own, not member 0's
    assert {k: graph[k] for k in ("kept_epoch", "epochs_run", "train_loss", "val_loss")} == \
        {k: graph["members"][0][k] for k in ("kept_epoch", "epochs_run", "train_loss", "val_loss")}
    assert graph["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in graph["members"]), rel=1e-12)
    # each summary-statistic MLP is an ensemble of 3 too (member k >= 1: its own checkpoint), kept member by member
    for r in (r for r in rec["records"] if r["method"] != "graph"):
        assert r["mlp_members"] == len(r["members"]) == 3 and [m["member"] for m in r["members"]] == [0, 1, 2]
        assert all((tmp_path / "out" / "checkpoints" / f"cosmo-{r['method']}-m{i}.pt").is_file() for i in (1, 2))
        assert len({m["posterior"] for m in r["members"]}) == 3 and len({m["init_seed"] for m in r["members"]}) == 3
        assert r["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in r["members"]), rel=1e-12)
    assert rec["summary"]["mlp_members"] == 3 and len(rec["summary"]["ps_members"]) == 3
    assert "graph / power-spectrum member 2 of 3 alone" in text
    # the power spectrum's Fisher forecast beside the networks' widths
    f = rec["summary"]["fisher_forecast"]
    assert f["s8"] > 0 and 0 < f["fsky"] < 0.05 and "Fisher forecast" in text
    ps = next(r for r in rec["records"] if r["method"] == "power_spectrum")
    assert f["s8_width_power_spectrum_over_forecast"] == pytest.approx(ps["fiducial"]["s8"]["mean_std"] / f["s8"])
    # evaluate alone reuses data and checkpoints; --graph-weights last: the last epoch's weights
    assert main(["cosmo", "evaluate", *TINY, *dirs, "--no-plots", "--graph-weights", "last"]) == 0
    last = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    last_graph = next(r for r in last["records"] if r["method"] == "graph")
    assert last_graph["kept_epoch"] == 2 and [m["kept_epoch"] for m in last_graph["members"]] == [2, 2, 2]
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
    assert {k: m0[k] for k in ("kept_epoch", "epochs_run", "train_seconds", "train_loss", "val_loss")} == \
        {k: single[k] for k in ("kept_epoch", "epochs_run", "train_seconds", "train_loss", "val_loss")}
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
    assert "cosmo-graph.pt belongs to another run" in err and "differing: ngal (" in err
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


# ---------------------------------------------------------------- robustness (docs/robustness.md, "## cosmo")

def _parse(argv):
    from deepsphere_gen.cli import build_parser

    return build_parser(["cosmo"]).parse_args(["cosmo", *argv])


@pytest.mark.parametrize("step", ["generate", "train", "evaluate", "run"])
def test_every_option_is_honoured_before_and_after_the_step(step):
    from deepsphere_gen.commands import cosmo as cmd

    opts = ["--quick", "--nside", "64", "--bins", "2", "--n-train", "9", "--n-test", "3", "--n-real", "2",
            "--n-fiducial", "5", "--n-calib", "6", "--calib-noise-draws", "3", "--calibration", "global",
            "--footprint", "F.fits", "--ngal", "7", "--sigma-e", "0.3", "--methods", "graph", "--epochs", "5",
            "--mlp-epochs", "6", "--batch-size", "4", "--lr", "0.01", "--graph-weights", "last", "--graph-members", "2",
            "--mlp-members", "4", "--seed", "3", "--data-dir", "D", "--out-dir", "O", "--device", "cpu", "--no-progress"]
    before, after, default = (cmd._config(_parse(a)) for a in ([*opts, step], [step, *opts], [step]))
    assert before == after != default
    g = before.grid
    assert (g.nside, g.n_bins, g.n_train, g.n_test, g.n_real, g.n_fiducial, g.n_calib, g.footprint, g.seed) == \
        (64, 2, 9, 3, 2, 5, 6, "F.fits", 3)
    assert (before.calib_noise_draws, before.calibration, before.ngal, before.sigma_e, before.methods, before.epochs,
            before.mlp_epochs, before.batch_size, before.lr, before.graph_weights, before.graph_members,
            before.mlp_members, before.seed, before.data_dir, before.out_dir, before.device, before.progress) == \
        (3, "global", 7.0, 0.3, ("graph",), 5, 6, 4, 0.01, "last", 2, 4, 3, "D", "O", "cpu", False)
    assert before.channels == cmd.QUICK["channels"]  # --quick before the step counts
    # the audit's cases: --seed before the step, --quick after it; --quick alone before the step
    seeded = cmd._config(_parse(["--seed", "3", step, "--quick"]))
    assert seeded.seed == seeded.grid.seed == 3 and seeded.grid.nside == cmd.QUICK["nside"]
    quick = cmd._config(_parse(["--quick", "--no-progress", "--data-dir", "X", step]))
    assert quick.grid.n_train == cmd.QUICK["n_train"] and quick.data_dir == "X" and not quick.progress
    assert default.grid.nside == 128 and default.seed == 0 and default.data_dir is None and default.out_dir == "cosmo-out"
    for argv in (["--restart", "--threads", "2", step], [step, "--restart", "--threads", "2"]):
        args = _parse(argv)
        assert (args.restart, args.threads) == (True, 2)


def test_options_before_the_step_generate_that_data_set(tmp_path, capsys):
    """`cosmo --quick ... --data-dir X generate`: the --quick data set, in X (was: the default job elsewhere)."""
    assert main(["cosmo", *TINY, "--data-dir", str(tmp_path / "X"), "generate"]) == 0
    (data,) = (tmp_path / "X").iterdir()
    meta = json.loads((data / "metadata.json").read_text())
    assert meta["generation"]["nside"] == 32 and meta["generation"]["n_train"] == 8
    assert main(["cosmo", "--seed", "3", "generate", *TINY, "--data-dir", str(tmp_path / "X")]) == 0
    seeds = sorted(json.loads((d / "metadata.json").read_text())["generation"]["seed"] for d in (tmp_path / "X").iterdir())
    assert seeds == [0, 3]  # --seed before the step: a new data set of seed 3 (was: seed 0's reused)


def test_mlp_checkpoints_carry_a_fingerprint(tmp_path, capsys):
    """A summary-statistic MLP checkpoint of other settings is refused (training and evaluation), one of the same
    settings reused, one without fingerprint refused; --restart retrains it (was: reused whatever its settings)."""
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    ps = ["--methods", "power_spectrum"]
    ckpt = tmp_path / "out" / "checkpoints" / "cosmo-power_spectrum.pt"
    assert main(["cosmo", "train", *TINY, *dirs, *ps]) == 0
    state = torch.load(ckpt, weights_only=True)
    assert len(state["meta"]["fingerprint"]) == 12 and state["meta"]["fields"]["train"]["epochs"] == 3
    capsys.readouterr()
    assert main(["cosmo", "train", *TINY, *dirs, *ps]) == 0
    assert "cosmo power_spectrum: reused the checkpoint" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True)["history"] == state["history"]
    err = refused(["train", *TINY, *dirs, *ps, "--mlp-epochs", "4"], capsys, "cosmo-power_spectrum.pt belongs to another run")
    assert "differing: train.epochs (3 in the file, 4 now; set by --mlp-epochs))" in err
    assert "add `--methods power_spectrum --restart` to the command" in err
    err = refused(["evaluate", *TINY, *dirs, *ps, "--mlp-epochs", "4"], capsys, "belongs to another run")
    assert "not evaluated" in err
    refused(["evaluate", *TINY, *dirs, *ps, "--bins", "2"], capsys, "differing: grid.n_bins")  # was: size-mismatch traceback
    refused(["train", *TINY, *dirs, *ps, "--bins", "2"], capsys, "differing: grid.n_bins")
    assert len(list((tmp_path / "data").iterdir())) == 1  # refused before the data set of --bins 2 is generated
    assert main(["cosmo", "train", *TINY, *dirs, *ps, "--mlp-epochs", "4", "--restart"]) == 0
    again = torch.load(ckpt, weights_only=True)
    assert len(again["history"]) == 4 and again["meta"]["fields"]["train"]["epochs"] == 4
    assert main(["cosmo", "evaluate", *TINY, *dirs, *ps, "--mlp-epochs", "4", "--no-plots"]) == 0
    torch.save({k: v for k, v in again.items() if k != "meta"}, ckpt)  # written before the fingerprints
    refused(["--mlp-epochs", "4", *TINY, *dirs, *ps], capsys, "predates checkpoint fingerprints")


def test_following_the_refusal_retrains_only_the_refused_method(tmp_path, capsys):
    """The refusal's remedy (add ``--methods METHOD --restart``) retrains the refused MLP and leaves the graph
    network's checkpoint as it was (a plain --restart retrained every method, the graph networks too); the
    original command then reuses both."""
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    both = ["--methods", "graph", "power_spectrum", "--graph-members", "1", "--mlp-members", "1"]
    ckpts = tmp_path / "out" / "checkpoints"
    assert main(["cosmo", "train", *TINY, *dirs, *both]) == 0
    graph_bytes = (ckpts / "cosmo-graph.pt").read_bytes()
    capsys.readouterr()
    err = refused(["train", *TINY, *dirs, *both, "--mlp-epochs", "4"], capsys, "cosmo-power_spectrum.pt belongs to another run")
    assert "add `--methods power_spectrum --restart` to the command" in err
    argv = ["cosmo", "train", *TINY, *dirs, *both, "--mlp-epochs", "4", "--methods", "power_spectrum", "--restart"]
    assert main(argv) == 0  # the remedy as printed: the last --methods wins
    assert (ckpts / "cosmo-graph.pt").read_bytes() == graph_bytes
    assert len(torch.load(ckpts / "cosmo-power_spectrum.pt", weights_only=True)["history"]) == 4
    capsys.readouterr()
    assert main(["cosmo", "train", *TINY, *dirs, *both, "--mlp-epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "cosmo graph: reused the finished network" in out and "cosmo power_spectrum: reused the checkpoint" in out


def test_restart_retrains_a_graph_network_of_other_settings(tmp_path, capsys):
    """The refusal of a graph checkpoint of other settings names --restart, which exists and retrains it."""
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    graph = ["--methods", "graph", "--graph-members", "1"]
    ckpt = tmp_path / "out" / "checkpoints" / "cosmo-graph.pt"
    assert main(["cosmo", "train", *TINY, *dirs, *graph]) == 0
    capsys.readouterr()
    assert main(["cosmo", "train", *TINY, *dirs, *graph]) == 0  # a rerun says it reused the network
    out = capsys.readouterr().out
    assert "cosmo graph: reused the finished network" in out and "cosmo graph: trained" not in out
    err = refused(["train", *TINY, *dirs, *graph, "--epochs", "3"], capsys, "cosmo-graph.pt belongs to another run")
    assert "add `--methods graph --restart` to the command to retrain it" in err
    assert main(["cosmo", "train", "--restart", *TINY, *dirs, *graph, "--epochs", "3"]) == 0
    assert "cosmo graph: trained" in capsys.readouterr().out
    assert len(torch.load(ckpt, weights_only=True)["history"]) == 3
    assert main(["cosmo", "evaluate", *TINY, *dirs, *graph, "--epochs", "3", "--no-plots"]) == 0
    refused(["evaluate", "--restart", *TINY, *dirs, *graph], capsys, "--restart does not apply to evaluate: only to train and run")


def test_bad_device_json_folder_and_values_before_any_work(tmp_path, capsys):
    data = tmp_path / "data"
    dirs = ["--data-dir", str(data), "--out-dir", str(tmp_path / "out")]
    refused([*TINY, *dirs, "--device", "gpu"], capsys, "unknown device 'gpu'")  # was: a RuntimeError traceback
    (tmp_path / "folder").mkdir()
    refused(["evaluate", *TINY, *dirs, "--json", str(tmp_path / "folder")], capsys, "is a folder, not a file")
    (tmp_path / "file").write_text("")
    refused([*TINY, "--data-dir", str(data), "--out-dir", str(tmp_path / "file")], capsys, "is a file, not a folder")
    refused([*TINY, *dirs, "--sigma-e", "-1"], capsys, "sigma_e must be a finite number >= 0")
    refused([*TINY, *dirs, "--seed", "-1"], capsys, "seed must be a non-negative integer, got -1")
    for option in ("--graph-members", "--mlp-members"):
        refused([*TINY, *dirs, option, "0"], capsys, f"{option[2:].replace('-', '_')} must be a positive integer, got 0")
    for lr in ("0", "nan", "inf", "-1"):  # was: refused by the graph training, after the maps were generated
        refused([*TINY, *dirs, "--lr", lr], capsys, f"lr must be a positive number, got {float(lr)!r}")
    assert not data.exists() or not any(data.iterdir())  # nothing generated


def test_bins_out_of_range_is_refused_naming_the_option_before_the_plan(tmp_path, capsys):
    """``--bins 50`` printed the generation plan, then "number of redshift bins must be an integer in [1, 8]" without
    the option; now refused before any output, naming --bins and the range (tomography's one rule, check_n_bins)."""
    data = tmp_path / "data"
    dirs = ["--data-dir", str(data), "--out-dir", str(tmp_path / "out")]
    for bins in ("50", "9", "0"):
        capsys.readouterr()
        cap = cli_refused("cosmo", ["generate", *TINY, *dirs, "--bins", bins], capsys,
                          f"--bins must be an integer in [1, 8], got {bins}")
        assert cap.out == "" and len(cap.err.strip().splitlines()) == 1, cap
    assert not data.exists() or not any(data.iterdir())  # nothing generated


def test_one_training_cosmology_is_refused_before_any_work(tmp_path, capsys):
    """``--n-train 1`` generated its data set, then failed "training set is empty" (its one cosmology went to
    validation); now refused before any output, by every step, naming --n-train, the minimum and why."""
    from deepsphere_gen.experiments.cosmo.data import min_n_train

    data = tmp_path / "data"
    dirs = ["--data-dir", str(data), "--out-dir", str(tmp_path / "out")]
    for step in ("generate", "train", "run"):
        capsys.readouterr()
        cap = cli_refused("cosmo", [step, *TINY, *dirs, "--n-train", "1"], capsys,
                          f"--n-train must be >= {min_n_train()} (one training cosmology in 8, at least one, is held out "
                          "for validation: 1 would leave none to train on), got 1")
        assert cap.out == "" and len(cap.err.strip().splitlines()) == 1, cap
    assert not data.exists() or not any(data.iterdir())  # nothing generated


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import deepsphere_gen.datasets.cosmo_grid as grid

    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(grid, "lognormal_maps", interrupted)
        refused(["generate", *TINY, *dirs], capsys, "interrupted during data generation", rc=130)
    assert not any((tmp_path / "data").iterdir())  # no partial data set
    with monkeypatch.context() as m:
        m.setattr(torch.optim.AdamW, "step", interrupted)
        err = refused([*TINY, *dirs, "--no-plots", "--methods", "graph"], capsys, "interrupted after epoch 0 of 2 of cosmo graph",
                    rc=130)
    assert "rerun the same command to resume" in err


def test_sigterm_ends_as_ctrl_c_does_with_exit_143_and_the_handler_restored(tmp_path, capsys, monkeypatch):
    """SIGTERM (`timeout`, a batch scheduler's time limit) during generation or training: one line, exit 143, the
    temporary data folder removed (was: killed at once, no message, a hidden `.cosmo-...tmp-*` folder left); the
    handler found before the command is back afterwards.  The test's own handler would see a SIGTERM the command
    did not take."""
    import os
    import signal

    import deepsphere_gen.datasets.cosmo_grid as grid

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
        maps = grid.lognormal_maps

        def terminated(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return maps(*a, **k)

        with monkeypatch.context() as m:
            m.setattr(grid, "lognormal_maps", terminated)
            err = refused(["generate", *TINY, *dirs], capsys, "terminated (SIGTERM) during data generation", rc=143)
        assert "nothing of the unfinished data set is kept" in err and "rerun the same command" in err
        assert not any((tmp_path / "data").iterdir())  # no hidden temporary folder
        step = torch.optim.AdamW.step

        def terminated_step(self, *a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return step(self, *a, **k)

        with monkeypatch.context() as m:
            m.setattr(torch.optim.AdamW, "step", terminated_step)
            err = refused(["train", *TINY, *dirs, "--methods", "graph"], capsys,
                          "terminated (SIGTERM) after epoch 0 of 2 of cosmo graph", rc=143)
        assert "rerun the same command to resume" in err
        assert seen == [] and signal.getsignal(signal.SIGTERM) is not None
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)
        assert seen == [signal.SIGTERM]  # the test's handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_termination_as_interrupt_leaves_an_outside_or_ignored_sigterm_handler_alone(monkeypatch):
    """A SIGTERM handler not set from Python (``getsignal`` gives None) is neither replaced nor, on restore,
    overwritten with SIG_DFL; an ignored SIGTERM stays ignored; a Python handler is replaced and put back."""
    import signal

    from deepsphere_gen.commands import _exits

    real_getsignal, real_signal, calls = signal.getsignal, signal.signal, []
    with monkeypatch.context() as m:
        m.setattr(_exits.signal, "getsignal", lambda s: None if s == signal.SIGTERM else real_getsignal(s))
        m.setattr(_exits.signal, "signal", lambda s, h: calls.append((s, h)) or real_signal(s, h))
        term = _exits.TerminationAsInterrupt()
        term.restore()
    assert calls == []
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        term = _exits.TerminationAsInterrupt()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        term.restore()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN

        def mine(signum, frame):
            pass

        signal.signal(signal.SIGTERM, mine)
        term = _exits.TerminationAsInterrupt()
        assert signal.getsignal(signal.SIGTERM) is not mine
        term.restore()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_not_enough_free_disk_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """As massmaps checks it (was: the generation died of SIGBUS on a full disk, without a word)."""
    import shutil

    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    usage = shutil.disk_usage(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1024))
        err = refused(["generate", *TINY, *dirs], capsys, "not enough free disk space in")
    assert "for the data set (nside 32, 3 bins" in err
    assert not any((tmp_path / "data").iterdir())
    assert main(["cosmo", "generate", *TINY, *dirs]) == 0
    with monkeypatch.context() as m:  # the data set is there: only the checkpoints, JSON and figures need room
        m.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1024))
        refused(["train", *TINY, *dirs], capsys, "for checkpoints, JSON and figures")


def test_a_disk_filling_up_is_one_line(tmp_path, capsys, monkeypatch):
    """During generation (the maps file is allocated before it is mapped: ENOSPC there, not SIGBUS at a store) and
    at a checkpoint write (torch's writer turns the failing write into a RuntimeError chained between two OSErrors:
    was three tracebacks): one line naming the file, exit 2, nothing half-written kept."""
    import errno
    import io
    import os

    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "posix_fallocate", full)
        err = refused(["generate", *TINY, *dirs], capsys, "No space left on device: ")
    assert "maps_train.npy (during data generation; nothing of the unfinished data set is kept)" in err
    assert not any((tmp_path / "data").iterdir())  # the temporary folder is removed

    class FullDisk(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    save = torch.save
    with monkeypatch.context() as m:
        m.setattr(torch, "save", lambda obj, f, *a, **k: save(obj, FullDisk(), *a, **k))
        err = refused(["train", *TINY, *dirs, "--methods", "graph"], capsys, "No space left on device: ")
    assert "cosmo-graph.pt (during training; finished checkpoints are kept)" in err
    assert not list((tmp_path / "out" / "checkpoints").glob("*"))  # no half-written checkpoint


def test_footprint_must_be_a_partial_sky_mask(tmp_path, capsys):
    """A convergence map or a full-sky mask given as --footprint is refused (was: every non-zero pixel kept)."""
    import healpy as hp

    from deepsphere_gen.datasets.survey_footprint import stage3_footprint

    npix = 12 * 32**2
    rng = np.random.default_rng(0)
    hp.write_map(str(tmp_path / "kappa.fits"), rng.normal(0, 0.01, npix), nest=True, dtype=np.float64)
    hp.write_map(str(tmp_path / "full.fits"), np.ones(npix), nest=True, dtype=np.float64)
    mask = stage3_footprint(32).astype(np.float64)
    mask[~stage3_footprint(32)] = hp.UNSEEN
    hp.write_map(str(tmp_path / "mask.fits"), mask, nest=True, dtype=np.float64)
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    refused([*TINY, *dirs, "--footprint", str(tmp_path / "kappa.fits")], capsys, "is not a 0/1 mask")
    err = refused([*TINY, *dirs, "--footprint", str(tmp_path / "full.fits")], capsys, "keeps 100.0 % of the sky")
    assert (f"--footprint: footprint {tmp_path / 'full.fits'} keeps 100.0 % of the sky: cosmo analyses a partial-sky "
            "survey footprint (at most 90 % of the sky); pass the survey's mask (1 inside, 0 outside)") in err
    assert not list((tmp_path / "data").iterdir())  # before any simulation (the library check: test_cosmo_footprint)
    from deepsphere_gen.commands.cosmo import check_footprint_file
    from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig

    grid = CosmoGridConfig(nside=32, footprint=str(tmp_path / "mask.fits"))
    check_footprint_file(grid)  # a survey mask (1 inside, UNSEEN outside) passes
    check_footprint_file(CosmoGridConfig(nside=32))


def test_the_footprint_is_read_or_built_once_per_run(tmp_path, capsys, monkeypatch):
    """One run (checks, generation, training, evaluation) reads a --footprint FITS file once and builds the
    built-in footprint once (was 6 times each: the command's checks, generation, the checkpoints' fingerprints,
    the pseudo-C_l estimator of training, its cache, evaluation): the mask travels on the run's grid config
    (``cosmo_grid.footprint_mask``).  A FITS mask inside base pixel 4 is compared with the built-in footprint
    (which it could be) once; the data set and checkpoints are those a run on a copy of the file makes."""
    import healpy as hp

    from deepsphere_gen.datasets import cosmo_grid

    reads, builds = [], []
    read, build = cosmo_grid.read_footprint, cosmo_grid.stage3_footprint
    monkeypatch.setattr(cosmo_grid, "read_footprint", lambda *a, **k: reads.append(a) or read(*a, **k))
    monkeypatch.setattr(cosmo_grid, "stage3_footprint", lambda *a, **k: builds.append(a) or build(*a, **k))
    nside = 32
    values = np.full(12 * nside**2, hp.UNSEEN)
    values[4 * nside**2: 5 * nside**2 - 1] = 1.0  # base pixel 4 but one pixel: not the built-in footprint
    hp.write_map(str(tmp_path / "mask.fits"), values, nest=True, dtype=np.float64)
    one = ["--graph-members", "1", "--mlp-members", "1", "--no-plots"]
    dirs = lambda name: ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / name)]  # noqa: E731
    assert main(["cosmo", *TINY, *one, *dirs("fits"), "--footprint", str(tmp_path / "mask.fits")]) == 0
    assert [a[0] for a in reads] == [str(tmp_path / "mask.fits")] and builds == [(nside,)]
    # the record names the mask by its content beside the path as given: the data set's own name for it
    grid = json.loads((tmp_path / "fits" / "cosmo.json").read_text())["config"]["grid"]
    meta = json.loads(next((tmp_path / "data").iterdir()).joinpath("metadata.json").read_text())
    assert grid["footprint"] == str(tmp_path / "mask.fits")
    assert grid["footprint_id"] == meta["generation"]["footprint"] and grid["footprint_id"].startswith("mask-sha256:")
    reads.clear(), builds.clear()
    assert main(["cosmo", *TINY, *one, *dirs("stage3")]) == 0
    assert reads == [] and builds == [(nside,)]
    # a second run on a copy of the file reads the copy once and reuses the data set and checkpoints
    (tmp_path / "copy.fits").write_bytes((tmp_path / "mask.fits").read_bytes())
    reads.clear(), builds.clear()
    capsys.readouterr()
    assert main(["cosmo", "evaluate", *TINY, *one, *dirs("fits"), "--footprint", str(tmp_path / "copy.fits")]) == 0
    assert [a[0] for a in reads] == [str(tmp_path / "copy.fits")] and builds == [(nside,)]
    assert "cosmo: reusing" in capsys.readouterr().out and len(list((tmp_path / "data").iterdir())) == 2


def test_a_footprint_too_small_for_the_bands_is_refused_before_any_work(tmp_path, capsys):
    """A 9-degree cap (262 deg^2) at --quick's nside 32 passed every check, the data set was generated, then the
    estimator refused "nside 32 leaves fewer than 2 bands of width 23 below l = 2 nside" without naming
    --footprint or a remedy.  Now refused before any output where power_spectrum or handcrafted trains or is
    evaluated, by the estimator's own call (the estimator refuses this mask; a cap above the minimum passes both),
    naming --footprint, f_sky, the minimum and the remedies; not where only the graph network uses it."""
    import healpy as hp

    from deepsphere_gen.commands.cosmo import _config, check_footprint_bands
    from deepsphere_gen.datasets.cosmo_grid import footprint_mask
    from deepsphere_gen.datasets.pseudo_cl import PseudoCl, min_band_fsky

    nside = 32
    low = min_band_fsky(nside)
    data = tmp_path / "data"
    dirs = ["--data-dir", str(data), "--out-dir", str(tmp_path / "out")]
    for radius, small in ((9.0, True), (12.0, False)):
        mask = np.zeros(12 * nside**2)
        mask[hp.query_disc(nside, hp.ang2vec(np.pi / 2, 0.0), np.radians(radius), nest=True)] = 1.0
        assert (mask.mean() < low) == small, (mask.mean(), low)
        path = tmp_path / f"cap{radius:.0f}.fits"
        hp.write_map(str(path), mask, nest=True, dtype=np.float64)
        if small:
            with pytest.raises(ValueError, match="fewer than 2 bands"):
                PseudoCl(mask.astype(bool))  # what the estimator does after the generation
            for methods in (["power_spectrum"], ["handcrafted"], ["graph", "power_spectrum"]):
                for step in ("train", "evaluate", "run"):
                    capsys.readouterr()
                    cap = cli_refused("cosmo", [step, *TINY, *dirs, "--footprint", str(path), "--methods", *methods],
                                      capsys, f"--footprint {path}: too small for the band powers of")
                    err = cap.err
                    assert cap.out == "" and len(err.strip().splitlines()) == 1, cap
                    for part in (f"f_sky {mask.mean():.4g}", f"the default bands need f_sky >= {low:.4g}",
                                 "deg^2", "a larger footprint, a higher --nside, or leave power_spectrum and "
                                 "handcrafted out of --methods"):
                        assert part in err, (part, err)
            assert not data.exists() or not any(data.iterdir())  # nothing generated
        else:
            PseudoCl(mask.astype(bool))
        for methods in (["graph"], ["power_spectrum"]):  # graph alone never needs the bands; the larger cap has them
            config = _config(_parse(["train", *TINY, *dirs, "--footprint", str(path), "--methods", *methods]))
            assert footprint_mask(config.grid).sum() == mask.sum()
            if methods == ["graph"] or not small:
                check_footprint_bands(config, "train")
        check_footprint_bands(_config(_parse(["generate", *TINY, *dirs, "--footprint", str(path)])), "generate")


def test_footprint_pooling_is_said_before_any_work_and_a_footprint_it_would_empty_refused(tmp_path, capsys):
    """The graph network's pooling of a --footprint, said before any work as massmaps says it (one shared check):
    a mask holding one child of each of 500 parents at nside 32 (no complete group of 4 NESTED siblings: the first
    pooling would keep nothing) is refused naming --footprint, why and what to do; 2000 scattered pixels (was:
    trained and evaluated on a few pooled pixels without a word) get the drop note and a plain "too fragmented" one
    (counts as numpy's); a cap the drop note alone; without the graph method neither."""
    import healpy as hp

    from deepsphere_gen.commands import cosmo as cmd

    nside, rng = 32, np.random.default_rng(5)
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    path = tmp_path / "single.fits"
    single = np.zeros(12 * nside**2)
    single[rng.choice(3 * nside**2, 500, replace=False) * 4 + rng.integers(0, 4, 500)] = 1
    hp.write_map(str(path), single, nest=True, dtype=np.float64)
    err = refused([*TINY, *dirs, "--footprint", str(path)], capsys, f"--footprint {path}: no complete group of 4 NESTED")
    assert ("among its 500 pixels at nside 32: the footprint is too fragmented at this nside for the pooling of the "
            "graph network, which would keep none of it; use a more compact footprint, or a mask made at a larger "
            "--nside, or --methods without graph") in err
    assert not list((tmp_path / "data").iterdir())  # before any simulation
    config = cmd._config(_parse([*TINY, "--footprint", str(path), "--methods", "power_spectrum"]))
    assert cmd.pooling_notes(config, "run") == []
    idx = np.sort(rng.choice(12 * nside**2, 2000, replace=False))
    scattered = np.zeros(12 * nside**2)
    scattered[idx] = 1
    hp.write_map(str(path), scattered, nest=True, dtype=np.float64, overwrite=True)
    kept = int((np.unique(idx // 4, return_counts=True)[1] == 4).sum())
    assert 0 < kept < 20
    out = cli_refused("cosmo", [*TINY, *dirs, "--footprint", str(path), "evaluate"], capsys,
                      "not every requested network is trained").out  # the notes come first
    assert out.splitlines() == [
        f"cosmo: note: footprint {path}: the graph network's pooling drops the pixels whose parent pixel is partly "
        f"outside the footprint ({2000 - 4 * kept} of 2000 at nside 32 -> 16)",
        f"cosmo: note: footprint {path}: the footprint is too fragmented to pool at nside 32: the first pooling keeps "
        f"{4 * kept} of its 2000 pixels, and the graph network's blocks see 2000 -> {kept} pixels; a more compact "
        "footprint, or a mask made at a larger --nside, keeps more"]
    cap = np.zeros(12 * nside**2)
    cap[hp.query_disc(nside, hp.ang2vec(1.0, 2.0), np.radians(20), nest=True)] = 1  # 372 -> 81 -> 15 -> 1
    hp.write_map(str(tmp_path / "cap.fits"), cap, nest=True, dtype=np.float64)
    config = cmd._config(_parse([*TINY, "--footprint", str(tmp_path / "cap.fits")]))
    assert cmd.pooling_notes(config, "train") == [
        f"cosmo: note: footprint {tmp_path / 'cap.fits'}: the graph network's pooling drops the pixels whose parent "
        "pixel is partly outside the footprint (48 of 372 at nside 32 -> 16, 21 of 81 at nside 16 -> 8, 11 of 15 at "
        "nside 8 -> 4)"]
    assert cmd.pooling_notes(config, "generate") == []


def test_pooling_drop_note_only_where_the_drop_is_material():
    """The built-in footprint at the default nside 128: its first pooling drops 238 of its 4762 pixels (5 %), below
    MATERIAL_DROP: no note (was: the drop note on every default run, which no option changes); at --quick's nside 32
    (59 of 299, 20 %) the note.  The threshold is on the first pooling's drop: 4 of 44 pixels (9 %) no note, 4 of
    40 (10 %) the note."""
    from deepsphere_gen.commands import cosmo as cmd
    from deepsphere_gen.commands._preflight import footprint_pooling_notes

    assert cmd.pooling_notes(cmd._config(_parse([])), "run") == []
    assert cmd.MATERIAL_DROP == 0.1
    assert cmd.pooling_notes(cmd._config(_parse(["--quick"])), "run") == [
        "cosmo: note: footprint stage3: the graph network's pooling drops the pixels whose parent pixel is partly "
        "outside the footprint (59 of 299 at nside 32 -> 16, 20 of 60 at nside 16 -> 8, 6 of 10 at nside 8 -> 4)"]
    assert footprint_pooling_notes([(64, 44, 10), (32, 10, 1)], "f", "its", min_drop=0.1) == []
    assert footprint_pooling_notes([(64, 40, 9), (32, 9, 1)], "f", "its", min_drop=0.1) == [
        "f: its pooling drops the pixels whose parent pixel is partly outside the footprint (4 of 40 at nside 64 -> 32, "
        "5 of 9 at nside 32 -> 16)"]
    assert footprint_pooling_notes([(64, 44, 10), (32, 10, 1)], "f", "its") != []  # massmaps: any drop


def test_help_names_every_default_and_the_quick_sizes():
    from deepsphere_gen.cli import build_parser
    from deepsphere_gen.commands import cosmo as cmd

    parser = build_parser(["cosmo"])
    sub = next(a for a in parser._actions if a.dest == "command").choices["cosmo"]
    for action in sub._actions:
        if action.option_strings and action.nargs != 0 and action.dest not in ("help", "json", "data_dir", "device",
                                                                              "methods"):
            assert "default" in action.help, action.option_strings
    for dest in ("methods", "data_dir", "device"):
        assert "default" in next(a for a in sub._actions if a.dest == dest).help
    quick = next(a for a in sub._actions if a.dest == "quick").help
    q = cmd.QUICK
    assert f"{q['n_train']} training + {q['n_test']} held-out + {q['n_calib']} calibration cosmologies" in quick
    # every setting --quick changes is named (was: nside, sizes and epochs only; not the 8-16-16 network, n_real,
    # n_fiducial, mlp_epochs), read from QUICK: a setting added to it without its words fails here
    named = {"nside": f"nside {q['nside']}", "n_train": f"{q['n_train']} training", "n_test": f"{q['n_test']} held-out",
             "n_calib": f"{q['n_calib']} calibration", "n_real": f"x {q['n_real']} realisations",
             "n_fiducial": f"{q['n_fiducial']} at the fiducial", "epochs": f"trained {q['epochs']} epochs",
             "mlp_epochs": f"MLPs at most {q['mlp_epochs']} epochs",
             "channels": f"{len(q['channels'])}-block {'-'.join(map(str, q['channels']))} graph network"}
    assert set(named) == set(q) and all(text in quick for text in named.values()), quick
    assert "smoke test" in quick


def test_done_line_gives_cpu_minutes_consistent_with_the_seconds(tmp_path, capsys):
    import re

    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"), "--no-plots"]
    assert main(["cosmo", *TINY, *dirs, "--methods", "power_spectrum"]) == 0
    s, minutes = re.search(r"done in \d+ s wall, (\d+) s process CPU \(([\d.]+) min\)", capsys.readouterr().out).groups()
    assert abs(float(minutes) * 60 - int(s)) <= 3.5  # was: "3 s process CPU (1 min)"


def test_a_step_after_the_methods_list_ends_it():
    """`cosmo --methods graph train`: the step is no method (argparse alone: "invalid choice: 'train'");
    a one-value option keeps a step-like value (--out-dir run)."""
    from deepsphere_gen.cli import parse_args

    args = parse_args(["cosmo", "--quick", "--methods", "graph", "power_spectrum", "train", "--seed", "2"])
    assert (args.step, args.methods, args.seed, args.quick) == ("train", ["graph", "power_spectrum"], 2, True)
    args = parse_args(["cosmo", "--out-dir", "run", "--methods", "graph", "evaluate"])
    assert (args.step, args.out_dir, args.methods) == ("evaluate", "run", ["graph"])


def test_data_dir_help_says_how_the_cache_folder_is_chosen(monkeypatch, tmp_path):
    """cosmo's and digits' --data-dir help name $XDG_CACHE_HOME beside $DEEPSPHERE_GEN_CACHE, as massmaps's does
    (was: left out, though it moves the cache), and the folder they would use now (digits': was "<cache root>/digits")."""
    from deepsphere_gen.cli import build_parser

    monkeypatch.delenv("DEEPSPHERE_GEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for command, folder in (("cosmo", tmp_path / "deepsphere_gen" / "cosmo"),
                            ("digits", tmp_path / "deepsphere_gen" / "digits")):
        sub = next(a for a in build_parser([command])._actions if a.dest == "command").choices[command]
        text = next(a for a in sub._actions if a.dest == "data_dir").help
        assert "$XDG_CACHE_HOME" in text and "$DEEPSPHERE_GEN_CACHE" in text, text
        assert f"default {folder}:" in text, text


def test_data_dir_help_names_the_folder_the_library_uses(monkeypatch, tmp_path):
    """The --data-dir help (built without torch) and datasets.cosmo_grid read one function, _cache_dirs.cosmo_data_dir
    (was: the help built the folder itself; then cosmo_grid had its own default_data_dir calling it)."""
    from deepsphere_gen import _cache_dirs
    from deepsphere_gen.cli import build_parser
    from deepsphere_gen.datasets import cosmo_grid

    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path / "root"))
    sub = next(a for a in build_parser(["cosmo"])._actions if a.dest == "command").choices["cosmo"]
    text = next(a for a in sub._actions if a.dest == "data_dir").help
    assert _cache_dirs.cosmo_data_dir() == tmp_path / "root" / "cosmo"
    assert f"(default {_cache_dirs.cosmo_data_dir()}:" in text, text
    assert not hasattr(cosmo_grid, "default_data_dir")  # one rule, in _cache_dirs


def _strict_json(path):
    """The JSON at ``path``, refusing the Infinity / NaN that Python's json writes but strict JSON lacks."""
    def refuse(name):
        raise AssertionError(f"{path.name} holds {name}, not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_ngal_inf_writes_strict_json_and_the_figures(tmp_path, capsys):
    """``--ngal inf`` (no noise) used to print the table, then fail writing the JSON (inf is not JSON) and lose the
    figures: the config records ngal as "inf", every other value stays finite, and the figures are written."""
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["cosmo", *TINY, *dirs, "--ngal", "inf", "--graph-members", "1", "--mlp-members", "1"]) == 0
    rec = _strict_json(tmp_path / "out" / "cosmo.json")
    assert rec["config"]["ngal"] == "inf" and {r["method"] for r in rec["records"]} == {"graph", "power_spectrum",
                                                                                        "handcrafted"}
    for name in ("cosmo_predicted_vs_true.png", "cosmo_fiducial_ellipses.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_a_missing_summary_width_says_why(tmp_path, capsys):
    """Too few fiducial samples for the summary Fisher width (1 map x 4 footprint copies < 6): "fid F" is "-" and
    the estimates-as-summaries target line is not printed; the reason used to be swallowed, now the table's
    footnote, that target line and every record's summary_width say it."""
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["cosmo", *TINY, *dirs, "--n-fiducial", "1", "--graph-members", "1", "--mlp-members", "1",
                 "--no-plots"]) == 0
    text = capsys.readouterr().out
    reason = "summary widths need >= 6 fiducial samples, got 4 (fiducial maps x footprint copies): raise --n-fiducial"
    assert f"(fid F = - for graph, power_spectrum, handcrafted: {reason})" in text
    assert f"the same with the estimates as summaries: not evaluated ({reason})" in text
    rec = json.loads((tmp_path / "out" / "cosmo.json").read_text())
    assert all(r["fiducial"]["summary_width"] == {"omega_m": None, "s8": None, "slope": None, "missing": reason}
               for r in rec["records"])
