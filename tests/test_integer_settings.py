"""Integer settings checked by the shared helpers (check_positive_int / check_nonnegative_int):
every site refuses a bool, a value below its minimum, a non-integral float, a string and None
with a ValueError naming the setting, and accepts a numpy integer and an integral float as
the int they equal (stored as a Python int where the setting is stored)."""
import json
import re

import numpy as np
import pytest
import torch

from deepsphere_gen.bench import Harness
from deepsphere_gen.datasets import MassMapConfig, limit_threads, pixel_window
from deepsphere_gen.datasets.shape_noise import pixel_area_arcmin2
from deepsphere_gen.experiments.reporting import cluster_bootstrap
from deepsphere_gen.graph import optimized_graph
from deepsphere_gen.harmonic import (
    SHT,
    MapRotator,
    clebsch_gordan,
    mw_theta_mixing,
    random_rotations,
    rotate_coefficients,
    sparse_clebsch_gordan,
    wigner_d,
)
from deepsphere_gen.models import (
    CobbHybrid,
    CohenS2CNN,
    DeepSphereClassifier,
    EstevesS2CNN,
    HarmonicClassifier,
    HybridClassifier,
    KondorCGNet,
)
from deepsphere_gen.nn import HealpixAvgPool, InvariantReadout
from deepsphere_gen.sampling import HealpixSampling, SOFTSampling
from deepsphere_gen.training import TrainConfig

NONNEG, POSITIVE = "a non-negative integer", "a positive integer"


def _pools(levels):
    model = DeepSphereClassifier(4, 1, channels=(2, 2), K=2, k=8, pool_levels=levels, cache=False)
    return [m.p for m in model.modules() if isinstance(getattr(m, "p", None), int)]


_COEFFS = torch.randn(1, 4, 1, dtype=torch.float64)


def _harmonic(n_classes=2, **kw):
    return HarmonicClassifier(n_classes, **{"bandlimits": (2, 1), "channels": (1, 1), "hidden": (), **kw})


def _hybrid(**kw):
    return HybridClassifier(2, **{"graph_channels": (2,), "K": 2, "k": 8, "pool_levels": 0, "bandlimits": (2, 1),
                                  "harmonic_channels": (1,), "hidden": (), "cache": False, **kw})


def _readout(**kw):
    return InvariantReadout(2, 1, 1, **{"n_out": 2, **kw})


def _cobb(**kw):
    return CobbHybrid(**{"n_classes": 2, "bandlimits": (2, 2, 1), "channels": (1, 1), "hidden": (), **kw})


def _fc(**kw):
    return DeepSphereClassifier(4, 1, **{"channels": (2,), "K": 2, "k": 8, "head": "fc", "cache": False, **kw})

