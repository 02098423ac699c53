"""``deepsphere-gen digits`` and the experiment behind it, on tiny settings."""
import json

import pytest
import torch
from scipy.stats import binomtest

from deepsphere_gen.experiments import digits as exp
from deepsphere_gen.cli import main
from deepsphere_gen.datasets.digits import SPLITS, build_split
from deepsphere_gen.sampling import DriscollHealySampling

TINY = dict(n_train=40, n_test=20, epochs=1, bandwidth=10, nside=8, batch_size=16)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def tiny_records(data_dir):
    torch.set_num_threads(1)
    config = exp.DigitsConfig(data_dir=data_dir, **TINY)
    return exp.run_experiment(config, progress=False, log=lambda s: None)


def test_one_record_per_model_and_split(tiny_records):
    models = exp.available_models()
    assert [(r["model"], r["split"]) for r in tiny_records] == [(m, s) for m in models for s in SPLITS]
    for r in tiny_records:
        assert 0 <= r["accuracy"] <= 100 and r["n_test"] == 20 and r["n_train"] == 40
        assert r["accuracy"] == pytest.approx(100 * r["correct"] / r["n_test"])
        ci = binomtest(r["correct"], r["n_test"]).proportion_ci(confidence_level=0.95, method="wilson")
        assert r["ci95"] == pytest.approx([100 * ci.low, 100 * ci.high], abs=1e-9)  # scipy's Wilson interval, in %
        assert r["params"] > 0 and r["train_seconds"] > 0 and r["infer_ms_per_sample"] > 0


def test_unrotated_training_is_shared_by_nr_splits(tiny_records):
    by = {(r["model"], r["split"]): r for r in tiny_records}
    for m in exp.available_models():
        # NR/NR and NR/R use the same model trained on unrotated maps, R/R its own
        assert by[m, "NR/NR"]["train_seconds"] == by[m, "NR/R"]["train_seconds"]
        assert by[m, "R/R"]["train_seconds"] != by[m, "NR/NR"]["train_seconds"]
        assert by[m, "NR/NR"]["params"] == by[m, "R/R"]["params"]


def test_parameter_counts_comparable():
    counts = {}
    for name in exp.available_models():
        spec = exp.MODELS[name]
        grid = {"planar": None, "dh": DriscollHealySampling(10), "grid": DriscollHealySampling(10)}.get(spec.input, "healpix")
        if grid == "healpix":
            from deepsphere_gen.sampling import HealpixSampling

            grid = HealpixSampling(8)
        counts[name] = exp.count_parameters(spec.build(grid))
    assert max(counts.values()) < 3 * min(counts.values()), counts


def test_inputs_match_the_data_module(data_dir):
    config = exp.DigitsConfig(data_dir=data_dir, **TINY)
    data = exp.load_inputs({"planar", "grid", "dh"}, config)
    dh = DriscollHealySampling(10)
    s = build_split("NR/R", dh, n_train=40, n_test=20, data_dir=data_dir)
    xtr, ytr, xte, yte = data["dh"]["NR/R"]
    torch.testing.assert_close(xte, s.x_test)
    torch.testing.assert_close(ytr, s.y_train)
    ptr, pte = s.planar()
    torch.testing.assert_close(data["planar"]["NR/R"][2], pte)
    assert data["planar"]["NR/NR"][0].shape == (40, 1, 8, 8)
    # the grid images are the DH maps, colatitude rows x longitude columns
    img = data["grid"]["NR/R"][2]
    assert img.shape == (20, 1, 20, 20)
    torch.testing.assert_close(img[:, 0, 3, 7], xte[:, 3 * 20 + 7, 0])
    # the NR/R test maps are the R/R ones; NR/R trains on the NR/NR maps
    torch.testing.assert_close(data["dh"]["R/R"][2], xte)
    torch.testing.assert_close(data["dh"]["NR/NR"][0], xtr)


def test_planar_cnn_collapses_on_rotated_test(data_dir):
    """The planar CNN learns the unrotated digits and falls to chance on rotated ones."""
    torch.set_num_threads(1)
    config = exp.DigitsConfig(data_dir=data_dir, n_train=400, n_test=100, epochs=6, bandwidth=10)
    recs = {r["split"]: r["accuracy"] for r in exp.run_experiment(config, ["planar"], progress=False, log=lambda s: None)}
    assert recs["NR/NR"] > 75
    assert recs["NR/R"] < 30


