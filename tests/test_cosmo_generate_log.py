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
