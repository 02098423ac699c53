"""`deepsphere-gen massmaps` never does something other than what was asked.

Option order, stale checkpoints, the README's quick-then-default sequence, classify on
inputs outside the training distribution, and the friendly failures (device, folders, disk,
Ctrl-C, bad checkpoint files, help).  The table in docs/robustness.md points here.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import torch
from scipy.stats import skew

from deepsphere_gen import _cache_dirs
from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.cli import COMMANDS, build_parser, main
from deepsphere_gen.commands import _massmaps_checks as checks
from deepsphere_gen.commands import massmaps as cmd
from deepsphere_gen.datasets import load_massmaps
from deepsphere_gen.training import load_checkpoint, save_checkpoint

from ._cli import refused

ROOT = Path(__file__).resolve().parents[2]
#: nside 16: the smallest resolution where white noise differs from the maps' small-scale power
SMALL = ["--nside", "16", "--n-maps", "8", "--sky-fractions", "1", "1/12", "--relative-noise", "0", "1",
         "--epochs", "1",
         "--min-steps", "0", "--batch-size", "16", "--methods", "fcn", "--no-progress"]
TINY = ["--nside", "8", "--n-maps", "6", "--sky-fractions", "1", "--relative-noise", "0", "--epochs", "2",
        "--min-steps", "0",
        "--batch-size", "8", "--methods", "fcn", "--no-progress"]


@pytest.fixture(autouse=True)
def _restore_cache_env(monkeypatch):
    monkeypatch.setenv(_cache_dirs.ENV_VAR, "unset")  # so that monkeypatch restores it after the command set it
    monkeypatch.delenv(_cache_dirs.ENV_VAR)


def _dirs(root: Path) -> list[str]:
    return ["--data-dir", str(root / "data"), "--out-dir", str(root / "out")]


def _fail(argv, capsys, match, rc=2):
    return refused("massmaps", argv, capsys, match, rc)


def _checkpoints(root: Path, pattern="*.pt") -> list[Path]:
    return sorted((root / "out" / "checkpoints").glob(pattern))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """fcn trained at nside 16 on the full sky and 1/12 patches, noise 0 and 1 (one epoch), and FITS
    maps: a test map of class 1 (clean and with noise 1), white noise, 1000x brighter, two columns."""
    root = tmp_path_factory.mktemp("trained")
    torch.set_num_threads(1)
    assert main(["massmaps", "train", *SMALL, *_dirs(root)]) == 0
    (data,) = (root / "data").iterdir()
    maps, meta = load_massmaps(data)
    test = np.asarray(maps[1, -1], dtype=np.float64)  # a test map (last maps of each class)
    rng = np.random.default_rng(1)
    files = {"test": test, "noisy": test + meta["clean_std"] * rng.standard_normal(test.size),
             "white": test.std() * rng.standard_normal(test.size), "bright": 1000 * test}
    for name, m in files.items():
        hp.write_map(str(root / f"{name}.fits"), m, nest=True, dtype=np.float64)
    hp.write_map(str(root / "two.fits"), [1e6 * test, test], nest=True, dtype=np.float64,
                 column_names=["KAPPA_E6", "KAPPA"])
    return root


# ------------------------------------------------------------------------ 1. option order


def test_options_before_the_step_are_honoured(tmp_path, capsys):
    """`massmaps --nside 8 --n-maps 4 --data-dir X generate` generates nside 8, 4 maps, in X."""
    assert main(["massmaps", "--nside", "8", "--n-maps", "4", "--data-dir", str(tmp_path / "X"), "generate"]) == 0
    (data,) = (tmp_path / "X").iterdir()
    maps, meta = load_massmaps(data)
    assert maps.shape == (2, 4, 12 * 8**2) and meta["generation"]["nside"] == 8
    out = capsys.readouterr().out
    assert f"data {(tmp_path / 'X').resolve()}" in out  # the data folder is printed at start
    # after the step: the same data set, reused
    assert main(["massmaps", "generate", "--nside", "8", "--n-maps", "4", "--data-dir", str(tmp_path / "X")]) == 0
    assert "reusing" in capsys.readouterr().out and len(list((tmp_path / "X").iterdir())) == 1


@pytest.mark.parametrize("step", ["generate", "train", "evaluate", "run"])
def test_every_option_is_honoured_before_and_after_the_step(step):
    opts = ["--nside", "8", "--n-maps", "5", "--seed", "3", "--sky-fractions", "1/12", "--relative-noise", "0.5",
            "--deepsphere-level", "1", "--ngal", "30", "--sigma-e", "0.3", "--full-sky-nside", "4", "--k", "6",
            "--methods", "fcn", "--epochs", "7", "--batch-size", "4", "--lr", "0.01", "--min-steps", "9",
            "--no-augment", "--warm-start", "--average-views", "--fcn-members", "3", "--data-dir", "D", "--out-dir", "O", "--device", "cpu",
            "--no-progress", "--quick"]
    parse = lambda argv: build_parser(["massmaps"]).parse_args(["massmaps", *argv])  # noqa: E731
    before = cmd._config(parse([*opts, step]))
    after = cmd._config(parse([step, *opts]))
    default = cmd._config(parse([step]))
    assert before == after
    assert (before.nside, before.n_maps, before.seed, before.sky_fractions, before.relative_noise,
            before.deepsphere_levels, before.ngal, before.sigma_e, before.full_sky_nside, before.k, before.epochs,
            before.batch_size, before.lr, before.min_steps, before.augment, before.warm_start, before.average_views,
            before.fcn_members, before.data_dir, before.out_dir) == \
        (8, 5, 3, ("1/12",), (0.5,), (1.0,), (30.0,), 0.3, 4, 6, 7, 4, 0.01, 9, False, True, True, 3, "D", "O")
    assert not (default.warm_start or default.average_views) and default.fcn_members == 1
    assert before.channels == cmd.QUICK["channels"]  # --quick before the step counts too
    assert default.nside != 8 and default.data_dir == str(_cache_dirs.default_data_dir())
    # options of the run itself, not of the configuration
    for argv in (["--workers", "1", "--restart", step], [step, "--workers", "1", "--restart"]):
        args = parse(argv)
        assert (args.workers, args.restart) == (1, True)


def test_a_step_after_a_list_option_ends_the_list():
    """`massmaps --deepsphere-level nan generate`: the step is no value of the list option before it
    (argparse alone read it as one: "invalid float value: 'generate'"); one-value options keep theirs."""
    from deepsphere_gen.cli import parse_args

    parse = lambda *argv: parse_args(["massmaps", *argv])  # noqa: E731
    args = parse("--quick", "--deepsphere-level", "nan", "generate")
    assert args.step == "generate" and np.isnan(args.deepsphere_level).all() and args.quick
    args = parse("--sky-fractions", "1/12", "generate", "--nside", "8")
    assert (args.step, args.sky_fractions, args.nside) == ("generate", ["1/12"], 8)
    assert (parse("--methods", "fcn", "evaluate").step, parse("--methods", "fcn", "evaluate").methods) == \
        ("evaluate", ["fcn"])
    assert (parse("--relative-noise", "-1", "0", "run").relative_noise) == [-1.0, 0.0]
    args = parse("--nside", "8", "--out-dir", "train", "--sky-fractions", "1", "1/12", "train")
    assert (args.step, args.out_dir, args.sky_fractions) == ("train", "train", ["1", "1/12"])
    assert (parse("--out-dir", "train", "generate").out_dir, parse("--out-dir", "train").step) == ("train", None)
    args = parse("--sky-fractions", "1", "classify", "a.fits", "--force")
    assert (args.step, args.maps, args.sky_fractions, args.force) == ("classify", ["a.fits"], ["1"], True)


# ------------------------------------------------------- 2. stale checkpoints, 3. README sequence


def _fcn_state(root: Path, nside: int) -> dict:
    (ckpt,) = [p for p in _checkpoints(root, "fcn-sky1-noisenone-*.pt")
               if load_checkpoint(p)["meta"]["fields"]["experiment"]["nside"] == nside
               and load_checkpoint(p)["meta"]["fields"]["data"]["n_maps"] == 6]
    return load_checkpoint(ckpt)


def test_stale_checkpoint_after_changing_nside_and_n_maps(tmp_path, capsys):
    """Other n_maps, other nside: a fresh run with its own checkpoint, never the old model or history."""
    d = _dirs(tmp_path)
    assert main(["massmaps", "train", *TINY, *d]) == 0
    (first,) = _checkpoints(tmp_path)
    before = first.stat().st_mtime_ns
    capsys.readouterr()
    more = [*TINY, "--n-maps", "8"]
    assert main(["massmaps", "train", *more, *d]) == 0
    out = capsys.readouterr().out
    assert "resumed" not in out and "epoch 1/2" in out  # trained from scratch
    assert len(_checkpoints(tmp_path)) == 2 and first.stat().st_mtime_ns == before
    states = [load_checkpoint(p) for p in _checkpoints(tmp_path)]
    assert sorted(s["meta"]["fields"]["data"]["n_maps"] for s in states) == [6, 8]
    assert {s["meta"]["fingerprint"] for s in states} == {p.stem.rsplit("-", 1)[1] for p in _checkpoints(tmp_path)}
    # another nside: no size-mismatch crash, a third checkpoint
    assert main(["massmaps", "train", *TINY, "--nside", "4", *d]) == 0
    assert "resumed" not in capsys.readouterr().out and len(_checkpoints(tmp_path)) == 3
    # the first settings again: the finished run is found, not retrained
    assert main(["massmaps", "train", *TINY, *d]) == 0
    assert first.stat().st_mtime_ns == before
    # evaluate reads the checkpoint of its own settings (8 maps per class: 2 test, 1 validation, 5 + 5 training)
    js = tmp_path / "r.json"
    assert main(["massmaps", "evaluate", *more, *d, "--json", str(js), "--no-plots"]) == 0
    (rec,) = json.loads(js.read_text())["records"]
    assert (rec["n_train"], rec["n_val"]) == (10, 2) and len(rec["history"]) == 2


def test_quick_then_default_sequence_keeps_both(tmp_path, capsys):
    """The README's `massmaps --quick` then `massmaps` (other epochs, nside, maps): both run to the end.

    CI-sized stand-in: the same data, 2 then 3 epochs (the original failure: "different
    settings (epochs: [8] vs [10]); pass resume=False"), then the fingerprints of the real
    --quick and default configurations differ."""
    d = _dirs(tmp_path)
    assert main(["massmaps", *TINY, *d, "--no-plots"]) == 0
    assert main(["massmaps", *TINY, "--epochs", "3", *d, "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "resumed" not in out and "different settings" not in out and out.count("accuracy in %") == 2
    epochs = sorted(load_checkpoint(p)["epoch"] for p in _checkpoints(tmp_path))
    assert epochs == [2, 3]
    from dataclasses import asdict

    from deepsphere_gen._fingerprint import fingerprint
    from deepsphere_gen.experiments.massmaps.runs import NOT_FINGERPRINTED

    quick = cmd._config(build_parser(["massmaps"]).parse_args(["massmaps", "--quick"]))
    default = cmd._config(build_parser(["massmaps"]).parse_args(["massmaps"]))
    strip = lambda c: {k: v for k, v in asdict(c).items() if k not in NOT_FINGERPRINTED}  # noqa: E731
    assert fingerprint(strip(quick)) != fingerprint(strip(default))


def test_restart_retrains(tmp_path, capsys):
    d = _dirs(tmp_path)
    assert main(["massmaps", "train", *TINY, *d]) == 0
    (ckpt,) = _checkpoints(tmp_path)
    before = ckpt.stat().st_mtime_ns
    assert main(["massmaps", "train", *TINY, *d, "--restart"]) == 0
    assert ckpt.stat().st_mtime_ns != before and "epoch 1/2" in capsys.readouterr().out


# ------------------------------------------------------------------------------ 4. classify


def test_classify_in_distribution_maps_are_classified(trained, capsys):
    out = ["--out-dir", str(trained / "out")]
    assert main(["massmaps", "classify", str(trained / "test.fits"), "--relative-noise", "0", *out]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([s for s in lines if "P(class 1)" in s]) == 2 and not any("outside" in s for s in lines)
    assert main(["massmaps", "classify", str(trained / "noisy.fits"), "--relative-noise", "1", *out]) == 0
    assert len([s for s in capsys.readouterr().out.splitlines() if "P(class 1)" in s]) == 2


@pytest.mark.parametrize("name, statistic", [("white", "small-scale variance fraction"), ("bright", "pixel std")])
def test_classify_flags_out_of_distribution(trained, capsys, name, statistic):
    fits = str(trained / f"{name}.fits")
    cap = _fail(["classify", fits, "--relative-noise", "0", "--out-dir", str(trained / "out")], capsys,
                "input is outside the training distribution", rc=cmd.EXIT_OUT_OF_DISTRIBUTION)
    assert cap.out.count("the class probabilities are not meaningful") == 2 and "P(class" not in cap.out
    assert statistic in cap.out and "vs trained range [" in cap.out
    assert main(["massmaps", "classify", fits, "--relative-noise", "0", "--out-dir", str(trained / "out"),
                 "--force"]) == 0
    assert capsys.readouterr().out.count("(out of distribution, forced)") == 2


def test_classify_flags_a_sign_flipped_map(trained, tmp_path, capsys):
    """-kappa of a training map (same std, mean, small-scale power) was classified with confidence: the
    skewness stored with new checkpoints flags it; checkpoints without it skip that check."""
    (data,) = (trained / "data").iterdir()
    maps, _ = load_massmaps(data)
    first = np.asarray(maps[:, 0], dtype=np.float64)  # the first map of each class: training maps
    m = first[np.argmax(skew(first, axis=-1))]
    flipped = str(tmp_path / "flipped.fits")
    hp.write_map(flipped, -m, nest=True, dtype=np.float64)
    (ckpt,) = _checkpoints(trained, "fcn-sky1-noisenone-*.pt")
    cap = _fail(["classify", flipped, "--checkpoint", str(ckpt)], capsys, "pixel skewness -",
                rc=cmd.EXIT_OUT_OF_DISTRIBUTION)
    assert "pixel std" not in cap.out and "small-scale" not in cap.out  # only the skewness tells
    state = load_checkpoint(ckpt)
    meta = json.loads(json.dumps(state["meta"]))
    del meta["distribution"]["skew"]
    older = tmp_path / "older.pt"
    save_checkpoint(older, {**state, "meta": meta})
    assert main(["massmaps", "classify", flipped, "--checkpoint", str(older)]) == 0


def test_classify_clean_map_is_outside_a_noisy_network(trained, capsys):
    _fail(["classify", str(trained / "test.fits"), "--relative-noise", "1", "--out-dir", str(trained / "out")], capsys,
          "pixel std", rc=cmd.EXIT_OUT_OF_DISTRIBUTION)


def test_classify_two_column_fits(trained, capsys):
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0"]
    two = str(trained / "two.fits")
    _fail(["classify", two, *out], capsys, "has 2 columns (0: KAPPA_E6, 1: KAPPA); choose one with --field N")
    _fail(["classify", two, *out, "--field", "2"], capsys, "--field 2 is out of range")
    _fail(["classify", two, *out, "--field", "0"], capsys, "pixel std", rc=cmd.EXIT_OUT_OF_DISTRIBUTION)
    assert main(["massmaps", "classify", two, *out, "--field", "1"]) == 0


def test_classify_resolves_each_files_column_once(trained, tmp_path, capsys, monkeypatch):
    """--field is resolved (and checked) once per file, on its header; the map read is that column (was: resolved
    again for each file's read)."""
    from deepsphere_gen.experiments.massmaps import classify as cl

    resolved, real = [], cl.map_field
    monkeypatch.setattr(cl, "map_field", lambda f, field=None: resolved.append((f.path.name, field)) or real(f, field))
    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    cut = tmp_path / "cut.fits"
    hp.write_map(str(cut), [1e6 * m, m], nest=True, partial=True, dtype=np.float64, column_names=["KAPPA_E6", "KAPPA"])
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0"]
    files = [trained / "two.fits", cut]
    assert main(["massmaps", "classify", *map(str, files), *out, "--field", "1"]) == 0
    assert resolved == [("two.fits", 1), ("cut.fits", 1)]
    got = capsys.readouterr().out.splitlines()
    assert main(["massmaps", "classify", str(trained / "test.fits"), *out]) == 0  # the same map, one column
    want = capsys.readouterr().out.replace(str(trained / "test.fits"), "F").splitlines()
    for f in files:  # each file's column 1 is that map: the same probabilities
        assert [line.replace(str(f), "F") for line in got if line.startswith(f"{f}:")] == want and len(want) == 2


def test_classify_refusals(trained, tmp_path, capsys):
    out = ["--out-dir", str(trained / "out")]
    test = str(trained / "test.fits")
    _fail(["classify", test, "--method", "harmonic", "--sky-fractions", "1/12", *out], capsys,
          "harmonic networks are full-sky only")
    _fail(["--nside", "16", "--epochs", "3", "classify", test, *out], capsys,
          "--nside, --epochs do not apply to classify")
    _fail(["classify", test, "--sky-fractions", "1/48", *out], capsys, "no trained fcn network for nside 16, sky "
                                                                       "fraction(s) 1/48")
    holes = hp.read_map(test, nest=True, dtype=np.float64)
    holes[:5] = UNSEEN
    hp.write_map(str(tmp_path / "holes.fits"), holes, nest=True, dtype=np.float64)
    _fail(["classify", str(tmp_path / "holes.fits"), *out], capsys, "5 UNSEEN/NaN pixel(s) inside the analysed sky")
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file\n")
    _fail(["classify", str(text), *out], capsys, "cannot read")
    _fail(["classify", test, "--device", "gpu", *out], capsys, "unknown device 'gpu'; valid devices here: cpu")


def test_classify_into_a_closed_pipe(trained):
    """`massmaps classify a.fits b.fits | head -1`: status 141, no BrokenPipeError traceback."""
    from tests.test_cli import run_with_closed_stdout

    test = str(trained / "test.fits")
    got = run_with_closed_stdout(["massmaps", "classify", test, test, "--relative-noise", "0",
                                  "--out-dir", str(trained / "out")])
    assert got.returncode == 141 and "Traceback" not in got.stderr and "BrokenPipe" not in got.stderr, got.stderr


def test_classify_messages_name_only_what_classify_accepts(trained, tmp_path, capsys):
    """NaN pixels and RING files: the advice works on this command line (before: --footprint, which
    classify rejects, and ordering='any', a library argument); the library keeps its own advice."""
    from deepsphere_gen.datasets import read_healpix_fits

    out = ["--out-dir", str(trained / "out")]
    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    holes = m.copy()
    holes[:3] = np.nan
    hp.write_map(str(tmp_path / "nan.fits"), holes, nest=True, dtype=np.float64)
    cap = _fail(["classify", str(tmp_path / "nan.fits"), *out], capsys, "3 UNSEEN/NaN pixel(s) inside the analysed sky")
    assert "--footprint MASK that excludes" not in cap.err and "massmaps train --sky-fractions footprint" in cap.err
    ring = tmp_path / "ring.fits"
    hp.write_map(str(ring), hp.reorder(m, n2r=True), nest=False, dtype=np.float64)
    cap = _fail(["classify", str(ring), *out], capsys,
                "is in RING ordering but NESTED was expected (classify reads NESTED maps: convert it with healpy")
    assert "ordering='any'" not in cap.err and "hp.read_map(" in cap.err
    with pytest.raises(ValueError, match="ordering='any'"):
        read_healpix_fits(ring, 16)
    np.testing.assert_array_equal(read_healpix_fits(ring, 16, ordering="any"), m)  # healpy's own conversion


def test_classify_reads_cut_sky_fits(trained, tmp_path, capsys):
    """healpy's partial=True files (PIXEL, then data columns): --field counts the data columns; pixels
    outside the file are UNSEEN (before: --field 1 failed with "list index out of range")."""
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0"]
    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    hp.write_map(str(tmp_path / "cut.fits"), [1e6 * m, m], nest=True, partial=True, dtype=np.float64,
                 column_names=["KAPPA_E6", "KAPPA"])
    _fail(["classify", str(tmp_path / "cut.fits"), *out], capsys, "has 2 columns (0: KAPPA_E6, 1: KAPPA)")
    assert main(["massmaps", "classify", str(tmp_path / "cut.fits"), *out, "--field", "1"]) == 0
    got = capsys.readouterr().out
    assert main(["massmaps", "classify", str(trained / "test.fits"), *out]) == 0
    assert capsys.readouterr().out.replace(str(trained / "test.fits"), "F") == \
        got.replace(str(tmp_path / "cut.fits"), "F")  # the same map, the same probabilities
    part = m.copy()
    part[: m.size // 12] = UNSEEN  # the first base pixel not in the file
    hp.write_map(str(tmp_path / "part.fits"), part, nest=True, partial=True, dtype=np.float64)
    cap = _fail(["classify", str(tmp_path / "part.fits"), *out, "--sky-fractions", "1"], capsys,
                f"{m.size // 12} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1)")
    assert "index out of range" not in cap.err


#: paths opened while :func:`_count_opens` records (an audit hook sees every open, whichever library reads)
_OPENED: list[str] | None = None


def _record_open(event, args):
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


def _count_opens(run, paths) -> dict:
    """How often each of ``paths`` is opened while ``run()`` runs (sys audit hook "open")."""
    global _OPENED
    if not getattr(_count_opens, "hooked", False):
        sys.addaudithook(_record_open)
        _count_opens.hooked = True
    _OPENED = []
    try:
        run()
    finally:
        opened, _OPENED = _OPENED, None
    return {str(p): sum(os.path.samefile(o, p) for o in opened if os.path.exists(o)) for p in paths}


def test_classify_reads_each_checkpoint_once(trained, capsys, monkeypatch):
    """The network's weights come from the same read as its settings (was: read again to build the model)."""
    from deepsphere_gen.experiments.massmaps import classify as cl

    reads = []
    real = cl.load_checkpoint
    monkeypatch.setattr(cl, "load_checkpoint", lambda path, **kw: reads.append(str(path)) or real(path, **kw))
    (ckpt,) = _checkpoints(trained, "fcn-sky1-noisenone-*.pt")
    capsys.readouterr()
    assert main(["massmaps", "classify", str(trained / "test.fits"), "--checkpoint", str(ckpt), "--force"]) == 0
    assert "P(class" in capsys.readouterr().out and reads == [str(ckpt)]


def test_classify_reads_each_fits_file_twice_header_then_column(trained, tmp_path, capsys):
    """Every FITS map is opened twice, as one astropy ``fits.open`` opens it: its header (nside, columns,
    ordering) first, every file's before any map is read, then its chosen column alone (was: one open that read
    every file's whole table before comparing the nsides; before that, 6 opens: columns, NSIDE, columns again,
    ORDERING, cut-sky test, healpy's read)."""
    from astropy.io import fits

    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    cut = tmp_path / "cut.fits"
    hp.write_map(str(cut), [1e6 * m, m], nest=True, partial=True, dtype=np.float64, column_names=["KAPPA_E6", "KAPPA"])
    files = [trained / "test.fits", trained / "noisy.fits"]
    once = _count_opens(lambda: fits.open(files[0], memmap=False).close(), files[:1])[str(files[0])]  # 2 (astropy 7, 8)
    assert once >= 1
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0", "--force"]
    counts = _count_opens(lambda: main(["massmaps", "classify", *map(str, files), *out]), files)
    assert counts == {str(f): 2 * once for f in files}
    counts = _count_opens(lambda: main(["massmaps", "classify", str(cut), "--field", "1", *out]), [cut])
    assert counts == {str(cut): 2 * once}
    assert capsys.readouterr().out.count("P(class 0)") == 6


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_classify_compares_the_headers_before_reading_any_map(trained, tmp_path, capsys):
    """Maps of different nside, a RING file or a missing --field are refused from the headers alone: a file whose
    table is damaged past its header is never read (was: every file's whole table read first, so the damaged
    file's read error hid the real problem)."""
    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)  # nside 16
    damaged = tmp_path / "damaged.fits"
    hp.write_map(str(damaged), hp.ud_grade(m, 8, order_in="NESTED", order_out="NESTED"), nest=True, dtype=np.float64)
    damaged.write_bytes(damaged.read_bytes()[:2880 * 2 + 100])  # headers whole, data cut
    out = ["--out-dir", str(trained / "out")]
    _fail(["classify", str(trained / "test.fits"), str(damaged), *out], capsys,
          f"the maps have different nside ({trained / 'test.fits'}: 16, {damaged}: 8)")
    ring = tmp_path / "ring.fits"
    hp.write_map(str(ring), hp.reorder(m, n2r=True), nest=False, dtype=np.float64)
    sixteen = tmp_path / "sixteen.fits"
    hp.write_map(str(sixteen), m, nest=True, dtype=np.float64)
    sixteen.write_bytes(sixteen.read_bytes()[:2880 * 2 + 100])
    _fail(["classify", str(sixteen), str(ring), *out], capsys, "is in RING ordering but NESTED was expected")
    _fail(["classify", str(sixteen), str(trained / "two.fits"), *out], capsys, "has 2 columns")
    _fail(["classify", str(sixteen), *out], capsys, f"cannot read HEALPix map from {sixteen}")  # read: its error


def test_classify_reads_one_column_of_one_file_at_a_time(tmp_path, capsys):
    """Python memory (tracemalloc) of classify reading 3 FITS files of 12 columns at nside 32 (1.1 MiB tables, 96 KiB
    maps): the chosen column of one file at a time, below 1 MiB at the peak (measured 0.67 MiB; was: the 3 whole
    tables at once, then the maps: 4.9 MiB).  No network there: classify stops after the reading."""
    import tracemalloc

    npix = 12 * 32**2
    files = []
    for k in range(3):
        files.append(str(tmp_path / f"wide{k}.fits"))
        hp.write_map(files[-1], [np.full(npix, 1e-3 * (j + 1)) for j in range(12)], nest=True, dtype=np.float64)
    argv = ["massmaps", "classify", *files, "--field", "3", "--out-dir", str(tmp_path / "out")]
    assert main(argv) == 2  # imports done before the trace
    capsys.readouterr()
    tracemalloc.start()
    try:
        assert main(argv) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "no trained fcn network for nside 32" in capsys.readouterr().err
    assert peak < 2**20, peak / 2**20


def _train_on_a_footprint(tmp_path: Path, *skies: str) -> tuple[np.ndarray, Path]:
    """Train the TINY networks of ``skies`` (default: the footprint alone) with --footprint a mask of pixels
    100-399 at nside 8 written to ``tmp_path/mask.fits``; returns (mask as 0/1 floats, its file)."""
    mask = np.zeros(12 * 8**2)
    mask[100:400] = 1
    fp = tmp_path / "mask.fits"
    hp.write_map(str(fp), mask, nest=True, dtype=np.float64)
    argv = [*TINY, "--sky-fractions", *(skies or ("footprint",)), "--footprint", str(fp), *_dirs(tmp_path)]
    assert main(["massmaps", "train", *argv]) == 0
    return mask, fp


def _without_stored_mask(ckpt: Path) -> None:
    """Rewrite ``ckpt`` as checkpoints were written before they stored their footprint mask (``meta["footprint_mask"]``):
    classify then needs the mask file (the recorded path, or --footprint)."""
    state = load_checkpoint(ckpt)
    del state["meta"]["footprint_mask"]
    save_checkpoint(ckpt, state)


def test_classify_with_a_footprint_network_reads_the_mask_once(tmp_path, capsys, monkeypatch):
    """Networks trained on a footprint classify maps with UNSEEN outside it; the footprint FITS is not read (the
    checkpoint holds the mask; the network is named by the mask's hash), and read once for a checkpoint written
    before it did (it was read again for every map checked and for the network: 1 + number of maps times)."""
    from deepsphere_gen._fingerprint import mask_hash

    mask, _ = _train_on_a_footprint(tmp_path)
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    files = []
    for k in range(2):
        m = np.where(mask > 0, np.asarray(maps[k, -1], dtype=np.float64), UNSEEN)  # a test map of each class
        files.append(str(tmp_path / f"m{k}.fits"))
        hp.write_map(files[-1], m, nest=True, dtype=np.float64)
    capsys.readouterr()
    import deepsphere_gen.datasets as datasets

    reads, read_footprint = [], datasets.read_footprint
    monkeypatch.setattr(datasets, "read_footprint", lambda *a, **k: reads.append(a[0]) or read_footprint(*a, **k))
    digits = mask_hash(mask > 0)[:8]
    for stored, read, name in ((True, [], ""), (False, [str(tmp_path / "mask.fits")], "mask.fits, ")):
        if not stored:
            (ckpt,) = _checkpoints(tmp_path)
            _without_stored_mask(ckpt)
        reads.clear()
        assert main(["massmaps", "classify", *files, "--out-dir", str(tmp_path / "out"), "--force"]) == 0
        assert reads == read
        out = capsys.readouterr().out
        assert out.count(f"sky footprint ({name}hash {digits}), noise none, fcn: P(class 0) = ") == 2, out


def test_a_footprint_network_classifies_without_its_mask_file(tmp_path, capsys):
    """The checkpoint of a footprint network holds its mask (packed bits, zlib; not in the fingerprint: the checkpoint
    keeps its name): the mask file deleted, classify gives the predictions that the same checkpoint without the stored
    mask gives from the file (was: "the footprint mask it was trained on, MASK, is no longer there"), the network
    named by the mask's hash unless --footprint holds that mask (was: by the recorded file, also where it was gone or
    held another mask); a --footprint that holds it not is refused naming the networks' masks; a stored mask altered,
    or damaged, is refused (its hash is checked); a checkpoint without one still takes the recorded file, and
    without it is refused as before."""
    import zlib

    from deepsphere_gen._fingerprint import fingerprint, mask_hash
    from deepsphere_gen.experiments.massmaps.runs import footprint_from_record, run_meta

    mask, fp = _train_on_a_footprint(tmp_path)
    (ckpt,) = _checkpoints(tmp_path)
    meta = load_checkpoint(ckpt)["meta"]
    kept = hp.read_map(str(fp), nest=True) > 0  # healpy's reading of the file
    assert np.array_equal(footprint_from_record(meta["footprint_mask"], 8), kept)
    assert meta["fields"]["run"]["footprint"] == mask_hash(kept)
    assert ckpt.stem.endswith("-" + fingerprint(meta["fields"])) and "footprint_mask" not in meta["fields"]
    assert run_meta(meta["fields"], mask=kept)["fingerprint"] == run_meta(meta["fields"])["fingerprint"]
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    inside = str(tmp_path / "inside.fits")
    hp.write_map(inside, np.where(kept, np.asarray(maps[1, -1], dtype=np.float64), UNSEEN), nest=True, dtype=np.float64)
    old = tmp_path / "old" / ckpt.name  # the same network as written before checkpoints stored their mask
    old.parent.mkdir()
    save_checkpoint(old, load_checkpoint(ckpt))
    _without_stored_mask(old)
    capsys.readouterr()
    assert main(["massmaps", "classify", inside, "--checkpoint", str(old), "--force"]) == 0  # the file read
    cap = capsys.readouterr()
    digits = mask_hash(kept)[:8]
    assert cap.out.startswith(f"{inside}: sky footprint (mask.fits, hash {digits}), noise none, fcn: P(class 0) = ")
    assert cap.err == ""
    moved = tmp_path / "moved.fits"
    fp.rename(moved)
    out = ["--out-dir", str(tmp_path / "out"), "--force"]
    unread = cap.out.replace("(mask.fits, ", "(")  # its file not read: named by the mask's hash
    for argv, want in (([], unread), (["--checkpoint", str(ckpt)], unread),
                       (["--footprint", str(moved)], cap.out.replace("(mask.fits,", "(moved.fits,"))):
        assert main(["massmaps", "classify", inside, *out, *argv]) == 0
        assert capsys.readouterr() == (want, "")
    # the recorded file rewritten with another mask: never read, never named (was: "footprint (mask.fits)", and
    # "... inside the footprint the network was trained on (MASK)": a file holding another mask)
    hp.write_map(str(fp), np.roll(mask, 1), nest=True, dtype=np.float64)
    assert main(["massmaps", "classify", inside, *out]) == 0
    assert capsys.readouterr() == (unread, "")
    hole = str(tmp_path / "hole.fits")
    hp.write_map(hole, np.where(np.arange(kept.size) == 200, UNSEEN, hp.read_map(inside, nest=True)), nest=True,
                 dtype=np.float64)
    _fail(["classify", hole, *out], capsys, f"error: {hole}: no trained network's sky fits the map: 1 UNSEEN/NaN "
          f"pixel(s) of the map lie inside the footprint the network was trained on (mask hash {digits}, stored in "
          "its checkpoint); ")
    # a --footprint of another mask, or of no mask of nside 8: the mask of none of the networks
    other = tmp_path / "other.fits"
    fp.rename(other)
    _fail(["classify", inside, *out, "--footprint", str(other)], capsys,
          f"error: --footprint {other} is the mask of none of the chosen footprint networks; they have their own (sky "
          f"footprint (hash {digits})): leave out --footprint\n")
    hp.write_map(str(other), np.ones(12 * 16**2), nest=True, dtype=np.float64, overwrite=True)  # no mask of nside 8
    _fail(["classify", inside, *out, "--footprint", str(other)], capsys,
          f"error: --footprint {other} is the mask of none of the chosen footprint networks ({other} has nside 16, "
          "expected nside 8); they have their own")
    # the old checkpoint goes the old route: the recorded file is gone, --footprint gives its new place
    _fail(["classify", inside, "--checkpoint", str(old), "--force"], capsys,
          f"error: {old}: the footprint mask it was trained on, {fp}, is no longer there (moved or deleted); give the "
          "mask it was trained on with --footprint FITS")
    assert main(["massmaps", "classify", inside, "--checkpoint", str(old), "--force", "--footprint", str(moved)]) == 0
    assert capsys.readouterr() == (cap.out.replace("(mask.fits,", "(moved.fits,"), "")
    # a stored mask that is not the one trained on (another mask; bytes that do not decompress): refused
    state = load_checkpoint(ckpt)
    for packed, why in ((zlib.compress(np.packbits(np.roll(kept, 1)).tobytes()), "not the content hash recorded at "
                         "training"), (b"damaged", "its bytes do not decompress")):
        state["meta"]["footprint_mask"]["packbits_zlib"] = packed
        save_checkpoint(ckpt, state)
        _fail(["classify", inside, *out], capsys, f"error: {ckpt}: the footprint mask stored in it is not the mask it "
              f"was trained on ({why}")


def test_classify_a_cut_sky_map_of_one_base_pixel(trained, tmp_path, capsys):
    """A cut-sky file covering exactly one base pixel is one 1/12 sample: the 1/12 networks classify it with
    that patch's probabilities (was: refused, "2816 UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction
    1/12)": the other 11 patches, outside the file, counted as holes); two base pixels: the mean over those
    two.  Full-sky networks skip it with a note, also where they were chosen beside the 1/12 ones; chosen alone,
    they, and a patch only partly in the file, are refused naming the trained networks, else the sky fractions to
    train, that would classify the map."""
    from deepsphere_gen.experiments.massmaps import classify as cl

    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    n = m.size // 12
    (ckpt,) = _checkpoints(trained, "fcn-sky1o12-noisenone-*.pt")
    model, _ = cl._model(cl._network(ckpt), "cpu")
    with torch.no_grad():  # the network on each base pixel of the full map
        p = torch.softmax(model(torch.as_tensor(m.reshape(12, n, 1), dtype=torch.float32)), -1).numpy()
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0"]
    for pixels in ([3], [3, 7]):
        cut = np.full_like(m, UNSEEN)
        for b in pixels:
            cut[b * n:(b + 1) * n] = m[b * n:(b + 1) * n]
        hp.write_map(str(tmp_path / "cut.fits"), cut, nest=True, partial=True, dtype=np.float64, overwrite=True)
        assert main(["massmaps", "classify", str(tmp_path / "cut.fits"), "--sky-fractions", "1/12", *out]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        want = p[pixels].mean(0)
        assert f"sky 1/12 ({len(pixels)} of 12 patches in the map), noise none" in line
        mean = "mean over 2 patches: " if len(pixels) == 2 else ""  # one patch: its probabilities
        assert f"noise none, fcn: {mean}P(class 0) = {want[0]:.3f}, P(class 1) = {want[1]:.3f}" in line
    # without --sky-fractions ("all trained"): the 1/12 networks classify it, the full-sky one is skipped with a note
    # (was: refused, advising to train the 1/12 networks that are there)
    assert main(["massmaps", "classify", str(tmp_path / "cut.fits"), *out]) == 0
    cap = capsys.readouterr()
    (line,) = cap.out.splitlines()
    assert "sky 1/12 (2 of 12 patches in the map), noise none" in line
    assert cap.err == (f"deepsphere-gen massmaps: note: {tmp_path / 'cut.fits'}: not classified by the networks of sky "
                       f"fraction 1 ({10 * n} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1)); classified "
                       "by those of sky fraction 1/12\n")
    # chosen with a sky fraction that fits: the same note, exit 0 (was: an error line for sky 1 advising to train the
    # 1/12 networks that had just classified the map, exit 2, "errors for 1 of 1 inputs")
    for skies in (["1", "1/12"], ["1/12", "1"]):
        assert main(["massmaps", "classify", str(tmp_path / "cut.fits"), "--sky-fractions", *skies, *out]) == 0
        assert capsys.readouterr() == cap
    cap = _fail(["classify", str(tmp_path / "cut.fits"), *out, "--sky-fractions", "1"], capsys,  # chosen: refused
                f"{10 * n} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1); trained networks that fit it: "
                "classify --sky-fractions 1/12 --deepsphere-level 0 or --sky-fractions 1/12 --relative-noise 1")
    assert "P(class" not in cap.out and "train" not in cap.err.replace("trained", "")
    cut[3 * n:3 * n + 16] = UNSEEN  # the first 1/192 patch of base pixel 3 missing: 1/12 and 1/48 patches partly
    hp.write_map(str(tmp_path / "cut.fits"), cut, nest=True, partial=True, dtype=np.float64, overwrite=True)
    _fail(["classify", str(tmp_path / "cut.fits"), "--sky-fractions", "1/12", *out], capsys,
          "16 UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1/12: 1 of 12 patches partly covered); "
          "the map gives whole 1/192 patches")
    hp.write_map(str(tmp_path / "none.fits"), np.full_like(m, UNSEEN), nest=True, dtype=np.float64)
    _fail(["classify", str(tmp_path / "none.fits"), "--sky-fractions", "1/12", *out], capsys,
          "every pixel is UNSEEN/NaN (no map to classify)")


def test_classify_a_bad_file_leaves_the_others_classified(trained, tmp_path, capsys):
    """Each input's problem is its own error line naming the file; the other inputs are classified all the same,
    and the exit status is 2 (was: the first problem ended the command, no result for the good files)."""
    m = hp.read_map(str(trained / "test.fits"), nest=True, dtype=np.float64)
    holes = m.copy()
    holes[5:10] = UNSEEN
    hp.write_map(str(tmp_path / "unseen.fits"), holes, nest=True, dtype=np.float64)
    ring = tmp_path / "ring.fits"
    hp.write_map(str(ring), hp.reorder(m, n2r=True), nest=False, dtype=np.float64)
    test, unseen, missing = str(trained / "test.fits"), str(tmp_path / "unseen.fits"), str(tmp_path / "missing.fits")
    out = ["--out-dir", str(trained / "out"), "--relative-noise", "0"]
    assert main(["massmaps", "classify", test, unseen, missing, str(ring), *out]) == 2
    cap = capsys.readouterr()
    assert [line.split(": sky")[0] for line in cap.out.splitlines()] == [test, test]
    errors = [line for line in cap.err.splitlines() if ": error: " in line]
    assert len(errors) == 3, cap.err
    assert f"error: no such FITS file: {missing}" in errors[0] and f"error: {ring} is in RING ordering" in errors[1]
    assert errors[2].startswith(f"deepsphere-gen massmaps: error: {unseen}: no trained network's sky fits the map: 5 "
                                "UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1); 5 UNSEEN/NaN pixel(s) "
                                "inside the analysed sky (sky fraction 1/12: 1 of 12 patches partly covered); ")
    assert cap.err.endswith("deepsphere-gen massmaps: errors for 3 of 4 inputs (above); the other 1 classified\n")
    # a refused input outranks one outside the training distribution (exit 3 alone)
    assert main(["massmaps", "classify", str(trained / "white.fits"), unseen, *out]) == 2
    cap = capsys.readouterr()
    assert "outside the training distribution" in cap.out and f"error: {unseen}: " in cap.err
    _fail(["classify", unseen, *out], capsys, f"{unseen}: no trained network's sky fits the map")  # alone: exit 2


def test_classify_uses_the_networks_whose_sky_the_map_covers(tmp_path, capsys):
    """A map UNSEEN outside a trained footprint, with full-sky networks trained beside it: without --sky-fractions
    the footprint network classifies it and the full-sky one is skipped with a note (was: refused, advising to
    train on a footprint: the one trained there); with --sky-fractions 1 the refusal names the trained network
    that fits."""
    mask, _ = _train_on_a_footprint(tmp_path, "1", "footprint")
    from deepsphere_gen._fingerprint import mask_hash

    sky = f"footprint (hash {mask_hash(mask > 0)[:8]})"  # the checkpoint's mask, not the file (never read)
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    m = np.where(mask > 0, np.asarray(maps[0, -1], dtype=np.float64), UNSEEN)
    fits = str(tmp_path / "inside.fits")
    hp.write_map(fits, m, nest=True, dtype=np.float64)
    capsys.readouterr()
    out = ["--out-dir", str(tmp_path / "out"), "--force"]
    assert main(["massmaps", "classify", fits, *out]) == 0
    cap = capsys.readouterr()
    (line,) = cap.out.splitlines()
    assert line.startswith(f"{fits}: sky {sky}, noise none, fcn: P(class 0) = ")
    assert cap.err == (f"deepsphere-gen massmaps: note: {fits}: not classified by the networks of sky fraction 1 "
                       f"({768 - 300} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1)); classified by "
                       f"those of sky fraction {sky}\n")
    cap = _fail(["classify", fits, *out, "--sky-fractions", "1"], capsys,
                f"error: {fits}: {768 - 300} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1); trained "
                "networks that fit it: classify --sky-fractions footprint --deepsphere-level 0\n")
    assert "massmaps train" not in cap.err


def test_classify_inspects_each_map_once_for_all_networks(tmp_path, capsys, monkeypatch):
    """A map classified by two networks (the full sky, a footprint) has its pixels inspected once (bad_pixels: one
    pass over the map) and each network's sky checked against them once (was: 4 passes: the networks' match, then
    again for each network, then once more inside the footprint; and each sky checked twice)."""
    from deepsphere_gen.datasets import _footprint
    from deepsphere_gen.experiments.massmaps import classify as cl

    _train_on_a_footprint(tmp_path, "1", "footprint")
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    fits = str(tmp_path / "whole.fits")
    hp.write_map(fits, np.asarray(maps[0, -1], dtype=np.float64), nest=True, dtype=np.float64)  # no UNSEEN pixel
    capsys.readouterr()
    passes, checks = [], []

    def spy(real, calls):
        return lambda *a, **k: calls.append(a[0].shape) or real(*a, **k)

    monkeypatch.setattr(cl, "bad_pixels", spy(cl.bad_pixels, passes))
    monkeypatch.setattr(_footprint, "bad_pixels", spy(_footprint.bad_pixels, passes))  # apply_footprint's check
    monkeypatch.setattr(cl, "_sky_problem", spy(cl._sky_problem, checks))
    assert main(["massmaps", "classify", fits, "--out-dir", str(tmp_path / "out"), "--force"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"{fits}: sky ") == 2 and "sky 1, noise none" in out and "sky footprint (" in out, out
    assert passes == [(12 * 8**2,)]  # one pass, over the whole map
    assert len(checks) == 2  # one per sky


@pytest.mark.parametrize("names", [("north.fits", "south.fits"), ("north/mask.fits", "south/mask.fits")])
def test_classify_names_each_footprint_network_by_its_mask(tmp_path, monkeypatch, names):
    """Networks of two footprints (two --footprint masks) are named by their mask's file name and the first 8 digits
    of the mask's hash in classify's lines and notes, by the hash alone where the file is gone (was: both "sky
    footprint", and a map fitting neither gave one problem, the second network's dropped under the same name); so
    too where the two mask files share a name in two folders (was: both "footprint (mask.fits)", one problem
    dropped); they are two skies, both chosen (was: "2 trained fcn networks for sky footprint, noise none ...
    (other settings)")."""
    from deepsphere_gen._fingerprint import mask_hash
    from deepsphere_gen.experiments.massmaps import classify as cl

    nside, masks, label = 8, {}, {}
    for name, first in zip(names, (100, 500)):
        masks[name] = np.zeros(12 * nside**2, bool)
        masks[name][first:first + 200] = True
        (tmp_path / name).parent.mkdir(exist_ok=True)
        hp.write_map(str(tmp_path / name), masks[name].astype(float), nest=True, dtype=np.float64)
        label[name] = f"footprint ({Path(name).name}, hash {mask_hash(masks[name])[:8]})"
    north, south = names

    def network(name):
        meta = {"footprint": str(tmp_path / name), "distribution": {},
                "fields": {"experiment": {}, "run": {"footprint": mask_hash(masks[name])}}}
        return cl.Network(tmp_path / f"fcn-{name.replace('/', '-')}.pt", "fcn", "footprint", "none", 0.0, nside, meta,
                          "none")

    nets = cl.select_networks("fcn", tmp_path, nside, found=[network(south), network(north)])
    assert sorted(n.sky_label for n in nets) == sorted(label.values()) and len(set(label.values())) == 2
    in_north = np.where(masks[north], 1e-3, UNSEEN)
    use, notes, problems = cl.match_networks(["n.fits"], {"n.fits": in_north}, nets)
    assert [n.sky_label for n in use["n.fits"]] == [label[north]] and not problems
    assert notes == [f"n.fits: not classified by the networks of sky fraction {label[south]} (200 UNSEEN/NaN "
                     f"pixel(s) of the map lie inside the footprint the network was trained on ({tmp_path / south}))"
                     f"; classified by those of sky fraction {label[north]}"]
    neither = {"x.fits": np.where(np.arange(768) < 50, 1e-3, UNSEEN)}
    _, _, problems = cl.match_networks(["x.fits"], neither, nets)
    (line,) = problems["x.fits"]
    assert line.count("inside the footprint the network was trained on") == 2
    assert str(tmp_path / north) in line and str(tmp_path / south) in line
    _, _, problems = cl.match_networks(["x.fits"], neither, nets, chosen=True)  # one line per footprint
    assert sorted(p.split("trained on (")[1].split(")")[0] for p in problems["x.fits"]) == \
        sorted(str(tmp_path / n) for n in names)
    monkeypatch.setattr(cl, "_model", lambda net, device: (lambda x: x.new_zeros(len(x), 2), net.sky_setting()))
    monkeypatch.setattr(cl, "check_inputs", lambda *args: [])
    lines = []
    cl.classify(["n.fits"], {"n.fits": in_north}, nets, out=lines.append, use=use)
    (line,) = lines
    assert line.startswith(f"n.fits: sky {label[north]}, noise none, fcn: P(class 0) = 0.500, P(class 1) = 0.500")
    (tmp_path / south).unlink()
    assert network(south).sky_label == f"footprint (hash {mask_hash(masks[south])[:8]})"


def test_classify_footprint_option_with_networks_of_two_footprints(tmp_path, capsys):
    """--footprint is the mask of one footprint network: the others ignore it (they use their stored mask, or the file
    recorded at training); refused only where it holds the mask of none of them (was: refused by every network
    storing its mask unless it held that network's mask, so with two footprints --footprint could not be given, and
    an old checkpoint whose mask moved could not be classified beside a new one: refused with or without it)."""
    from deepsphere_gen._fingerprint import mask_hash

    masks, label = {}, {}
    for name, first in (("north", 100), ("south", 500)):
        masks[name] = np.zeros(12 * 8**2, bool)
        masks[name][first:first + 200] = True
        (tmp_path / name).mkdir()
        hp.write_map(str(tmp_path / name / "mask.fits"), masks[name].astype(float), nest=True, dtype=np.float64)
        label[name] = f"footprint (hash {mask_hash(masks[name])[:8]})"
        assert main(["massmaps", "train", *TINY, "--sky-fractions", "footprint", "--footprint",
                     str(tmp_path / name / "mask.fits"), *_dirs(tmp_path)]) == 0
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    both = str(tmp_path / "both.fits")
    hp.write_map(both, np.where(masks["north"] | masks["south"], np.asarray(maps[1, -1], dtype=np.float64), UNSEEN),
                 nest=True, dtype=np.float64)
    out = ["--out-dir", str(tmp_path / "out"), "--force"]
    capsys.readouterr()

    def skies(argv):
        assert main(["massmaps", "classify", both, *out, *argv]) == 0
        cap = capsys.readouterr()
        assert cap.err == ""
        return sorted(line.split(": sky ")[1].split(", noise")[0] for line in cap.out.splitlines())

    assert skies([]) == sorted(label.values())
    south = str(tmp_path / "south" / "mask.fits")  # the mask of the south network alone: it names that network
    assert skies(["--footprint", south]) == sorted([label["north"], label["south"].replace("(", "(mask.fits, ")])
    _fail(["classify", both, *out, "--footprint", str(tmp_path / "both.fits")], capsys,
          f"error: --footprint {tmp_path / 'both.fits'} is the mask of none of the chosen footprint networks (footprint "
          f"{tmp_path / 'both.fits'} is not a 0/1 mask: ")
    # the north checkpoint written before checkpoints stored their mask, its mask moved since
    (ckpt,) = [c for c in _checkpoints(tmp_path) if "north" in load_checkpoint(c)["meta"]["footprint"]]
    _without_stored_mask(ckpt)
    moved = tmp_path / "moved.fits"
    (tmp_path / "north" / "mask.fits").rename(moved)
    _fail(["classify", both, *out], capsys, f"error: {ckpt}: the footprint mask it was trained on, "
          f"{tmp_path / 'north' / 'mask.fits'}, is no longer there (moved or deleted); give the mask")
    assert skies(["--footprint", str(moved)]) == sorted([label["north"].replace("(", "(moved.fits, "), label["south"]])
    # the north network's file back in place: a --footprint of the south mask is still the mask of one network
    moved.rename(tmp_path / "north" / "mask.fits")
    assert skies(["--footprint", south]) == sorted(label[n].replace("(", "(mask.fits, ") for n in label)
    other = tmp_path / "other.fits"
    hp.write_map(str(other), np.roll(masks["north"], 1).astype(float), nest=True, dtype=np.float64)
    _fail(["classify", both, *out, "--footprint", str(other)], capsys,  # was: ignored by the north network
          f"error: --footprint {other} is the mask of none of the chosen footprint networks; they have their own (sky "
          f"{', '.join(sorted([label['north'].replace('(', '(mask.fits, '), label['south']]))}): leave out --footprint\n")


def test_classify_footprint_problems_name_the_file_and_the_training_mask(tmp_path, capsys):
    """A map with a missing pixel inside a footprint network's mask: the error names the file and the footprint the
    network was trained on (was: "1 UNSEEN/NaN/inf pixel value(s) lie inside the footprint; the mask must exclude
    every missing pixel", no file named).  The mask file moved after training: the error names the checkpoint
    and the mask it was trained on, and --footprint gives its new place, checked by content hash (was: "no such
    FITS file: MASK", as if an input were missing); so too where the recorded file was rewritten into something
    else, which is no mask of that nside."""
    mask, fp = _train_on_a_footprint(tmp_path)
    (ckpt,) = _checkpoints(tmp_path)
    _without_stored_mask(ckpt)  # the route of a checkpoint without its mask (the stored mask's: the test above)
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    m = np.where(mask > 0, np.asarray(maps[0, -1], dtype=np.float64), UNSEEN)
    inside, hole = str(tmp_path / "inside.fits"), str(tmp_path / "hole.fits")
    hp.write_map(inside, m, nest=True, dtype=np.float64)
    m[200] = UNSEEN
    hp.write_map(hole, m, nest=True, dtype=np.float64)
    capsys.readouterr()
    out = ["--out-dir", str(tmp_path / "out"), "--force"]
    assert main(["massmaps", "classify", "--sky-fractions", "footprint", inside, hole, *out]) == 2
    cap = capsys.readouterr()
    (line,) = cap.out.splitlines()
    assert line.startswith(f"{inside}: sky footprint (mask.fits, hash "), line
    assert f"error: {hole}: 1 UNSEEN/NaN pixel(s) of the map lie inside the footprint the network was trained on " \
           f"({fp}); " in cap.err
    moved = tmp_path / "moved.fits"
    fp.rename(moved)
    cap = _fail(["classify", inside, *out], capsys, f"error: {ckpt}: the footprint mask it was trained on, {fp}, is no "
                "longer there (moved or deleted); give the mask it was trained on with --footprint FITS")
    assert "no such FITS file" not in cap.err
    assert main(["massmaps", "classify", inside, *out, "--footprint", str(moved)]) == 0
    line = line.replace("(mask.fits,", "(moved.fits,")  # the network named by the mask file classify read
    assert capsys.readouterr().out == cap.out + line + "\n"
    other = tmp_path / "other.fits"
    hp.write_map(str(other), np.roll(mask, 1), nest=True, dtype=np.float64)
    _fail(["classify", inside, *out, "--footprint", str(other)], capsys,
          f"is no longer there (moved or deleted); --footprint {other} is not that mask either")
    # the recorded file rewritten as a map of another nside, or as a convergence map: the same advice, which
    # --footprint then follows (was: "FILE has nside 16, expected nside 8" raised before --footprint was tried)
    # (without the remedies of a run's refusal, --nside or thresholding: neither can give the trained mask back)
    for rewritten, why in ((np.zeros(12 * 16**2), f"{fp} has nside 16, expected nside 8)"),
                           (np.random.default_rng(0).normal(size=mask.size), f"footprint {fp} is not a 0/1 mask: ")):
        hp.write_map(str(fp), rewritten, nest=True, dtype=np.float64, overwrite=True)
        _fail(["classify", inside, *out], capsys, f"error: {ckpt}: the footprint mask {fp} changed since it was "
              f"trained on it ({why}")
        assert main(["massmaps", "classify", inside, *out, "--footprint", str(moved)]) == 0
        assert capsys.readouterr().out == cap.out + line + "\n"
    # a --footprint that does not exist is refused, also where the recorded file holds the mask (was: ignored)
    moved.rename(fp)
    _fail(["classify", inside, *out, "--footprint", str(tmp_path / "typo.fits")], capsys,
          f"error: --footprint {tmp_path / 'typo.fits'}: no such file\n")


def test_classify_noise_value_matches_within_the_given_precision(trained, capsys):
    """--relative-noise 1.004 selects the trained level 1; 1.5 lists the trained settings as options to paste."""
    out = ["--out-dir", str(trained / "out")]
    noisy = str(trained / "noisy.fits")
    assert main(["massmaps", "classify", noisy, "--relative-noise", "1.004", *out]) == 0
    text = capsys.readouterr().out
    assert "sky 1, noise rel1, fcn: P(class 0) = " in text  # one map: its probabilities
    assert "sky 1/12, noise rel1, fcn: mean over 12 patches: P(class 0) = " in text  # the mean over the patches
    _fail(["classify", noisy, "--relative-noise", "1.5", *out], capsys,
          "(--sky-fractions 1/12 --relative-noise 1)")


def test_noise_selection_never_picks_a_farther_setting(tmp_path):
    """--ngal 22.5 selects a trained 22.47 (DeepSphere level 2), not 22.6 beside it, nor 25."""
    from deepsphere_gen.experiments.massmaps import NoiseSetting
    from deepsphere_gen.experiments.massmaps import classify as cl

    nets = [cl.Network(tmp_path / f"{v}.pt", "fcn", "1", f"ngal{v:.4g}", v, 16, {}, "ngal") for v in (22.47, 22.6, 25.0)]
    nets.append(cl.Network(tmp_path / "none.pt", "fcn", "1", "none", 0.0, 16, {}, "none"))
    pick = lambda *wanted: sorted(n.noise for n in cl._select_noise(nets, wanted))  # noqa: E731
    assert pick(NoiseSetting("ngal", 22.5)) == ["ngal22.47"]
    assert pick(NoiseSetting("ngal", 22.58)) == ["ngal22.6"]
    assert pick(NoiseSetting("ngal", 24.0)) == [] and pick(NoiseSetting("relative", 22.47)) == []
    assert pick(NoiseSetting("none"), NoiseSetting("ngal", 25.1)) == ["ngal25", "none"]
    assert nets[0].noise_option == "--ngal 22.47"


def test_classify_matches_the_ellipticity_dispersion(tmp_path, capsys):
    """--ngal 22.47 --sigma-e 0.3 never uses a network trained at sigma_e 0.26 (it did, silently): the trained
    settings are listed with their --sigma-e to paste; a value within 1e-2 (0.2613) selects 0.26; with networks of
    both values, --sigma-e chooses (without it: both named); a --checkpoint of another sigma_e is refused."""
    small = ["--nside", "8", "--n-maps", "6", "--sky-fractions", "1", "--ngal", "22.47", "--epochs", "1",
             "--min-steps", "0", "--batch-size", "8", "--methods", "fcn", "--no-progress", *_dirs(tmp_path)]
    assert main(["massmaps", "train", *small]) == 0
    (data,) = (tmp_path / "data").iterdir()
    maps, _ = load_massmaps(data)
    fits = str(tmp_path / "m.fits")
    hp.write_map(fits, np.asarray(maps[0, -1], dtype=np.float64), nest=True, dtype=np.float64)
    out = ["--out-dir", str(tmp_path / "out"), "--force"]
    cap = _fail(["classify", fits, "--ngal", "22.47", "--sigma-e", "0.3", *out], capsys,
                "no trained fcn network for nside 8, noise ngal22.47, sigma_e 0.3 in ")
    assert "(--sky-fractions 1 --ngal 22.47 --sigma-e 0.26)" in cap.err
    _fail(["classify", fits, "--sigma-e", "0.3", *out], capsys, "sigma_e 0.3")
    (ckpt,) = _checkpoints(tmp_path)
    _fail(["classify", fits, "--checkpoint", str(ckpt), "--sigma-e", "0.3", "--force"], capsys,
          "which --sigma-e 0.3 exclude(s)")
    for argv in (["--ngal", "22.47", "--sigma-e", "0.2613"], ["--ngal", "22.5"], []):
        assert main(["massmaps", "classify", fits, *argv, *out]) == 0
        assert capsys.readouterr().out.count("noise ngal22.47 (sigma_e 0.26), fcn: P(class 0)") == 1
    assert main(["massmaps", "train", *small, "--sigma-e", "0.3"]) == 0
    capsys.readouterr()
    assert len(_checkpoints(tmp_path)) == 2
    _fail(["classify", fits, "--ngal", "22.47", *out], capsys, "choose one with --sigma-e (0.26 or 0.3) or --checkpoint")
    for sigma in ("0.26", "0.3"):
        assert main(["massmaps", "classify", fits, "--ngal", "22.47", "--sigma-e", sigma, *out]) == 0
        assert capsys.readouterr().out.count(f"noise ngal22.47 (sigma_e {sigma}), fcn: P(class 0)") == 1
    # beside a noise-free network, a --sigma-e that no shape-noise network has is refused, not answered by the
    # noise-free network alone (it was, silently)
    noise_free = [a if a != "22.47" else "inf" for a in small]
    assert main(["massmaps", "train", *noise_free]) == 0
    capsys.readouterr()
    _fail(["classify", fits, "--sigma-e", "0.4", *out], capsys,
          "no fcn network with shape noise of sigma_e 0.4 at nside 8 (trained: sigma_e 0.26, 0.3)")


@pytest.mark.parametrize("sky", ["abc", "0", "-1", "2", "1/13"])
def test_classify_checks_sky_fractions_as_train_does(trained, capsys, sky):
    cap = _fail(["classify", str(trained / "test.fits"), "--sky-fractions", sky, "--out-dir", str(trained / "out")],
                capsys, "sky fraction")
    assert "no trained" not in cap.err


def test_classify_refuses_options_it_would_ignore(trained, capsys):
    """--sigma-e -1 without a noise option, and --checkpoint with a --method (or sky) it does not hold."""
    test = str(trained / "test.fits")
    out = ["--out-dir", str(trained / "out")]
    _fail(["classify", test, "--sigma-e", "-1", *out], capsys, "sigma_e must be a finite number >= 0")
    (good,) = _checkpoints(trained, "fcn-sky1-noisenone-*.pt")
    _fail(["classify", test, "--checkpoint", str(good), "--method", "cnn"], capsys,
          "which --method cnn exclude(s); --checkpoint chooses the network itself")
    _fail(["classify", test, "--checkpoint", str(good), "--sky-fractions", "1/12"], capsys,
          "which --sky-fractions 1/12 exclude(s)")
    assert main(["massmaps", "classify", test, "--checkpoint", str(good), "--method", "fcn"]) == 0


def test_classify_names_the_classes_and_foreign_checkpoints(trained, tmp_path, capsys):
    from deepsphere_gen.datasets import COSMOLOGIES

    test = str(trained / "test.fits")
    assert main(["massmaps", "classify", test, "--relative-noise", "0", "--out-dir", str(trained / "out")]) == 0
    c0, c1 = COSMOLOGIES
    legend = (f"class 0: Omega_m {c0.omega_m:g}, sigma_8 {c0.sigma8:g}; "
              f"class 1: Omega_m {c1.omega_m:g}, sigma_8 {c1.sigma8:g}")
    assert capsys.readouterr().out.count(legend) == 2
    (good,) = _checkpoints(trained, "fcn-sky1-noisenone-*.pt")
    state = load_checkpoint(good)
    cosmo = tmp_path / "cosmo-fcn.pt"  # what `deepsphere-gen cosmo` writes: fields of a simulation grid
    save_checkpoint(cosmo, {**state, "meta": {"fingerprint": "0", "fields": {"grid": {}, "ngal": 10.0}}})
    cap = _fail(["classify", test, "--checkpoint", str(cosmo)], capsys, "is not a massmaps checkpoint")
    assert "older version" not in cap.err


def test_epochs_raised_by_min_steps_are_announced(tmp_path, capsys):
    """--epochs below what --min-steps needs: the run trains the needed epochs and says why (was: silent)."""
    argv = [a if a != "0" or prev != "--min-steps" else "12" for prev, a in zip([""] + TINY, TINY)]
    assert main(["massmaps", "train", *argv, *_dirs(tmp_path), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "fcn-sky1-noiserel0" in out or "fcn-sky1-noisenone" in out
    assert "epochs instead of --epochs 1, to reach 12 optimisation steps (--min-steps)" in out


def test_run_options_that_would_be_ignored_are_refused(tmp_path, capsys):
    """--epochs 0 (trained min-steps' epochs instead) and a given --k >= the pixels of an input (silently a
    complete graph at every level), both before any data is generated; the default k on inputs that small
    (4-pixel 1/192 patches at nside 8) is capped as before, with a note."""
    d = _dirs(tmp_path)
    _fail(["train", *TINY, *d, "--epochs", "0"], capsys, "epochs (--epochs) must be a positive integer")
    assert not (tmp_path / "data").exists()
    for step in ("train", "run", "evaluate"):
        _fail([step, *TINY, *d, "--k", "100000"], capsys, "--k 100000 graph neighbours needs inputs of more than "
              "100000 pixels (sky fraction 1 at nside 8: 768 pixels): use --k <= 767")
    assert not (tmp_path / "data").exists()
    tiny = [*TINY, "--sky-fractions", "1", "1/192"]
    _fail(["train", *tiny, *d, "--k", "4"], capsys, "(sky fraction 1/192 at nside 8: 4 pixels): use --k <= 3")
    assert not (tmp_path / "data").exists()
    assert main(["massmaps", "generate", *tiny, *d, "--k", "100000"]) == 0  # generate builds no graph
    capsys.readouterr()
    assert main(["massmaps", "train", *tiny, *d]) == 0  # ran at 870b60e: still runs
    out = capsys.readouterr().out
    assert "note: sky fraction 1/192 at nside 8 has 4 pixels: the default --k 8 is capped at 3 there" in out
    assert "sky fraction 1 at nside 8" not in out and len(_checkpoints(tmp_path, "fcn-sky1o192-*.pt")) == 1


def test_evaluate_without_checkpoints_reports_every_network(tmp_path, capsys):
    """fcn, harmonic and hybrid are each reported as "no checkpoint" (the hybrid was dropped silently)."""
    argv = [*TINY, "--methods", "fcn", "harmonic", "hybrid", *_dirs(tmp_path)]
    cap = _fail(["evaluate", *argv, "--no-plots"], capsys, "nothing to evaluate")
    for method in ("fcn", "harmonic", "hybrid"):
        assert f"no checkpoint {tmp_path / 'out' / 'checkpoints'}/{method}-sky1-noisenone-" in cap.out, cap.out


def test_classify_help_lists_only_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["massmaps", "classify", "--help"])
    text = capsys.readouterr().out
    assert "--field" in text and "--force" in text and "--checkpoint" in text
    for training_option in ("--epochs", "--lr", "--batch-size", "--n-maps", "--min-steps", "--no-augment",
                            "--warm-start", "--average-views", "--quick"):
        assert training_option not in text


def test_bad_checkpoint_files(trained, tmp_path, capsys):
    test = str(trained / "test.fits")
    (good,) = _checkpoints(trained, "fcn-sky1-noisenone-*.pt")
    text = tmp_path / "text.pt"
    text.write_text("hello\n")
    _fail(["classify", test, "--checkpoint", str(text)], capsys, f"{text} is not a PyTorch checkpoint")
    state = load_checkpoint(good)
    empty = tmp_path / "empty.pt"
    save_checkpoint(empty, {**state, "model": {}})
    _fail(["classify", test, "--checkpoint", str(empty)], capsys, f"checkpoint {empty} has an empty state dict")
    wrong = tmp_path / "wrong.pt"
    meta = json.loads(json.dumps(state["meta"]))
    meta["fields"]["run"]["method"] = "cnn"  # a fully connected head: other weights
    save_checkpoint(wrong, {**state, "meta": meta})
    _fail(["classify", test, "--checkpoint", str(wrong)], capsys, f"checkpoint {wrong} does not fit this network")
    older = tmp_path / "older.pt"
    meta = json.loads(json.dumps(state["meta"]))
    meta["fields"]["experiment"]["noise_levels"] = [0.0]  # a setting of the version before physical noise
    save_checkpoint(older, {**state, "meta": meta})
    _fail(["classify", test, "--checkpoint", str(older)], capsys,
          f"checkpoint {older} was written by an older version (settings noise_levels no longer exist)")
    assert main(["massmaps", "classify", test, "--checkpoint", str(good)]) == 0


def test_damaged_checkpoint_during_train_is_a_one_line_error(tmp_path, capsys):
    d = _dirs(tmp_path)
    assert main(["massmaps", "train", *TINY, *d]) == 0
    (ckpt,) = _checkpoints(tmp_path)
    ckpt.write_text("a text file where the checkpoint was\n")
    cap = _fail(["train", *TINY, *d], capsys, f"{ckpt} is not a PyTorch checkpoint")
    assert len(cap.err.strip().splitlines()) == 1


def test_evaluate_refuses_an_unfinished_checkpoint(tmp_path, capsys):
    d = _dirs(tmp_path)
    assert main(["massmaps", "train", *TINY, *d]) == 0
    (ckpt,) = _checkpoints(tmp_path)
    state = load_checkpoint(ckpt)
    save_checkpoint(ckpt, {**state, "epoch": 1, "history": state["history"][:1]})
    capsys.readouterr()
    _fail(["evaluate", *TINY, *d, "--methods", "fcn", "--no-plots"], capsys, "stopped after epoch 1 of 2")


# ------------------------------------------------------------------ late or unfriendly failures


@pytest.mark.parametrize("device, match", [("gpu", "unknown device 'gpu'; valid devices here: cpu"),
                                           ("cuda", "device 'cuda' requested but CUDA is not available")])
def test_bad_device_before_any_work(tmp_path, capsys, device, match):
    if torch.cuda.is_available() and device == "cuda":
        pytest.skip("CUDA is available here")
    _fail([*TINY, *_dirs(tmp_path), "--device", device], capsys, match)
    assert not (tmp_path / "data").exists()  # nothing generated


def test_unwritable_folders_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fail([*TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(blocker / "out")], capsys,
          f"--out-dir {blocker / 'out'} is not a writable folder (a parent is a file, not a folder)")
    _fail([*TINY, "--data-dir", str(blocker), "--out-dir", str(tmp_path / "out")], capsys,
          f"--data-dir {blocker} is a file, not a folder")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    _fail([*TINY, *_dirs(tmp_path), "--json", str(blocker / "r.json")], capsys,
          f"the folder of --json {blocker} is a file, not a folder")
    _fail([*TINY, *_dirs(tmp_path), "--json", str(tmp_path)], capsys, f"--json {tmp_path} is a folder, not a file")
    assert not any((tmp_path / "data").iterdir())  # nothing generated


def test_read_only_out_dir(tmp_path, capsys):
    """A read-only file system (here /sys, read-only in containers even for root)."""
    target = Path("/sys/deepsphere-gen-test")
    try:
        target.mkdir()
        target.rmdir()
        pytest.skip("/sys is writable here")
    except OSError:
        pass
    _fail([*TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(target)], capsys,
          f"--out-dir {target} is not a writable folder")
    assert not any((tmp_path / "data").iterdir())


def test_full_disk_before_any_work(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1024))
    _fail([*TINY, *_dirs(tmp_path)], capsys, "not enough free disk space")
    assert not any((tmp_path / "data").iterdir())


def test_disk_full_during_training(tmp_path, capsys, monkeypatch):
    import errno

    def full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(getattr(f, "name", f)))

    monkeypatch.setattr(torch, "save", full)
    cap = _fail(["train", *TINY, *_dirs(tmp_path)], capsys, "No space left on device")
    assert "during training" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not list((tmp_path / "out" / "checkpoints").glob("*"))  # no half-written checkpoint


def _interrupt_at_step(monkeypatch, n: int):
    """AdamW.step raises KeyboardInterrupt at its n-th call; returns the original step (to restore)."""
    calls = {"n": 0}
    step = torch.optim.AdamW.step

    def interrupting_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", interrupting_step)
    return step


def test_ctrl_c_resumes_bit_identically(tmp_path, capsys, monkeypatch):
    """Ctrl-C in epoch 2: one line, exit 130; the rerun resumes and ends where an uninterrupted run ends."""
    args = [*TINY, "--epochs", "3"]
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "whole")]) == 0
    step = _interrupt_at_step(monkeypatch, 3)  # 8 training maps, batch 8: one step per epoch -> in epoch 3
    capsys.readouterr()
    cap = _fail(["train", *args, *_dirs(tmp_path / "cut")], capsys,
                "interrupted after epoch 2 of 3 of fcn-sky1-noisenone", rc=cmd.EXIT_INTERRUPTED)
    assert "rerun the same command to resume" in cap.err and len(cap.err.strip().splitlines()) == 1
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "cut")]) == 0
    assert "resumed from" in capsys.readouterr().out
    (a,), (b,) = _checkpoints(tmp_path / "whole"), _checkpoints(tmp_path / "cut")
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert a.name == b.name  # same fingerprint
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert [h["train_loss"] for h in sa["history"]] == [h["train_loss"] for h in sb["history"]]


