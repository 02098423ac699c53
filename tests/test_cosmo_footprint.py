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


def _write(path, mask, nest=True, outside=0.0):
    """``mask`` (NESTED bool) written as a 0/1 HEALPix FITS file in NESTED or RING order, ``outside`` off the mask."""
    values = np.where(mask, 1.0, outside)
    hp.write_map(str(path), values if nest else hp.reorder(values, n2r=True), nest=nest, dtype=np.float64)
    return str(path)


def test_a_footprint_is_named_by_its_content_not_its_file(tmp_path, monkeypatch):
    """The data set's folder and the checkpoints' fingerprints depend on the pixels a footprint keeps, not on the
    file's name, path, pixel ordering or fill value (was: the --footprint string itself, so a copy of the file or a
    relative path refused the checkpoints and generated the same data set again)."""
    from deepsphere_gen.datasets.cosmo_grid import footprint_id, grid_fields
    from deepsphere_gen.datasets.survey_footprint import stage3_footprint
    from deepsphere_gen.experiments.cosmo.members import member_meta, mlp_meta

    mask = np.zeros(12 * NSIDE**2, dtype=bool)
    mask[: 2 * NSIDE**2] = True
    (tmp_path / "a").mkdir()
    files = [_write(tmp_path / "a" / "mask.fits", mask), _write(tmp_path / "ring.fits", mask, nest=False),
             _write(tmp_path / "unseen.fits", mask, outside=hp.UNSEEN)]
    monkeypatch.chdir(tmp_path / "a")
    files.append("mask.fits")  # the first file by a relative path
    grids = [CosmoGridConfig(nside=NSIDE, n_train=2, n_test=1, n_real=1, n_fiducial=1, n_calib=1, footprint=f)
             for f in files]
    ids = {footprint_id(g) for g in grids}
    assert len(ids) == 1 and ids.pop().startswith("mask-sha256:")
    assert all(grid_fields(g)["footprint"] == footprint_id(g) for g in grids)  # the name the fingerprints hold
    configs = [CosmoExperimentConfig(grid=g, data_dir=str(tmp_path / "data"), progress=False) for g in grids]
    assert len({str(grid_fields(g)) for g in grids}) == 1
    assert len({member_meta(c, 0)["fingerprint"] for c in configs}) == 1
    assert len({mlp_meta(c, "power_spectrum")["fingerprint"] for c in configs}) == 1
    paths = {generate_cosmo_grid(g, tmp_path / "data", progress=False, verbose=False) for g in grids}
    assert len(paths) == 1 and len(list((tmp_path / "data").iterdir())) == 1  # one data set, generated once
    # another mask is another data set and fingerprint
    other = mask.copy()
    other[0] = False
    assert footprint_id(CosmoGridConfig(nside=NSIDE, footprint=_write(tmp_path / "other.fits", other))) != \
        footprint_id(grids[0])
    # a file holding the built-in footprint is the built-in footprint: its data set and fingerprints
    builtin = _write(tmp_path / "stage3.fits", stage3_footprint(NSIDE))
    assert footprint_id(CosmoGridConfig(nside=NSIDE, footprint=builtin)) == "stage3"
    a, b = (CosmoExperimentConfig(grid=CosmoGridConfig(nside=NSIDE, footprint=f)) for f in ("stage3", builtin))
    assert member_meta(a, 1) == member_meta(b, 1) and mlp_meta(a, "handcrafted") == mlp_meta(b, "handcrafted")


@pytest.mark.parametrize("nside", [32, 64, 128, 256])
def test_the_built_in_footprint_is_named_stage3_by_its_content(nside):
    """_mask_id names the footprint by its pixels alone: the built-in mask's pixels give "stage3" (the name its cache
    keys were computed with); one pixel fewer gives a mask hash."""
    from deepsphere_gen.datasets.cosmo_grid import _mask_id

    mask = load_footprint("stage3", nside)
    assert _mask_id(mask, nside) == "stage3"
    mask[np.flatnonzero(mask)[0]] = False
    assert _mask_id(mask, nside).startswith("mask-sha256:")


