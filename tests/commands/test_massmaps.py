"""``deepsphere-gen massmaps``: sky settings, end-to-end run, JSON/plots, resume, bad input."""
from __future__ import annotations

import json
import warnings
from dataclasses import replace

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen._platform import cpu_description
from deepsphere_gen.experiments import massmaps as exp
from deepsphere_gen.experiments import reporting
from deepsphere_gen.experiments.massmaps import baseline_records as mm_baselines
from deepsphere_gen.experiments.massmaps import data as mm_data
from deepsphere_gen.experiments.massmaps import models as mm_models
from deepsphere_gen.experiments.massmaps import records as mm_records
from deepsphere_gen.experiments.massmaps import training as mm_training
from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.datasets import MassMapDataset, load_massmaps
from deepsphere_gen.cli import main
from deepsphere_gen.commands import _massmaps_checks as mm_checks
from deepsphere_gen.commands import massmaps as cmd
from deepsphere_gen.experiments.massmaps.runs import find_checkpoints, member_name, member_seed
from deepsphere_gen.training import (CheckpointMismatch, batch_outputs, distributed_context, load_checkpoint,
                                     load_model_state, save_checkpoint)

from ._cli import refused

TINY = ["--nside", "8", "--n-maps", "8", "--sky-fractions", "1", "1/12", "--relative-noise", "0", "1", "--epochs", "2",
        "--min-steps", "0", "--batch-size", "16", "--no-progress"]


