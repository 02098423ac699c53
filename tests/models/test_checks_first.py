"""Every model refuses a bad argument before it builds anything costly: no graph (the graph models: a Laplacian
pyramid at nside 1024 is ~45 s of CPU), no input transform (the harmonic and classic models).  Was:
HybridClassifier built its graphs, bridge and harmonic layers before its readout refused ``hidden=(0,)``; the
DeepSphere nets built their graphs before refusing ``stats`` / ``fc_hidden`` / ``pool``."""
import re

import pytest

import deepsphere_gen.models.classic as classic
import deepsphere_gen.models.harmonic as harmonic
import deepsphere_gen.nn.laplacian_pyramid as pyramid
from deepsphere_gen.models import (
    CobbHybrid,
    CohenS2CNN,
    DeepSphereClassifier,
    EstevesS2CNN,
    HarmonicClassifier,
    HybridClassifier,
    KondorCGNet,
    SphericalUNet,
)
from deepsphere_gen.sampling import HealpixSampling

S = HealpixSampling(8)


def _built(*args, **kwargs):
    raise AssertionError("built before the arguments were checked")


@pytest.fixture(autouse=True)
def nothing_costly(monkeypatch):
    monkeypatch.setattr(pyramid, "build_graph", _built)
    for module, name in ((classic, "MapToSignal"), (classic, "S2InputLayer"), (harmonic, "S2InputLayer")):
        monkeypatch.setattr(module, name, _built)


def _hybrid(**kw):
    return HybridClassifier(8, **{"graph_channels": (2, 2), "bandlimits": (4, 3), "harmonic_channels": (2,),
                                  "cache": False, **kw})


def _deepsphere(**kw):
    return DeepSphereClassifier(8, 1, **{"channels": (2, 2), "cache": False, **kw})


CASES = [
    (_hybrid, {"hidden": (0,)}, "hidden must be a sequence of positive integers (or empty), got (0,)"),
    (_hybrid, {"mixing": "bad"}, "unknown mixing set 'bad'"),
    (_hybrid, {"pool": "bad"}, "unknown pooling 'bad'"),
    (_hybrid, {"iterations": -1}, "iterations must be a non-negative integer, got -1"),
    (_hybrid, {"bandlimits": (20, 3)}, "bridge bandlimit L_0=20 exceeds 3 * nside = 6"),
    # the defaults at nside 8: the message names the arguments to change and the nside the defaults need
    (lambda **kw: HybridClassifier(8, cache=False, **kw), {}, "bridge bandlimit L_0=8 exceeds 3 * nside = 6 of the "
     "pooled map (nside 8 pooled by 4**pool_levels = 4 after each of the 2 graph_channels blocks); give fewer "
     "graph_channels blocks, a smaller pool_levels, bandlimits[0] <= 6, or nside >= 16"),
    (_hybrid, {"pool_levels": 2}, "cannot pool nside 8 by 4**4 (pool_levels (2, 2) in all)"),
    (_deepsphere, {"head": "stats", "stats": ("bad",)}, "stats must be a non-empty subset"),
    (_deepsphere, {"head": "fc", "fc_hidden": (0,)}, "fc_hidden must be a sequence of positive integers"),
    (_deepsphere, {"pool": "bad"}, "unknown pooling 'bad'"),
    (_deepsphere, {"pool_levels": (2, 2)}, "cannot pool nside 8 by 4**4"),
    (lambda **kw: SphericalUNet(8, 1, 1, cache=False, **kw), {"pool": "bad"}, "unknown pooling 'bad'"),
    (lambda **kw: HarmonicClassifier(2, sampling=S, **kw), {"hidden": (0,)}, "hidden must be a sequence"),
    (lambda **kw: HarmonicClassifier(2, sampling=S, **kw), {"mixing": "bad"}, "unknown mixing set 'bad'"),
    (lambda **kw: HarmonicClassifier(2, sampling=S, **kw), {"in_channels": 0}, "in_channels must be a positive"),
    (lambda **kw: CobbHybrid(sampling=S, **kw), {"hidden": (0,)}, "hidden must be a sequence"),
    (lambda **kw: CobbHybrid(sampling=S, **kw), {"mixing": "bad"}, "unknown mixing set 'bad'"),
    (lambda **kw: CobbHybrid(sampling=S, **kw), {"tau": 0}, "tau must be a positive integer, got 0"),
    (lambda **kw: CobbHybrid(sampling=S, **kw), {"channels": (20, 22, 24, 0)}, "channels must be a non-empty sequence"),
    (lambda **kw: CohenS2CNN(sampling=S, **kw), {"channels": (0, 1)}, "channels must be a non-empty sequence"),
    (lambda **kw: CohenS2CNN(sampling=S, **kw), {"bandlimits": (6, 4)}, "need bandlimits (L0, L1, L2)"),
    # kernel_beta was unpacked unchecked ("not enough values to unpack"; a negative radius built its grid)
    (lambda **kw: CohenS2CNN(sampling=S, **kw), {"kernel_beta": 0.4}, "kernel_beta must be two radii in (0, pi] "
     "radians (S2 kernel, SO(3) kernel), got 0.4"),
    (lambda **kw: CohenS2CNN(sampling=S, **kw), {"kernel_beta": (0.4, -1.0)}, "kernel_beta must be two radii"),
    (lambda **kw: CohenS2CNN(sampling=S, **kw), {"kernel_beta": (0.4, 0.3, 0.2)}, "kernel_beta must be two radii"),
    (lambda **kw: EstevesS2CNN(sampling=S, **kw), {"n_anchors": 0}, "n_anchors must be a positive integer"),
    (lambda **kw: KondorCGNet(sampling=S, **kw), {"hidden": (0,)}, "hidden must be a sequence"),
    (lambda **kw: KondorCGNet(sampling=S, **kw), {"n_layers": 0}, "n_layers must be a positive integer"),
]


@pytest.mark.parametrize("build, bad, message", CASES, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_refused_before_anything_is_built(build, bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(**bad)


@pytest.mark.parametrize("build", [_hybrid, _deepsphere, lambda: HarmonicClassifier(2, sampling=S),
                                   lambda: CobbHybrid(sampling=S), lambda: CohenS2CNN(sampling=S)])
def test_good_arguments_reach_the_costly_part(build):
    """The patched builders are the ones the models call (else the test above proves nothing)."""
    with pytest.raises(AssertionError, match="built before"):
        build()
