"""experiments.cosmo.generate(config, log=...): its "cosmo: ..." lines go to ``log`` (None:
quiet), as train / evaluate_all's do; they were printed whatever the caller asked."""
from deepsphere_gen.datasets.cosmo_grid import CosmoGridConfig
from deepsphere_gen.experiments.cosmo import CosmoExperimentConfig, generate


def test_generate_logs_through_log_and_is_quiet_with_none(tmp_path, capsys):
    grid = CosmoGridConfig(nside=32, n_train=2, n_test=1, n_real=1, n_fiducial=1, n_calib=1)
    cfg = CosmoExperimentConfig(grid=grid, data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "out"),
                                progress=False)
    path = generate(cfg, log=None)
    assert capsys.readouterr().out == ""  # generation, quiet
    assert generate(cfg, log=None) == path
    assert capsys.readouterr().out == ""  # reuse, quiet
    lines = []
    assert generate(cfg, log=lines.append) == path
    assert capsys.readouterr().out == "" and lines == [f"cosmo: reusing {path}"]
    other = CosmoExperimentConfig(grid=grid, data_dir=str(tmp_path / "data2"), out_dir=str(tmp_path / "out"),
                                  progress=False)
    lines.clear()
    generate(other, log=lines.append)
    assert capsys.readouterr().out == ""
    assert lines[0].startswith("cosmo: 2 training + 1 held-out") and lines[-1].startswith("cosmo: 5 full-sky maps")
    generate(other)  # the default, print, as before
    assert capsys.readouterr().out.startswith("cosmo: reusing")


def test_a_damaged_data_set_is_named_with_the_folder_to_remove(tmp_path, capsys):
    """A truncated or missing file of a reused data set: one ValueError naming the file and saying to remove the
    folder, as massmaps words it (was: numpy's "mmap length is greater than file size", naming nothing)."""
    import re

    import numpy as np
    import pytest

    from deepsphere_gen.cli import main
    from deepsphere_gen.datasets.cosmo_grid import CosmoMapDataset, load_split

    grid = CosmoGridConfig(nside=32, n_train=2, n_test=1, n_real=1, n_fiducial=1, n_calib=1)
    cfg = CosmoExperimentConfig(grid=grid, data_dir=str(tmp_path / "data"), progress=False)
    path = generate(cfg, log=None)
    maps = path / "maps_train.npy"
    assert np.load(maps, mmap_mode="r").shape[0] == 8  # 2 cosmologies x 4 footprint copies
    good = maps.read_bytes()
    maps.write_bytes(good[: len(good) // 2])
    message = f"{maps} is missing or damaged (ValueError: mmap length is greater than file size); remove {path} " \
              "to generate it again"
    for call in (lambda: generate(cfg, log=None), lambda: load_split(path, "train"),
                 lambda: CosmoMapDataset(path, "train", [0.0] * 3)):
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    argv = ["cosmo", "generate", "--quick", "--n-train", "2", "--n-test", "1", "--n-real", "1", "--n-fiducial", "1",
            "--n-calib", "1", "--data-dir", str(tmp_path / "data"), "--no-progress"]
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"deepsphere-gen cosmo: error: {message}"
    maps.write_bytes(good)
    (path / "ids_test.npy").unlink()
    with pytest.raises(ValueError, match=re.escape(f"{path / 'ids_test.npy'} is missing or damaged (FileNotFoundError")):
        generate(cfg, log=None)
    np.save(path / "ids_test.npy", np.zeros((3, 3), dtype=np.int64))  # 4 samples, one row short
    with pytest.raises(ValueError, match=re.escape(f"{path / 'ids_test.npy'} is of shape [3, 3], its metadata says "
                                                   f"[4, 3]; remove {path} to generate it again")):
        generate(cfg, log=None)


def test_a_damaged_feature_cache_is_named(tmp_path):
    """A truncated summary-feature file in the data set: a ValueError naming it (was: zipfile.BadZipFile, a
    traceback through the command)."""
    import re

    import pytest

    from deepsphere_gen.experiments.cosmo.data import pseudo_cl_estimator
    from deepsphere_gen.experiments.cosmo.summaries import summary_features

    grid = CosmoGridConfig(nside=32, n_train=2, n_test=1, n_real=1, n_fiducial=1, n_calib=1)
    cfg = CosmoExperimentConfig(grid=grid, data_dir=str(tmp_path / "data"), progress=False)
    path = generate(cfg, log=None)
    est = pseudo_cl_estimator(cfg)
    first = summary_features(path, "test", cfg.noise_std(), est)
    (file,) = path.glob("features-test-*.npz")
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(ValueError, match=re.escape(f"{file} is damaged (BadZipFile: ") + ".*remove it to compute the "
                                         "features again"):
        summary_features(path, "test", cfg.noise_std(), est)
    file.unlink()
    again = summary_features(path, "test", cfg.noise_std(), est)
    assert all((again[k] == first[k]).all() for k in first)