def test_sigterm_in_training_is_one_line_and_exit_143(tmp_path, capsys, monkeypatch):
    """SIGTERM (`timeout`, a scheduler's time limit) as Ctrl-C: one line naming the checkpointed epoch, exit 143
    (was: killed at once, no message); the handler in place before the command is back afterwards (the test's own,
    which would see a SIGTERM the command did not take)."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        step = torch.optim.AdamW.step

        def terminated_step(self, *a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return step(self, *a, **k)

        monkeypatch.setattr(torch.optim.AdamW, "step", terminated_step)
        cap = _fail(["train", *TINY, *_dirs(tmp_path)], capsys, "terminated (SIGTERM) after epoch 0 of 2 of fcn-sky1",
                    rc=143)
        assert "rerun the same command to resume" in cap.err and len(cap.err.strip().splitlines()) == 1
        assert seen == []
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert seen == [signal.SIGTERM]  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.slow  # 12 s: a fresh interpreter imports torch; the in-process test above covers the handling
def test_sigint_in_a_real_process(tmp_path):
    """A real SIGINT: no traceback, exit status 130, the message names the epoch; no '\\r' in the log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "deepsphere_gen.cli", "massmaps", "train", *TINY[:-1], "--epochs", "400",
            *_dirs(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "epoch 2/400" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted after epoch" in err and "rerun the same command" in err
    assert "\r" not in "".join(lines) + out + err  # progress bars only on a terminal


def _interrupt_when_saved(checkpoints: Path, timeout: float = 120.0) -> threading.Thread:
    """A thread that sends SIGINT to this process (as Ctrl-C does) once a checkpoint appears under
    ``checkpoints`` (written atomically: its first epoch is saved), or after ``timeout`` seconds."""
    def watch():
        t0 = time.monotonic()
        while not list(checkpoints.glob("*.pt")) and time.monotonic() - t0 < timeout:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_parallel_run_resumes_and_shares_checkpoints(tmp_path, capfd, monkeypatch):
    """--workers 2 (networks trained in worker processes) uses the fingerprinted checkpoints of one
    process: it resumes an interrupted run bit-identically, a one-process run then finds it finished
    (same fingerprint, same records), and --restart retrains."""
    args = [*TINY, "--epochs", "3"]
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "whole")]) == 0
    step = _interrupt_at_step(monkeypatch, 3)
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "cut")]) == cmd.EXIT_INTERRUPTED
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    capfd.readouterr()
    cut = tmp_path / "cut"
    assert main(["massmaps", *args, "--no-plots", *_dirs(cut), "--workers", "2",
                 "--json", str(tmp_path / "w2.json")]) == 0
    out = capfd.readouterr().out
    assert "resumed from" in out and "epoch 3/3" in out  # in the worker process
    (a,), (b,) = _checkpoints(tmp_path / "whole"), _checkpoints(cut)
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert a.name == b.name and all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    # one process on the parallel run's checkpoint: found finished, the same records
    before = b.stat().st_mtime_ns
    assert main(["massmaps", *args, "--no-plots", *_dirs(cut), "--workers", "1",
                 "--json", str(tmp_path / "w1.json")]) == 0
    assert "not trained again" in capfd.readouterr().out and b.stat().st_mtime_ns == before
    records = [json.loads((tmp_path / f"w{n}.json").read_text())["records"] for n in (1, 2)]
    assert [(r["method"], r["accuracy"], r["n_train"]) for r in records[0]] == \
        [(r["method"], r["accuracy"], r["n_train"]) for r in records[1]]
    # --restart in worker processes retrains
    assert main(["massmaps", *args, "--no-plots", *_dirs(cut), "--workers", "2", "--restart"]) == 0
    out = capfd.readouterr().out
    assert b.stat().st_mtime_ns != before and "epoch 1/3" in out and "resumed" not in out


