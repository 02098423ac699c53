"""Generated mass maps: spectra, one-point statistics, cache, metadata, Dataset, errors."""
import json
import os
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.stats import skew

import deepsphere_gen.datasets.massmaps as mm
from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.datasets._lognormal import lognormal_skewness
from deepsphere_gen.datasets._massmaps_cache import estimate_cost, limit_threads, read_metadata
from deepsphere_gen.datasets._spectra import COSMOLOGIES, lognormal_shift
from deepsphere_gen.datasets import FreshNoise
from deepsphere_gen.datasets.massmaps import MassMapConfig, MassMapDataset, generate_massmaps, load_massmaps
from deepsphere_gen.sampling import base_patch_indices

NSIDE = 32


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    cfg = MassMapConfig(nside=NSIDE, n_maps=6, seed=5)
    return generate_massmaps(cfg, tmp_path_factory.mktemp("mm"), progress=False, verbose=False)


@pytest.fixture(scope="module")
def raw_maps():
    """Unsmoothed single-field log-normal maps (values at pixel centres), 12 per class, same seeds in both classes."""
    cfg = MassMapConfig(nside=NSIDE, smoothing_arcmin=0.0, pixel_window=False, generator="lognormal")
    return [np.stack([mm.convergence_map(c, cfg, np.random.default_rng([9, i])) for i in range(12)])
            for c in COSMOLOGIES]


def test_anafast_matches_input_cl_times_beam_and_pixel_window(dataset_dir):
    maps, meta = load_massmaps(dataset_dir)
    spectra = np.load(dataset_dir / "spectra.npz")
    lmax = meta["generation"]["lmax"]
    ell = np.arange(lmax + 1)
    for c in range(2):
        measured = np.mean([hp.anafast(hp.reorder(np.asarray(m, np.float64), n2r=True), lmax=lmax, iter=3,
                                       use_pixel_weights=False) for m in maps[c]], axis=0)
        expected = spectra[f"cl_kappa_{c}"] * spectra["transfer"] ** 2  # the shells' sum (test_shells: against pyccl)
        # bands of 8 degrees, 2 <= l < 2 nside; Gaussian cosmic variance of the band mean
        edges = np.arange(2, 2 * NSIDE + 1, 8)
        z = []
        for a, b in zip(edges[:-1], edges[1:]):
            modes = maps.shape[1] * np.sum(2 * ell[a:b] + 1)
            band = expected[a:b].mean()
            z.append((measured[a:b].mean() - band) / (band * np.sqrt(2 / modes)))
        z = np.array(z)
        assert np.all(np.abs(z) < 4), z
        assert np.mean(z**2) < 3, z  # chi^2 per band
        # and the measurement is sharp enough to see a 15 % amplitude error
        z_wrong = (measured[2:2 * NSIDE].sum() - 1.15 * expected[2:2 * NSIDE].sum()) / (
            expected[2:2 * NSIDE].sum() * np.sqrt(2 / (maps.shape[1] * np.sum(2 * ell[2:2 * NSIDE] + 1))))
        assert abs(z_wrong) > 4


def test_skewness_matches_lognormal_prediction(raw_maps):
    """Unsmoothed maps are exactly shifted log-normal at each pixel: skewness = 3r + r^3, r = std/lambda."""
    for c, maps in enumerate(raw_maps):
        shift = lognormal_shift(COSMOLOGIES[c])
        sk = np.array([skew(m) for m in maps])
        pred = lognormal_skewness(maps.var(axis=1), shift)
        err = sk.std(ddof=1) / np.sqrt(sk.size)
        assert abs(sk.mean() - pred.mean()) < 4 * err, (sk.mean(), pred.mean(), err)
        assert np.all(maps.min(axis=1) > -shift)


def test_cosmologies_differ_in_skewness_not_in_variance(raw_maps):
    sk = [np.array([skew(m) for m in maps]) for maps in raw_maps]
    d = sk[1] - sk[0]  # paired: same Gaussian seeds, different cosmology
    assert d.mean() > 4 * d.std(ddof=1) / np.sqrt(d.size)  # (0.26, 0.91) is the more skewed model
    assert np.all(d > 0)
    var = [maps.var(axis=1).mean() for maps in raw_maps]
    assert abs(var[1] / var[0] - 1) < 0.2


