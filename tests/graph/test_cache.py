import contextlib
import errno
import json
import warnings

import numpy as np
import pytest
import torch

from deepsphere_gen.graph import LMAX_RULE, VALUES_FORMAT, build_graph, graph_params
from deepsphere_gen.graph import _laplacian, _sphere_graph
from deepsphere_gen.graph._cache import ENV_VAR, _stem, _write_meta, cache_directory
from deepsphere_gen.graph._pattern import KnnPattern
from deepsphere_gen.sampling import EquiangularSampling, GaussLegendreSampling, HealpixSampling

from ._points import Points


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
    assert_no_tmp(tmp_path)


def test_sampling_without_cache_key(tmp_path):
    a = Points(np.linspace(0.1, 3.0, 30), np.linspace(0, 6, 30))
    b = Points(np.linspace(0.1, 3.1, 30), np.linspace(0, 6, 30))
    assert not build_graph(a, k=5, cache_dir=tmp_path).from_cache
    assert build_graph(a, k=5, cache_dir=tmp_path).from_cache
    assert not build_graph(b, k=5, cache_dir=tmp_path).from_cache
    # cache_key is optional: repr (in error messages) falls back to the class and size
    assert repr(a) == "Points(npix=30)"
    with pytest.raises(NotImplementedError, match="Points defines no cache_key"):
        a.cache_key()


def test_lat_lon_grids_of_one_size_get_their_own_entries(tmp_path):
    """Two 16 x 32 lat-lon grids at L = 8 (cell-centred rings, rings from the pole): each build from the cache
    equals its uncached build (before, both had the key equiangular-L8 and the second was served the first's W)."""
    grids = [EquiangularSampling(8, np.pi * (np.arange(16) + 0.5) / 16, 32, None),
             EquiangularSampling(8, np.pi * np.arange(16) / 16, 32, None)]
    for s in grids:
        assert not build_graph(s, k=8, sigma=0.05, cache_dir=tmp_path).from_cache
    for s in grids:
        g = build_graph(s, k=8, sigma=0.05, cache_dir=tmp_path)
        assert g.from_cache and abs(g.weights - build_graph(s, k=8, sigma=0.05, cache=False).weights).max() == 0


def test_no_cache_writes_nothing(tmp_path):
    build_graph(HealpixSampling(2), k=4, cache=False, cache_dir=tmp_path)
    assert not (tmp_path / "graphs").exists()


# --- lmax and the float32 rescaled values in the cache -------------------------------------------


@pytest.fixture
def counts(monkeypatch):
    """Calls of the Lanczos (``_laplacian.lanczos_ritz``) and of the pattern's values pass."""
    seen = {"lanczos": 0, "values": 0}
    lanczos, values = _laplacian.lanczos_ritz, KnnPattern.values

    def counted_lanczos(*a, **kw):
        seen["lanczos"] += 1
        return lanczos(*a, **kw)

    def counted_values(self, *a, **kw):
        seen["values"] += 1
        return values(self, *a, **kw)

    monkeypatch.setattr(_laplacian, "lanczos_ritz", counted_lanczos)
    monkeypatch.setattr(KnnPattern, "values", counted_values)
    return seen


@pytest.fixture
def large(monkeypatch):
    """The path of graphs over 16M non-zeros (float32 Lanczos, float32 values kept and cached), on small graphs."""
    monkeypatch.setattr(_sphere_graph, "_FLOAT32_LANCZOS_NNZ", 0)