def test_ctrl_c_in_a_parallel_run(tmp_path, capfd):
    """Ctrl-C while the networks train in worker processes: the workers stop after saving their last
    epoch, one line names it, exit 130, no traceback from any process; the checkpoint is the one a
    one-process run of the same settings continues (same fingerprint)."""
    args = [*TINY, "--epochs", "5000", "--no-plots"]
    _interrupt_when_saved(tmp_path / "out" / "checkpoints")
    rc = main(["massmaps", *args, *_dirs(tmp_path), "--workers", "2"])
    cap = capfd.readouterr()
    assert rc == cmd.EXIT_INTERRUPTED, cap.err
    assert "Traceback" not in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
    assert "of 5000 of fcn-sky1-noisenone" in cap.err and "rerun the same command to resume" in cap.err
    (ckpt,) = _checkpoints(tmp_path)
    epoch = load_checkpoint(ckpt)["epoch"]
    assert f"interrupted after epoch {epoch} of 5000" in cap.err and 1 <= epoch < 5000
    _fail(["evaluate", *args, *_dirs(tmp_path)], capfd, f"stopped after epoch {epoch} of 5000")


@pytest.mark.slow  # ~20 s: three fresh interpreters import torch
def test_sigint_to_the_process_group_of_a_parallel_run(tmp_path):
    """A terminal's Ctrl-C reaches the parent and both workers at once: still one line, exit 130."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "deepsphere_gen.cli", "massmaps", *TINY, "--epochs", "5000", "--workers", "2",
            "--no-plots", *_dirs(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    for line in proc.stdout:
        if "epoch 2/5000" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted after epoch" in err, err


def test_worker_processes_start_with_ctrl_c_and_sigterm_ignored():
    """A worker spawned by ParallelRun inherits an ignored SIGINT and SIGTERM (a terminal's Ctrl-C, or a scheduler's
    SIGTERM to every process, while it still imports torch would kill it); the parent's own handlers are back
    after the processes started."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from deepsphere_gen.experiments.massmaps import parallel

    def mine(signum, frame):
        pass

    before, before_term = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, mine)
    try:
        with parallel._children_ignore_interrupts():
            assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            seen = [pool.submit(signal.getsignal, s) for s in (signal.SIGINT, signal.SIGTERM)]  # starts here
        assert signal.getsignal(signal.SIGINT) is before and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before_term)
    with pool:
        assert [f.result(timeout=60) for f in seen] == [signal.SIG_IGN, signal.SIG_IGN]