def test_smoothed_maps_are_close_to_lognormal(tmp_path):
    """Pixel window + beam smoothing lowers the skewness a little below the log-normal value."""
    cfg = MassMapConfig(nside=NSIDE, n_maps=6, seed=5, generator="lognormal")
    maps, meta = load_massmaps(generate_massmaps(cfg, tmp_path, progress=False, verbose=False))
    for c in range(2):
        sk = np.mean([skew(np.asarray(m, np.float64)) for m in maps[c]])
        pred = lognormal_skewness(np.var(maps[c], axis=1), meta["classes"][c]["lognormal_shift"]).mean()
        assert 0.75 * pred < sk < 1.02 * pred


def test_metadata_and_cache_reuse(dataset_dir, monkeypatch, capsys):
    meta = json.loads((dataset_dir / "metadata.json").read_text())
    assert meta["generation"]["nside"] == NSIDE and meta["generation"]["seed"] == 5
    assert meta["generation"]["lmax"] == 3 * NSIDE - 1
    assert {"numpy", "healpy", "pyccl", "deepsphere_gen"} <= set(meta["versions"])
    assert meta["classes"][0]["omega_m"] == 0.31 and meta["classes"][1]["sigma8"] == 0.91
    maps, _ = load_massmaps(dataset_dir)
    assert maps.shape == (2, 6, 12 * NSIDE**2) and maps.dtype == np.float32
    assert meta["clean_std"] == pytest.approx(np.std(np.asarray(maps, np.float64)), rel=1e-4)

    def boom(*a, **k):
        raise AssertionError("regenerated instead of reusing the cache")

    monkeypatch.setattr(mm, "convergence_map", boom)
    cfg = MassMapConfig(nside=NSIDE, n_maps=6, seed=5, noise_levels=(0, 2))  # noise levels: same data
    assert generate_massmaps(cfg, dataset_dir.parent, progress=False) == dataset_dir
    assert "reusing" in capsys.readouterr().out


def test_generation_reproducible_and_prefix_stable(tmp_path):
    a = generate_massmaps(MassMapConfig(nside=8, n_maps=2, seed=1), tmp_path / "a", progress=False, verbose=False)
    b = generate_massmaps(MassMapConfig(nside=8, n_maps=3, seed=1), tmp_path / "b", progress=False, verbose=False)
    c = generate_massmaps(MassMapConfig(nside=8, n_maps=2, seed=2), tmp_path / "c", progress=False, verbose=False)
    ma, mb, mc = (load_massmaps(p)[0] for p in (a, b, c))
    np.testing.assert_array_equal(ma, mb[:, :2])
    assert not np.allclose(ma, mc)


def test_estimate_printed_and_failure_leaves_nothing(tmp_path, monkeypatch, capsys):
    calls = []
    real = mm.convergence_map

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(mm, "convergence_map", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_massmaps(MassMapConfig(nside=8, n_maps=2), tmp_path, progress=False)
    out = capsys.readouterr().out
    assert "MiB" in out and "s estimated" in out
    nbytes, seconds = estimate_cost(1024, 60)
    assert nbytes == 60 * 12 * 1024**2 * 4 and 500 < seconds < 900  # measured 11.0 s/map
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, match", [
    (dict(noise_levels=(0, -0.5)), "noise level"),
    (dict(nside=48), "power of 2"),
    (dict(n_maps=0), "n_maps"),
    (dict(smoothing_arcmin=-3), "smoothing"),
    (dict(lmax=1), "lmax"),
])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        MassMapConfig(**bad)