def disk_full(path, write):
    """An ``atomic_write`` on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def assert_no_tmp(root):
    assert not any(p.suffix == ".tmp" for p in (root / "graphs").iterdir())


def assert_same_graph(a, b):
    assert a.lmax == b.lmax
    for dtype in (torch.float32, torch.float64):
        ta, tb = a.to_torch(dtype=dtype), b.to_torch(dtype=dtype)
        assert torch.equal(ta.crow_indices(), tb.crow_indices()) and torch.equal(ta.col_indices(), tb.col_indices())
        assert torch.equal(ta.values(), tb.values())  # bit for bit
    assert np.array_equal(a.rescaled_laplacian().data, b.rescaled_laplacian().data)


def values_file(d):
    (path,) = (d / "graphs").glob("*.rescaled-float32.npy")
    return path


def entry_json(d):
    (path,) = (d / "graphs").glob("*.json")
    return path



@pytest.mark.parametrize("laplacian", ["combinatorial", "normalized"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_cached_build_equals_uncached_and_runs_no_lanczos(tmp_path, request, counts, laplacian, size):
    if size == "large":
        request.getfixturevalue("large")
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, laplacian=laplacian, cache=False)
    assert counts["lanczos"] == 1
    build_graph(s, k=8, laplacian=laplacian, cache_dir=tmp_path)  # fills the cache
    assert counts["lanczos"] == 2
    passes = counts["values"]
    g = build_graph(s, k=8, laplacian=laplacian, cache_dir=tmp_path)
    assert g.from_cache and counts["lanczos"] == 2  # lmax from the entry
    T = g.to_torch()
    if size == "large":  # the values from the file (memory-mapped), no values pass
        assert isinstance(g._rescaled32, np.memmap) and counts["values"] == passes
        assert T.values().data_ptr() == g._rescaled32.ctypes.data
        assert len(json.loads(entry_json(tmp_path).read_text())["arrays"]) == 1
    else:  # no file: small graphs write their values on each call (float64, one rounding)
        assert g._rescaled32 is None and not list((tmp_path / "graphs").glob("*.npy"))
    assert_same_graph(g, ref)


def _cached_entry(cache_dir):
    """An nside-8, k = 8 graph built into ``cache_dir``: (sampling, uncached reference, its JSON path, its JSON)."""
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=cache_dir)
    path = entry_json(cache_dir)
    return s, ref, path, json.loads(path.read_text())


@pytest.mark.parametrize("damage", ["no lmax", "lmax nan", "lmax negative", "lmax text", "no arrays"])
def test_entry_without_lmax_or_values_is_completed(tmp_path, counts, large, damage):
    s, ref, path, good = _cached_entry(tmp_path)
    meta = dict(good)
    if damage == "no arrays":
        del meta["arrays"]
    elif damage == "no lmax":
        del meta["lmax"]
    else:
        meta["lmax"] = {"lmax nan": "NaN", "lmax negative": -1.0, "lmax text": "4.5"}[damage]
    _write_meta(path, meta)
    before = dict(counts)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache
    assert counts["lanczos"] - before["lanczos"] == (damage != "no arrays")  # lmax recomputed only if unusable
    assert_same_graph(g, ref)
    assert json.loads(path.read_text()) == good  # the entry has gained what it lacked
    before = dict(counts)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    g.to_torch()
    assert counts == before and isinstance(g._rescaled32, np.memmap)
    assert_no_tmp(tmp_path)


def _truncate(p):
    p.write_bytes(p.read_bytes()[:-100])


def _garbage(p):
    p.write_bytes(b"not an npy file")


def _one_value_changed(p):
    a = np.load(p)
    a[len(a) // 2] = np.nextafter(a[len(a) // 2], np.float32(2))
    np.save(p, a)


def _float64(p):
    np.save(p, np.load(p).astype(np.float64))


def _removed(p):
    p.unlink()


@pytest.mark.parametrize("damage", [_truncate, _garbage, _one_value_changed, _float64, _removed])
def test_damaged_values_file_is_rebuilt_not_trusted(tmp_path, counts, large, damage):
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    good = values_file(tmp_path).read_bytes()
    damage(values_file(tmp_path))
    before = dict(counts)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and counts["lanczos"] == before["lanczos"] and counts["values"] == before["values"] + 1
    assert not isinstance(g._rescaled32, np.memmap)
    assert_same_graph(g, ref)
    assert values_file(tmp_path).read_bytes() == good  # rewritten
    assert isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)


@pytest.mark.parametrize("other", [dict(laplacian="normalized"), dict(sigma=0.05), dict(k=9)])
def test_values_of_other_parameters_are_not_reused(tmp_path, counts, large, other):
    """Another entry's values file put in place of this one's (or its whole record) is not used."""
    s = HealpixSampling(8)
    mine = dict(k=8)
    ref = build_graph(s, cache=False, **mine)
    build_graph(s, cache_dir=tmp_path / "a", **mine)
    build_graph(s, cache_dir=tmp_path / "b", **other)
    a, b = values_file(tmp_path / "a"), values_file(tmp_path / "b")
    assert a.name != b.name  # other parameters, other entry
    a.write_bytes(b.read_bytes())
    g = build_graph(s, cache_dir=tmp_path / "a", **mine)
    assert g.from_cache and not isinstance(g._rescaled32, np.memmap)
    assert_same_graph(g, ref)
    # the other entry's record too (its CRC then matches the file, its lmax does not)
    a.write_bytes(b.read_bytes())
    meta_a, meta_b = (json.loads(entry_json(tmp_path / x).read_text()) for x in "ab")
    _write_meta(entry_json(tmp_path / "a"), {**meta_a, "arrays": meta_b["arrays"]})
    g = build_graph(s, cache_dir=tmp_path / "a", **mine)
    assert g.from_cache and not isinstance(g._rescaled32, np.memmap)
    assert_same_graph(g, ref)
    # float64 layers never read the float32 file
    before = counts["values"]
    g.to_torch(dtype=torch.float64)
    assert counts["values"] == before + 1


def test_entry_that_cannot_be_completed_still_loads(tmp_path, monkeypatch, large):
    """A full disk or read-only folder when the values would be added: a warning, the graph from the cache."""
    from deepsphere_gen.graph import _cache

    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    values_file(tmp_path).unlink()
    before = files(tmp_path)

    monkeypatch.setattr(_cache, "atomic_write", disk_full)
    with pytest.warns(RuntimeWarning, match="not completed.*No space left"):
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and files(tmp_path) == before
    assert_same_graph(g, ref)
    monkeypatch.undo()
    monkeypatch.setattr(_sphere_graph, "_FLOAT32_LANCZOS_NNZ", 0)
    build_graph(s, k=8, cache_dir=tmp_path)
    assert isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)


def _flip_a_byte(p):
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 1  # inside the indices array
    p.write_bytes(bytes(b))


def _compressed(p):
    with np.load(p) as f:
        arrays = dict(f)
    with open(p, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@pytest.mark.parametrize("damage", [_flip_a_byte, _truncate, _compressed])
def test_damaged_pattern_is_rebuilt(tmp_path, damage):
    """The pattern is memory-mapped from the npz after checking each member's CRC-32 (np.load's check):
    a changed byte or a cut file is rebuilt (both used to raise BadZipFile out of build_graph)."""
    s = HealpixSampling(8)
    g1 = build_graph(s, k=8, cache_dir=tmp_path)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and isinstance(g.pattern.indices, np.memmap) and isinstance(g.pattern.indptr, np.memmap)
    assert np.array_equal(g.pattern.indices, g1.pattern.indices) and np.array_equal(g.pattern.indptr, g1.pattern.indptr)
    damage(next((tmp_path / "graphs").glob("*.npz")))
    g2 = build_graph(s, k=8, cache_dir=tmp_path)
    assert not g2.from_cache and abs(g2.weights - g1.weights).max() == 0
    assert build_graph(s, k=8, cache_dir=tmp_path).from_cache


def test_lmax_of_another_lanczos_precision_is_not_reused(tmp_path, monkeypatch, counts):
    """Graphs over 16M non-zeros take lmax from a float32 Lanczos: an entry records which, and a
    build that would use the other precision computes its own (then records it)."""
    s = HealpixSampling(8)
    ref64 = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    meta = json.loads(entry_json(tmp_path).read_text())
    assert meta["lmax_dtype"] == "float64" and meta["lmax"] == ref64.lmax
    monkeypatch.setattr(_sphere_graph, "_FLOAT32_LANCZOS_NNZ", 0)
    ref32 = build_graph(s, k=8, cache=False)
    assert ref32.lmax != ref64.lmax
    before = counts["lanczos"]
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and counts["lanczos"] == before + 1
    assert_same_graph(g, ref32)
    meta = json.loads(entry_json(tmp_path).read_text())
    assert meta["lmax_dtype"] == "float32" and meta["lmax"] == ref32.lmax
    monkeypatch.setattr(_sphere_graph, "_FLOAT32_LANCZOS_NNZ", 1 << 24)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert counts["lanczos"] == before + 2 and g.lmax == ref64.lmax and g._rescaled32 is None
    # an entry without the tag (every such entry also predates lmax_source) is recomputed once
    meta = json.loads(entry_json(tmp_path).read_text())
    del meta["lmax_dtype"]
    _write_meta(entry_json(tmp_path), meta)
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == ref64.lmax and counts["lanczos"] == before + 3
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == ref64.lmax and counts["lanczos"] == before + 3


def test_values_can_be_left_out_of_the_cache(tmp_path, monkeypatch, large):
    """DEEPSPHERE_GEN_GRAPH_CACHE_VALUES=0: no values file written, an existing one not read, the same graph."""
    from deepsphere_gen.graph import VALUES_ENV_VAR, build_steps

    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    monkeypatch.setenv(VALUES_ENV_VAR, "0")
    build_graph(s, k=8, cache_dir=tmp_path)
    assert not list((tmp_path / "graphs").glob("*.npy")) and "arrays" not in json.loads(entry_json(tmp_path).read_text())
    with build_steps() as steps:
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and steps["values"]["calls"] == 1 and "lanczos" not in steps and "save" not in steps
    assert_same_graph(g, ref)
    monkeypatch.setenv(VALUES_ENV_VAR, "1")
    build_graph(s, k=8, cache_dir=tmp_path)  # completes the entry
    monkeypatch.setenv(VALUES_ENV_VAR, "off")
    with build_steps() as steps:
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert not isinstance(g._rescaled32, np.memmap) and steps["values"]["calls"] == 1 and "load_values" not in steps
    monkeypatch.delenv(VALUES_ENV_VAR)
    with build_steps() as steps:
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert isinstance(g._rescaled32, np.memmap) and set(steps) == {"load_pattern", "load_values"}
    assert_same_graph(g, ref)


def test_build_steps_split_a_build(tmp_path, large):
    """build_steps times each step once per call, exclusive of the steps nested in it."""
    from deepsphere_gen.graph import build_steps

    s = HealpixSampling(8)
    with build_steps() as outer:
        with build_steps() as steps:
            build_graph(s, k=8, cache_dir=tmp_path)
        assert outer == steps
        build_graph(s, k=8, cache_dir=tmp_path)  # after the inner block: the outer one records it alone
    assert outer["load_pattern"]["calls"] == 2 and steps["load_pattern"]["calls"] == 1
    assert {k: v["calls"] for k, v in steps.items()} == {"load_pattern": 1, "values": 1, "lanczos": 1, "rescale": 1,
                                                         "save": 1}
    assert all(v["s"] >= 0 for v in steps.values())
    with build_steps() as steps:
        build_graph(s, k=8, cache_dir=tmp_path).to_torch(dtype=torch.float64)
    assert {k: v["calls"] for k, v in steps.items()} == {"load_pattern": 1, "load_values": 1, "values": 1}


# --- stored values and lmax tagged with their computation and pattern ------------------------------


def test_values_of_another_format_are_recomputed(tmp_path, monkeypatch, counts, large):
    """A change of the values computation bumps VALUES_FORMAT: stored values of the old format are
    recomputed and rewritten (the record says the format), not trusted."""
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    assert json.loads(entry_json(tmp_path).read_text())["arrays"]["rescaled-float32"]["format"] == VALUES_FORMAT == 1
    monkeypatch.setattr(_sphere_graph, "VALUES_FORMAT", 2)
    before = dict(counts)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and not isinstance(g._rescaled32, np.memmap) and counts["values"] == before["values"] + 1
    assert counts["lanczos"] == before["lanczos"]  # lmax has its own tag
    assert_same_graph(g, ref)
    assert json.loads(entry_json(tmp_path).read_text())["arrays"]["rescaled-float32"]["format"] == 2
    assert isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)
    # records written before the tags (no format, no source) are recomputed once
    meta = json.loads(entry_json(tmp_path).read_text())
    for key in ("format", "source"):
        del meta["arrays"]["rescaled-float32"][key]
    _write_meta(entry_json(tmp_path), meta)
    assert not isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)
    assert isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)


def test_lmax_of_another_rule_is_recomputed(tmp_path, monkeypatch, counts):
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    meta = json.loads(entry_json(tmp_path).read_text())
    assert meta["lmax_rule"] == LMAX_RULE == 1  # the public constants the docs name (deepsphere_gen.graph)
    del meta["lmax_rule"]  # an entry without the tag: recomputed once, then tagged
    _write_meta(entry_json(tmp_path), meta)
    before = counts["lanczos"]
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == ref.lmax and counts["lanczos"] == before + 1
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == ref.lmax and counts["lanczos"] == before + 1
    monkeypatch.setattr(_sphere_graph, "LMAX_RULE", 2)
    monkeypatch.setattr(_laplacian, "lanczos_lmax", lambda *a, **kw: 7.5)  # the new rule
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and g.lmax == 7.5
    meta = json.loads(entry_json(tmp_path).read_text())
    assert meta["lmax_rule"] == 2 and meta["lmax"] == 7.5
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == 7.5  # then read from the entry


def _move_an_edge(npz):
    """Write the entry's npz again (as the cache does) with row 0's last neighbour moved to another
    pixel (the row stays sorted); returns the old and new members' CRC-32s."""
    from deepsphere_gen.graph._cache import _write_npz

    with np.load(npz) as f:
        arrays = dict(f)
    indices, end = arrays["indices"], arrays["indptr"][1] - 1
    indices[end] = max(set(range(indices[end] + 1, len(arrays["indptr"]) - 1)) - set(indices[: end + 1]))
    old = _npz_crcs(npz)
    with open(npz, "wb") as fh:
        _write_npz(fh, arrays)
    return old, _npz_crcs(npz)


