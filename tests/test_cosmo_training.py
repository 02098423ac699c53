"""Training of the cosmo estimators (experiments.cosmo.training): the summary-statistic MLPs' initial
weights depend on the run's seed and the method alone, an MLP checkpoint of the earlier rule (weights
initialised from whatever the graph training left in the global RNG) is refused, and the MLP ensembles'
members (member 0 the single MLP) are trained, reused and combined as the graph's."""
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepsphere_gen._fingerprint import fingerprint_meta
from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
from deepsphere_gen.experiments.cosmo import CosmoExperimentConfig, generate, train
from deepsphere_gen.experiments.cosmo.members import checkpoint_path, mlp_meta
from deepsphere_gen.training import CheckpointMismatch, load_checkpoint, save_checkpoint

MLPS = ("power_spectrum", "handcrafted")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A quick-sized configuration (one graph network of two epochs, MLPs of three) and its data set."""
    root = tmp_path_factory.mktemp("cosmo-train")
    grid = CosmoGridConfig(nside=32, n_train=8, n_test=2, n_real=1, n_fiducial=2, n_calib=8)
    config = CosmoExperimentConfig(grid=grid, channels=(8, 16, 16), epochs=2, mlp_epochs=3, graph_members=1,
                                   data_dir=str(root / "data"), progress=False, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield config, generate(config), root
    torch.set_num_threads(threads)


def _mlp_weights(config) -> dict:
    return {m: load_checkpoint(checkpoint_path(config, m))["model"] for m in MLPS if m in config.methods}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mlp_weights_do_not_depend_on_the_graph_network(tiny):
    """The same MLPs, bit for bit, whether the graph network is trained before them, reused from its checkpoint
    or not asked for, and whichever other MLP is trained (was: initial weights from the global RNG state that
    the graph training, its reuse or its absence left)."""
    config, path, root = tiny
    full = replace(config, methods=("graph", *MLPS), out_dir=str(root / "all"))
    train(full, path, log=None)
    first = _mlp_weights(full)
    for m in MLPS:  # a rerun after deleting the MLP checkpoints only: the graph network is reused
        checkpoint_path(full, m).unlink()
    graph = load_checkpoint(checkpoint_path(full, "graph"))
    train(full, path, log=None)
    assert load_checkpoint(checkpoint_path(full, "graph"))["history"] == graph["history"]
    again = _mlp_weights(full)
    for m in MLPS:
        assert _same(again[m], first[m]), m
    for methods in (("power_spectrum",), ("handcrafted",)):  # no graph network in the run
        alone = replace(config, methods=methods, out_dir=str(root / methods[0]))
        train(alone, path, log=None)
        (m,) = methods
        assert _same(_mlp_weights(alone)[m], first[m]), m
    other = replace(config, seed=2, methods=("power_spectrum",), out_dir=str(root / "seed2"))
    train(other, path, log=None)
    assert not _same(_mlp_weights(other)["power_spectrum"], first["power_spectrum"])  # the seed does count


def test_mlp_checkpoint_of_the_unseeded_initialisation_is_refused(tiny):
    """An MLP checkpoint whose fingerprint lacks ``init_seed`` (written before the seeded initialisation) is
    refused by training and evaluation, naming the field and --restart; --restart retrains it."""
    from deepsphere_gen.experiments.cosmo import evaluate_all

    config, path, root = tiny
    ps = replace(config, methods=("power_spectrum",), out_dir=str(root / "old"))
    train(ps, path, log=None)
    ckpt = checkpoint_path(ps, "power_spectrum")
    state = load_checkpoint(ckpt)
    old_fields = {k: v for k, v in mlp_meta(ps, "power_spectrum")["fields"].items() if k != "init_seed"}
    save_checkpoint(ckpt, {**state, "meta": fingerprint_meta(old_fields)})  # as the earlier code wrote it
    with pytest.raises(CheckpointMismatch, match=r"cosmo-power_spectrum.pt belongs to another run .*differing: "
                                                 r"init_seed \(missing in the file, \d+ now.*--methods power_spectrum --restart"):
        train(ps, path, log=None)
    with pytest.raises(CheckpointMismatch, match=r"differing: init_seed .*not evaluated"):
        evaluate_all(ps, path, log=None)
    train(ps, path, log=None, restart=True)
    assert load_checkpoint(ckpt)["meta"] == mlp_meta(ps, "power_spectrum")
    assert _same(load_checkpoint(ckpt)["model"], state["model"])


def test_mlp_ensemble_members_reuse_and_combination(tiny, monkeypatch, capsys):
    """``mlp_members``: member 0 is the single MLP bit for bit (weights and evaluated numbers), members >= 1
    differ and have their own checkpoints; a rerun reuses every member; fewer members reuse those they share,
    more train the missing ones only; evaluation refuses an ensemble with a member missing; a member of other
    settings is refused by name; the members' outputs are combined by the graph's function
    (``posterior.ensemble_moments``), whose ensemble mean is no worse than its members' on held-out data."""
    import deepsphere_gen.experiments.cosmo.evaluation as evaluation
    from deepsphere_gen.experiments.cosmo import evaluate_all
    from deepsphere_gen.experiments.cosmo.posterior import ensemble_moments, mean_cov, mixture_moments

    config, path, root = tiny
    single = replace(config, methods=("power_spectrum",), mlp_members=1, out_dir=str(root / "ens1"))
    three = replace(config, methods=("graph", "power_spectrum"), graph_members=2, mlp_members=3,
                    out_dir=str(root / "ens3"))
    train(single, path, log=None)
    train(three, path, log=None)
    ck = {k: checkpoint_path(three, "power_spectrum", k) for k in range(3)}
    assert ck[1].name == "cosmo-power_spectrum-m1.pt" and all(c.is_file() for c in ck.values())
    weights = {k: load_checkpoint(c)["model"] for k, c in ck.items()}
    assert _same(weights[0], _mlp_weights(single)["power_spectrum"])
    assert not _same(weights[0], weights[1]) and not _same(weights[1], weights[2])
    assert load_checkpoint(ck[1])["meta"] == mlp_meta(three, "power_spectrum", 1) != mlp_meta(three, "power_spectrum")
    # a rerun reuses every member (nothing retrained); two members reuse 0 and 1; four train member 3 only
    mtimes = {k: c.stat().st_mtime_ns for k, c in ck.items()}
    train(three, path)
    out = capsys.readouterr().out
    assert all(f"cosmo power_spectrum{s}: reused the checkpoint" in out for s in ("", " m1", " m2"))
    assert "power_spectrum: best epoch" not in out and " m1: best epoch" not in out and " m2: best epoch" not in out
    assert {k: c.stat().st_mtime_ns for k, c in ck.items()} == mtimes
    four = replace(three, mlp_members=4)
    res = evaluate_all(four, path)  # member 3 missing: the method is not evaluated, with the refusal's line
    assert (f"cosmo: power_spectrum: no checkpoint {checkpoint_path(four, 'power_spectrum', 3)} (--mlp-members 4): "
            "train it with `deepsphere-gen cosmo train --methods power_spectrum --mlp-members 4` and this run's other "
            "options, or evaluate the 3 trained with `--mlp-members 3`; power_spectrum not evaluated\n") \
        in capsys.readouterr().out  # the remedy names the member count (a plain train: 3)
    assert [r["method"] for r in res["records"]] == ["graph"]
    train(four, path)
    out = capsys.readouterr().out
    assert "power_spectrum m3: best epoch" in out and "power_spectrum m2: reused" in out
    assert {k: c.stat().st_mtime_ns for k, c in ck.items()} == mtimes
    two = evaluate_all(replace(three, mlp_members=2), path, log=None)
    assert [m["member"] for m in next(r for r in two["records"] if r["method"] == "power_spectrum")["members"]] == [0, 1]
    # the combination: one function for the graph's and the MLPs' members
    calls = []

    def spy(outs):
        calls.append(len(outs))
        return ensemble_moments(outs)

    monkeypatch.setattr(evaluation, "ensemble_moments", spy)
    res = evaluate_all(three, path, log=None)
    assert calls == [2, 3]
    one = evaluate_all(single, path, log=None)["records"][0]
    ps = next(r for r in res["records"] if r["method"] == "power_spectrum")
    assert ps["mlp_members"] == 3 and [m["member"] for m in ps["members"]] == [0, 1, 2]
    # member 0 alone: the single MLP's numbers bit for bit
    m0 = ps["members"][0]
    assert (m0["posterior"], m0["summary"], m0["rmse_test"], m0["coverage_68"]) == \
        (one["fiducial"]["s8"]["mean_std"], one["fiducial"]["summary_width"]["s8"], one["test"]["s8"]["rmse"],
         one["test"]["s8"]["coverage_68"])
    assert (m0["seed"], m0["kept_epoch"], m0["val_loss"]) == (config.seed, one["kept_epoch"], one["val_loss"])
    assert len({m["rmse_test"] for m in ps["members"]}) == 3
    # ensemble_moments is mean_cov per member, then the moment-matched mixture
    rng = np.random.default_rng(0)
    outs = [{"a": rng.normal(size=(4, 5))} for _ in range(3)]
    per, mom = ensemble_moments(outs)
    ref = mixture_moments(np.stack([mean_cov(o["a"])[0] for o in outs]), np.stack([mean_cov(o["a"])[1] for o in outs]))
    assert np.array_equal(mom["a"][0], ref[0]) and np.array_equal(mom["a"][1], ref[1])
    assert np.array_equal(per[1]["a"][1], mean_cov(outs[1]["a"])[1])
    # a member >= 1 of other settings is refused, naming its file
    state = load_checkpoint(ck[2])
    save_checkpoint(ck[2], {**state, "meta": mlp_meta(replace(three, mlp_epochs=4), "power_spectrum", 2)})
    with pytest.raises(CheckpointMismatch, match=r"cosmo-power_spectrum-m2.pt belongs to another run .*differing: "
                                                 r"train.epochs"):
        train(three, path, log=None)


