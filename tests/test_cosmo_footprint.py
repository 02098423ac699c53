"""The cosmo grid's footprint is a partial-sky survey mask: a FITS file keeping more than 90 % of the sky is
refused by the library where the footprint is read (``datasets.cosmo_grid.load_footprint``), so that a Python
user of the experiment gets the refusal that ``deepsphere-gen cosmo --footprint`` gives (it was the command's
check alone: the library simulated the whole sky through a full-sky "mask")."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen.datasets.cosmo_grid import (MAX_FOOTPRINT_FRACTION, CosmoGridConfig, generate_cosmo_grid,
                                                load_footprint)
from deepsphere_gen.experiments.cosmo import CosmoExperimentConfig, generate
from deepsphere_gen.experiments.cosmo.data import pseudo_cl_estimator

NSIDE = 32


def _mask_file(path, base_pixels: int):
    """A 0/1 NESTED mask keeping the first ``base_pixels`` of the 12 base pixels (UNSEEN outside)."""
    mask = np.full(12 * NSIDE**2, hp.UNSEEN)
    mask[: base_pixels * NSIDE**2] = 1.0
    hp.write_map(str(path), mask, nest=True, dtype=np.float64)
    return str(path)


def test_the_library_refuses_a_footprint_of_nearly_the_whole_sky(tmp_path):
    assert MAX_FOOTPRINT_FRACTION == 0.9
    ten = _mask_file(tmp_path / "ten.fits", 10)  # 83.3 % of the sky: a (large) survey
    assert load_footprint(ten, NSIDE).sum() == 10 * NSIDE**2
    eleven = _mask_file(tmp_path / "eleven.fits", 11)
    with pytest.raises(ValueError, match=r"footprint .*eleven.fits keeps 91.7 % of the sky: cosmo analyses a partial-sky "
                                         r"survey footprint \(at most 90 % of the sky\); pass the survey's mask"):
        load_footprint(eleven, NSIDE)
    full = _mask_file(tmp_path / "full.fits", 12)
    grid = CosmoGridConfig(nside=NSIDE, n_train=2, n_test=1, n_real=1, n_fiducial=1, n_calib=1, footprint=full)
    cfg = CosmoExperimentConfig(grid=grid, data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "out"),
                                progress=False)
    for call in (lambda: generate(cfg, log=None), lambda: generate_cosmo_grid(grid, tmp_path / "data", verbose=False),
                 lambda: pseudo_cl_estimator(cfg)):
        with pytest.raises(ValueError, match="keeps 100.0 % of the sky"):
            call()
    assert not (tmp_path / "data").exists()  # refused before any simulation