def _npz_crcs(npz):
    import zipfile

    with zipfile.ZipFile(npz) as zf:
        return {info.filename.removesuffix(".npy"): info.CRC for info in zf.infolist()}


def test_values_of_another_pattern_are_recomputed(tmp_path, counts, large):
    """Stored values are bound to the CRC-32s of the pattern they were made from: an npz replaced
    beside them (its own CRCs valid, the JSON and the values file untouched) does not get them."""
    s = HealpixSampling(8)
    build_graph(s, k=8, cache_dir=tmp_path)
    npz = next((tmp_path / "graphs").glob("*.npz"))
    values = values_file(tmp_path).read_bytes()
    _move_an_edge(npz)
    before = dict(counts)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and not isinstance(g._rescaled32, np.memmap) and counts["values"] == before["values"] + 1
    # the values are those of the pattern now in the entry
    assert np.array_equal(g._rescaled32, _sphere_graph._rescaled32(g))
    assert values_file(tmp_path).read_bytes() != values
    h = build_graph(s, k=8, cache_dir=tmp_path)
    assert isinstance(h._rescaled32, np.memmap) and np.array_equal(h._rescaled32, g._rescaled32)


def test_lmax_of_another_pattern_is_recomputed(tmp_path, counts):
    """lmax is bound to the CRC-32s of the npz members it was computed from, as the stored values
    are: an npz replaced under an unchanged JSON gets its own lmax (recorded with its CRC-32s);
    an lmax recorded without them (entries from before) is recomputed once, then recorded with them."""
    from scipy.sparse.linalg import eigsh

    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    npz = next((tmp_path / "graphs").glob("*.npz"))
    good = json.loads(entry_json(tmp_path).read_text())
    assert good["lmax"] == ref.lmax and good["lmax_source"] == _npz_crcs(npz)
    # an entry from before the binding
    _write_meta(entry_json(tmp_path), {k: v for k, v in good.items() if k != "lmax_source"})
    before = counts["lanczos"]
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and counts["lanczos"] == before + 1 and g.lmax == ref.lmax
    assert json.loads(entry_json(tmp_path).read_text()) == good  # rewritten with the binding
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == ref.lmax and counts["lanczos"] == before + 1
    # another pattern under the same JSON
    old_crcs, new_crcs = _move_an_edge(npz)
    assert old_crcs != new_crcs
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and counts["lanczos"] == before + 2
    assert g.pattern.indices[g.pattern.indptr[1] - 1] != ref.pattern.indices[ref.pattern.indptr[1] - 1]
    meta = json.loads(entry_json(tmp_path).read_text())
    assert meta["lmax"] == g.lmax and meta["lmax_source"] == new_crcs
    assert build_graph(s, k=8, cache_dir=tmp_path).lmax == g.lmax and counts["lanczos"] == before + 2
    true = {name: eigsh(graph.laplacian, k=1, which="LA", return_eigenvectors=False)[0] for name, graph in
            (("old", ref), ("new", g))}
    assert true["new"] != true["old"] and true["new"] <= g.lmax <= 1.02 * true["new"]
    assert g.lmax == _laplacian.estimate_lmax(g.laplacian)  # the rule's lmax of the pattern in the entry