def test_an_idle_worker_ignores_ctrl_c_keeps_sigterm_and_a_job_takes_both(monkeypatch):
    """The worker set-up ignores Ctrl-C and leaves SIGTERM at its default (the pool ends a broken pool's workers
    with SIGTERM and joins them: an idle worker ignoring it would hang that join); a job takes both as
    KeyboardInterrupt (its checkpoint kept), and the idle handlers come back after it."""
    import queue
    import warnings

    from deepsphere_gen.experiments.massmaps import parallel

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    threads, pids = torch.get_num_threads(), queue.SimpleQueue()
    monkeypatch.setattr(parallel, "_stopping", None)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    try:
        parallel._worker_setup(pids, list(warnings.filters), threading.Event())
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert pids.get_nowait() == os.getpid()
        with parallel._interruptible():
            assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        torch.set_num_threads(threads)


def test_a_job_started_after_stop_is_interrupted_at_once(monkeypatch):
    """A worker that was still starting when Ctrl-C came is not interrupted by it: its job sees the stop
    event and raises KeyboardInterrupt before any work; the worker ignores SIGINT again afterwards."""
    from deepsphere_gen.experiments.massmaps import parallel

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stopping = threading.Event()
    monkeypatch.setattr(parallel, "_stopping", stopping)
    ran = []
    try:
        with parallel._interruptible():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            ran.append(1)
        stopping.set()
        with pytest.raises(KeyboardInterrupt):
            with parallel._interruptible():
                ran.append(2)
        assert ran == [1] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _spawned_children(pid: int) -> list[int]:
    """Process ids of the multiprocessing-spawned children of process ``pid`` (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:  # already gone
            pass
    return found


@pytest.mark.slow  # ~20 s: fresh interpreters import torch
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_sigint_to_the_process_group_while_workers_start(tmp_path):
    """A terminal's Ctrl-C while the worker processes are still starting (importing torch): one line, exit 130,
    no traceback from the workers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "deepsphere_gen.cli", "massmaps", *TINY, "--epochs", "5000", "--workers", "2",
            "--no-plots", *_dirs(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    t0 = time.monotonic()
    while not _spawned_children(proc.pid) and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.01)
    time.sleep(0.2)  # the parent has left its submit loop; the worker still imports torch
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted during training" in err, err


