"""``deepsphere-gen cosmo``'s checkpoint checks: every checkpoint a step reads is checked once, before any work,
and a refusal names each differing setting with the option that sets it."""
import re

from deepsphere_gen.cli import main
from deepsphere_gen.commands import cosmo as command
from deepsphere_gen.experiments import cosmo as exp
from deepsphere_gen.experiments.cosmo import training
from deepsphere_gen.experiments.cosmo.members import GRAPH_OPTIONS, MLP_OPTIONS, member_fields, mlp_fields

from ._cosmo_cli import TINY, refused


def test_checkpoints_are_checked_once_per_command_and_before_any_work(tmp_path, capsys, monkeypatch):
    """train and run check the checkpoints once (was: in the command, then again in train()); a checkpoint of
    other settings is refused by every step before the data set of those settings is generated."""
    calls = []
    check = training.check_checkpoints

    def counted(*args, **kwargs):
        calls.append(args[0].methods)
        return check(*args, **kwargs)

    monkeypatch.setattr(exp, "check_checkpoints", counted)
    monkeypatch.setattr(training, "check_checkpoints", counted)
    data = tmp_path / "data"
    dirs = ["--data-dir", str(data), "--out-dir", str(tmp_path / "out")]
    ps = ["--methods", "power_spectrum"]
    for argv in (["train", *TINY, *dirs, *ps], ["train", *TINY, *dirs, *ps],  # the second: a checkpoint to check
                 [*TINY, *dirs, *ps, "--no-plots"]):
        calls.clear()
        assert main(["cosmo", *argv]) == 0
        assert len(calls) == 1, argv
    for step in ("train", "evaluate", "run"):
        refused([step, *TINY, *dirs, *ps, "--bins", "2"], capsys, "differing: grid.n_bins")
    assert len(list(data.iterdir())) == 1  # no data set of --bins 2 generated


def test_a_refusal_names_the_option_that_sets_each_differing_setting(tmp_path, capsys):
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    assert main(["cosmo", "train", *TINY, *dirs, "--methods", "graph", "power_spectrum", "--graph-members", "1"]) == 0
    err = refused(["train", *TINY, *dirs, "--methods", "power_spectrum", "--mlp-epochs", "4", "--ngal", "5"], capsys,
                "differing: ngal (6.0 in the file, 5.0 now; set by --ngal), "
                "train.epochs (3 in the file, 4 now; set by --mlp-epochs)); not reused")
    assert "cosmo-power_spectrum.pt" in err
    refused(["evaluate", *TINY, *dirs, "--methods", "power_spectrum", "--mlp-epochs", "4"], capsys,
          "train.epochs (3 in the file, 4 now; set by --mlp-epochs)); not evaluated")
    refused(["train", *TINY, *dirs, "--methods", "graph", "--graph-members", "1", "--epochs", "3"], capsys,
          "cosmo-graph.pt belongs to another run (fingerprint")
    refused(["evaluate", *TINY, *dirs, "--methods", "graph", "--graph-members", "1", "--epochs", "3"], capsys,
          "differing: train.epochs (2 in the file, 3 now; set by --epochs)); not evaluated")
    # a setting that follows from another (the MLP's init_seed, from --seed): named without an option
    err = refused(["train", *dirs, *TINY, "--methods", "power_spectrum", "--seed", "1"], capsys,
                "differing: grid.seed (0 in the file, 1 now; set by --seed)")
    assert re.search(r", init_seed \(\d+ in the file, \d+ now\), seed \(0 in the file, 1 now; set by --seed\)\)",
                     err), err


def test_the_option_tables_name_real_fields_and_real_options():
    from argparse import ArgumentParser

    config = exp.CosmoExperimentConfig()
    parser = ArgumentParser()
    command.add_arguments(parser)
    options = {o for a in parser._actions for o in a.option_strings}
    for table, fields in ((GRAPH_OPTIONS, member_fields(config, 0)), (MLP_OPTIONS, mlp_fields(config, "handcrafted"))):
        for name, option in table.items():
            value = fields
            for key in name.split("."):
                value = value[key]  # a KeyError: a field the fingerprint does not have
            assert option in options, option
    assert GRAPH_OPTIONS["train.epochs"] == "--epochs" and MLP_OPTIONS["train.epochs"] == "--mlp-epochs"


