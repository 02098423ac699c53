import json

import numpy as np

from deepsphere_gen.graph import build_graph, graph_params
from deepsphere_gen.graph._cache import ENV_VAR, _stem, cache_directory
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling, Sampling


def files(d):
    return sorted(p.name for p in (d / "graphs").iterdir())


def test_round_trip(tmp_path):
    s = HealpixSampling(4)
    g1 = build_graph(s, k=8, laplacian="normalized", cache_dir=tmp_path)
    assert not g1.from_cache
    names = files(tmp_path)
    assert len(names) == 2 and names[0].endswith(".json") and names[1].endswith(".npz")
    g2 = build_graph(s, k=8, laplacian="normalized", cache_dir=tmp_path)
    assert g2.from_cache
    for a, b in ((g1.weights, g2.weights), (g1.laplacian, g2.laplacian)):
        assert a.dtype == b.dtype and np.array_equal(a.indptr, b.indptr)
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    assert g1.lmax == g2.lmax and (g1.k, g1.sigma, g1.kind) == (g2.k, g2.sigma, g2.kind)
    assert g1.laplacian_kind == g2.laplacian_kind == "normalized"
    meta = json.loads((tmp_path / "graphs" / names[0]).read_text())
    assert meta["params"]["sampling"] == "healpix-nside4" and meta["lmax"] == g1.lmax


def test_every_parameter_changes_the_key(tmp_path):
    s = HealpixSampling(4)
    base = dict(k=8, sigma=None, laplacian="combinatorial", kind="knn")
    variants = [
        (s, base),
        (HealpixSampling(8), base),
        (HealpixSampling(4, indices=np.arange(100)), base),
        (s, {**base, "k": 9}),
        (s, {**base, "sigma": 0.3}),
        (s, {**base, "laplacian": "normalized"}),
        (GaussLegendreSampling(4), {**base, "kind": "4neighbour"}),
        (GaussLegendreSampling(4), base),
    ]
    stems = {_stem(graph_params(smp, **kw)) for smp, kw in variants}
    assert len(stems) == len(variants)
    p = graph_params(s, **base)
    assert {"version", "sampling", "k", "sigma", "kind", "laplacian"} <= set(p)
    assert _stem({**p, "version": "0.0.0"}) != _stem(p)
    # a different sigma gives a different entry, not the cached one
    build_graph(s, k=8, cache_dir=tmp_path)
    g = build_graph(s, k=8, sigma=0.3, cache_dir=tmp_path)
    assert not g.from_cache and g.sigma == 0.3 and len(files(tmp_path)) == 4


def test_env_var_and_default_location(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cache_directory() == tmp_path / "env" / "graphs"
    assert cache_directory(tmp_path / "arg") == tmp_path / "arg" / "graphs"
    build_graph(HealpixSampling(2), k=4)
    assert len(files(tmp_path / "env")) == 2
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_directory() == tmp_path / "home" / ".cache" / "deepsphere_gen" / "graphs"


def test_default_location_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_directory() == tmp_path / "xdg" / "deepsphere_gen" / "graphs"
    build_graph(HealpixSampling(2), k=4)
    assert len(files(tmp_path / "xdg" / "deepsphere_gen")) == 2
    assert not (tmp_path / "home").exists()
    # an explicit directory wins over XDG, and $DEEPSPHERE_GEN_CACHE wins over XDG
    assert cache_directory(tmp_path / "arg") == tmp_path / "arg" / "graphs"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert cache_directory() == tmp_path / "env" / "graphs"
    assert cache_directory(tmp_path / "arg") == tmp_path / "arg" / "graphs"
    # a relative XDG_CACHE_HOME is invalid under the XDG spec and ignored
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert cache_directory() == tmp_path / "home" / ".cache" / "deepsphere_gen" / "graphs"


def test_corrupt_entry_is_rebuilt(tmp_path):
    s = HealpixSampling(2)
    g1 = build_graph(s, k=4, cache_dir=tmp_path)
    npz = next((tmp_path / "graphs").glob("*.npz"))
    npz.write_bytes(b"not a zip file")
    g2 = build_graph(s, k=4, cache_dir=tmp_path)
    assert not g2.from_cache and abs(g2.weights - g1.weights).max() == 0
    assert build_graph(s, k=4, cache_dir=tmp_path).from_cache
    assert not any(p.suffix == ".tmp" for p in (tmp_path / "graphs").iterdir())


def test_sampling_without_cache_key(tmp_path):
    class Points(Sampling):
        def __init__(self, theta):
            self.theta = np.asarray(theta, float)
            self.phi = np.linspace(0, 6, len(self.theta))

    a = Points(np.linspace(0.1, 3.0, 30))
    b = Points(np.linspace(0.1, 3.1, 30))
    assert not build_graph(a, k=5, cache_dir=tmp_path).from_cache
    assert build_graph(a, k=5, cache_dir=tmp_path).from_cache
    assert not build_graph(b, k=5, cache_dir=tmp_path).from_cache


def test_no_cache_writes_nothing(tmp_path):
    build_graph(HealpixSampling(2), k=4, cache=False, cache_dir=tmp_path)
    assert not (tmp_path / "graphs").exists()