# --- alignment of the memory-mapped pattern --------------------------------------------------------


def _member_offsets(npz):
    """Offset in the file of each member's array data."""
    import struct
    import zipfile

    out = {}
    with zipfile.ZipFile(npz) as zf, open(npz, "rb") as fh:
        for info in zf.infolist():
            fh.seek(info.header_offset)
            local = fh.read(30)
            fh.seek(info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30])))
            np.lib.format.read_array_header_1_0(fh) if np.lib.format.read_magic(fh) == (1, 0) else None
            out[info.filename] = fh.tell()
    return out


def test_new_entries_are_aligned_and_mapped(tmp_path):
    """New npz files put each member's data at a multiple of 64 bytes (np.load reads them): the
    loaded pattern is memory-mapped and aligned, the same bits as np.load."""
    s = HealpixSampling(8)
    build_graph(s, k=8, cache_dir=tmp_path)
    npz = next((tmp_path / "graphs").glob("*.npz"))
    assert all(offset % 64 == 0 for offset in _member_offsets(npz).values())
    g = build_graph(s, k=8, cache_dir=tmp_path)
    with np.load(npz) as f:
        for name in ("indptr", "indices"):
            a = getattr(g.pattern, name)
            assert isinstance(a, np.memmap) and a.flags.aligned and a.ctypes.data % 64 == 0
            assert a.dtype == f[name].dtype and np.array_equal(a, f[name])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_write_npz_aligns_any_member(tmp_path, dtype):
    from deepsphere_gen.graph._cache import _map_npz, _write_npz

    rng = np.random.default_rng(0)
    arrays = {"a": rng.integers(0, 9, 5).astype(dtype), "bb": np.empty(0, dtype),
              "c" * 40: rng.integers(0, 9, 1001).astype(dtype), "d": rng.standard_normal(3).astype(np.float32)}
    path = tmp_path / "x.npz"
    with open(path, "wb") as fh:
        crcs = _write_npz(fh, arrays)
    assert all(offset % 64 == 0 for offset in _member_offsets(path).values())
    with np.load(path) as f:
        assert sorted(f.files) == sorted(arrays) and all(np.array_equal(f[k], v) for k, v in arrays.items())
    with open(path, "rb") as fh:
        mapped, crcs2, realign = _map_npz(fh)
    assert crcs2 == crcs and all(np.array_equal(mapped[k], v) and mapped[k].flags.aligned for k, v in arrays.items())
    assert not realign and all(isinstance(mapped[k], np.memmap) for k in arrays if mapped[k].size)