def test_the_default_data_set_key_and_fingerprints_are_unchanged():
    """Naming the footprint by its content left the built-in footprint's key and fingerprints as they were: the
    data sets and checkpoints of default runs stay valid (values recorded before the change)."""
    from deepsphere_gen.datasets._massmaps_cache import cache_key
    from deepsphere_gen.datasets.cosmo_grid import _params
    from deepsphere_gen.experiments.cosmo.members import member_meta, mlp_meta

    config = CosmoExperimentConfig()
    grid = config.grid
    assert cache_key(_params(grid)) == "c300eb7c86270242"
    quick = CosmoGridConfig(nside=32)
    assert cache_key(_params(quick)) == "b248b11111aa1ae8"
    assert [member_meta(config, 0)["fingerprint"], member_meta(config, 2)["fingerprint"],
            mlp_meta(config, "power_spectrum")["fingerprint"], mlp_meta(config, "handcrafted", 1)["fingerprint"]] == \
        ["7ba59c37891a", "d3904caed4e7", "fa411c1d83b8", "5eb82aabae51"]


def test_a_footprint_file_of_several_columns_is_refused_naming_them(tmp_path, capsys):
    """A survey mask file with one column per selection (here 2, NESTED, written by healpy) is refused by every
    footprint reader, naming its columns, as ``massmaps classify`` refuses a map file of several columns (was:
    column 0 read silently by ``datasets.read_footprint``, ``cosmo_grid.load_footprint`` and ``cosmo --footprint``);
    ``read_footprint(field=)`` chooses one, and a one-column file is read as before."""
    from deepsphere_gen.cli import main
    from deepsphere_gen.datasets import read_footprint

    a = np.zeros(12 * NSIDE**2, dtype=bool)
    a[:370] = True
    b = np.zeros(12 * NSIDE**2, dtype=bool)
    b[2000:3024] = True
    path = tmp_path / "two.fits"
    hp.write_map(str(path), [a.astype(np.float64), b.astype(np.float64)], nest=True, column_names=["MASK_A", "MASK_B"])
    names = rf"{path} has 2 columns \(0: MASK_A, 1: MASK_B\); choose one with field=N"
    for call in (lambda: read_footprint(path, NSIDE), lambda: load_footprint(str(path), NSIDE)):
        with pytest.raises(ValueError, match=names + ", or, for a command's --footprint, write that column alone"):
            call()
    np.testing.assert_array_equal(read_footprint(path, NSIDE, field=1), b)
    np.testing.assert_array_equal(read_footprint(path, NSIDE, field=0), a)
    with pytest.raises(ValueError, match=r"field=2 is out of range: .*two.fits has 2 column\(s\) \(MASK_A, MASK_B\)"):
        read_footprint(path, NSIDE, field=2)
    assert main(["cosmo", "--quick", "--no-progress", "generate", "--data-dir", str(tmp_path / "d"),
                 "--footprint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "has 2 columns (0: MASK_A, 1: MASK_B)" in err and "hp.read_map(" in err, err
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())
    one = tmp_path / "one.fits"
    hp.write_map(str(one), b.astype(np.float64), nest=True)
    np.testing.assert_array_equal(read_footprint(one, NSIDE), b)


def test_a_refused_column_choice_reads_no_data(tmp_path, monkeypatch):
    """The column is chosen from the header before any data is read: a file of several columns without a field, or
    a field out of range, is refused without reading a map (was: column 0 read whole first, then the header opened
    again); the chosen column is the one read."""
    from deepsphere_gen.datasets import _footprint

    path = tmp_path / "two.fits"
    hp.write_map(str(path), [np.zeros(12 * NSIDE**2), np.ones(12 * NSIDE**2)], nest=True)
    read, real = [], hp.read_map
    monkeypatch.setattr(_footprint.hp, "read_map", lambda *a, **k: read.append(k["field"]) or real(*a, **k))
    for field in (None, 2):
        with pytest.raises(ValueError, match="choose one with field=N|field=2 is out of range"):
            _footprint.read_healpix_fits(path, NSIDE, field=field)
    assert read == []
    assert _footprint.read_healpix_fits(path, NSIDE, field=1).min() == 1 and read == [1]