def test_ctrl_c_during_data_generation_keeps_nothing(tmp_path, capsys, monkeypatch):
    import deepsphere_gen.datasets.massmaps as ds

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ds, "convergence_map", interrupted)
    cap = _fail(["generate", *TINY, *_dirs(tmp_path)], capsys, "interrupted during data generation",
                rc=cmd.EXIT_INTERRUPTED)
    assert "rerun the same command" in cap.err and not any((tmp_path / "data").iterdir())  # no partial data set


@pytest.mark.parametrize("fault, match", [("truncate", "maps.npy is missing or damaged (ValueError"),
                                           ("delete", "maps.npy is missing or damaged (FileNotFoundError"),
                                           ("empty", "maps.npy is missing or damaged (EOFError"),
                                           ("metadata", "exists but its metadata does not match")])
def test_damaged_data_cache(tmp_path, capsys, fault, match):
    d = _dirs(tmp_path)
    assert main(["massmaps", "generate", *TINY, *d]) == 0
    (data,) = (tmp_path / "data").iterdir()
    if fault == "truncate":
        with open(data / "maps.npy", "r+b") as f:
            f.truncate(1000)
    elif fault == "delete":
        (data / "maps.npy").unlink()
    elif fault == "empty":  # an EOFError, a traceback before
        (data / "maps.npy").write_bytes(b"")
    else:
        (data / "metadata.json").write_text("{ not json")
    cap = _fail(["train", *TINY, *d], capsys, match)
    assert "generate it again" in cap.err or "remove it to regenerate" in cap.err
    assert len(cap.err.strip().splitlines()) == 1