def test_old_unaligned_entries_load_aligned(tmp_path, counts, large):
    """npz files of np.savez (entries written before): members at any offset; each array comes
    back aligned (a copy where its mapping is not), the same bits as np.load; the npz is then
    rewritten aligned (the same member bytes: the stored values stay bound to it)."""
    s = HealpixSampling(8)
    build_graph(s, k=8, cache_dir=tmp_path)
    values = values_file(tmp_path).read_bytes()
    npz = next((tmp_path / "graphs").glob("*.npz"))
    with np.load(npz) as f:
        arrays = dict(f)
    with open(npz, "wb") as fh:  # as the cache wrote them before
        np.savez(fh, indptr=arrays["indptr"], indices=arrays["indices"])
    assert _member_offsets(npz)["indices.npy"] % 4 == 1  # what the review found (int32 data at an odd address)
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache
    for name in ("indptr", "indices"):
        a = getattr(g.pattern, name)
        assert a.flags.aligned and np.array_equal(a, arrays[name]) and a.dtype == arrays[name].dtype
    assert not isinstance(g.pattern.indices, np.memmap)  # copied
    assert isinstance(g._rescaled32, np.memmap)  # the values still match the pattern's CRC-32s
    assert_same_graph(g, build_graph(s, k=8, cache=False))
    assert all(offset % 64 == 0 for offset in _member_offsets(npz).values())  # rewritten aligned
    assert values_file(tmp_path).read_bytes() == values
    before = dict(counts)
    h = build_graph(s, k=8, cache_dir=tmp_path)
    assert isinstance(h.pattern.indices, np.memmap) and isinstance(h._rescaled32, np.memmap) and counts == before
    assert_same_graph(h, g)


