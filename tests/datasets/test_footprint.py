"""Nested base patches, footprints and HEALPix FITS input."""
import healpy as hp
import numpy as np
import pytest

from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.datasets._footprint import (
    BUILTIN_FOOTPRINT,
    apply_footprint,
    band_footprint,
    builtin_footprint,
    check_fits_ordering,
    check_mask,
    read_footprint,
    read_healpix_fits,
    split_patches,
)
from deepsphere_gen.sampling import base_patch_indices


@pytest.mark.parametrize("level", [0, 1, 2])
def test_split_patches_are_the_nested_base_patches(level):
    nside = 16
    maps = np.random.default_rng(0).standard_normal((3, 12 * nside**2))
    values, idx = split_patches(maps, level)
    npatch = 12 * 4**level
    assert values.shape == (3, npatch, 12 * nside**2 // npatch) and idx.shape == values.shape[1:]
    for p in (0, npatch // 2, npatch - 1):
        np.testing.assert_array_equal(idx[p], base_patch_indices(nside, level, p))
        np.testing.assert_array_equal(values[:, p], maps[:, idx[p]])
    # a base patch is one connected nested block: its pixels share one ancestor at nside 2**level
    assert np.all(idx[1] >> (2 * int(np.log2(nside) - level)) == 1)


def test_split_patches_errors():
    with pytest.raises(ValueError, match="12 \\* nside"):
        split_patches(np.zeros(100), 0)
    with pytest.raises(ValueError, match="level"):
        split_patches(np.zeros(12 * 4), 2)


def test_band_footprint_area():
    nside = 64
    m = band_footprint(nside, -40, -15, 300, 100)
    area = (np.sin(np.radians(-15)) - np.sin(np.radians(-40))) * (160 / 360) / 2
    assert m.dtype == bool and m.mean() == pytest.approx(area, rel=0.03)
    full = band_footprint(nside, -90, 90, 0, 0)
    assert full.all()


def test_builtin_footprint_matches_function_and_upgrades():
    np.testing.assert_array_equal(read_footprint(BUILTIN_FOOTPRINT, 32), band_footprint(32))
    m64 = builtin_footprint(64)
    assert m64.shape == (12 * 64**2,)
    np.testing.assert_array_equal(
        hp.ud_grade(m64.astype(float), 32, order_in="NESTED", order_out="NESTED") > 0.5, band_footprint(32))
    with pytest.raises(ValueError, match="nside 32"):
        builtin_footprint(16)


def test_read_fits_orderings_and_nside(tmp_path):
    nside = 8
    nest = np.arange(12 * nside**2, dtype=np.float64)
    f_nest, f_ring = tmp_path / "nest.fits", tmp_path / "ring.fits"
    hp.write_map(str(f_nest), nest, nest=True, dtype=np.float64)
    hp.write_map(str(f_ring), hp.reorder(nest, n2r=True), nest=False, dtype=np.float64)
    np.testing.assert_array_equal(read_healpix_fits(f_nest, nside), nest)
    with pytest.raises(ValueError, match="RING ordering but NESTED was expected"):
        read_healpix_fits(f_ring, nside)
    np.testing.assert_array_equal(read_healpix_fits(f_ring, nside, ordering="any"), nest)
    np.testing.assert_array_equal(read_healpix_fits(f_ring, nside, ordering="RING"), nest)
    with pytest.raises(ValueError, match="nside 8, expected nside 16"):
        read_healpix_fits(f_nest, 16)
    with pytest.raises(ValueError, match="no such FITS"):
        read_healpix_fits(tmp_path / "missing.fits", nside)
    (tmp_path / "junk.fits").write_text("not a fits file")
    with pytest.raises(ValueError, match="cannot read"):
        read_healpix_fits(tmp_path / "junk.fits", nside)


def test_one_ordering_check_for_the_library_and_classify(tmp_path):
    """check_fits_ordering is the ORDERING check of read_healpix_fits and of `massmaps classify` (which passes its
    own advice): header value -> "NESTED"/"RING", refusals naming the file."""
    assert check_fits_ordering(" nested ", "f.fits") == "NESTED"
    assert check_fits_ordering("RING", "f.fits", "ring") == "RING"
    for value in (None, "", " "):
        with pytest.raises(ValueError, match=r"f.fits: the ORDERING header is missing, expected NESTED or RING"):
            check_fits_ordering(value, "f.fits", "NESTED")
    with pytest.raises(ValueError, match=r"f.fits: the ORDERING header must be 'NESTED' or 'RING' .*got 'HEALPIX'"):
        check_fits_ordering("HEALPIX", "f.fits", "NESTED")
    with pytest.raises(ValueError, match=r"f.fits is in RING ordering but NESTED was expected \(pass ordering='any'"):
        check_fits_ordering("RING", "f.fits", "NESTED")
    with pytest.raises(ValueError, match=r"but NESTED was expected \(convert it\)"):
        check_fits_ordering("RING", "f.fits", "NESTED", advice="convert it")
    with pytest.raises(ValueError, match=r"ordering must be 'NESTED', 'RING' or 'ANY' \(case-insensitive\), got 'row'"):
        check_fits_ordering("RING", "f.fits", "row")
    f = tmp_path / "none.fits"
    hp.write_map(str(f), np.zeros(12 * 4**2), nest=True, dtype=np.float64)
    from astropy.io import fits

    with fits.open(f, mode="update") as hdus:
        del hdus[1].header["ORDERING"]
    with pytest.raises(ValueError, match="ORDERING header is missing"):
        read_healpix_fits(f, 4)


def test_read_healpix_fits_copies_one_column(tmp_path):
    """A file of 12 columns: the chosen column alone is copied into memory (memory-mapped read; was: the whole
    table, 12 maps, read before the column was taken).  Python memory traced at nside 32, in maps of 96 KiB:
    3.9 at the peak (was 15.9)."""
    import tracemalloc

    nside = 32
    cols = [np.full(12 * nside**2, float(j)) for j in range(12)]
    hp.write_map(str(tmp_path / "wide.fits"), cols, nest=True, dtype=np.float64)
    read_healpix_fits(tmp_path / "wide.fits", nside, field=5)  # imports done before the trace
    tracemalloc.start()
    try:
        m = read_healpix_fits(tmp_path / "wide.fits", nside, field=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(m, cols[5])
    assert peak < 6 * cols[0].nbytes, peak / cols[0].nbytes  # the table is 12 maps


def test_read_footprint_masks_unseen_and_zero(tmp_path):
    nside = 8
    mask = np.zeros(12 * nside**2)
    mask[:100] = 1.0
    mask[100:110] = UNSEEN
    path = tmp_path / "mask_ring.fits"
    hp.write_map(str(path), hp.reorder(mask, n2r=True), nest=False)
    got = read_footprint(path, nside)  # RING converted (ordering='any')
    np.testing.assert_array_equal(np.flatnonzero(got), np.arange(100))
    empty = tmp_path / "empty.fits"
    hp.write_map(str(empty), np.zeros(12 * nside**2), nest=True)
    with pytest.raises(ValueError, match="empty footprint"):
        read_footprint(empty, nside)


def test_apply_footprint_drops_outside_and_rejects_unseen_inside():
    nside = 8
    maps = np.random.default_rng(1).standard_normal((2, 12 * nside**2))
    mask = np.zeros(12 * nside**2, bool)
    mask[50:90] = True
    maps[:, :50] = UNSEEN  # outside: fine
    maps[:, 95] = np.nan
    values, idx = apply_footprint(maps, mask)
    np.testing.assert_array_equal(idx, np.arange(50, 90))
    np.testing.assert_array_equal(values, maps[:, 50:90])
    maps[1, 60] = UNSEEN
    with pytest.raises(ValueError, match="1 UNSEEN/NaN/inf pixel value\\(s\\) lie inside the footprint"):
        apply_footprint(maps, mask)
    with pytest.raises(ValueError, match="empty footprint"):
        apply_footprint(maps, np.zeros(12 * nside**2, bool))
    with pytest.raises(ValueError, match="0/1"):
        check_mask(np.full(12 * nside**2, 2), nside)
    with pytest.raises(ValueError, match="shape"):
        check_mask(np.ones(10, bool), nside)


def test_read_footprint_refuses_a_map(tmp_path):
    """A convergence map given as a footprint kept every non-zero pixel (the whole sky), for massmaps and cosmo
    alike: values other than 0/1 are refused, naming the file; UNSEEN and NaN count as outside."""
    nside = 8
    values = np.zeros(12 * nside**2)
    values[:100] = 1.0
    values[100:110] = hp.UNSEEN
    path = tmp_path / "mask.fits"
    hp.write_map(str(path), values, nest=True, dtype=np.float64)
    mask = read_footprint(path, nside)
    assert mask.sum() == 100 and mask[:100].all()
    values[:100] = np.random.default_rng(0).normal(size=100)  # a map, not a mask
    hp.write_map(str(path), values, nest=True, dtype=np.float64, overwrite=True)
    with pytest.raises(ValueError, match=r"mask.fits is not a 0/1 mask: 100 of 768 pixels hold other values"):
        read_footprint(path, nside)


def test_bad_pixels_flags_unseen_nan_inf_in_both_precisions():
    """The one definition of a pixel without a value (classify, the mass-map data set and the footprint reader
    share it): healpy's UNSEEN in float32 and float64, NaN, +-inf and anything beyond |1e29|; not ordinary values."""
    import healpy as hp

    from deepsphere_gen.datasets import bad_pixels

    for dtype in (np.float32, np.float64):
        v = np.array([0.0, -1.0, 1e28, -1e28, hp.UNSEEN, np.nan, np.inf, -np.inf, 2e29], dtype=dtype)
        assert bad_pixels(v).tolist() == [False] * 4 + [True] * 5
    assert bad_pixels(np.zeros((2, 3))).shape == (2, 3)


def test_read_healpix_fits_reads_cut_sky_files(tmp_path):
    """A healpy cut-sky file (partial=True: a PIXEL column, then the data columns) reads as the full sky with
    UNSEEN outside its pixels; ``field`` counts the data columns (healpy detects the layout itself)."""
    import healpy as hp

    from deepsphere_gen.datasets import read_healpix_fits

    m = np.full(12 * 8**2, hp.UNSEEN)
    m[100:300] = np.arange(200.0)
    path = tmp_path / "cut.fits"
    hp.write_map(str(path), [m, 2 * m], nest=True, partial=True, dtype=np.float64)
    for field, factor in ((0, 1.0), (1, 2.0)):
        got = read_healpix_fits(path, 8, field=field)
        np.testing.assert_array_equal(got[100:300], factor * np.arange(200.0))
        assert np.all(got[:100] == hp.UNSEEN) and np.all(got[300:] == hp.UNSEEN)


def test_footprint_refusals_name_their_remedy_and_the_remedy_works(tmp_path):
    """A mask at another nside and an apodised mask were refused without a way out (massmaps and cosmo share the
    message): the refusal names --nside / healpy.ud_grade and the threshold, and following it gives a mask."""
    nside = 8
    fine = np.zeros(12 * (2 * nside) ** 2)
    fine[: 4 * 100 + 2] = 1.0  # 100 whole parents at nside 8 and one half-covered one (2 of 4 children)
    path = tmp_path / "mask16.fits"
    hp.write_map(str(path), fine, nest=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"has nside 16, expected nside 8: run at --nside 16, or average the mask down "
                                         r"with healpy.ud_grade\(mask, 8, order_in='NESTED', order_out='NESTED'\) .* "
                                         r"and threshold it, e\.g\. mask > 0\.5 .*healpy.read_map\(FILE, nest=True\)"):
        read_footprint(path, nside)
    coarse = hp.ud_grade(fine, nside, order_in="NESTED", order_out="NESTED")  # averages: the edge parent holds 0.5
    apodised = tmp_path / "mask8_apodised.fits"
    hp.write_map(str(apodised), coarse, nest=True, dtype=np.float64)
    with pytest.raises(ValueError, match=r"not a 0/1 mask: 1 of 768 pixels .* threshold it, e\.g\. mask > 0\.5 "
                                         r"\(mask > 0 keeps every pixel it touches\)"):
        read_footprint(apodised, nside)
    for cut, kept in ((0.5, 100), (0.0, 101)):
        hp.write_map(str(apodised), (coarse > cut).astype(np.float64), nest=True, dtype=np.float64, overwrite=True)
        assert read_footprint(apodised, nside).sum() == kept


def test_nside_advice_depends_on_the_direction_and_following_it_gives_the_mask(tmp_path):
    """The remedy for a mask at another nside was healpy.ud_grade(mask, N) "and threshold (ud_grade averages)" also
    going up, and without order_in/order_out='NESTED' (ud_grade assumes RING: a mask read with nest=True came out
    scrambled).  Going down: the NESTED call thresholded; going up: the NESTED call alone (copies, no threshold).
    Each advice followed literally (the mask read with nest=True, as it says) gives the mask the run expects."""
    import re

    from deepsphere_gen.sampling import MASK_REMEDY

    coarse = band_footprint(16).astype(np.float64)
    fine = hp.ud_grade(coarse, 32, order_in="NESTED", order_out="NESTED")  # the same band at nside 32
    for file_nside, nside, values, expected in ((32, 16, fine, coarse), (16, 32, coarse, fine)):
        path = tmp_path / f"mask{file_nside}.fits"
        hp.write_map(str(path), values, nest=True, dtype=np.float64, overwrite=True)
        with pytest.raises(ValueError, match=f"has nside {file_nside}, expected nside {nside}") as exc:
            read_footprint(path, nside)
        text = str(exc.value)
        call = re.search(r"healpy\.ud_grade\(mask, (\d+), order_in='NESTED', order_out='NESTED'\)", text)
        threshold = MASK_REMEDY in text  # the words of every mask refusal (was: its own copy of the sentence)
        assert call and int(call[1]) == nside and threshold == (nside < file_nside), text
        assert "nest=True" in text
        mask = hp.read_map(str(path), nest=True)
        out = hp.ud_grade(mask, nside, order_in="NESTED", order_out="NESTED")
        out = (out > 0.5) if threshold else out
        hp.write_map(str(path), np.asarray(out, dtype=np.float64), nest=True, dtype=np.float64, overwrite=True)
        np.testing.assert_array_equal(read_footprint(path, nside), expected.astype(bool))
        # the advice without the NESTED arguments (what it said) scrambles a mask read with nest=True
        assert not np.array_equal(hp.ud_grade(mask, nside) > 0.5, expected.astype(bool))


def test_every_mask_entry_point_shares_one_rule():
    """Booleans or exactly 0/1 everywhere a mask enters (was: HealpixSampling refused 0/1 floats with no remedy,
    footprint_area_deg2 counted a 0.5 mask as the whole sky (998.76 deg2 of a half-valued footprint), and
    footprint_copies took it); 0.5 is refused with the threshold remedy by each."""
    from deepsphere_gen.datasets.pseudo_cl import PseudoCl
    from deepsphere_gen.datasets.survey_footprint import footprint_area_deg2, footprint_copies
    from deepsphere_gen.sampling import HealpixSampling

    nside = 16
    mask = np.zeros(12 * nside**2)
    mask[5 * nside**2:5 * nside**2 + 40] = 1.0  # a 0/1 float mask in base pixel 5
    boolean = mask.astype(bool)
    np.testing.assert_array_equal(HealpixSampling(nside, mask=mask).indices, np.flatnonzero(boolean))
    assert footprint_area_deg2(mask) == pytest.approx(40 * hp.nside2pixarea(nside, degrees=True))
    np.testing.assert_array_equal(footprint_copies(mask), footprint_copies(boolean))
    np.testing.assert_array_equal(apply_footprint(np.zeros((1, mask.size)), mask)[1], np.flatnonzero(boolean))
    half = mask * 0.5
    for call in (lambda: HealpixSampling(nside, mask=half), lambda: footprint_area_deg2(half),
                 lambda: footprint_copies(half), lambda: apply_footprint(np.zeros((1, mask.size)), half),
                 lambda: PseudoCl(half), lambda: check_mask(half, nside)):
        with pytest.raises(ValueError, match=r"mask must hold booleans or exactly 0/1 .*e\.g\. 0\.5\); threshold it, "
                                             r"e\.g\. mask > 0\.5"):
            call()
    with pytest.raises(ValueError, match="mask must have shape \\(3072,\\) for nside 16"):
        HealpixSampling(nside, mask=mask[:-1])
    with pytest.raises(ValueError, match="full HEALPix sky"):
        footprint_area_deg2(mask[:-1])
    assert footprint_area_deg2(np.zeros(12)) == 0.0  # empty: no area (the estimators refuse it)


def test_estimators_refuse_missing_values():
    """One NaN made every PseudoCl band power NaN and its fft_band_powers image NaN, silently."""
    from deepsphere_gen.datasets.patch_psd import fft_band_powers, fft_ell
    from deepsphere_gen.datasets.pseudo_cl import PseudoCl

    nside = 8
    mask = np.zeros(12 * nside**2, bool)
    mask[: 4 * nside**2] = True
    est = PseudoCl(mask)
    values = np.random.default_rng(0).standard_normal((1, int(mask.sum())))
    assert np.isfinite(est(values)).all()
    values[0, 7] = np.nan
    with pytest.raises(ValueError, match="1 UNSEEN/NaN/inf pixel value\\(s\\) lie in the values given to PseudoCl"):
        est(values)
    images = np.random.default_rng(1).standard_normal((2, 8, 8))
    edges = np.unique(fft_ell(8, nside))[[1, 3, -1]]
    assert np.isfinite(fft_band_powers(images, nside, edges)).all()
    images[1, 2, 3] = UNSEEN
    with pytest.raises(ValueError, match="1 UNSEEN/NaN/inf pixel value\\(s\\) lie in the images given to fft_band"):
        fft_band_powers(images, nside, edges)


def test_a_footprint_argument_is_refused_by_its_name(tmp_path):
    """MassMapDataset(footprint=) and read_footprint refused a bad footprint calling it "mask" (check_mask's default
    name); sampling.nside_of is the one full-sky size check (check_mask's and the datasets')."""
    from deepsphere_gen.datasets import _footprint
    from deepsphere_gen.datasets.massmaps import MassMapDataset
    from deepsphere_gen.sampling import MASK_REMEDY, nside_of

    nside = 8
    maps = np.random.default_rng(0).standard_normal((2, 3, 12 * nside**2))
    half = np.full(12 * nside**2, 0.5)
    with pytest.raises(ValueError, match=r"^footprint must hold booleans or exactly 0/1 \(1 = pixel kept\), got 768 "
                                         r"pixel\(s\) of other values"):
        MassMapDataset(maps, footprint=half, split="all", clean_std=1.0)
    with pytest.raises(ValueError, match=r"^footprint must have shape \(768,\) for nside 8, got \(10,\)$"):
        MassMapDataset(maps, footprint=np.ones(10, bool), split="all", clean_std=1.0)
    empty = tmp_path / "empty.fits"
    hp.write_map(str(empty), np.zeros(12 * nside**2), nest=True)
    with pytest.raises(ValueError, match=f"^empty footprint: footprint {empty} keeps no pixel$"):
        read_footprint(empty, nside)
    assert _footprint.nside_of is nside_of and nside_of(768) == 8
    for npix in (10, 12 * 3**2, 0):
        with pytest.raises(ValueError, match=f"^{npix} pixels is not a full HEALPix sky"):
            nside_of(npix)
    with pytest.raises(ValueError, match=r"^mask must be a full HEALPix sky of 12 nside\*\*2 values \(nside a power of "
                                         r"2\), got shape \(108,\)$"):
        check_mask(np.ones(12 * 3**2, bool))
    assert MASK_REMEDY in _footprint._MASK_VALUES_ADVICE