@pytest.mark.parametrize("setting, message", [
    ({"lr": 0.0}, "lr must be a positive number"), ({"lr": float("nan")}, "lr must be a positive number"),
    ({"lr": float("inf")}, "lr must be a positive number"), ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
    ({"K": 0}, "K must be a positive integer"), ({"k": 0}, "k must be a positive integer"),
    ({"channels": (8, 0)}, "channels must be a non-empty sequence of positive integers"),
    ({"mlp_hidden": ()}, "mlp_hidden must be a non-empty sequence of positive integers"),
    ({"mlp_dropout": 1.0}, "mlp_dropout must be a number in [0, 1)"),
    ({"mlp_dropout": float("nan")}, "mlp_dropout must be a number in [0, 1)")])
def test_every_training_setting_is_checked_by_the_config(setting, message):
    """A training setting the networks cannot use is refused where the config is built, before any data are
    generated (was: lr only by the graph training's TrainConfig, after the maps; the others not at all)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        CosmoExperimentConfig(**setting)


def test_the_fewest_training_cosmologies_follow_the_validation_split(tmp_path):
    """min_n_train is read off the validation split's own rule: validation_mask run on data sets of n cosmologies
    leaves at least one to train on exactly from min_n_train up; a config below it is refused before any data are
    generated, naming the setting (was: n_train 1 was generated, then "training set is empty")."""
    from deepsphere_gen.experiments.cosmo.data import min_n_train, validation_mask

    for n in range(1, 20):
        np.save(tmp_path / "ids_train.npy", np.stack([np.repeat(np.arange(n), 2), np.tile([0, 1], n), np.zeros(2 * n,
                                                                                                              int)], -1))
        val = validation_mask(tmp_path)
        assert val.any() and (not val.all()) == (n >= min_n_train()), n
    assert min_n_train() == 2
    with pytest.raises(ValueError, match=r"grid.n_train must be >= 2 \(one training cosmology in 8, at least one, is "
                                         r"held out for validation: 1 would leave none to train on\), got 1"):
        CosmoExperimentConfig(grid=CosmoGridConfig(n_train=1))


def test_the_fewest_training_cosmologies_for_any_validation_stride(monkeypatch):
    """min_n_train's closed form against a scan of n_validation's rule for other strides VALIDATION_EVERY; a stride
    of 1 (every cosmology held out) is refused (was: the scan that computed it never ended)."""
    from deepsphere_gen.experiments.cosmo import config

    for every in (2, 3, 8, 100):
        monkeypatch.setattr(config, "VALIDATION_EVERY", every)
        assert config.min_n_train() == next(n for n in range(1, 1000) if n - config.n_validation(n) >= 1), every
    monkeypatch.setattr(config, "VALIDATION_EVERY", 1)
    with pytest.raises(ValueError, match="holds out every training cosmology"):
        config.min_n_train()