# --- writes that fail ------------------------------------------------------------------------------


def test_fresh_build_into_a_full_disk_warns_and_returns_the_graph(tmp_path, monkeypatch, large):
    """The first write of an entry fails like its completion: a warning naming the cause, the graph."""
    from deepsphere_gen.graph import _cache

    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)

    monkeypatch.setattr(_cache, "atomic_write", disk_full)
    with pytest.warns(RuntimeWarning, match=r"not written \(\[Errno 28\] No space left on device"):
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert not g.from_cache and not list((tmp_path / "graphs").iterdir())
    assert_same_graph(g, ref)
    monkeypatch.undo()
    monkeypatch.setattr(_sphere_graph, "_FLOAT32_LANCZOS_NNZ", 0)
    build_graph(s, k=8, cache_dir=tmp_path)
    assert isinstance(build_graph(s, k=8, cache_dir=tmp_path)._rescaled32, np.memmap)


def test_fresh_build_into_a_read_only_folder_warns(tmp_path, monkeypatch):
    """A folder that refuses the entry's files (as a read-only one does; the tests run as root,
    where chmod would not refuse, so the refusal is patched in) warns with the cause and returns
    the graph, leaving no temporary file."""
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    s = HealpixSampling(4)
    (tmp_path / "graphs").mkdir()
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.warns(RuntimeWarning, match="not written.*Permission denied"):
        g = build_graph(s, k=8, cache_dir=tmp_path)
    monkeypatch.undo()
    assert_same_graph(g, build_graph(s, k=8, cache=False))
    assert not g.from_cache and not list((tmp_path / "graphs").iterdir())