# id -> (call of the setting's value, message up to ", got", smallest accepted value, good values)
SITES = {
    "TrainConfig.epochs": (lambda v: TrainConfig(epochs=v).epochs, f"epochs must be {NONNEG}", 0, (0, 3)),
    "TrainConfig.batch_size": (lambda v: TrainConfig(batch_size=v).batch_size, f"batch_size must be {POSITIVE}", 1,
                               (1, 8)),
    "TrainConfig.recalibrate_samples": (lambda v: TrainConfig(recalibrate_samples=v).recalibrate_samples,
                                        f"recalibrate_samples must be {POSITIVE} or None", 1, (1, 5)),
    "MassMapConfig.n_maps": (lambda v: MassMapConfig(nside=4, n_maps=v).n_maps,
                             f"n_maps (per class) must be {POSITIVE}", 1, (1, 2)),
    "MassMapConfig.seed": (lambda v: MassMapConfig(nside=4, seed=v).seed, f"seed must be {NONNEG}", 0, (0, 7)),
    "MassMapConfig.iter": (lambda v: MassMapConfig(nside=4, iter=v).iter, f"iter must be {NONNEG}", 0, (0, 2)),
    "pixel_window.lmax": (lambda v: pixel_window(4, v), f"lmax must be {NONNEG}", 0, (0, 3)),
    "pixel_window.subdiv": (lambda v: pixel_window(2, 3, subdiv=v), f"subdiv must be {POSITIVE}", 1, (1, 2)),
    "HealpixAvgPool.p": (lambda v: HealpixAvgPool(v).p, f"pooling levels p must be {NONNEG}", 0, (0, 1)),
    "DeepSphereClassifier.pool_levels": (_pools, "pool_levels must be a non-negative int or 2 of them (one per block)",
                                         0, (0, 1)),
    "DeepSphereClassifier.n_classes": (lambda v: DeepSphereClassifier(4, 1, channels=(2,), K=2, k=8, n_classes=v,
                                                                      cache=False).n_classes,
                                       f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "HarmonicClassifier.n_classes": (lambda v: _harmonic(v).readout.mlp[-1].out_features,
                                     f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "HybridClassifier.n_classes": (lambda v: _hybrid(n_classes=v).n_classes, f"n_classes must be {POSITIVE}", 1,
                                   (1, 2)),
    # the classic models name their own setting (CobbHybrid said "n_out", its readout's; the others built 0 logits)
    "CobbHybrid.n_classes": (lambda v: _cobb(n_classes=v).readout.mlp[-1].out_features,
                             f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "CohenS2CNN.n_classes": (lambda v: CohenS2CNN(v, bandlimits=(3, 2, 2), channels=(1, 1)).fc.out_features,
                             f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "EstevesS2CNN.n_classes": (lambda v: EstevesS2CNN(v, bandlimits=(2, 1), channels=(1,), n_anchors=1).fc.out_features,
                               f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "KondorCGNet.n_classes": (lambda v: KondorCGNet(v, L=2, tau=1, n_layers=1, hidden=()).mlp[-1].out_features,
                              f"n_classes must be {POSITIVE}", 1, (1, 2)),
    "InvariantReadout.n_out": (lambda v: _readout(n_out=v).mlp[-1].out_features, f"n_out must be {POSITIVE}", 1,
                               (1, 2)),
    "HybridClassifier.pool_levels": (lambda v: _hybrid(pool_levels=v).low_sampling.nside,
                                     f"pool_levels must be {NONNEG}", 0, (0, 1)),
    "Harness.warmup": (lambda v: Harness("cpu", warmup=v).warmup, f"warmup must be {NONNEG}", 0, (0, 2)),
    "Harness.time.warmup": (lambda v: Harness("cpu", repeats=1).time(lambda: None, warmup=v).warmup,
                            f"warmup must be {NONNEG}", 0, (0, 2)),
    "random_rotations.n": (lambda v: random_rotations(v, seed=0), f"n (number of rotations) must be {NONNEG}", 0,
                           (0, 3)),
    "MapRotator.iterations": (lambda v: MapRotator(HealpixSampling(2), 4, iterations=v).iterations,
                              f"iterations must be {NONNEG}", 0, (0, 3)),
    "rotate_coefficients.L": (lambda v: rotate_coefficients(_COEFFS, [0.1, 0.2, 0.3], L=v),
                              f"bandlimit L must be {POSITIVE}", 1, (2,)),  # 4 coefficients: L = 2 only
    "wigner_d.l": (lambda v: wigner_d(v, 0.3), f"degree l must be {NONNEG}", 0, (0, 2)),
    "clebsch_gordan.l1": (lambda v: clebsch_gordan(v, 1, 1), f"l1 must be {NONNEG}", 0, (0, 1)),
    "sparse_clebsch_gordan.l": (lambda v: sparse_clebsch_gordan(1, 1, v).values, f"l must be {NONNEG}", 0, (0, 1)),
    "optimized_graph.iterations": (lambda v: optimized_graph(HealpixSampling(1), 4, iterations=v),
                                   f"iterations must be {NONNEG}", 0, ()),  # a fit: refusals only
    "SHT.iterations": (lambda v: SHT(HealpixSampling(2), 4, iterations=v).iterations, f"iterations must be {NONNEG}",
                       0, (0, 2)),
    "mw_theta_mixing.L": (mw_theta_mixing, f"bandlimit L must be {POSITIVE}", 1, (1, 3)),
    "SOFTSampling.L": (lambda v: SOFTSampling(v).L, f"bandlimit L must be {POSITIVE}", 1, (1, 2)),
    "limit_threads": (lambda v: limit_threads(v).__enter__() and None, f"threads must be {POSITIVE} or None", 1, ()),
    "cluster_bootstrap.resamples": (lambda v: cluster_bootstrap(np.ones(4), [0, 1, 0, 1], [0, 0, 1, 1], resamples=v),
                                    f"resamples must be {POSITIVE}", 1, (1, 3)),
}


#: settings where None is accepted (no cap; the harness's warm-up; L from the coefficients' count)
NONE_OK = {"TrainConfig.recalibrate_samples", "Harness.time.warmup", "rotate_coefficients.L", "limit_threads",
           "SHT.iterations"}  # SHT: the sampling's default (healpy's 3 on HEALPix)


def _bad_values(site):
    minimum = SITES[site][2]
    bad = [True, False, np.True_, np.array(True), torch.tensor(True), minimum - 1, 1.5, float("nan"), "2"]
    return bad if site in NONE_OK else bad + [None]


@pytest.mark.parametrize("site, bad", [(s, b) for s in SITES for b in _bad_values(s)])
def test_refused_with_the_setting_named(site, bad):
    call, message, _, _ = SITES[site]
    with pytest.raises(ValueError, match=re.escape(f"{message}, got {bad!r}")):
        call(bad)


def _same(a, b):
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("site", [s for s in SITES if SITES[s][3]])
@pytest.mark.parametrize("kind", [np.int64, np.int32, float])
def test_numpy_ints_and_integral_floats_accepted(site, kind):
    call, _, _, good = SITES[site]
    for v in good:
        assert _same(call(kind(v)), call(v)), (site, kind, v)


def _key(config):
    """The data set's parameters as its cache key serialises them (JSON: 4.0 and 4 differ)."""
    return json.dumps(config.generation_params(), sort_keys=True, default=str)


def test_stored_as_python_ints():
    assert type(TrainConfig(epochs=np.int64(2)).epochs) is int
    assert type(TrainConfig(recalibrate_samples=4.0).recalibrate_samples) is int
    assert TrainConfig(recalibrate_samples=None).recalibrate_samples is None
    cfg = MassMapConfig(nside=4, n_maps=np.int32(2), seed=3.0, iter=np.int64(1))
    assert [type(v) for v in (cfg.n_maps, cfg.seed, cfg.iter)] == [int, int, int]
    assert _key(cfg) == _key(MassMapConfig(nside=4, n_maps=2, seed=3, iter=1))
    cfg = MassMapConfig(nside=4.0, lmax=np.int64(8))  # the data set's key and folder name hold ints
    assert (type(cfg.nside), type(cfg.lmax)) == (int, int)
    assert _key(cfg) == _key(MassMapConfig(nside=4, lmax=8))
    assert type(MapRotator(HealpixSampling(2), 4, iterations=np.int64(2)).iterations) is int


def test_pool_levels_per_block_values():
    assert _pools((1, np.int64(0))) == _pools((1.0, 0)) == _pools([1, 0])
    for bad in ((1, -1), (1, 0.5), (True, 0), (1, 1, 1), (1,)):
        with pytest.raises(ValueError, match="pool_levels must be a non-negative int or 2 of them"):
            _pools(bad)


@pytest.mark.parametrize("bad", [(), (2, True), (2, np.True_), (2, 0), (2, 1.5), (2, None), (2, "3"), None, 3])
def test_positive_int_sequences_refused_by_name(bad):
    with pytest.raises(ValueError, match="channels must be a non-empty sequence of positive integers"):
        DeepSphereClassifier(4, 1, channels=bad, K=2, k=8, cache=False)


@pytest.mark.parametrize("build", [_harmonic, _hybrid])
@pytest.mark.parametrize("name, bad", [("bandlimits", (2.7, 1)), ("bandlimits", (2, "a")), ("bandlimits", ()),
                                       ("hidden", (0,)), ("hidden", 5)])
def test_harmonic_and_hybrid_sequences_refused_by_name(build, name, bad):
    """As DeepSphereClassifier's channels: 2.7 is not truncated to 2, "a" is named, hidden=(0,) refused."""
    with pytest.raises(ValueError, match=re.escape(f"{name} must be a ") + ".*" + re.escape(f"got {bad!r}")):
        build(**{name: bad})


@pytest.mark.parametrize("build, name", [(_readout, "hidden"), (_cobb, "hidden"), (_harmonic, "hidden"),
                                         (_hybrid, "hidden"), (_hybrid, "harmonic_channels"), (_fc, "fc_hidden")])
@pytest.mark.parametrize("bad", [(0,), (2.5,), (2, True), ("a",), 5])
def test_mlp_and_layer_sizes_refused_by_name(build, name, bad):
    """The readout checks its own sizes (was: hidden=(0,) built, (2.5,) a torch error); the hybrid's
    harmonic_channels and the fc head's fc_hidden name themselves (was: a torch error, "'int' object is
    not iterable")."""
    with pytest.raises(ValueError, match=re.escape(f"{name} must be a sequence of positive integers (or empty), "
                                                   f"got {bad!r}")):
        build(**{name: bad})


@pytest.mark.parametrize("build, name, good", [(_readout, "hidden", (3, 2)), (_cobb, "hidden", (3,)),
                                               (_hybrid, "harmonic_channels", (2,)), (_fc, "fc_hidden", (3,))])
def test_mlp_and_layer_sizes_accept_integral_floats_and_numpy_ints(build, name, good):
    """(2.0,) builds the model (2,) builds (was, for harmonic_channels: torch's "randn(): argument 'size'")."""
    def shapes(value):
        torch.manual_seed(0)
        return {key: tuple(p.shape) for key, p in build(**{name: value}).state_dict().items()}

    assert shapes(tuple(float(v) for v in good)) == shapes(tuple(np.int64(v) for v in good)) == shapes(good)
    assert shapes(good) != shapes(tuple(v + 1 for v in good))


def test_positive_int_sequences_accept_numpy_ints_and_integral_floats():
    def shapes(channels):
        model = DeepSphereClassifier(4, 1, channels=channels, K=2, k=8, cache=False)
        return {name: tuple(p.shape) for name, p in model.state_dict().items()}

    assert shapes((np.int64(2), 3.0)) == shapes((2, 3)) != shapes((2, 2))


def test_experiment_configs_store_their_integers_as_ints():
    """A checkpoint fingerprint reads the stored settings: 2.0 stored as given would refuse a
    checkpoint trained with 2 ("2 in the file, 2.0 now")."""
    from deepsphere_gen.experiments.cosmo.config import CosmoExperimentConfig
    from deepsphere_gen.experiments.massmaps.config import ExperimentConfig

    cosmo = CosmoExperimentConfig(epochs=2.0, mlp_epochs=np.int64(3), graph_members=2.0)
    assert [type(getattr(cosmo, n)) for n in ("epochs", "mlp_epochs", "graph_members")] == [int, int, int]
    mm = ExperimentConfig(k=np.int64(8), epochs=2.0, fcn_members=1.0, baseline_noise_draws=np.int32(2))
    assert [type(getattr(mm, n)) for n in ("k", "epochs", "fcn_members", "baseline_noise_draws")] == [int] * 4


@pytest.mark.parametrize("bad", [True, np.True_, np.array(True), torch.tensor(True)])
def test_nside_refuses_bools(bad):
    from deepsphere_gen.sampling import check_nside

    for call in (check_nside, lambda v: MassMapConfig(nside=v), lambda v: pixel_window(v, 3), pixel_area_arcmin2):
        with pytest.raises(ValueError, match="nside must be an integer power of 2"):
            call(bad)


@pytest.mark.parametrize("bad", [True, np.True_])
def test_range_checked_integers_refuse_bools(bad):
    """An integer setting with its own range (a patch level) refuses a bool as the shared checks
    do (int(True) == True passed it as level 1)."""
    from deepsphere_gen.datasets import split_patches

    with pytest.raises(ValueError, match="patch level must be an integer"):
        split_patches(np.zeros((1, 12 * 4**2)), bad)
