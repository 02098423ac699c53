"""Partial sky: nested base patches, survey footprints, HEALPix FITS input.

Every function works on NESTED pixel order.  Pixels outside a patch or footprint are
never returned: values come with the sorted nested indices of the pixels they belong to.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from .._validation import check_healpix_order, as_integer
from ..sampling import MASK_REMEDY, check_mask, check_nside, nside_of  # check_mask, nside_of: re-exported here

__all__ = [
    "nside_of",
    "split_patches",
    "band_footprint",
    "builtin_footprint",
    "check_fits_ordering",
    "read_healpix_fits",
    "data_columns",
    "choose_column",
    "read_footprint",
    "check_mask",
    "apply_footprint",
    "bad_pixels",
    "check_no_missing",
]

_DATA = Path(__file__).resolve().parents[2] / "data"
#: Shipped footprint (see data/README.md): band_footprint(32) stored as NESTED uint8 FITS.
BUILTIN_FOOTPRINT = _DATA / "footprint_band_nside32.fits"


def bad_pixels(values: np.ndarray) -> np.ndarray:
    """Pixels of ``values`` that hold no value (bool, same shape): NaN, inf, or healpy's UNSEEN (-1.6375e30, the
    fill outside a cut-sky file) and anything else beyond |1e29|."""
    return ~np.isfinite(values) | (np.abs(values) > 1e29)


def check_no_missing(values: np.ndarray, where: str, remedy: str = "the mask must exclude every missing pixel") -> None:
    """ValueError "N UNSEEN/NaN/inf pixel value(s) lie ``where``; ``remedy``" if ``values`` holds any
    :func:`bad_pixels`: the check of every estimator's input (one would return NaN for all its outputs).
    Cost: one pass over ``values``."""
    bad = bad_pixels(values)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} UNSEEN/NaN/inf pixel value(s) lie {where}; {remedy}")


def split_patches(maps: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Split full-sky NESTED maps into the 12 * 4**level nested base patches.

    maps: (..., 12 nside^2).  Returns ``values`` (..., npatch, npix_patch) (a view) and
    ``indices`` (npatch, npix_patch) int64 nested pixel indices; sky fraction per patch
    1 / (12 * 4**level).
    """
    maps = np.asarray(maps)
    npix = maps.shape[-1]
    nside = nside_of(npix)
    n = as_integer(level)
    if n is None or n < 0 or 2**n > nside:
        raise ValueError(f"patch level must be an integer with 1 <= 2**level <= nside={nside}, got {level!r}")
    level = n
    npatch = 12 * 4**level
    values = maps.reshape(maps.shape[:-1] + (npatch, npix // npatch))
    indices = np.arange(npix, dtype=np.int64).reshape(npatch, npix // npatch)
    return values, indices


def band_footprint(nside: int, lat_min: float = -40.0, lat_max: float = -15.0,
                   lon_min: float = 300.0, lon_max: float = 100.0) -> np.ndarray:
    """Band-shaped footprint (like a ground-based survey stripe): boolean NESTED mask (12 nside^2,).

    Pixel centres with latitude in [lat_min, lat_max] degrees and longitude in the
    range from lon_min to lon_max degrees, going east and wrapping through 0.
    """
    nside = check_nside(nside)
    if not -90 <= lat_min < lat_max <= 90:
        raise ValueError(f"need -90 <= lat_min < lat_max <= 90, got {lat_min}, {lat_max}")
    lon, lat = hp.pix2ang(nside, np.arange(12 * nside * nside), nest=True, lonlat=True)
    span = (lon_max - lon_min) % 360.0 or 360.0
    in_lon = (lon - lon_min) % 360.0 <= span
    mask = in_lon & (lat >= lat_min) & (lat <= lat_max)
    return check_mask(mask, nside)


def builtin_footprint(nside: int) -> np.ndarray:
    """The shipped band footprint (data/footprint_band_nside32.fits) at ``nside`` >= 32, NESTED bool."""
    nside = check_nside(nside)
    if nside < 32:
        raise ValueError(f"the built-in footprint is defined at nside 32; got nside {nside} < 32")
    mask32 = read_footprint(BUILTIN_FOOTPRINT, 32)
    # nested children of a kept pixel are kept: upgrading is a repeat
    return np.repeat(mask32, (nside // 32) ** 2)


#: what :func:`check_fits_ordering` advises by default for a file in the other ordering (library callers)
_ORDERING_ADVICE = "pass ordering='any' to convert, or rewrite the file with nest=True"


def check_fits_ordering(value, path, expected: str = "ANY", advice: str | None = None) -> str:
    """The pixel ordering a HEALPix FITS header declares: its ORDERING ``value`` as "NESTED" or "RING".

    ValueError naming ``path`` for a missing or other value, or for an ordering other than ``expected``
    ("NESTED" or "RING"; "ANY": either), with ``advice`` in parentheses (default: :func:`read_healpix_fits`'s,
    ``ordering='any'`` or a rewrite; ``massmaps classify`` passes its own).  Header only: no data read.
    """
    order = str(value if value is not None else "").strip()
    if not order:
        raise ValueError(f"{path}: the ORDERING header is missing, expected NESTED or RING")
    order = check_healpix_order(order, f"{path}: the ORDERING header")
    expected = check_healpix_order(expected, "expected ordering", allow_any=True)
    if expected != "ANY" and order != expected:
        raise ValueError(f"{path} is in {order} ordering but {expected} was expected ({advice or _ORDERING_ADVICE})")
    return order


def _cut_sky(header) -> bool:
    """Whether healpy reads the table as a cut-sky file (its first column the pixel indices): INDXSCHM EXPLICIT, or
    OBJECT PARTIAL without INDXSCHM IMPLICIT (``healpy.read_map``'s rule, so that a field counts what it reads)."""
    scheme = str(header.get("INDXSCHM", "")).strip().upper()
    return scheme == "EXPLICIT" or (scheme != "IMPLICIT" and str(header.get("OBJECT", "")).strip().upper() == "PARTIAL")


def data_columns(header) -> tuple[str, ...]:
    """Names of the data columns of a HEALPix FITS binary table, from its header (a mapping with TFIELDS and TTYPEn:
    astropy's header or ``dict`` of healpy's), without the PIXEL column of a cut-sky file: what a 0-based field
    counts."""
    names = [str(header.get(f"TTYPE{i}", f"COLUMN{i}")).strip() for i in range(1, int(header.get("TFIELDS", 0)) + 1)]
    return tuple(names[1:] if _cut_sky(header) else names)


def choose_column(path, columns, field: int | None = None, option: str = "field=", advice: str = "") -> int:
    """The 0-based data column of the file ``path`` (data ``columns``: :func:`data_columns`) to read: ``field``, or
    0 when the file has one column.  ValueError when the file has several columns and ``field`` is None (naming
    them: a mask or map file with one column per tomographic bin or selection would otherwise be read as its first)
    or when ``field`` is out of range.  ``option``: how the caller's user chooses, in the messages ("field=" for a
    keyword, "--field" for a command-line option); ``advice``: appended to the several-columns refusal."""
    sep = "" if option.endswith("=") else " "
    if field is None:
        if len(columns) > 1:
            listed = ", ".join(f"{i}: {c}" for i, c in enumerate(columns))
            raise ValueError(f"{path} has {len(columns)} columns ({listed}); choose one with {option}{sep}N{advice}")
        return 0
    if not 0 <= field < len(columns):
        raise ValueError(f"{option}{sep}{field} is out of range: {path} has {len(columns)} column(s) ({', '.join(columns)})")
    return field


def read_healpix_fits(path, nside: int, ordering: str = "NESTED", field: int | None = None, *,
                      nside_advice: Callable[[int, int], str] | None = None, column_advice: str = "",
                      header=None) -> np.ndarray:
    """Read column ``field`` (0-based) of a HEALPix FITS map and return it in NESTED order, float64 (12 nside^2,).

    ``field`` None (default): the file's only column; a file with several is refused naming them, as is a
    ``field`` out of range (:func:`choose_column`, the refusal followed by ``column_advice``), from the header
    before any data is read.  ``header``: the file's first table header (astropy's), where the caller has read it
    already (``massmaps classify`` checks every file's first): not read again.

    A cut-sky file (``healpy.write_map(..., partial=True)``: a PIXEL column, then the data columns,
    which ``field`` counts) is read as a full sky with UNSEEN outside its pixels.
    ordering: what the file must declare in its ORDERING header: "NESTED" (default),
    "RING", or "any" (either, converted to NESTED) (:func:`check_fits_ordering`).  Raises ValueError for a
    different ordering, a wrong nside (followed by ``nside_advice(file_nside, nside)``, where given) or an
    unreadable file; nothing is modified on disk.
    Memory: the file is memory-mapped and only column ``field`` (and a cut-sky file's PIXEL column) is
    copied out: ~4 maps at the peak whatever the number of columns (3.9 measured for a 12-column file, 15.9
    when its table was read whole); a gzip-compressed file is decompressed whole (astropy cannot map it).
    """
    nside = check_nside(nside)
    ordering = check_healpix_order(ordering, "ordering", allow_any=True)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such FITS file: {path}")
    if header is None:
        try:
            header = fits.getheader(path, 1)  # the header first: a column is chosen before any data is read
        except Exception as exc:  # astropy raises many types for broken files
            raise ValueError(f"cannot read HEALPix map from {path}: {exc}") from exc
    columns = data_columns(header)
    chosen = choose_column(path, columns, field, advice=column_advice) if columns else field or 0
    try:
        # a cut-sky file (INDXSCHM = EXPLICIT) is detected and filled with UNSEEN by healpy itself; memmap: the
        # other columns are never copied into memory
        values = hp.read_map(str(path), field=chosen, nest=None, dtype=np.float64, memmap=True)
    except Exception as exc:  # astropy/healpy raise many types for broken files
        raise ValueError(f"cannot read HEALPix map from {path}: {exc}") from exc
    file_order = check_fits_ordering(header.get("ORDERING"), path, ordering)
    file_nside = hp.npix2nside(values.size)
    if file_nside != nside:
        advice = "" if nside_advice is None else ": " + nside_advice(file_nside, nside)
        raise ValueError(f"{path} has nside {file_nside}, expected nside {nside}{advice}")
    if file_order == "RING":
        values = hp.reorder(values, r2n=True)
    return np.asarray(values, dtype=np.float64)


def mask_nside_advice(file_nside: int, nside: int) -> str:
    """What :func:`read_footprint` advises for a mask file at ``file_nside`` read at ``nside`` (the one message of
    massmaps and cosmo alike): the run's nside, or the healpy call that resamples the mask, with the NESTED
    arguments spelled out (``healpy.ud_grade`` assumes RING; on a mask read with ``nest=True``, the project's
    convention, it would scramble the pixels without them).  Going down, ud_grade averages (pixels on the edge
    hold fractions) and the result is thresholded (:data:`~deepsphere_gen.sampling.MASK_REMEDY`, the words of every
    mask refusal); going up it copies each pixel to its children: still 0/1."""
    call = f"healpy.ud_grade(mask, {nside}, order_in='NESTED', order_out='NESTED')"
    read = "mask = healpy.read_map(FILE, nest=True), then write it with healpy.write_map(..., nest=True)"
    if file_nside > nside:
        return (f"run at --nside {file_nside}, or average the mask down with {call} (ud_grade averages: pixels on the "
                f"edge hold fractions; UNSEEN outside: set it to 0 first, ud_grade skips it) and {MASK_REMEDY}; with "
                f"{read}")
    return (f"run at --nside {file_nside}, or resample the mask up: {call} (going up it copies each pixel to its "
            f"{(nside // file_nside) ** 2} children: still 0/1, no threshold), with {read}")


#: what :func:`read_footprint` advises for a mask holding values other than 0/1
_MASK_VALUES_ADVICE = ("pass a mask with 1 inside the survey, 0 or UNSEEN outside (a map given as a footprint would keep "
                       f"every non-zero pixel); an apodised or ud_graded mask: {MASK_REMEDY}, and write that")


#: what :func:`read_footprint` advises for a file of several columns (a command's --footprint reads one-column files)
_MASK_COLUMN_ADVICE = (", or, for a command's --footprint, write that column alone, e.g. `python -c \"import healpy as hp; "
                       "hp.write_map('mask.fits', hp.read_map('{path}', field=N, nest=True), nest=True)\"`")


def read_footprint(path, nside: int, ordering: str = "any", remedy: bool = True, field: int | None = None) -> np.ndarray:
    """Footprint mask from a HEALPix FITS file, NESTED bool (12 nside^2,).

    Pixels of value 1 are kept; 0, UNSEEN and NaN are masked; any other value is refused (ValueError
    naming the file: a map given as a footprint would otherwise keep every non-zero pixel, usually the
    whole sky; the message says to threshold an apodised mask).  A mask at another nside is refused with the
    remedy (:func:`mask_nside_advice`: the run's --nside, or the NESTED healpy.ud_grade call, thresholded going
    down).  ``ordering`` as in :func:`read_healpix_fits` (default: accept either and convert).  ``remedy`` False:
    the refusals without the remedies (a caller checking a file against a known mask, where neither remedy can
    help).  ``field``: the 0-based column to read; None (default) reads a one-column file and refuses a file of
    several columns, naming them (survey masks often hold one column per tomographic bin or selection: column 0
    was read silently).
    """
    values = read_healpix_fits(path, nside, ordering=ordering, field=field,
                               nside_advice=mask_nside_advice if remedy else None,
                               column_advice=_MASK_COLUMN_ADVICE.format(path=path) if remedy else "")
    kept = ~bad_pixels(values) & (values != 0)
    odd = kept & (values != 1)
    if odd.any():
        raise ValueError(f"footprint {path} is not a 0/1 mask: {int(odd.sum())} of {values.size} pixels hold other "
                         f"values (e.g. {values[odd][0]:.3g})" + (f"; {_MASK_VALUES_ADVICE}" if remedy else ""))
    return check_mask(kept, nside, name=f"footprint {path}")


def apply_footprint(maps: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of NESTED maps (..., 12 nside^2) inside the footprint and their nested indices.

    Returns ``values`` (..., n_kept) and ``indices`` (n_kept,) int64.  Pixels outside the
    mask may hold anything (UNSEEN, NaN): they are dropped.  UNSEEN/NaN/inf pixels inside
    the mask raise ValueError (extend the mask to exclude them).
    """
    maps = np.asarray(maps)
    nside = nside_of(maps.shape[-1])
    mask = check_mask(mask, nside)
    indices = np.flatnonzero(mask).astype(np.int64)
    values = maps[..., indices]
    check_no_missing(values, "inside the footprint")
    return values, indices