def _dirs(tmp_path):
    return ["--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]


@pytest.mark.parametrize("text, level, fraction", [("1", None, 1.0), ("1/12", 0, 1 / 12), ("1/48", 1, 1 / 48),
                                                  ("1/192", 2, 1 / 192), (" 1/768 ", 3, 1 / 768)])
def test_parse_sky_fraction(text, level, fraction):
    sky = exp.parse_sky_fraction(text, nside=64)
    assert sky.level == level and sky.fraction == pytest.approx(fraction)
    assert sky.full_sky == (level is None)


@pytest.mark.parametrize("text, match", [("1/24", "not a nested base-patch"), ("0.3", "not a nested"),
                                         ("abc", "sky fraction must be"), ("1/0", "sky fraction must be"),
                                         ("1/192", "needs nside >= 4")])
def test_parse_sky_fraction_errors(text, match):
    with pytest.raises(ValueError, match=match):
        exp.parse_sky_fraction(text, nside=2)


def test_package_names_come_from_their_modules():
    """Every name of the package's ``__all__`` is its module's own (loaded at first use), listed in that
    module's ``__all__``; an unknown name is an AttributeError.  That ``massmaps.config`` alone imports
    no torch is checked in a subprocess (test_command_help_and_argument_errors_import_no_torch)."""
    import importlib

    assert len(exp.__all__) == len(set(exp.__all__)) >= 30
    module_of = {name: module for module, names in exp._PUBLIC.items() for name in names}
    for name in exp.__all__:
        module = importlib.import_module(f"{exp.__name__}.{module_of[name]}")
        assert getattr(exp, name) is getattr(module, name) and name in module.__all__ and name in dir(exp)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        exp.nope

def test_reference_patch_is_equatorial():
    idx = mm_models._reference_indices(exp.parse_sky_fraction("1/48", 16), 16)
    assert idx.size == 12 * 16**2 // 48 and np.all(np.diff(idx) == 1)
    theta, _ = hp.pix2ang(16, idx, nest=True)
    assert np.all(idx // (16**2) == 4) and abs(np.degrees(theta.mean()) - 90) < 25  # base pixel 4


def test_train_config_policy():
    cfg = exp.ExperimentConfig(epochs=5, batch_size=32, lr=3e-3, min_steps=80)
    full = exp.train_config("fcn", 60, cfg)  # 60 full-sky maps: batch 8, 8 steps/epoch, 10 epochs
    assert (full.batch_size, full.epochs, full.lr, full.lr_schedule) == (8, 10, 3e-3, "cosine")
    assert full.recalibrate_bn and full.recalibrate_samples == 512
    harm = exp.train_config("harmonic", 60, cfg)  # cheap, slow starter: 3x lr and steps
    assert (harm.batch_size, harm.epochs, harm.lr) == (8, 30, pytest.approx(9e-3))
    patches = exp.train_config("cnn", 2880, cfg)  # 90 steps/epoch: min_steps already reached
    assert (patches.batch_size, patches.epochs) == (32, 5)
    assert exp.train_config("fcn", 720, exp.ExperimentConfig(epochs=2, min_steps=0)).epochs == 2
    assert exp.train_config("fcn", 60, cfg, world_size=3).batch_size == 6  # divisible by the processes
    for bad in (-1, 2.5, True, None, "80", float("inf")):  # True and "80" passed, None raised a TypeError
        with pytest.raises(ValueError, match=f"min_steps must be a non-negative integer, got {bad!r}"):
            exp.ExperimentConfig(min_steps=bad)
    assert exp.ExperimentConfig(min_steps=np.int64(3)).min_steps == 3


def test_end_to_end_json_table_plots_and_resume(tmp_path, capsys):
    out_json = tmp_path / "res.json"
    methods = ["fcn", "cnn", "harmonic", "psd_svm", "hist_svm"]
    rc = main(["massmaps", *TINY, *_dirs(tmp_path), "--methods", *methods, "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "psd_svm" in text and "hist_svm" in text and "1/12" in text and "accuracy in %" in text

    records = json.loads(out_json.read_text())["records"]
    # one record per (method, sky, noise); harmonic on the full sky only
    keys = {(r["method"], r["sky"], r["noise"]) for r in records}
    assert len(keys) == len(records) == 2 * 2 * 4 + 2 * 1
    assert ("harmonic", "1/12", "none") not in keys and ("harmonic", "1", "rel1") in keys
    for r in records:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["seconds"] > 0
        lo, hi = r["ci95"]
        assert lo <= r["accuracy"] <= hi and r["n_correct"] == round(r["accuracy"] * r["n_test"])
        assert {"method", "sky_fraction", "noise", "accuracy", "n_train", "n_test", "seconds"} <= set(r)
        if r["method"] in exp.NETWORK_METHODS:
            assert r["epochs"] == 2 and r["batch_size"] == min(16, max(8, r["n_train"] // 8))
            assert r["views"] == 1 and r["accuracy_one_view"] == r["accuracy"]  # one view by default
            assert r["warm_start"] is None  # off by default
    # same split for every method: 5 train + 1 validation + 2 test maps per class, 12 patches per map at 1/12
    for r in records:
        per_map = 1 if r["sky"] == "1" else 12
        assert (r["n_train"], r["n_val"], r["n_test"]) == (2 * 5 * per_map, 2 * per_map, 2 * 2 * per_map)
        assert r["sky_fraction"] == pytest.approx(1.0 if r["sky"] == "1" else 1 / 12)
    for name in ("examples.png", "training_curves.png", "accuracy_vs_noise.png"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    # per-sample results: every method of one (sky, noise) on the same test samples (class, map) in order
    doc = json.loads(out_json.read_text())
    assert doc["cpu"] == cpu_description()  # results depend on the processor
    assert doc["config"]["quick"] is False and cmd.QUICK_NOTE not in text
    for r in records:
        assert len(r["correct"]) == r["n_test"] and r["correct"].count("1") == r["n_correct"]
        assert sum(n for _, _, n in r["test_maps"]) == r["n_test"] and len(r["test_maps"]) == 2 * 2  # 2 maps/class
        if r["ci95_maps"] is None:  # every test map of a class alike: no interval, said why (never [p, p])
            assert r["ci95_maps_note"]
        else:
            lo, hi = r["ci95_maps"]
            assert lo <= r["accuracy"] <= hi and (lo < hi or "ci95_maps_note" in r)
        first = next(q for q in records if (q["sky"], q["noise"]) == (r["sky"], r["noise"]))
        assert r["test_maps"] == first["test_maps"]
    pairs = {(m["sky"], m["noise"], m["method"], m["baseline"]) for m in doc["margins"]}
    nets = {"1": ("fcn", "cnn", "harmonic"), "1/12": ("fcn", "cnn")}
    assert pairs == {(s, n, net, b) for s in nets for n in ("none", "rel1") for net in nets[s]
                     for b in ("psd_svm", "hist_svm")}
    acc = {(r["method"], r["sky"], r["noise"]): r["accuracy"] for r in records}
    for m in doc["margins"]:
        key = (m["sky"], m["noise"])
        assert m["n_test_maps"] == 4 and m["resamples"] == 2000
        if m["margin"] is None:  # both methods right on every test sample
            assert acc[(m["method"], *key)] == acc[(m["baseline"], *key)] in (0.0, 1.0) and m["note"]
            continue
        assert m["margin"] == pytest.approx(100 * (acc[(m["method"], *key)] - acc[(m["baseline"], *key)]))
        assert m["note"] if m["ci95"] is None else m["ci95"][0] <= m["margin"] <= m["ci95"][1]
    assert "minus better of PSD/hist SVM" in text and "bootstrap over test maps" in text

    # checkpoints: finished runs are not trained again, evaluate reproduces the accuracies
    (ckpt,) = (tmp_path / "out" / "checkpoints").glob("fcn-sky1o12-noiserel1-*.pt")  # name carries the fingerprint
    state = load_checkpoint(ckpt)
    assert ckpt.name == f"fcn-sky1o12-noiserel1-{state['meta']['fingerprint']}.pt"
    assert state["epoch"] == 2 and len(state["history"]) == 2
    before = ckpt.stat().st_mtime_ns
    assert main(["massmaps", "train", *TINY, *_dirs(tmp_path), "--methods", "fcn"]) == 0
    assert ckpt.stat().st_mtime_ns == before
    again = tmp_path / "again.json"
    assert main(["massmaps", "evaluate", *TINY, *_dirs(tmp_path), "--methods", *methods, "--json", str(again),
                 "--no-plots"]) == 0
    acc = {(r["method"], r["sky"], r["noise"]): r["accuracy"] for r in records}
    acc2 = {(r["method"], r["sky"], r["noise"]): r["accuracy"] for r in json.loads(again.read_text())["records"]}
    assert acc2 == acc

    def mismatched(records):
        raise ValueError("fcn and hist_svm were scored on different test samples")

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:  # a margin failure loses neither the table nor the records
        mp.setattr(exp, "margins", mismatched)
        kept = tmp_path / "kept.json"
        assert main(["massmaps", "evaluate", *TINY, *_dirs(tmp_path), "--methods", *methods, "--json", str(kept),
                     "--no-plots"]) == 0
    assert "no paired margins: fcn and hist_svm were scored on different" in capsys.readouterr().err
    payload = json.loads(kept.read_text())
    assert payload["margins"] == [] and len(payload["records"]) == len(records)

    # classify a user map (here: a generated test map written as NESTED FITS)
    maps, _ = load_massmaps(next((tmp_path / "data").iterdir()))
    fits = tmp_path / "map.fits"
    hp.write_map(str(fits), np.asarray(maps[1, -1], dtype=np.float64), nest=True)
    capsys.readouterr()
    assert main(["massmaps", "classify", str(fits), "--relative-noise", "0", "--out-dir", str(tmp_path / "out")]) == 0
    lines = [s for s in capsys.readouterr().out.splitlines() if "P(class 0)" in s]
    assert len(lines) == 2  # 2 sky settings; the clean map is outside the noise-1 networks' inputs


def _fail(argv, capsys, match):
    err = refused("massmaps", argv, capsys, match).err
    assert "deepsphere-gen massmaps: error:" in err and match in err, err
    return err


def test_bad_input_clear_messages_nothing_written(tmp_path, capsys):
    d = _dirs(tmp_path)
    _fail([*TINY, "--relative-noise", "0", "-0.5", *d], capsys, "noise level must be a finite number >= 0")
    _fail([*TINY, "--ngal", "0", *d], capsys, "galaxy density must be > 0")
    _fail([*TINY, "--deepsphere-level", "-1", *d], capsys, "noise level must be a finite number >= 0")
    _fail(["generate", *TINY, *d, "--sky-fractions", "1/24"], capsys, "not a nested base-patch")
    _fail([*TINY, *d, "--sky-fractions", "footprint"], capsys, "needs --footprint")
    # footprint FITS at the wrong nside, and an empty one
    wrong = tmp_path / "wrong_nside.fits"
    hp.write_map(str(wrong), np.ones(12 * 4**2), nest=True)
    _fail([*TINY, *d, "--sky-fractions", "footprint", "--footprint", str(wrong)], capsys, "has nside 4, expected nside 8")
    empty = tmp_path / "empty.fits"
    hp.write_map(str(empty), np.zeros(12 * 8**2), nest=True)
    _fail([*TINY, *d, "--sky-fractions", "footprint", "--footprint", str(empty)], capsys, "empty footprint")
    # user maps: RING ordering, wrong nside, UNSEEN inside the analysed sky
    ring = tmp_path / "ring.fits"
    hp.write_map(str(ring), np.zeros(12 * 8**2), nest=False)
    out = ["--out-dir", str(tmp_path / "out")]
    _fail(["classify", str(ring), *out], capsys, "is in RING ordering but NESTED was expected (classify reads NESTED maps")
    small = tmp_path / "small.fits"
    hp.write_map(str(small), np.zeros(12 * 4**2), nest=True)
    _fail(["classify", str(small), *out], capsys, "no trained fcn network for nside 4")
    _fail(["classify", str(small), str(ring), *out], capsys, "the maps have different nside")
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()  # nothing written


def test_footprint_setting(tmp_path):
    """A mask keeps its pixels only; UNSEEN outside the mask is fine, inside it is refused."""
    mask = np.zeros(12 * 8**2, dtype=bool)
    mask[100:400] = True
    fits = tmp_path / "mask.fits"
    hp.write_map(str(fits), mask.astype(np.float64), nest=True)
    sky = exp.parse_sky_fraction("footprint", 8, str(fits))
    assert sky.fraction == pytest.approx(300 / 768) and np.array_equal(sky.footprint, mask)
    from deepsphere_gen.experiments.massmaps.classify import sky_values

    m = np.where(mask, 1.0, UNSEEN)
    values, idx = sky_values(m, sky, "x")
    assert values.shape == (1, 300) and np.array_equal(idx, np.flatnonzero(mask))
    m[150] = UNSEEN
    with pytest.raises(ValueError, match="inside the footprint"):
        sky_values(m, sky, "x")


def test_footprint_file_read_once_per_run(tmp_path, monkeypatch):
    """A run on a --footprint FITS file reads it once (was 9 times: the config's check, each refusal check, the disk
    estimate, training, evaluation, plots; and again in every worker job): the mask travels with the config."""
    import pickle

    import deepsphere_gen.datasets as ds
    from deepsphere_gen.experiments.massmaps import parallel

    mask = np.zeros(12 * 8**2)
    mask[:384] = 1.0  # base pixels 0-5
    fits = tmp_path / "mask.fits"
    hp.write_map(str(fits), mask, nest=True, dtype=np.float64)
    reads, read = [], ds.read_footprint
    monkeypatch.setattr(ds, "read_footprint", lambda *a, **k: reads.append(a) or read(*a, **k))
    argv = ["massmaps", "run", "--nside", "8", "--n-maps", "8", "--sky-fractions", "footprint", "--footprint", str(fits),
            "--relative-noise", "0", "--epochs", "1", "--min-steps", "0", "--batch-size", "16", "--no-progress",
            "--no-plots", "--workers", "1", *_dirs(tmp_path)]
    assert main(argv) == 0
    assert len(reads) == 1, reads
    # a worker job takes the mask from the config it was sent, never from the file
    config = exp.ExperimentConfig(nside=8, n_maps=8, sky_fractions=("1/12", "footprint"), footprint=str(fits),
                                  deepsphere_levels=(0.0,))
    sent = pickle.loads(pickle.dumps(config))
    monkeypatch.setattr(ds, "read_footprint", lambda *a, **k: pytest.fail("footprint read again"))
    sky = parallel._sky(sent, "footprint")
    assert np.array_equal(sky.footprint, mask == 1)
    assert not exp.sky_settings(config)[1].footprint.flags.writeable  # shared by every caller
    config.sky_fractions = ("1/12",)  # changed in place: parsed again (no footprint, no read)
    assert [s.name for s in exp.sky_settings(config)] == ["1/12"]


@pytest.mark.slow
def test_quick_run_beats_chance(tmp_path):
    """`--quick`: at 1/12 sky without noise the graph CNN and both baselines beat chance clearly."""
    out = tmp_path / "q.json"
    assert main(["massmaps", "--quick", "--no-progress", "--no-plots", *_dirs(tmp_path), "--json", str(out)]) == 0
    acc = {(r["method"], r["sky"], r["noise"]): r["accuracy"] for r in json.loads(out.read_text())["records"]}
    for method in ("fcn", "psd_svm", "hist_svm"):
        assert acc[method, "1/12", "none"] > 0.62, (method, acc)


def test_symmetry_permutations_are_grid_symmetries():
    """Full sky: every permutation moves the pixel centres by one orthogonal matrix with entries
    in {0, +-1} (a symmetry of the HEALPix grid, checked on healpy's pix2vec); the 16 are distinct."""
    nside = 4
    vec = np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=1)
    perms = exp.symmetry_permutations(nside)
    assert perms.shape == (16, 12 * nside**2) and len({p.tobytes() for p in perms}) == 16
    mats = set()
    for p in perms:
        m, *_ = np.linalg.lstsq(vec, vec[p], rcond=None)
        np.testing.assert_allclose(vec @ m, vec[p], atol=1e-12)
        np.testing.assert_allclose(np.abs(m).sum(0), 1, atol=1e-12)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        mats.add(tuple(np.round(m).astype(int).ravel()))
    assert len(mats) == 16
    # patches: the 8 symmetries of the square; the transposition of an equatorial patch is the
    # mirror image across the meridian through its centre (exact)
    side, level = 4, 1
    idx = mm_models._reference_indices(exp.parse_sky_fraction("1/48", 8), 8)
    patch = exp.symmetry_permutations(8, level)
    assert patch.shape == (8, side * side) and len({p.tobytes() for p in patch}) == 8
    assert any(np.array_equal(p, np.arange(side * side)) for p in patch)
    v = np.stack(hp.pix2vec(8, idx, nest=True), axis=1)
    phi_c = np.arctan2(v[:, 1].sum(), v[:, 0].sum())
    mirror = np.array([[np.cos(2 * phi_c), np.sin(2 * phi_c), 0], [np.sin(2 * phi_c), -np.cos(2 * phi_c), 0],
                       [0, 0, 1]])
    assert sum(np.allclose(v[p], v @ mirror.T, atol=1e-12) for p in patch) == 1
    # the wrapper draws a permutation per item, keeps label and indices
    data = torch.utils.data.TensorDataset(torch.arange(16.0)[None, :, None].repeat(4, 1, 1),
                                          torch.zeros(4, dtype=torch.long), torch.zeros(4, 16, dtype=torch.long))
    aug = exp.RandomSymmetry(data, patch)
    torch.manual_seed(0)
    outs = {tuple(aug[i % 4][0].flatten().int().tolist()) for i in range(64)}
    assert len(outs) > 1 and all(sorted(o) == list(range(16)) for o in outs)
    with pytest.raises(ValueError, match="permutations"):
        exp.RandomSymmetry(data, np.zeros((2, 16), dtype=int))


def test_graph_network_learns_where_it_must(tmp_path):
    """CI-sized guard against the graph CNN falling to chance (e.g. the one-class logits once caused
    by lagging BatchNorm statistics): full sky at nside 16 without noise, where the amplitude
    separates the cosmologies, must be classified far above chance after a few seconds of training."""
    out = tmp_path / "learn.json"
    argv = ["massmaps", "--nside", "16", "--n-maps", "40", "--sky-fractions", "1", "--deepsphere-level", "0",
            "--methods", "fcn", "hist_svm", "--no-progress", "--no-plots",
            *_dirs(tmp_path), "--json", str(out)]
    assert main(argv) == 0
    acc = {r["method"]: r for r in json.loads(out.read_text())["records"]}
    assert acc["fcn"]["n_test"] == 20
    assert acc["fcn"]["accuracy"] >= 0.8, acc["fcn"]


def test_epoch_monitoring_uses_validation_maps_never_test_maps(tmp_path, monkeypatch):
    # the per-epoch "val" lines and curves once monitored the test maps
    seen = []

    def recording_fit(model, samples, tc, val_set=None, **kw):
        seen.append(val_set)
        return []

    monkeypatch.setattr(mm_training, "fit", recording_fit)
    config = exp.ExperimentConfig(nside=8, n_maps=8, sky_fractions=("1", "1/12"), relative_noise=(0.0,),
                                  methods=("fcn",), epochs=1, min_steps=0, progress=False,
                                  data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "out"))
    exp.train(config, log=None)
    assert len(seen) >= 2  # full sky and 1/12, every noise setting
    path = exp.generate(config)
    for val_set in seen:
        test_set = MassMapDataset(path, level=val_set.level, split="test", test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction)
        assert val_set.split == "val" and len(val_set) > 0
        assert not set(val_set.map_ids.tolist()) & set(test_set.map_ids.tolist())


def _tiny_config(tmp_path, **kw):
    base = dict(nside=8, n_maps=8, sky_fractions=("1/12",), deepsphere_levels=(), relative_noise=(0.0, 1.0),
                methods=("fcn",), epochs=2,
                min_steps=0, batch_size=16, progress=False, warm_start=True, data_dir=str(tmp_path / "data"),
                out_dir=str(tmp_path / "out"))
    return exp.ExperimentConfig(**{**base, **kw})


def test_warm_start_from_the_noise_free_run(tmp_path, monkeypatch):
    """A run with noise starts from the finished noise-free run of its method and sky: its first
    weights are that run's (but its own input scale), the source's fingerprint is part of its
    fingerprint and record, the noise-free run is trained first when only the noisy one is asked
    for, and a finished or interrupted noisy run resumes from its own checkpoint."""
    starts = []
    real_fit = mm_training.fit

    def spying_fit(model, samples, tc, **kw):
        starts.append((tc.desc, {k: v.clone() for k, v in model.state_dict().items()}))
        return real_fit(model, samples, tc, **kw)

    monkeypatch.setattr(mm_training, "fit", spying_fit)
    noisy_only = _tiny_config(tmp_path, relative_noise=(1.0,))  # the noise-free run is trained first anyway
    exp.train(noisy_only, log=None)
    assert [d for d, _ in starts] == ["fcn-sky1o12-noisenone", "fcn-sky1o12-noiserel1"]
    (clean,) = (tmp_path / "out" / "checkpoints").glob("fcn-sky1o12-noisenone-*.pt")
    (noisy,) = (tmp_path / "out" / "checkpoints").glob("fcn-sky1o12-noiserel1-*.pt")
    source, state = load_checkpoint(clean), load_checkpoint(noisy)
    first = starts[1][1]
    assert float(first["scale"]) != float(source["model"]["scale"])  # its own scale: noise included
    assert float(first["scale"]) == pytest.approx(float(state["model"]["scale"]))
    assert all(torch.equal(first[k], v) for k, v in source["model"].items() if k != "scale")
    assert state["meta"]["fields"]["init"] == {"warm_start": "fcn-sky1o12-noisenone",
                                               "fingerprint": source["meta"]["fingerprint"]}
    assert "init" not in source["meta"]["fields"]
    # from scratch: another fingerprint (another checkpoint); the noise-free run is the same either way
    path = exp.generate(noisy_only)
    sky, (rel1,) = exp.sky_settings(noisy_only)[0], exp.noise_settings(noisy_only)
    train_set = mm_data.dataset_of(path, sky, rel1, noisy_only, "train")
    scratch = mm_training.network_run(replace(noisy_only, warm_start=False), path, "fcn", sky, rel1, train_set)
    warm = mm_training.network_run(noisy_only, path, "fcn", sky, rel1, train_set)
    assert scratch.source is None and "init" not in scratch.meta["fields"]
    assert warm.train_config.checkpoint == noisy and scratch.train_config.checkpoint != noisy
    assert warm.source.train_config.checkpoint == clean
    # both settings now: nothing retrained, the records name the source
    starts.clear()
    both = _tiny_config(tmp_path)
    stamps = clean.stat().st_mtime_ns, noisy.stat().st_mtime_ns
    logs = []
    exp.train(both, log=logs.append)
    assert (clean.stat().st_mtime_ns, noisy.stat().st_mtime_ns) == stamps
    assert sum("not trained again" in line for line in logs) == 2 and not any("starts from" in s for s in logs)
    records = {r["noise"]: r for r in exp.evaluate_all(replace(both, average_views=True), log=None)}
    assert records["rel1"]["warm_start"]["fingerprint"] == source["meta"]["fingerprint"]
    assert records["none"]["warm_start"] is None
    assert all(r["views"] == 4 and 0 <= r["accuracy_one_view"] <= 1 for r in records.values())
    # an interrupted noisy run resumes from its own checkpoint, not from the noise-free weights
    cut = load_checkpoint(noisy)
    cut["epoch"], cut["history"] = 1, cut["history"][:1]
    cut["model"] = {k: v + 1 if k.endswith(("weight", "bias")) else v for k, v in cut["model"].items()}
    save_checkpoint(noisy, cut)
    logs = []
    exp.train(both, log=logs.append)
    assert any("resumed from" in line for line in logs) and not any("starts from" in line for line in logs)


def test_parallel_jobs_chain_the_noisy_runs_after_the_noise_free_one(tmp_path):
    config = _tiny_config(tmp_path, sky_fractions=("1", "1/12"), relative_noise=(1.0, 0.0, 2.0),
                          methods=("fcn", "hist_svm"))
    path = exp.generate(config)
    jobs = exp.ParallelRun(config, path, 2)._jobs()
    train = [(j[2].name, j[4], [n.name for n in j[3]]) for j in jobs if j[1] == "train"]
    assert sorted(train) == [("1", "fcn", ["none", "rel1", "rel2"]), ("1/12", "fcn", ["none", "rel1", "rel2"])]
    assert sum(j[1] == "baselines" for j in jobs) == 2 * 3
    alone = exp.ParallelRun(replace(config, warm_start=False), path, 2)._jobs()
    assert sum(j[1] == "train" for j in alone) == 2 * 3  # one job per run when nothing chains them


def test_evaluation_views_of_a_patch():
    """Test-time views: the 4 reflections of the square give other logits (every patch is read with
    the reference patch's graph); the transposition is an automorphism of that graph (same logits),
    so averaging over all 8 training symmetries equals averaging over the 4 reflections."""
    config = exp.ExperimentConfig(nside=16, channels=(8, 8), k=8, progress=False)
    sky = exp.parse_sky_fraction("1/48", 16)
    model = exp.build_model("fcn", sky, config, scale=1.0).eval()
    all8 = exp.symmetry_permutations(16, sky.level)
    views = exp.evaluation_symmetries(16, sky.level)
    assert views.shape == (4, 64) and np.array_equal(views, all8[:4])
    assert exp.evaluation_symmetries(16, None) is None
    torch.manual_seed(0)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(6, 64, 1)
    with torch.no_grad():
        logits = torch.stack([model(x[:, torch.as_tensor(p)]) for p in all8])
        averaged = exp.SymmetryAverage(model, views)(x)
        averaged8 = exp.SymmetryAverage(model, all8)(x)
    for i in range(4):
        torch.testing.assert_close(logits[i + 4], logits[i], rtol=1e-4, atol=1e-5)  # transposed view: same
    assert (logits[1:4] - logits[0]).abs().max() > 1e-3  # reflections: other views
    expected = torch.log(torch.softmax(logits[:4], -1).mean(0))
    torch.testing.assert_close(averaged, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(averaged8, averaged, rtol=1e-4, atol=1e-5)
    assert torch.allclose(averaged.exp().sum(-1), torch.ones(6))


def test_log_mean_probabilities_is_the_mean_of_the_members_probabilities():
    """log_mean_probabilities = log of the mean of the members' softmax (not of their logits); a
    SymmetryAverage member contributes its own view-averaged probabilities."""
    torch.manual_seed(0)
    nets = [torch.nn.Linear(5, 2) for _ in range(3)]
    x = torch.randn(7, 5)
    with torch.no_grad():
        out = exp.log_mean_probabilities([n(x) for n in nets])
        probs = torch.stack([torch.softmax(n(x), -1) for n in nets]).mean(0)
        torch.testing.assert_close(out, probs.log())
        logit_mean = torch.log_softmax(torch.stack([n(x) for n in nets]).mean(0), -1)
        assert (out - logit_mean).abs().max() > 1e-4  # another rule than averaging logits
        perms = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
        views = exp.log_mean_probabilities([exp.SymmetryAverage(nets[0], perms)(x), nets[1](x)])
        p0 = (torch.softmax(nets[0](x), -1) + torch.softmax(nets[0](x[:, [4, 3, 2, 1, 0]]), -1)) / 2
        torch.testing.assert_close(views, ((p0 + torch.softmax(nets[1](x), -1)) / 2).log())
    with pytest.raises(ValueError, match="at least one prediction"):  # not torch.stack's own error
        exp.log_mean_probabilities([])


def test_member_seeds_and_checkpoint_names():
    assert member_seed(0, 0) == 0 and member_seed(5, 0) == 5  # member 0: the single network's seed
    seeds = {member_seed(s, m) for s in (0, 1) for m in (1, 2, 3)}
    assert len(seeds) == 6 and not seeds & {0, 1} and all(0 <= v < 2**31 for v in seeds)
    assert member_name("fcn-sky1o48-noisenone", 0) == "fcn-sky1o48-noisenone"
    assert member_name("fcn-sky1o48-noisenone", 2) == "fcn-sky1o48-noisenone-m2"
    with pytest.raises(ValueError, match="fcn_members"):
        exp.ExperimentConfig(fcn_members=0, progress=False)


def test_fcn_ensemble_members_checkpoints_and_evaluation(tmp_path, monkeypatch):
    """--fcn-members 2: member 0 is the single network (same checkpoint file and weights as a
    one-member run), member 1 trains with its own seed (other initial weights) into its own
    fingerprinted checkpoint; evaluation averages the members' class probabilities and records each
    member; more members reuse the finished ones, other settings train afresh, a file of other
    settings under a member's name is refused, classify sees member 0 only."""
    starts = []
    real_fit = mm_training.fit

    def spying_fit(model, samples, tc, **kw):  # the runs that train (not those found finished)
        if not mm_training._finished(tc):
            starts.append((tc.desc, tc.seed, {k: v.clone() for k, v in model.state_dict().items()}))
        return real_fit(model, samples, tc, **kw)

    monkeypatch.setattr(mm_training, "fit", spying_fit)
    single = _tiny_config(tmp_path, relative_noise=(1.0,), warm_start=False, out_dir=str(tmp_path / "one"))
    exp.train(single, log=None)
    pair = replace(single, fcn_members=2, out_dir=str(tmp_path / "out"))
    exp.train(pair, log=None)
    (one,) = (tmp_path / "one" / "checkpoints").glob("*.pt")
    ckpts = tmp_path / "out" / "checkpoints"
    (m0,) = ckpts.glob("fcn-sky1o12-noiserel1-[0-9a-f]*.pt")
    (m1,) = ckpts.glob("fcn-sky1o12-noiserel1-m1-*.pt")
    assert m0.name == one.name and len(list(ckpts.iterdir())) == 2
    s_one, s0, s1 = load_checkpoint(one), load_checkpoint(m0), load_checkpoint(m1)
    assert all(torch.equal(v, s0["model"][k]) for k, v in s_one["model"].items())  # member 0 = single run
    assert [(d, seed) for d, seed, _ in starts] == [("fcn-sky1o12-noiserel1", 0), ("fcn-sky1o12-noiserel1", 0),
                                                   ("fcn-sky1o12-noiserel1-m1", member_seed(0, 1))]
    first0, first1 = starts[1][2], starts[2][2]
    assert any(not torch.equal(first0[k], first1[k]) for k in first0 if k.endswith("weight"))  # other init
    assert s1["config"]["seed"] == member_seed(0, 1) != s0["config"]["seed"]
    assert s1["meta"]["fields"]["run"]["member"] == 1 and "member" not in s0["meta"]["fields"]["run"]
    assert m1.stem.endswith(s1["meta"]["fingerprint"]) and s1["meta"]["fingerprint"] != s0["meta"]["fingerprint"]
    assert find_checkpoints(tmp_path / "out", "fcn") == [m0]  # classify: member 0 only

    # evaluation: the mean of the members' probabilities, and each member on its own
    (rec,) = exp.evaluate_all(pair, log=None)
    path = exp.generate(pair)
    sky, (noise,) = exp.sky_settings(pair)[0], exp.noise_settings(pair)
    train_set, _, test_set = mm_data.datasets_of(path, sky, noise, pair)
    probs = []
    for i, state in enumerate((s0, s1)):
        model = mm_training.network_run(pair, path, "fcn", sky, noise, train_set, member=i).model
        load_model_state(model, state, "x")
        with torch.no_grad():
            model.eval()
            x = torch.stack([test_set[j][0] for j in range(len(test_set))])
            probs.append(torch.softmax(model(x), -1))
    labels = np.array([test_set[j][1] for j in range(len(test_set))])
    mean = torch.stack(probs).mean(0).argmax(-1).numpy()
    assert rec["n_correct"] == int((mean == labels).sum()) and rec["n_test"] == len(labels)
    assert rec["correct"] == "".join("1" if v else "0" for v in mean == labels)  # per sample, in test order
    assert [m["n_correct"] for m in rec["members"]] == [int((p.argmax(-1).numpy() == labels).sum()) for p in probs]
    assert [m["seed"] for m in rec["members"]] == [0, member_seed(0, 1)]
    assert [m["warm_start"] for m in rec["members"]] == [None, None]  # each member's own (--warm-start: its source)
    assert all(len(m["ci95"]) == 2 and m["train_seconds"] > 0 for m in rec["members"])
    (alone,) = exp.evaluate_all(single, log=None)
    assert "members" not in alone and alone["accuracy"] == rec["members"][0]["accuracy"]
    # one forward pass per member, batch and view (the members' accuracies and the ensemble's from the same)
    calls = []
    real_forward = exp.Standardized.forward
    monkeypatch.setattr(exp.Standardized, "forward", lambda self, x: calls.append(len(x)) or real_forward(self, x))
    (views,) = exp.evaluate_all(replace(pair, average_views=True), log=None)  # views within each member
    assert sum(calls) == 2 * (1 + 4) * len(test_set)
    monkeypatch.setattr(exp.Standardized, "forward", real_forward)
    assert views["views"] == 4 and views["accuracy_one_view"] == rec["accuracy"]
    assert [m["accuracy_one_view"] for m in views["members"]] == [m["accuracy"] for m in rec["members"]]

    # three members: the finished two are reused, only member 2 trains; other settings: all afresh
    starts.clear()
    exp.train(replace(pair, fcn_members=3), log=None)
    assert [d for d, _, _ in starts] == ["fcn-sky1o12-noiserel1-m2"]
    starts.clear()
    exp.train(replace(pair, epochs=3), log=None)
    assert [d for d, _, _ in starts] == ["fcn-sky1o12-noiserel1", "fcn-sky1o12-noiserel1-m1"]
    assert len(list(ckpts.glob("fcn-sky1o12-noiserel1-m1-*.pt"))) == 2
    # a checkpoint of other settings put under member 1's name is neither resumed nor evaluated
    m1.write_bytes(next(ckpts.glob("fcn-sky1o12-noiserel1-m2-*.pt")).read_bytes())
    with pytest.raises(CheckpointMismatch, match="member"):
        exp.evaluate_all(pair, log=None)
    with pytest.raises(CheckpointMismatch, match="member"):
        exp.train(pair, log=None)


def test_networks_and_baselines_see_the_same_test_samples(tmp_path):
    """The network evaluation (:func:`training.batch_outputs`) and the baselines' features (:func:`.baseline_records._features`)
    read the test samples in the same order, with the same fixed noise, whichever process builds the data
    set (a ParallelRun worker builds its own); the records' test_maps describe that order."""
    config = _tiny_config(tmp_path, relative_noise=(1.0,))
    path = exp.generate(config)
    sky, (noise,) = exp.sky_settings(config)[0], exp.noise_settings(config)
    test_set = mm_data.datasets_of(path, sky, noise, config)[2]
    again = mm_data.datasets_of(path, sky, noise, config)[2]  # as another process builds it
    assert test_set.noise_std > 0

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x):
            self.seen.append(x.clone())
            return x[:, :2, 0]

    net = Recorder()
    outputs = list(batch_outputs(net, test_set, 5, distributed_context("cpu")))
    groups, labels = mm_baselines._features(again, lambda x: {"x": x})
    seen = torch.cat(net.seen)[..., 0].numpy()
    assert seen.shape == groups["x"].shape == (len(test_set), test_set.indices.shape[1])
    assert np.array_equal(seen, groups["x"].astype(np.float32))  # same samples, order and noise
    assert np.array_equal(torch.cat([y for _, y in outputs]).numpy(), labels)
    keys = [(*test_set.sample_map(i), test_set.values(i)[2]) for i in range(len(test_set))]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # (class, map, patch) in order, no repeats
    fields = mm_records.accuracy_fields(np.ones(len(test_set), dtype=bool), test_set)  # what a record stores
    classes, maps = reporting.expand_runs(fields["test_maps"])
    assert [(c, m) for c, m, _ in keys] == list(zip(classes.tolist(), maps.tolist()))
    assert labels.tolist() == classes.tolist()


def test_parallel_jobs_train_ensemble_members_separately(tmp_path):
    config = _tiny_config(tmp_path, sky_fractions=("1/12",), relative_noise=(0.0, 1.0), methods=("fcn", "hist_svm"),
                          warm_start=False, fcn_members=3)
    jobs = exp.ParallelRun(config, exp.generate(config), 2)._jobs()
    train = sorted((j[4], j[5], [n.name for n in j[3]]) for j in jobs if j[1] == "train")
    assert train == [("fcn", m, [n]) for m in range(3) for n in ("none", "rel1")]
    warm = exp.ParallelRun(replace(config, warm_start=True), exp.generate(config), 2)._jobs()
    assert sorted((j[5], [n.name for n in j[3]]) for j in warm if j[1] == "train") == \
        [(m, ["none", "rel1"]) for m in range(3)]  # each member's noisy run after its own noise-free one


def test_sample_maps_are_those_of_each_sample_in_order(tmp_path):
    """records._sample_maps (vectorised) gives what MassMapDataset.sample_map gives sample by sample, on a
    generated data set (full sky, averaged down, patches of 3 levels, a footprint; every split) and on
    an array of 3 classes."""
    from deepsphere_gen.datasets.massmaps import MassMapConfig, generate_massmaps

    path = generate_massmaps(MassMapConfig(nside=8, n_maps=7, seed=2), tmp_path, progress=False, verbose=False)
    mask = np.zeros(12 * 8**2, dtype=bool)
    mask[40:300] = True
    kinds = [{}, {"nside_out": 4}, {"level": 0}, {"level": 1}, {"level": 2}, {"footprint": mask}]
    sets = [MassMapDataset(path, split=split, val_fraction=0.2, **kw) for kw in kinds
            for split in ("train", "val", "test", "all")]
    sets.append(MassMapDataset(np.random.default_rng(0).standard_normal((3, 5, 12 * 4**2)), level=1, split="test",
                               test_fraction=0.4))
    for ds in sets:
        want = np.array([ds.sample_map(i) for i in range(len(ds))], dtype=np.int64).reshape(-1, 2)
        classes, maps = mm_records._sample_maps(ds)
        assert classes.dtype == maps.dtype == np.int64
        np.testing.assert_array_equal(classes, want[:, 0])
        np.testing.assert_array_equal(maps, want[:, 1])
    assert {ds.n_classes for ds in sets} == {2, 3} and len({len(ds) for ds in sets}) > 5


def test_quick_footprint_run_every_default_method(tmp_path, capfd):
    """`--quick` on the built-in footprint at nside 64 with the default methods, in worker processes: the fcn
    and both baselines that apply to a footprint run to the end (was: "indices shape (49152,) does not match
    values shape (1, 4104)" after the FCN had trained: the PSD baseline got the full sky's pixel indices); the
    default methods that do not apply (harmonic, hybrid: full sky; strong_svm: patches) are named in one note and
    left out of the JSON config; the pooling losses are one note, never a UserWarning; --methods strong_svm alone
    is refused by name before any work (was: "nothing to evaluate" after generating the data)."""
    d, out = _dirs(tmp_path), tmp_path / "fp.json"
    argv = ["massmaps", "--quick", "--nside", "64", "--sky-fractions", "footprint", "--footprint", "builtin",
            "--deepsphere-level", "0", *d, "--workers", "2", "--no-plots", "--no-progress"]
    _fail([*argv[1:], "--methods", "strong_svm"], capfd, "--methods strong_svm: strong_svm runs only on nested patches")
    assert not (tmp_path / "data").exists()
    assert main([*argv, "--json", str(out)]) == 0
    cap = capfd.readouterr()
    assert "Warning" not in cap.err and "Warning" not in cap.out, cap.err
    notes = [s for s in cap.out.splitlines() if "note:" in s]
    assert "massmaps: note: harmonic runs only on the full sky (sky fraction 1); hybrid runs only on the full sky " \
           "(sky fraction 1); strong_svm runs only on nested patches" in cap.out, cap.out
    assert ("massmaps: note: sky fraction footprint: the graph networks' pooling drops the pixels whose parent pixel "
            "is partly outside the footprint (130 of 1026 at nside 32 -> 16, 60 of 224 at nside 16 -> 8)") in notes
    doc = json.loads(out.read_text())
    assert doc["config"]["methods"] == ["fcn", "psd_svm", "hist_svm"]
    # a smoke test says so, under the table and in the JSON (was: nowhere)
    assert cmd.QUICK_NOTE in cap.out and doc["config"]["quick"] is True
    records = {r["method"]: r for r in doc["records"]}
    assert set(records) == {"fcn", "psd_svm", "hist_svm"} and {r["sky"] for r in records.values()} == {"footprint"}
    assert records["psd_svm"]["features"] == ["psd"] and records["psd_svm"]["n_features"] == 24
    for r in records.values():
        assert r["n_test"] == 2 * 6 and 0 <= r["accuracy"] <= 1  # one sample per map: 6 test maps per class


def test_footprint_power_spectrum_is_the_pseudo_cl_of_the_masked_map():
    """The PSD baseline's spectrum of a footprint sample: healpy's anafast of the RING map with the sample's mean
    removed and zeros outside the footprint, divided by the footprint's sky fraction."""
    from deepsphere_gen.datasets import builtin_footprint

    nside = 32
    mask = builtin_footprint(nside)
    idx = np.flatnonzero(mask)
    values = np.random.default_rng(0).standard_normal((2, idx.size))
    feats = mm_baselines._SkyFeatures(nside, 0, idx)
    full = np.zeros((2, 12 * nside**2))
    full[:, idx] = values - values.mean(axis=1, keepdims=True)
    want = np.stack([hp.anafast(hp.reorder(f, n2r=True), lmax=3 * nside - 1, iter=0) for f in full]) / mask.mean()
    assert np.allclose(feats.psd.spectra(values, idx), want)
    assert feats.transform(values, ("psd",))["psd"].shape == (2, 24)


def test_fragmented_footprint_stops_pooling_instead_of_failing():
    """--quick channels on the built-in footprint at nside 32: the third pooling (nside 8 -> 4) has no complete
    parent pixel (was: "no complete parent at nside 4" after the data were made); pools that keep parents are
    unchanged (nside 64: pooling by 4 after every block, as before)."""
    from deepsphere_gen.commands.massmaps import QUICK

    for nside, pools in ((32, [1, 1, 0]), (64, [1, 1, 1])):
        config = exp.ExperimentConfig(nside=nside, sky_fractions=("footprint",), footprint="builtin",
                                      channels=QUICK["channels"])
        (sky,) = exp.sky_settings(config)
        assert exp.pool_levels("fcn", sky, config) == pools
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mm_models.build_model("fcn", sky, config, 1.0)  # the library still warns
        assert "partial-sky pooling nside 32 -> 16: dropped 130 of 1026 pixels" in str(caught[0].message)
    assert exp.footprint_pooling_steps(sky, config) == [(64, 4104, 1026), (32, 1026, 224), (16, 224, 41)]  # 130, 60 dropped


def test_footprint_without_four_siblings_is_refused_and_a_fragmented_one_named(tmp_path, capsys):
    """A --footprint FITS mask at nside 16 holding one child of each of 150 parents: refused before any work,
    naming the option and the file, why (no complete group of 4 NESTED siblings: the networks' pooling keeps none
    of it) and what to do (was: "samples need at least one complete group of 4 NESTED sibling pixels" at the
    start of training, no pooling note); without fcn and cnn it is not refused.  600 scattered pixels with a few
    complete groups: the drop note and a plain "too fragmented" one, counts as numpy's, before any work."""
    nside, rng = 16, np.random.default_rng(4)
    single = np.zeros(12 * nside**2)
    single[rng.choice(3 * nside**2, 150, replace=False) * 4 + rng.integers(0, 4, 150)] = 1
    path = tmp_path / "single.fits"
    hp.write_map(str(path), single, nest=True, dtype=np.float64)
    argv = ["--quick", "--sky-fractions", "footprint", "--footprint", str(path), *_dirs(tmp_path), "--no-progress"]
    err = _fail(["train", *argv, "--methods", "fcn"], capsys, f"--footprint {path}: no complete group of 4 NESTED")
    assert ("among its 150 pixels at nside 16: the footprint is too fragmented at this nside for the pooling of the "
            "graph networks (fcn, cnn), which would keep none of it; use a more compact footprint, or a mask made at "
            "a larger --nside, or --methods without fcn and cnn") in err
    assert not (tmp_path / "data").exists()
    config = exp.ExperimentConfig(nside=nside, sky_fractions=("footprint",), footprint=str(path),
                                  methods=("psd_svm",))
    assert mm_checks.pooling_notes(config, "run") == []
    scattered = np.zeros(12 * nside**2)
    idx = np.sort(rng.choice(12 * nside**2, 600, replace=False))
    scattered[idx] = 1
    hp.write_map(str(path), scattered, nest=True, dtype=np.float64, overwrite=True)
    parents, counts = np.unique(idx // 4, return_counts=True)
    kept = int((counts == 4).sum())
    assert 0 < kept < 10
    config = exp.ExperimentConfig(nside=nside, sky_fractions=("footprint",), footprint=str(path), methods=("fcn",))
    assert mm_checks.pooling_notes(config, "train") == [
        "massmaps: note: sky fraction footprint: the graph networks' pooling drops the pixels whose parent pixel is "
        f"partly outside the footprint ({600 - 4 * kept} of 600 at nside 16 -> 8)",
        "massmaps: note: sky fraction footprint: the footprint is too fragmented to pool at nside 16: the first "
        f"pooling keeps {4 * kept} of its 600 pixels, and the graph networks' blocks see 600 -> {kept} pixels; a more "
        "compact footprint, or a mask made at a larger --nside, keeps more"]


def test_footprint_pooling_levels_and_losses_match_a_nested_parent_count():
    """pool_levels and footprint_pooling_steps on the built-in footprint (one coarsening walk behind both): each
    pooling keeps the nested parents (index // 4) with all 4 children in the footprint and drops the other pixels,
    counted here with numpy; a block pools while some parent is complete, at least 16 pixels remain and nside
    allows it."""
    for nside in (32, 64, 128):
        config = exp.ExperimentConfig(nside=nside, sky_fractions=("footprint",), footprint="builtin")
        (sky,) = exp.sky_settings(config)
        idx, n, pools, steps = np.flatnonzero(sky.footprint), nside, [], []
        for block in range(len(config.channels)):
            parents, counts = np.unique(idx // 4, return_counts=True)
            complete = parents[counts == 4]
            p = int(idx.size >= 16 and nside >> (block + 1) >= 1 and complete.size > 0)
            if p:
                steps.append((n, idx.size, complete.size))
                idx, n = complete, n // 2
            pools.append(p)
        assert exp.pool_levels("fcn", sky, config) == exp.pool_levels("cnn", sky, config) == pools
        assert exp.footprint_pooling_steps(sky, config) == steps
        assert any(4 * kept < pixels for _, pixels, kept in steps)  # the edge loses pixels
