"""``massmaps --sky-rotations R``: training samples drawn from the training maps or their rotated copies.

R = 0 changes nothing (the fingerprint and first-epoch loss pinned below were computed by the code before the
option existed, on the single log-normal maps of that time: ``generator="lognormal"``); R = 2 trains reproducibly and resumes bit-identically, under its own fingerprint; the draws
come from both the maps and the copies; bad values and idle combinations are refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepsphere_gen.cli import main
from deepsphere_gen.commands import massmaps as cmd
from deepsphere_gen.datasets import FreshNoise, MassMapDataset, load_sky_rotations, sky_rotations_dir
from deepsphere_gen.experiments import massmaps as exp
from deepsphere_gen.experiments.massmaps import config as exp_config
from deepsphere_gen.experiments.massmaps import data as mm_data
from deepsphere_gen.experiments.massmaps import training as mm_training
from deepsphere_gen.training import load_checkpoint

from ._cli import refused

TINY = ["--nside", "8", "--n-maps", "8", "--sky-fractions", "1/12", "--relative-noise", "1", "--epochs", "3",
        "--min-steps", "0", "--batch-size", "16", "--methods", "fcn", "--no-progress", "--workers", "1"]


def _dirs(root):
    return ["--data-dir", str(root / "data"), "--out-dir", str(root / "out")]


def _config(tmp_path, **kw):
    return exp.ExperimentConfig(**{**dict(nside=8, n_maps=8, sky_fractions=("1/12",), deepsphere_levels=(),
                                          relative_noise=(1.0,), methods=("fcn",), epochs=2, min_steps=0,
                                          batch_size=16, progress=False, data_dir=str(tmp_path / "data"),
                                          out_dir=str(tmp_path / "out")), **kw})


def test_no_rotations_change_nothing(tmp_path):
    config = _config(tmp_path, generator="lognormal")  # the generator of the runs that predate the option
    path = exp.generate(config)
    sky, (noise,) = exp.sky_settings(config)[0], exp.noise_settings(config)
    train_set = mm_data.dataset_of(path, sky, noise, config, "train")
    run = mm_training.network_run(config, path, "fcn", sky, noise, train_set)
    assert run.meta["fingerprint"] == "116156ce628c" and "sky_rotations" not in run.meta["fields"]["experiment"]
    assert "generator" not in run.meta["fields"]["experiment"]  # recorded only where it is not "lognormal"
    assert exp_config.config_from_record(run.meta["fields"]["experiment"]).generator == "lognormal"  # as recorded
    shells = mm_training.network_run(_config(tmp_path), path, "fcn", sky, noise, train_set)
    assert shells.meta["fields"]["experiment"]["generator"] == "shells" and shells.meta["fingerprint"] != "116156ce628c"
    assert type(mm_data.training_set(path, sky, noise, config, train_set).dataset) is FreshNoise
    history = exp.train(config, path, log=None)["fcn-sky1o12-noiserel1"]
    assert history[0]["train_loss"] == pytest.approx(0.7474162429571152, rel=1e-5)
    assert not list((tmp_path / "data").glob("massmaps-rotations-*"))
    exp.write_json(tmp_path / "r.json", [], config, pairs=[])
    assert "sky_rotations" not in json.loads((tmp_path / "r.json").read_text())["config"]
    rotated = mm_training.network_run(_config(tmp_path, sky_rotations=2, generator="lognormal"), path, "fcn", sky, noise,
                                      train_set)
    assert rotated.meta["fields"]["experiment"]["sky_rotations"] == 2
    assert rotated.meta["fingerprint"] != run.meta["fingerprint"]


def test_draws_come_from_the_maps_and_their_copies(tmp_path):
    config = _config(tmp_path, sky_rotations=2)
    path = exp.generate(config)
    sky = exp.sky_settings(config)[0]
    clean = mm_data.dataset_of(path, sky, None, config, "train")
    n_train = len(clean.map_ids)
    assert n_train == mm_data.n_training_maps(config)
    copies, _ = load_sky_rotations(sky_rotations_dir(mm_data.data_config(config), n_train, 2, tmp_path / "data"), 2)
    draws = mm_data.SkyRotationDraws(clean, mm_data.rotated_copies(path, sky, config, clean), 2)
    assert len(draws) == len(clean)
    torch.manual_seed(0)
    sources = []
    for i in range(len(draws)):
        x, label, idx = draws[i]
        c, j, p = clean.locate(i)
        n = clean.indices.shape[1]
        cand = [clean[i][0]] + [torch.from_numpy(np.array(copies[c, j * 2 + r, p * n:(p + 1) * n])).unsqueeze(-1)
                                for r in range(2)]
        (k,) = [k for k, v in enumerate(cand) if torch.equal(v, x)]
        sources.append(k)
        assert label == c and torch.equal(idx, clean[i][2])
    assert set(sources) == {0, 1, 2} and 0.2 < np.mean(np.array(sources) == 0) < 0.5
    with pytest.raises(ValueError, match="noise-free"):
        mm_data.SkyRotationDraws(MassMapDataset(path, level=0, noise=1.0), clean, 2)


def test_training_with_rotations_is_reproducible_and_resumes_exactly(tmp_path, capsys, monkeypatch):
    args = [*TINY, "--sky-rotations", "2"]
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "a")]) == 0
    assert "rotated copies" in capsys.readouterr().out
    assert main(["massmaps", "train", *args, "--data-dir", str(tmp_path / "a" / "data"),
                 "--out-dir", str(tmp_path / "b" / "out")]) == 0
    assert "reusing the rotated copies" in capsys.readouterr().out
    calls, step = {"n": 0}, torch.optim.AdamW.step

    def interrupting_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 12:  # 8 steps per epoch: in epoch 2
            raise KeyboardInterrupt
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", interrupting_step)
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "c")]) == cmd.EXIT_INTERRUPTED
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    assert main(["massmaps", "train", *args, *_dirs(tmp_path / "c")]) == 0
    assert "resumed from" in capsys.readouterr().out
    ckpts = [sorted((tmp_path / r / "out" / "checkpoints").glob("*.pt")) for r in "abc"]
    assert all(len(c) == 1 for c in ckpts) and len({c[0].name for c in ckpts}) == 1
    states = [load_checkpoint(c[0]) for c in ckpts]
    assert all(torch.equal(states[0]["model"][k], s["model"][k]) for s in states[1:] for k in states[0]["model"])
    assert [h["train_loss"] for h in states[0]["history"]] == [h["train_loss"] for h in states[2]["history"]]
    assert states[0]["meta"]["fields"]["experiment"]["sky_rotations"] == 2
    # the same steps as without rotations; evaluate finds the run by its fingerprint, the JSON records R
    assert main(["massmaps", "train", *TINY, *_dirs(tmp_path / "a")]) == 0
    plain = [p for p in (tmp_path / "a" / "out" / "checkpoints").glob("*.pt") if p != ckpts[0][0]]
    assert len(plain) == 1
    assert len(load_checkpoint(plain[0])["history"][0]["step_losses"]) == len(states[0]["history"][0]["step_losses"])
    capsys.readouterr()
    assert main(["massmaps", "evaluate", *args, "--no-plots", *_dirs(tmp_path / "a"), "--json", str(tmp_path / "e.json")]) == 0
    assert "not trained" not in capsys.readouterr().err
    assert json.loads((tmp_path / "e.json").read_text())["config"]["sky_rotations"] == 2


def test_generate_step_makes_the_copies(tmp_path):
    assert main(["massmaps", "generate", *TINY, "--sky-rotations", "1", *_dirs(tmp_path)]) == 0
    (folder,) = (tmp_path / "data").glob("massmaps-rotations-nside8-*")
    maps, meta = load_sky_rotations(folder, 1)
    assert maps.shape == (2, 5, 768) and meta["generation"]["maps"]["seed"] == 0


@pytest.mark.parametrize("argv, match", [
    (["--sky-rotations", "-1"], "sky_rotations (--sky-rotations) must be a non-negative integer"),
    (["--sky-rotations", "2", "--no-augment"], "--sky-rotations 2 draws training samples with fresh noise"),
    (["--sky-rotations", "2", "--methods", "psd_svm"], "--sky-rotations 2 augments the networks' training samples"),
    (["classify", "m.fits", "--sky-rotations", "2"], "--sky-rotations"),
])
def test_bad_values_and_idle_combinations_are_refused(tmp_path, capsys, argv, match):
    cap = refused("massmaps", [*argv, *_dirs(tmp_path)], capsys, match)
    assert len(cap.err.strip().splitlines()) == 1 and not (tmp_path / "data").exists()


def test_a_non_integer_is_refused_at_parsing(capsys):
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["massmaps", "--sky-rotations", "1.5"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith("error: argument --sky-rotations: invalid int value: '1.5'\n")


def test_evaluate_step_makes_no_copies(tmp_path, capsys):
    """evaluate trains nothing, so it neither makes the rotated copies nor asks disk space for them (it made them,
    145 s and 370 MiB at the default settings, then found nothing to evaluate)."""
    assert main(["massmaps", "generate", *TINY, *_dirs(tmp_path)]) == 0
    main(["massmaps", "evaluate", *TINY, "--sky-rotations", "1", "--no-plots", *_dirs(tmp_path)])
    assert "rotated copies" not in capsys.readouterr().out
    assert not list((tmp_path / "data").glob("massmaps-rotations-*"))


def test_evaluate_names_the_network_trained_with_other_settings(tmp_path, capsys):
    """evaluate without --sky-rotations after a run with it: the missing checkpoint's note names the finished network
    of the same method, sky and noise in the folder and the setting that differs (was: only 'run train with the
    same options first', which retrains a network for nothing)."""
    assert main(["massmaps", "train", *TINY, "--sky-rotations", "2", *_dirs(tmp_path)]) == 0
    (ckpt,) = (tmp_path / "out" / "checkpoints").glob("*.pt")
    capsys.readouterr()
    main(["massmaps", "evaluate", *TINY, "--no-plots", *_dirs(tmp_path)])
    out = capsys.readouterr()
    assert f"trained there with other settings: {ckpt.name} (experiment.sky_rotations (2 there, missing here))" in out.out + out.err


def test_generator_option_reaches_the_data_set_and_is_checked(tmp_path, capsys):
    """--generator picks the maps (before or after the step); an unknown name is one line naming the choices."""
    refused("massmaps", ["generate", "--generator", "nbody", *TINY, *_dirs(tmp_path)], capsys,
            "generator must be one of shells, lognormal, gaussian, got 'nbody'")
    for name in ("lognormal", "shells"):
        assert main(["massmaps", "--generator", name, "generate", *TINY, *_dirs(tmp_path)]) == 0
    made = [json.loads((p / "metadata.json").read_text())["generation"]
            for p in sorted((tmp_path / "data").glob("massmaps-nside8-*"))]
    assert sorted(str(g.get("generator", {}).get("name", g.get("lognormal"))) for g in made) == ["True", "shells"]


def test_preflight_finds_the_data_set_of_the_generator_asked_for(tmp_path):
    """The disk check skips an existing data set: that of the run's own generator, not the default's."""
    from deepsphere_gen.commands._massmaps_checks import _dataset_present

    exp.generate(_config(tmp_path, generator="lognormal"))
    assert _dataset_present(_config(tmp_path, generator="lognormal"))
    assert not _dataset_present(_config(tmp_path))  # the shells data set is not there yet