def test_bad_threads(tmp_path, capsys):
    _fail([*TINY, *_dirs(tmp_path), "--threads", "0"], capsys, "--threads must be >= 1, got 0")
    _fail([*TINY, *_dirs(tmp_path), "--workers", "0"], capsys, "--workers must be >= 1, got 0")
    assert not (tmp_path / "data").exists()


def test_too_few_maps_for_the_splits(tmp_path, capsys):
    _fail(["generate", *TINY, "--n-maps", "2", *_dirs(tmp_path)], capsys,
          "2 maps per class leave no training map after 1 test and 1 validation map(s); use more maps")
    assert not (tmp_path / "data").exists()


def test_classify_ambiguous_runs_name_both(tmp_path, capsys):
    """Two runs of other settings for the same sky and noise: classify names both files, each with the settings that
    differ (was: only "(other settings)": an R = 0 and an R = 2 --sky-rotations run differed by a hash), and asks."""
    d = _dirs(tmp_path)
    assert main(["massmaps", "train", *TINY, *d]) == 0
    assert main(["massmaps", "train", *TINY, "--epochs", "3", *d]) == 0
    (data,) = (tmp_path / "data").iterdir()
    m = np.asarray(load_massmaps(data)[0][0, -1], dtype=np.float64)
    hp.write_map(str(tmp_path / "m.fits"), m, nest=True, dtype=np.float64)
    cap = _fail(["classify", str(tmp_path / "m.fits"), "--out-dir", str(tmp_path / "out")], capsys,
                "2 trained fcn networks for sky 1, noise none at nside 8")
    assert "choose one with --checkpoint FILE" in cap.err and all(str(p) in cap.err for p in _checkpoints(tmp_path))
    assert "(experiment.epochs 2; train.epochs 2)" in cap.err and "(experiment.epochs 3; train.epochs 3)" in cap.err
    assert main(["massmaps", "classify", str(tmp_path / "m.fits"), "--checkpoint", str(_checkpoints(tmp_path)[0])]) == 0