@pytest.mark.parametrize("split", ["train", "val", "test", "all"])
def test_locate_and_sample_index_are_each_others_inverse(split):
    """locate(i) is the (class, map, patch) whose pixels sample i holds (read off the values: pixel q of map j of
    class c holds 1 + 10000 c + 1000 j + q), and sample_index is its inverse: the one rule of the samples' layout
    (SkyRotationDraws finds a copy's sample by it; it had re-derived the arithmetic)."""
    nside, n_maps, level = 4, 8, 1
    q = np.arange(12 * nside**2)
    maps = np.stack([np.stack([1 + 10000 * c + 1000 * j + q for j in range(n_maps)]) for c in range(2)]).astype(float)
    ds = MassMapDataset(maps, level=level, split=split, val_fraction=0.25)
    per_patch = q.size // (12 * 4**level)
    for i in range(len(ds)):
        v = int(ds[i][0][0, 0])
        c, rest = divmod(v - 1, 10000)
        j, first = divmod(rest, 1000)
        assert ds.locate(i) == (c, j, first // per_patch) and ds.locate(i - len(ds)) == ds.locate(i)
        assert ds.sample_index(*ds.locate(i)) == i
    outside = next(j for j in range(n_maps) if j not in ds.map_ids) if split != "all" else n_maps
    for bad in ((0, outside, 0), (2, int(ds.map_ids[0]), 0), (0, int(ds.map_ids[0]), 48)):
        with pytest.raises(IndexError, match="no sample of class"):
            ds.sample_index(*bad)
    with pytest.raises(IndexError, match="out of range"):
        ds.locate(len(ds))


@pytest.mark.parametrize("level", [None, 0, 1, 2])
def test_dataset_patches_split_and_labels(dataset_dir, level):
    train = MassMapDataset(dataset_dir, level=level, split="train")
    test = MassMapDataset(dataset_dir, level=level, split="test")
    npatch = 1 if level is None else 12 * 4**level
    assert len(train) == 2 * 4 * npatch and len(test) == 2 * 2 * npatch  # 6 maps: 4 train, 2 test
    assert set(train.map_ids).isdisjoint(test.map_ids)
    assert train.sky_fraction == pytest.approx(1 / (12 * 4**level) if level is not None else 1.0)
    maps, _ = load_massmaps(dataset_dir)
    for i in (0, len(train) - 1, len(train) // 2 + 1):
        x, y, idx = train[i]
        c, j, p = train.locate(i)
        assert x.shape == (12 * NSIDE**2 // npatch, 1) and x.dtype == torch.float32
        assert int(y) == c
        if level is not None:
            np.testing.assert_array_equal(idx.numpy(), base_patch_indices(NSIDE, level, p))
        np.testing.assert_allclose(x[:, 0].numpy(), maps[c, j, idx.numpy()], rtol=1e-6)
    xb, yb, ib = next(iter(torch.utils.data.DataLoader(train, batch_size=4, shuffle=True)))
    assert xb.shape == (4, 12 * NSIDE**2 // npatch, 1) and yb.shape == (4,) and ib.shape == (4, xb.shape[1])


def test_dataset_noise_level_definition(dataset_dir):
    clean = MassMapDataset(dataset_dir, level=0, split="all")
    noisy = MassMapDataset(dataset_dir, level=0, noise=2.0, split="all")
    diff = np.concatenate([noisy.values(i)[0] - clean.values(i)[0] for i in range(len(clean))])
    assert diff.std() == pytest.approx(2.0 * clean.clean_std, rel=0.02)
    np.testing.assert_array_equal(noisy.values(3)[0], noisy.values(3)[0])  # fixed per sample
    other = MassMapDataset(dataset_dir, level=0, noise=2.0, split="all", seed=123)
    assert not np.allclose(other.values(3)[0], noisy.values(3)[0])
    with pytest.raises(ValueError, match="noise level"):
        MassMapDataset(dataset_dir, noise=-1.0)


def test_fresh_noise_training_samples():
    """FreshNoise: a new noise realisation at every draw, the draws ``torch.randn(float64)`` of torch's global RNG in
    draw order (the mass-map experiment's records depend on these exact draws), of the std of the data set's fixed
    noise; the labels and pixels of the clean samples."""
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((2, 4, 12 * 4**2))
    clean = MassMapDataset(maps, level=0, noise=0.0, split="train", test_fraction=0.25)
    fixed = MassMapDataset(maps, level=0, noise=2.0, split="train", test_fraction=0.25)
    assert torch.equal(fixed[0][0], fixed[0][0])  # the data set's noise: the same at every draw
    fresh = FreshNoise(clean, 2.0 * clean.clean_std)
    assert len(fresh) == len(clean) == len(fixed) == 2 * 3 * 12
    torch.manual_seed(3)
    a = [fresh[i] for i in range(len(fresh))]
    b = [fresh[i] for i in range(len(fresh))]  # another draw: other noise
    torch.manual_seed(3)
    expected = [clean[i][0] + fresh.sigma * torch.randn(clean[i][0].shape, dtype=torch.float64).to(torch.float32)
                for i in range(len(clean))]
    for (xa, ya, ia), (xb, yb, ib), xe, (xc, yc, ic) in zip(a, b, expected, (clean[i] for i in range(len(clean)))):
        assert torch.equal(xa, xe) and not torch.equal(xa, xb)
        assert ya == yb == yc and torch.equal(ia, ic) and torch.equal(ib, ic) and xa.dtype == xc.dtype
    noise = torch.cat([xa - xc for (xa, _, _), (xc, _, _) in zip(a, (clean[i] for i in range(len(clean))))])
    fixed_noise = torch.cat([fixed[i][0] - clean[i][0] for i in range(len(clean))])
    assert float(noise.std()) == pytest.approx(2.0 * clean.clean_std, rel=0.05)
    assert float(fixed_noise.std()) == pytest.approx(2.0 * clean.clean_std, rel=0.05)
    with pytest.raises(ValueError, match="noise-free"):
        FreshNoise(fixed, 2.0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="noise_std"):
            FreshNoise(clean, bad)


def test_dataset_footprint_and_arrays(dataset_dir):
    from deepsphere_gen.datasets._footprint import builtin_footprint

    mask = builtin_footprint(NSIDE)
    ds = MassMapDataset(dataset_dir, footprint=mask, noise=1.0, split="test")
    x, y, idx = ds[0]
    np.testing.assert_array_equal(idx.numpy(), np.flatnonzero(mask))
    values, indices, labels = ds.arrays()
    assert values.shape == (4, mask.sum()) and indices.shape == values.shape
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="empty footprint"):
        MassMapDataset(dataset_dir, footprint=np.zeros(12 * NSIDE**2, bool))
    with pytest.raises(ValueError, match="either a patch level or a footprint"):
        MassMapDataset(dataset_dir, footprint=mask, level=0)


def test_dataset_from_arrays_rejects_unseen_inside_footprint():
    maps = np.random.default_rng(0).standard_normal((2, 3, 12 * 8**2))
    mask = np.zeros(12 * 8**2, bool)
    mask[:64] = True
    maps[:, :, 100:] = UNSEEN  # outside the footprint: never read
    ds = MassMapDataset(maps, footprint=mask, split="all", clean_std=1.0)
    assert len(ds) == 6 and torch.isfinite(ds[5][0]).all()
    maps[0, 0, 10] = UNSEEN
    with pytest.raises(ValueError, match="inside the footprint"):
        MassMapDataset(maps, footprint=mask, split="all", clean_std=1.0)
    maps[0, 0, 10] = 0.0
    maps[1, 2, 20] = np.nan  # found when the sample is read
    ds = MassMapDataset(maps, footprint=mask, split="all", clean_std=1.0)
    with pytest.raises(ValueError, match="map 2 of class 1 has UNSEEN/NaN/inf"):
        ds[5]
    with pytest.raises(ValueError, match="split"):
        MassMapDataset(maps[:, :1], level=0, clean_std=1.0)


@pytest.mark.parametrize("bad", [np.nan, UNSEEN, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dataset_std_from_maps_with_missing_pixels_names_the_map(bad, dtype):
    """Without clean_std the std is estimated from the maps: a missing pixel is named (map,
    class), not reported as "clean_std must be positive, got nan" (or, for UNSEEN in
    float64, a silently huge std)."""
    maps = np.random.default_rng(1).standard_normal((2, 4, 12 * 4**2)).astype(dtype)
    maps[1, 2, 7] = bad
    for kw in ({}, {"noise_std": 0.1}, {"nside_out": 2}):
        with pytest.raises(ValueError, match=r"map 2 of class 1 has UNSEEN/NaN/inf pixels.*give clean_std"):
            MassMapDataset(maps, split="all", **kw)


def test_read_metadata_and_thread_limit_errors(tmp_path):
    assert read_metadata(tmp_path) is None
    (tmp_path / "metadata.json").write_text("{broken")
    assert read_metadata(tmp_path) is None
    with pytest.raises(ValueError, match="threads"):
        limit_threads(0)
    with limit_threads(None), limit_threads(1):
        pass


def test_existing_directory_with_other_parameters_is_not_overwritten(tmp_path):
    cfg = MassMapConfig(nside=8, n_maps=1)
    path = mm._dataset_dir(cfg, tmp_path)
    path.mkdir()
    (path / "metadata.json").write_text('{"generation": {"nside": 4}}')
    with pytest.raises(ValueError, match="does not match"):
        generate_massmaps(cfg, tmp_path, progress=False, verbose=False)
    assert (path / "metadata.json").read_text() == '{"generation": {"nside": 4}}'


def test_dataset_noise_std_validation_split_and_averaging_down(dataset_dir):
    maps, meta = load_massmaps(dataset_dir)
    kw = dict(test_fraction=0.34, val_fraction=0.17)  # 6 maps per class: 3 train, 1 val, 2 test
    ids = {s: MassMapDataset(dataset_dir, split=s, **kw).map_ids.tolist() for s in ("train", "val", "test")}
    assert ids == {"train": [0, 1, 2], "val": [3], "test": [4, 5]}
    # absolute noise: the given std, independent of the data set's clean std; reproducible
    clean = MassMapDataset(dataset_dir, level=1, split="val", **kw)
    noisy = MassMapDataset(dataset_dir, level=1, split="val", noise_std=0.01, **kw)
    d = np.concatenate([noisy.values(i)[0] - clean.values(i)[0] for i in range(len(clean))])
    assert d.std() == pytest.approx(0.01, rel=0.02) and noisy.noise == pytest.approx(0.01 / clean.clean_std)
    np.testing.assert_array_equal(noisy.values(3)[0], noisy.values(3)[0])
    with pytest.raises(ValueError, match="not both"):
        MassMapDataset(dataset_dir, noise=1.0, noise_std=0.01)
    with pytest.raises(ValueError, match="noise_std"):
        MassMapDataset(dataset_dir, noise_std=-1.0)
    # full sky averaged down: healpy's ud_grade of the NESTED map, clean std of the coarse maps
    down = MassMapDataset(dataset_dir, split="all", nside_out=8)
    ref = hp.ud_grade(np.asarray(maps[1, 2], np.float64), 8, order_in="NESTED", order_out="NESTED")
    np.testing.assert_allclose(down.values(6 + 2)[0], ref, rtol=1e-6, atol=1e-9)
    assert down.nside == 8 and down.indices.shape == (1, 768) and down[0][0].shape == (768, 1)
    assert down.clean_std < meta["clean_std"]
    with pytest.raises(ValueError, match="full-sky samples only"):
        MassMapDataset(dataset_dir, level=0, nside_out=8)
    with pytest.raises(ValueError, match="cannot be split into train, validation and test"):
        MassMapDataset(dataset_dir, test_fraction=0.5, val_fraction=0.45)


def test_data_files_are_allocated_before_they_are_written_through_a_memory_map(tmp_path, monkeypatch):
    """The maps files of massmaps, its rotated copies and cosmo are memory-mapped: numpy's sparse file let a full disk
    kill the writer with SIGBUS at a store.  Allocated first, every block is on disk before a store (st_blocks), by
    posix_fallocate or, where the file system lacks it, by zeros; a full disk is an OSError naming the file."""
    import errno

    import numpy as np

    from deepsphere_gen.datasets._massmaps_cache import preallocated_memmap

    shape = (2, 3, 12 * 64**2)
    out = preallocated_memmap(tmp_path / "a.npy", shape)
    assert out.shape == shape and out.dtype == np.float32 and not out.any()
    assert (tmp_path / "a.npy").stat().st_blocks * 512 >= (tmp_path / "a.npy").stat().st_size  # not sparse

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    out = preallocated_memmap(tmp_path / "b.npy", shape)
    out[1, 2, -1] = 7.0
    out.flush()
    assert (tmp_path / "b.npy").stat().st_blocks * 512 >= (tmp_path / "b.npy").stat().st_size
    back = np.load(tmp_path / "b.npy")
    assert back.shape == shape and back[1, 2, -1] == 7.0 and np.count_nonzero(back) == 1

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        preallocated_memmap(tmp_path / "c.npy", shape)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "c.npy")


def _writer_process(final: Path):
    """A process writing ``final`` through atomic_directory: it prints 'ready' once the temporary
    folder is filled, then waits for a line on stdin before it finishes."""
    import subprocess
    import sys

    code = ("import sys; from deepsphere_gen.datasets._massmaps_cache import atomic_directory\n"
            f"with atomic_directory({str(final)!r}) as tmp:\n"
            "    (tmp / 'metadata.json').write_text('{}'); print('ready', flush=True); sys.stdin.readline()\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_folders_left_by_a_killed_generation_are_removed_next_time(tmp_path):
    """SIGTERM during a write leaves `.NAME.tmp-*` (no cleanup runs); the next write of the same
    data set removes it (no process holds its lock), keeps a live writer's, reports one without a record."""
    import fcntl
    import signal

    from deepsphere_gen.datasets._massmaps_cache import LOCK, atomic_directory

    final = tmp_path / "massmaps-nside8-0123456789abcdef"
    elsewhere = tmp_path / "cosmo-nside32-0123456789abcdef"  # another data set, never generated again
    procs = [_writer_process(final), _writer_process(elsewhere)]  # both alive: neither sweeps the other's folder
    for proc, sig in zip(procs, (signal.SIGTERM, signal.SIGKILL)):
        proc.send_signal(sig)
        proc.wait(timeout=30)
    (killed,) = tmp_path.glob(f".{final.name}.tmp-*")  # what the killed writers left
    (killed_elsewhere,) = tmp_path.glob(f".{elsewhere.name}.tmp-*")
    live = tmp_path / f".{final.name}.tmp-live"
    live.mkdir()
    held = os.open(live / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # being written (by this process: another open file is refused the lock)
    old = tmp_path / f".{final.name}.tmp-old"
    old.mkdir()  # by an older version: no record of its writer
    other = tmp_path / ".massmaps-nside8-fedcba9876543210.tmp-x"
    other.mkdir()  # another data set, no record of its writer: kept, and said by a write of that data set only
    said = []
    try:
        with atomic_directory(final, log=said.append) as tmp:
            (tmp / "metadata.json").write_text("{}")
    finally:
        os.close(held)
    assert not killed.exists() and live.exists() and old.exists() and other.exists()
    assert not killed_elsewhere.exists()  # its writer is dead too: swept, whatever its data set
    assert sorted(p.name for p in final.iterdir()) == ["metadata.json"]  # the lock file is not kept
    assert f"deepsphere_gen: removed {killed}, left by an interrupted generation" in said
    assert f"deepsphere_gen: removed {killed_elsewhere}, left by an interrupted generation" in said
    assert not any(str(other) in s for s in said), said
    assert any(f"{old} may be left" in s and "no record of its writer" in s for s in said), said
    assert not any(str(live) in s for s in said), said


def test_a_live_writer_is_kept_whatever_its_process_id_says(tmp_path, monkeypatch):
    """A writer in another PID namespace (container) or on another host with the same name looks
    dead to os.kill(pid, 0); its folder must be kept (before: removed, and the writer then failed
    with FileNotFoundError at its rename).  The cleanup decides by the writer's flock alone; os.kill is made to
    say every process is gone so that a pid-based rule (the earlier code's) coming back would fail here."""
    from deepsphere_gen.datasets._massmaps_cache import clean_stale_temporaries

    def no_such_process(pid, sig):
        raise ProcessLookupError(pid)

    final = tmp_path / "massmaps-nside8-0123456789abcdef"
    proc = _writer_process(final)
    try:
        monkeypatch.setattr(os, "kill", no_such_process)
        said = []
        assert clean_stale_temporaries(final, log=said.append) == [] and said == []
        monkeypatch.undo()
        (writing,) = tmp_path.glob(f".{final.name}.tmp-*")
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    assert not writing.exists() and sorted(p.name for p in final.iterdir()) == ["metadata.json"]


def test_a_folder_on_a_file_system_without_locks_is_kept_and_reported(tmp_path, monkeypatch):
    """Where flock fails (some network file systems), whether the writer lives cannot be told: the
    folder is kept and reported, never removed."""
    import errno
    import fcntl

    from deepsphere_gen.datasets._massmaps_cache import LOCK, clean_stale_temporaries

    final = tmp_path / "massmaps-nside8-0123456789abcdef"
    stale = tmp_path / f".{final.name}.tmp-abc"
    stale.mkdir()
    (stale / LOCK).write_text("elsewhere 1\n")

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    said = []
    assert clean_stale_temporaries(final, log=said.append) == [] and stale.exists()
    assert len(said) == 1 and f"{stale} may be left" in said[0] and "does not lock files" in said[0], said