def test_a_copy_of_the_footprint_file_by_another_path_is_the_same_run(tmp_path, capsys, monkeypatch):
    """Trained with --footprint /abs/x/mask.fits, evaluated with a copy by a relative path (RING ordered): the
    checkpoint and the data set are reused (was: "belongs to another run (... differing: grid.footprint
    ('/abs/x/mask.fits' in the file, '../y/mask.fits' now ...)" and the data set generated again)."""
    import healpy as hp
    import numpy as np

    mask = np.zeros(12 * 32**2)
    mask[: 2 * 32**2] = 1.0
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
    hp.write_map(str(tmp_path / "x" / "mask.fits"), mask, nest=True, dtype=np.float64)
    hp.write_map(str(tmp_path / "y" / "mask.fits"), hp.reorder(mask, n2r=True), nest=False, dtype=np.float64)
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    ps = ["--methods", "power_spectrum", "--mlp-members", "1"]
    assert main(["cosmo", "train", *TINY, *dirs, *ps, "--footprint", str(tmp_path / "x" / "mask.fits")]) == 0
    monkeypatch.chdir(tmp_path / "x")
    capsys.readouterr()
    assert main(["cosmo", "evaluate", *TINY, *dirs, *ps, "--no-plots", "--footprint", "../y/mask.fits"]) == 0
    assert "cosmo: reusing" in capsys.readouterr().out
    assert len(list((tmp_path / "data").iterdir())) == 1


def test_evaluate_refuses_members_that_are_not_trained(tmp_path, capsys):
    """evaluate with more members than trained (or a method never trained) is refused before any work, naming the
    missing checkpoints and the option, and the complete record is kept (was: a note, exit 0, and OUT_DIR/cosmo.json
    overwritten by a record without that method)."""
    out = tmp_path / "out"
    dirs = ["--data-dir", str(tmp_path / "data"), "--out-dir", str(out)]
    ps = ["--methods", "power_spectrum"]
    assert main(["cosmo", *TINY, *dirs, *ps, "--mlp-members", "2", "--no-plots"]) == 0
    record = (out / "cosmo.json").read_text()
    ckpts = out / "checkpoints"
    err = refused(["evaluate", *TINY, *dirs, *ps, "--mlp-members", "4", "--no-plots"], capsys,
                  f"power_spectrum: no checkpoint {ckpts / 'cosmo-power_spectrum-m2.pt'}, "
                  f"{ckpts / 'cosmo-power_spectrum-m3.pt'} (--mlp-members 4): train them with `deepsphere-gen cosmo "
                  "train --methods power_spectrum --mlp-members 4` and this run's other options, or evaluate the 2 "
                  "trained with `--mlp-members 2`")
    assert err.startswith("deepsphere-gen cosmo: error: not every requested network is trained, nothing evaluated")
    err = refused(["evaluate", *TINY, *dirs, "--methods", "power_spectrum", "handcrafted", "--mlp-members", "2"], capsys,
                  "or leave handcrafted out of --methods")
    assert "power_spectrum:" not in err
    assert (out / "cosmo.json").read_text() == record  # the complete record kept
    assert main(["cosmo", "evaluate", *TINY, *dirs, *ps, "--mlp-members", "2", "--no-plots"]) == 0


def test_the_refusal_names_graph_members_beyond_those_trained(tmp_path):
    from deepsphere_gen.experiments.cosmo.members import checkpoint_path, untrained_message

    config = exp.CosmoExperimentConfig(out_dir=str(tmp_path), methods=("graph",), graph_members=5)
    assert untrained_message(config).endswith("or leave graph out of --methods")
    for i in range(3):
        path = checkpoint_path(config, "graph", i)
        path.parent.mkdir(exist_ok=True)
        path.touch()
    assert untrained_message(config) == (
        f"not every requested network is trained, nothing evaluated: graph: no checkpoint "
        f"{checkpoint_path(config, 'graph', 3)}, {checkpoint_path(config, 'graph', 4)} (--graph-members 5): train them "
        "with `deepsphere-gen cosmo train --methods graph --graph-members 5` and this run's other options, or evaluate "
        "the 3 trained with `--graph-members 3`")
    assert untrained_message(exp.CosmoExperimentConfig(out_dir=str(tmp_path), methods=("graph",), graph_members=3)) \
        is None