def test_no_carriage_returns_in_logs(tmp_path, capsys):
    """Progress is requested (no --no-progress) but the output is not a terminal: plain lines only."""
    assert main(["massmaps", "train", *TINY[:-1], *_dirs(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert "\r" not in cap.out + cap.err and "epoch 2/2" in cap.out


def test_xdg_cache_defaults(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["massmaps", "generate", "--nside", "4", "--n-maps", "3"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "xdg" / "deepsphere_gen" / "massmaps").is_dir()
    assert f"data {tmp_path / 'xdg' / 'deepsphere_gen' / 'massmaps'}" in out
    assert f"graph cache {tmp_path / 'xdg' / 'deepsphere_gen' / 'graphs'}" in out
    monkeypatch.setenv(_cache_dirs.ENV_VAR, str(tmp_path / "moved"))
    assert main(["massmaps", "generate", "--nside", "4", "--n-maps", "3"]) == 0
    assert (tmp_path / "moved" / "massmaps").is_dir() and not (tmp_path / "massmaps-out").exists()
    assert _cache_dirs.graph_cache_dir() == tmp_path / "moved" / "graphs"
    from deepsphere_gen.graph._cache import cache_directory

    assert cache_directory() == _cache_dirs.graph_cache_dir()  # the graph backend agrees


def test_out_dir_default_is_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["massmaps", "train", *TINY, "--data-dir", str(tmp_path / "data")]) == 0
    assert f"outputs {tmp_path / cmd.OUT_DIR}" in capsys.readouterr().out
    assert (tmp_path / cmd.OUT_DIR / "checkpoints").is_dir()


def test_top_level_help_imports_no_torch():
    code = ("import sys\nfrom deepsphere_gen.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules, 'numpy' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "False False", res.stdout + res.stderr
    for name in COMMANDS:
        assert name in res.stdout


@pytest.mark.parametrize("argv", [["massmaps", "--help"], ["massmaps", "classify", "--help"], ["demo", "--help"],
                                  ["bench", "--help"], ["equivariance", "--help"], ["digits", "--help"],
                                  ["digits", "--models", "nope"],
                                  ["massmaps", "--nside", "eight"], ["massmaps", "--methods", "nope"],
                                  ["cosmo", "--help"], ["cosmo", "train", "--help"], ["cosmo", "--nside", "eight"],
                                  ["cosmo", "evaluate", "--methods", "nope"]])
def test_command_help_and_argument_errors_import_no_torch(argv):
    # the help texts name the defaults, methods and models, read from massmaps.config,
    # digits_config and cosmo.config without torch
    code = (f"import sys\nfrom deepsphere_gen.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as e:\n"
            "    print('exit', e.code)\nprint(sorted(m for m in ('torch', 'numpy', 'healpy') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    lines = res.stdout.strip().splitlines()
    assert lines[-2:] == ["exit " + ("0" if "--help" in argv else "2"), "[]"], res.stdout + res.stderr
    if "--help" not in argv:
        assert "invalid" in res.stderr


def test_massmaps_config_sigma_e_default_is_the_shape_noise_one():
    from deepsphere_gen.datasets.shape_noise import DEFAULT_SIGMA_E
    from deepsphere_gen.experiments.massmaps.config import ExperimentConfig

    assert ExperimentConfig.sigma_e == DEFAULT_SIGMA_E
    assert cmd._defaults().sigma_e == DEFAULT_SIGMA_E


def test_command_help_lines_match_modules():
    import importlib

    for name, (module, text) in COMMANDS.items():
        assert importlib.import_module(f"deepsphere_gen.commands.{module}").HELP == text


def test_robustness_table_points_to_existing_tests():
    """docs/robustness.md: at least 25 numbered cases, each naming tests that exist."""
    import re

    files = {"R": Path(__file__), "M": ROOT / "tests/commands/test_massmaps.py", "T": ROOT / "tests/test_training.py"}
    rows = [r for r in (ROOT / "docs/robustness.md").read_text().splitlines() if re.match(r"\| \d+ \|", r)]
    assert len(rows) >= 25 and [int(r.split("|")[1]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        names = re.findall(r"`(?:([\w/]+\.py)::)?(test_\w+)", cell)
        assert names, row
        prefix = cell.strip()[:1]
        for path, name in names:
            source = (ROOT / path) if path else files.get(prefix, Path(__file__))
            text = source.read_text() if path else "".join(f.read_text() for f in files.values())
            assert f"def {name}(" in text, (name, row)


def test_resolutions_too_small_for_a_method_are_refused_before_any_work(tmp_path, capsys):
    """A full sky too coarse for the harmonic or hybrid network or the baselines, patches too small for the baselines'
    statistics: refused naming the option and its smallest value before any data are made (was: the library's
    "bandlimit L=8 is too large for HealpixSampling(...)" / "patches of 4 x 4 pixels are too small for these
    statistics" after the other networks had trained).  The --quick and default settings pass; train fits no
    baseline, so 4 x 4 patches only stop run and evaluate."""
    from deepsphere_gen.experiments import massmaps as exp

    d = _dirs(tmp_path)
    _fail(["--quick", *d, "--full-sky-nside", "2"], capsys, "--full-sky-nside 2 is too small for sky fraction 1: harmonic "
          "needs nside >= 4 for its bandlimit L=8 (L <= 3 nside), hybrid needs nside >= 4 for its two poolings by 4; "
          "use --full-sky-nside >= 4")
    err = _fail(["--quick", *d, "--nside", "2"], capsys, "--nside 2 is too small for sky fraction 1: harmonic").err
    assert "--nside 2 gives 2 x 2 pixel patches at sky fraction 1/12" in err
    _fail(["--quick", *d, "--nside", "4"], capsys, "--nside 4 gives 4 x 4 pixel patches at sky fraction 1/12, too small "
          "for psd_svm, hist_svm, strong_svm (at least 8 x 8): use --nside >= 8")
    _fail(["evaluate", "--quick", *d, "--nside", "1", "--sky-fractions", "1", "--methods", "hist_svm"], capsys,
          "--nside 1 is too small for sky fraction 1: hist_svm needs nside >= 2")
    _fail(["--quick", *d, "--sky-fractions", "1/48", "--nside", "8"], capsys, "use --nside >= 16")
    assert not (tmp_path / "data").exists()
    checks.check_resolutions(exp.ExperimentConfig(nside=4, sky_fractions=("1/12",)), "train")
    checks.check_resolutions(exp.ExperimentConfig(**cmd.QUICK), "run")
    checks.check_resolutions(exp.ExperimentConfig(), "run")


def test_sigma_e_zero_is_refused(tmp_path, capsys):
    """--sigma-e 0 made every shape-noise setting noise-free: the default DeepSphere level-2 row vanished as a
    duplicate of level 0 without a word.  Refused (run steps and classify, before any work); a positive value keeps
    both rows."""
    d = _dirs(tmp_path)
    for step in ("train", "run"):
        _fail([step, *TINY, *d, "--deepsphere-level", "0", "2", "--sigma-e", "0"], capsys,
              "ellipticity dispersion sigma_e (--sigma-e) must be > 0, got 0.0: it sets the shape noise of every "
              "--deepsphere-level and --ngal setting")
    _fail(["classify", "x.fits", "--sigma-e", "0", "--out-dir", str(tmp_path / "out")], capsys, "must be > 0, got 0.0")
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()
    from deepsphere_gen.experiments import massmaps as exp

    config = exp.ExperimentConfig(deepsphere_levels=(0.0, 2.0), sigma_e=0.3)
    assert [n.kind for n in exp.noise_settings(config)] == ["none", "ngal"]


def test_options_that_would_do_nothing_are_refused(tmp_path, capsys):
    """Options that did nothing with the others given (exit 0, silently): --footprint without sky fraction
    'footprint', --full-sky-nside above --nside or without sky fraction 1, --average-views without patches for
    a graph network, --fcn-members N > 1 without fcn or cnn, --methods harmonic on patches only: each refused
    before any work, naming the options.  The defaults trigger none of them (--quick, the default run); the JSON
    config records the full-sky resolution that ran (the default 64 above --nside 8 ran at 8)."""
    d = _dirs(tmp_path)
    _fail([*TINY, *d, "--footprint", "builtin"], capsys,
          "--footprint builtin applies only to sky fraction 'footprint': add footprint to --sky-fractions (now 1)")
    _fail([*TINY, *d, "--full-sky-nside", "16"], capsys, "--full-sky-nside 16 exceeds --nside 8: the full sky is "
          "averaged down from the maps' nside, never up; use --full-sky-nside <= 8")
    _fail([*TINY, *d, "--sky-fractions", "1/12", "--full-sky-nside", "4"], capsys,
          "--full-sky-nside 4 applies only to sky fraction 1")
    _fail([*TINY, *d, "--average-views"], capsys, "--average-views averages the fcn and cnn predictions over the "
          "reflections of nested patches: it needs a patch sky fraction")
    _fail([*TINY, *d, "--sky-fractions", "1/12", "--methods", "psd_svm", "--average-views"], capsys,
          "and fcn or cnn in --methods (now psd_svm)")
    _fail([*TINY, *d, "--methods", "harmonic", "--fcn-members", "3"], capsys,
          "--fcn-members 3 trains ensembles of fcn and cnn networks: add fcn or cnn to --methods (now harmonic)")
    _fail(["train", *TINY, *d, "--sky-fractions", "1/12", "--methods", "harmonic"], capsys,
          "--methods harmonic: harmonic runs only on the full sky (sky fraction 1), not on --sky-fractions 1/12")
    assert not (tmp_path / "data").exists()
    for argv in (["--quick"], []):  # the defaults: no refusal, no note
        args = build_parser(["massmaps"]).parse_args(["massmaps", *argv])
        config = cmd._config(args)
        checks.check_options_apply(args, config)
        assert checks.check_methods(config, "run", False) == (config, [])
    out = tmp_path / "r.json"
    assert main(["massmaps", *TINY, *d, "--sky-fractions", "1", "1/12", "--average-views", "--fcn-members", "2",
                 "--no-plots", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {r["nside"] for r in doc["records"] if r["sky"] == "1"} == {8}  # ran at --nside, not the default 64
    assert doc["config"]["full_sky_nside"] == 8  # the resolution that ran (was: 64, the configured default)
    ckpt = next((tmp_path / "out" / "checkpoints").glob("fcn-sky1-*.pt"))
    assert load_checkpoint(ckpt)["meta"]["fields"]["experiment"]["full_sky_nside"] == 64  # fingerprints unchanged
