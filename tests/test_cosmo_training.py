"""Training of the cosmo estimators (experiments.cosmo.training): the summary-statistic MLPs' initial
weights depend on the run's seed and the method alone, and an MLP checkpoint of the earlier rule (weights
initialised from whatever the graph training left in the global RNG) is refused."""
from dataclasses import replace

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
                                                 r"init_seed \(missing in the file, \d+ now.*cosmo --restart"):
        train(ps, path, log=None)
    with pytest.raises(CheckpointMismatch, match=r"differing: init_seed .*not evaluated"):
        evaluate_all(ps, path, log=None)
    train(ps, path, log=None, restart=True)
    assert load_checkpoint(ckpt)["meta"] == mlp_meta(ps, "power_spectrum")
    assert _same(load_checkpoint(ckpt)["model"], state["model"])