@contextlib.contextmanager
def file_size_limit(n: int):
    """Within the block, writes past ``n`` bytes fail with EFBIG (RLIMIT_FSIZE; SIGXFSZ ignored).  The
    limit is the process's: it must be lifted before pytest reports the test (its report line into a
    log file longer than ``n`` failed with "File too large" when a fixture's teardown lifted it)."""
    resource = pytest.importorskip("resource")
    import signal

    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_failed_writes_name_their_cause(tmp_path, large):
    """A real write error (here EFBIG: RLIMIT_FSIZE) reaches the warning with its cause; np.save's
    own message was "N requested and M written"."""
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    assert ref._rescaled32.nbytes > 16384
    with file_size_limit(16384), pytest.warns(RuntimeWarning, match=r"not written \(\[Errno 27\] File too large"):
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert_same_graph(g, ref)
    assert_no_tmp(tmp_path)
    build_graph(s, k=8, cache_dir=tmp_path)
    values_file(tmp_path).unlink()
    # the JSON fits, the values do not
    with file_size_limit(16384), pytest.warns(RuntimeWarning, match=r"not completed \(\[Errno 27\] File too large"):
        g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache
    assert_same_graph(g, ref)


def test_memory_maps_are_copy_on_write(tmp_path, large):
    """The tensors a cached graph gives share its memory maps; writing into them changes neither the
    cache files nor the next build."""
    s = HealpixSampling(8)
    ref = build_graph(s, k=8, cache=False)
    build_graph(s, k=8, cache_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "graphs").iterdir()}
    g = build_graph(s, k=8, cache_dir=tmp_path)
    T = g.to_torch()
    assert T.values().data_ptr() == g._rescaled32.ctypes.data and T.col_indices().data_ptr() == g.pattern.indices.ctypes.data
    T.values().mul_(2)
    T.col_indices().zero_()
    T.crow_indices().add_(1)
    g.pattern.indices[:] = 3
    assert g._rescaled32[0] == 2 * ref.to_torch().values()[0].item() and (g.pattern.indices == 3).all()
    assert {p.name: p.read_bytes() for p in (tmp_path / "graphs").iterdir()} == before
    h = build_graph(s, k=8, cache_dir=tmp_path)
    assert h.from_cache and isinstance(h._rescaled32, np.memmap)
    assert_same_graph(h, ref)


def test_build_steps_are_per_thread():
    """Two threads timing interleaved steps: each block sees its own thread's steps, properly nested."""
    import threading

    from deepsphere_gen.graph import build_steps
    from deepsphere_gen.graph._steps import step

    barrier = threading.Barrier(2)
    seen, errors = {}, []

    def work(name):
        try:
            with build_steps() as steps:
                with step(name):
                    barrier.wait()  # both steps open
                    barrier.wait()
                    with step(name + "-inner"):
                        barrier.wait()
                barrier.wait()
            seen[name] = steps
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    for name in "ab":
        assert {k: v["calls"] for k, v in seen[name].items()} == {name: 1, name + "-inner": 1}


def test_unaligned_npz_with_padding_is_not_rewritten(tmp_path, monkeypatch):
    """Were a zip layout to leave padded members unaligned (another Python's zipfile), the entry is
    loaded by copies but not rewritten on every build."""
    from deepsphere_gen.graph import _cache

    s = HealpixSampling(8)
    monkeypatch.setattr(_cache, "_ALIGN", 2)  # padded, yet int32 data at 2 mod 4
    build_graph(s, k=8, cache_dir=tmp_path)
    npz = next((tmp_path / "graphs").glob("*.npz"))
    assert _member_offsets(npz)["indices.npy"] % 4  # the precondition: indices unaligned
    monkeypatch.undo()
    mtime = npz.stat().st_mtime_ns
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and g.pattern.indices.flags.aligned and not isinstance(g.pattern.indices, np.memmap)
    assert npz.stat().st_mtime_ns == mtime