def test_table_rows_are_models():
    recs = [dict(model=m, label=m.upper(), split=s, accuracy=a, params=123, train_seconds=4.0, infer_ms_per_sample=0.5)
            for m, accs in (("a", (99.0, 50.0, 10.0)), ("b", (90.0, 91.0, 89.5))) for s, a in zip(SPLITS, accs)]
    lines = exp.format_table(recs).splitlines()
    assert lines[0].split() == ["model", "NR/NR", "R/R", "NR/R", "params", "train", "s", "infer", "ms"]
    assert lines[2].split() == ["A", "99.00", "50.00", "10.00", "123", "4", "0.50"]
    assert lines[3].split()[:4] == ["B", "90.00", "91.00", "89.50"] and len(lines) == 4  # no intervals: no note
    recs[0]["ci95"] = [97.12, 99.61]  # a record with an interval (new runs): shown in its cell, the note below
    lines = exp.format_table(recs).splitlines()
    assert lines[2].split()[:4] == ["A", "99.00", "[97.1,", "99.6]"] and lines[-1] == exp.INTERVAL_NOTE


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"), (dict(bandwidth=8), "bandwidth"), (dict(nside=12), "nside"),
    (dict(lr=-1.0), "lr"), (dict(device="tpu"), "device"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exp.DigitsConfig(**kwargs)


def test_model_names_of_the_light_config_are_the_models():
    # the command's help reads digits_config.MODEL_NAMES (no torch); the models live in MODELS
    from deepsphere_gen.experiments.digits_config import MODEL_NAMES

    assert tuple(exp.MODELS) == MODEL_NAMES


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        exp.run_experiment(exp.DigitsConfig(), ["resnet"], progress=False)


@pytest.mark.skipif("hybrid" in exp.available_models(), reason="the hybrid model is installed")
def test_missing_hybrid_is_a_clear_error():
    with pytest.raises(ValueError, match="hybrid"):
        exp.run_experiment(exp.DigitsConfig(), ["hybrid"], progress=False)


def test_cli_json_and_plot(tmp_path, data_dir, capsys):
    out, png = tmp_path / "d.json", tmp_path / "figs" / "new" / "d.png"  # a missing folder of --plot is created
    rc = main(["digits", "--models", "planar", "graph", "--n-train", "30", "--n-test", "10", "--epochs", "1",
               "--bandwidth", "10", "--threads", "1", "--data-dir", data_dir, "--json", str(out),
               "--plot", str(png), "--no-progress"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [(r["model"], r["split"]) for r in doc["records"]] == [(m, s) for m in ("planar", "graph") for s in SPLITS]
    assert {"model", "split", "accuracy", "params"} <= set(doc["records"][0])
    assert doc["meta"]["config"]["n_train"] == 30 and doc["meta"]["paper"]["Planar CNN"]["NR/R"] == 11.36
    assert doc["meta"]["cpu"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "planar CNN" in text and "DeepSphere graph" in text and "Cobb et al. 2021" in text


def test_cli_errors(capsys, data_dir):
    assert main(["digits", "--threads", "0", "--data-dir", data_dir]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main(["digits", "--bandwidth", "4", "--data-dir", data_dir]) == 2
    assert "bandwidth" in capsys.readouterr().err
    assert main(["digits", "--device", "gpu", "--data-dir", data_dir]) == 2
    assert "unknown device 'gpu'; valid devices here: cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["digits", "--models", "resnet"])


@pytest.mark.parametrize("option, value, message", [
    ("--json", "{tmp}", "--json {tmp} is a folder, not a file"),
    ("--plot", "{tmp}/p.txt", "--plot {tmp}/p.txt: unsupported figure format 'txt'"),
    ("--plot", "{tmp}/a-file/p.png", "the folder of --plot {tmp}/a-file is a file, not a folder"),
    ("--data-dir", "{tmp}/a-file", "--data-dir {tmp}/a-file is a file, not a folder"),
    ("--seed", "-1", "--seed must be >= 0"),
])
def test_cli_output_paths_and_seed_checked_before_any_work(tmp_path, data_dir, monkeypatch, capsys, option, value,
                                                          message):
    """A bad --json, --plot, --data-dir or --seed is a one-line error (exit 2) before the data, the figure or the
    training (which would otherwise run for minutes and then fail writing)."""
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output paths were checked")

    monkeypatch.setattr(exp, "run_experiment", no_work)
    monkeypatch.setattr("deepsphere_gen.commands.digits._plot", no_work)
    (tmp_path / "a-file").write_text("x")
    args = {"--models": "planar", "--data-dir": data_dir, option: value.format(tmp=tmp_path)}
    assert main(["digits", "--no-progress", *(word for pair in args.items() for word in pair)]) == 2
    err = capsys.readouterr().err
    assert f"deepsphere-gen digits: error: {message.format(tmp=tmp_path)}" in err
    assert len(err.strip().splitlines()) == 1