def test_aligned_npz_without_our_padding_and_w_entries_are_not_realigned(tmp_path, monkeypatch):
    """An npz whose members are all aligned without the padding block (another writer's: here extra
    blocks of another id) is mapped and left as written; so is the npz of a stored W."""
    import zipfile

    from deepsphere_gen.graph import _cache

    s = HealpixSampling(8)
    monkeypatch.setattr(_cache, "_ALIGN_EXTRA_ID", 0xCAFE)
    build_graph(s, k=8, cache_dir=tmp_path / "p")
    monkeypatch.undo()
    npz = next((tmp_path / "p" / "graphs").glob("*.npz"))
    with zipfile.ZipFile(npz) as zf:  # the preconditions: aligned, no padding block
        assert not any(_cache._has_pad(info.extra) for info in zf.infolist())
    assert all(offset % 64 == 0 for offset in _member_offsets(npz).values())
    with open(npz, "rb") as fh:
        assert _cache._map_npz(fh)[2] is False
    build_graph(GaussLegendreSampling(4), k=8, cache_dir=tmp_path / "w")  # a stored W
    for root, sampling in ((tmp_path / "p", s), (tmp_path / "w", GaussLegendreSampling(4))):
        (npz,) = (root / "graphs").glob("*.npz")
        written = (npz.stat().st_ino, npz.stat().st_mtime_ns)
        g = build_graph(sampling, k=8, cache_dir=root)
        assert g.from_cache and (npz.stat().st_ino, npz.stat().st_mtime_ns) == written
        assert (g.pattern is None) == (root.name == "w")
        if g.pattern is not None:
            assert isinstance(g.pattern.indptr, np.memmap) and isinstance(g.pattern.indices, np.memmap)


@pytest.mark.parametrize("edit", ["lmax", "nan lmax", "no checksum", "checksum"])
def test_edited_json_is_rebuilt(tmp_path, edit):
    """The JSON is bound to itself (SHA-256 of its fields): an edited lmax (which the rescaling
    would trust; NaN, which json reads but the checksum's JSON refuses, crashed build_graph), or an
    entry without the checksum (written before it), is rebuilt."""
    s, ref, path, good = _cached_entry(tmp_path)
    meta = dict(good)
    if edit == "lmax":
        meta["lmax"] = 1.0
    elif edit == "nan lmax":
        meta["lmax"] = float("nan")
    elif edit == "no checksum":
        del meta["meta_sha256"]
    else:
        meta["meta_sha256"] = "0" * 64
    path.write_text(json.dumps(meta))
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert not g.from_cache and g.lmax == ref.lmax
    assert json.loads(path.read_text()) == good  # written again
    g = build_graph(s, k=8, cache_dir=tmp_path)
    assert g.from_cache and g.lmax == ref.lmax
    assert_same_graph(g, ref)


def test_cache_entries_and_prune_cache(tmp_path, monkeypatch):
    from deepsphere_gen import __version__
    from deepsphere_gen.graph import cache_entries, prune_cache

    s = HealpixSampling(4)
    assert cache_entries(tmp_path) == [] and prune_cache(cache_dir=tmp_path) == []
    monkeypatch.setattr(_sphere_graph, "__version__", "0.0.1")  # entries of an older version
    build_graph(s, k=8, cache_dir=tmp_path)
    build_graph(s, k=9, cache_dir=tmp_path)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_graph(s, k=7, cache_dir=tmp_path)  # no older entry of these parameters: no notice
    with pytest.warns(RuntimeWarning, match=r"^1 graph cache entry for these parameters written by deepsphere_gen "
                                            r"0\.0\.1 \(.* MiB\) in .* are no longer read; remove them with "
                                            r"deepsphere_gen\.graph\.prune_cache\(\)$") as record:
        build_graph(s, k=8, cache_dir=tmp_path)
    assert len(record) == 1
    build_graph(s, k=8, cache_dir=tmp_path)  # from the cache: nothing written, no notice
    graphs = tmp_path / "graphs"
    (graphs / "healpix-nside4-0123456789abcdef0123.npz").write_bytes(b"an entry being written")  # no JSON yet
    entries = cache_entries(tmp_path)
    assert [(e["version"], e["params"] and e["params"]["k"]) for e in entries].count(("0.0.1", 8)) == 1
    assert sorted((e["version"], e["params"]["k"]) for e in entries if e["params"]) == \
        [("0.0.1", 8), ("0.0.1", 9), (__version__, 7), (__version__, 8)]
    assert sorted(f for e in entries for f in e["files"]) == sorted(graphs.iterdir())
    for e in entries:
        assert e["bytes"] == sum(f.stat().st_size for f in e["files"]) > 0
        assert e["path"] == e["files"][0].with_suffix(".json")
    removed = prune_cache(cache_dir=tmp_path)
    assert sorted(e["params"]["k"] for e in removed) == [8, 9] and {e["version"] for e in removed} == {"0.0.1"}
    assert not any(f.exists() for e in removed for f in e["files"])
    assert sorted(e["version"] or "none" for e in cache_entries(tmp_path)) == sorted(["none", __version__, __version__])
    assert build_graph(s, k=8, cache_dir=tmp_path).from_cache  # the current entries kept
    assert len(prune_cache(keep_current_version=False, cache_dir=tmp_path)) == 2
    assert [p.name for p in graphs.iterdir()] == ["healpix-nside4-0123456789abcdef0123.npz"]  # left alone
