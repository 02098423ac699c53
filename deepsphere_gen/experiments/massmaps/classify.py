"""``massmaps classify``: apply trained networks to user HEALPix maps, carefully.

- The headers of every FITS file are read first (:func:`read_user_fits`; files of different nside refused, a file
  with several columns refused unless a column is chosen, ``field``, naming the columns), then the chosen column
  of each file alone, one file at a time (:func:`read_user_headers`, :func:`user_map`).  NESTED ordering, the nside
  of the networks and no UNSEEN pixel inside the analysed sky are required; networks of nested
  patches analyse the patches the map covers whole (a cut-sky file of one base pixel is one 1/12
  sample) and leave out those entirely outside it (:func:`sky_values`).  A file's problem (unreadable, RING, no
  network's sky fits it: :func:`match_networks`) is that file's alone: the others are classified.
- The networks are found by their checkpoints under ``out_dir/checkpoints`` (or given as
  files): each checkpoint holds the settings it was trained with (:mod:`.runs`),
  so nothing about training has to be repeated on the command line; the map's nside
  selects among runs of different settings.
- Each input is compared with the statistics of the training inputs stored in the
  checkpoint (:mod:`.map_statistics`): an input outside the training distribution
  (another amplitude, white noise, an offset) gets no class probabilities unless forced.
- Harmonic and hybrid networks are full-sky only (they are never trained on patches).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..._fingerprint import differing_fields, field_value, mask_hash
from ...datasets import bad_pixels, check_fits_ordering, choose_column, data_columns, read_healpix_fits, split_patches
from ...sampling import check_nside
from ...training import CheckpointError, load_checkpoint, load_model_state
from .config import ExperimentConfig, SkySetting, config_from_record, parse_sky_fraction
from .map_statistics import check_inputs
from .models import build_model
from .runs import find_checkpoints, footprint_from_record
from .training import class_cosmologies

#: relative tolerance within which a requested noise value (--ngal 22.5) selects a trained one (22.47), and a
#: requested ellipticity dispersion (--sigma-e 0.26) the trained one of shape-noise networks
NOISE_RTOL = 1e-2

__all__ = ["UserFits", "read_user_fits", "map_field", "user_map", "UserMap", "read_user_headers", "sky_values", "Network",
           "trained_networks", "select_networks", "read_skies", "match_networks", "classify", "sky_name", "NOISE_RTOL"]


@dataclass(frozen=True)
class UserFits:
    """The header of a HEALPix FITS file as :func:`read_user_fits` read it (no data): ``nside`` (header NSIDE),
    the names of its data ``columns`` (without the PIXEL column of a cut-sky file) and its header ``ordering``
    value as written (None if missing; :func:`map_field` checks it); :func:`user_map` reads the map (the whole
    ``header``, astropy's, goes with it: the file is not opened for it again)."""

    path: Path
    nside: int
    columns: tuple[str, ...]
    ordering: object
    header: object = field(default=None, repr=False, compare=False)


def read_user_fits(path) -> UserFits:
    """Read the header of a HEALPix FITS file's first binary table (:class:`UserFits`): no data are read
    (astropy loads the headers alone), so every file is checked before any map is read (:func:`read_user_headers`).

    ValueError for a missing or unreadable file, a file without a binary table or NSIDE, or an NSIDE that
    is not a power of 2.
    """
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such FITS file: {path}")
    try:
        with fits.open(path, memmap=True) as hdus:  # lazy: headers are read as the HDUs are reached, data never
            table = next((h for h in hdus[1:] if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                raise ValueError(f"{path} holds no binary table (not a HEALPix FITS map)")
            header = table.header
            columns = data_columns(header)  # TTYPEn, without a cut-sky file's PIXEL column
    except OSError as exc:
        raise ValueError(f"cannot read {path} as FITS ({exc})") from None
    if "NSIDE" not in header:
        raise ValueError(f"{path}: no NSIDE in the FITS header (not a HEALPix map)")
    try:
        nside = check_nside(header["NSIDE"])
    except ValueError as exc:
        raise ValueError(f"{path}: header NSIDE: {exc}") from None
    return UserFits(path, nside, tuple(columns), header.get("ORDERING"), header)


def map_field(f: UserFits, field: int | None = None) -> int:
    """The 0-based data column of ``f`` that classify reads, checked on the header alone: ``field`` is required
    when the file has several columns (ValueError naming them) and must exist; the ORDERING must be NESTED
    (:func:`~deepsphere_gen.datasets.check_fits_ordering`, advising the healpy line that converts a RING map)."""
    path = f.path
    field = choose_column(path, f.columns, field, "--field")
    check_fits_ordering(f.ordering, path, "NESTED",
                        advice="classify reads NESTED maps: convert it with healpy, e.g. `python -c \"import healpy "
                               f"as hp; hp.write_map('nested.fits', hp.read_map('{path}', field={field}, nest=True), "
                               "nest=True)\"`")
    return field


def user_map(f: UserFits, column: int) -> np.ndarray:
    """One NESTED map (12 nside^2,) float64: the 0-based data ``column`` of the file as :func:`map_field` resolved it
    (:func:`read_user_headers` gives it), read alone (:func:`~deepsphere_gen.datasets.read_healpix_fits`: the file
    memory-mapped, the other columns never copied).  A cut-sky file (``healpy.write_map(..., partial=True)``) gives
    UNSEEN outside its pixels.  ValueError for data that do not fit NSIDE or cannot be read."""
    return read_healpix_fits(f.path, f.nside, "NESTED", column, header=f.header)


class UserMap:
    """One map to classify: its ``values`` (12 nside^2,) (a NESTED map, as :func:`user_map` reads it), its ``bad``
    pixels (bool, same shape: :func:`~deepsphere_gen.datasets.bad_pixels`, found on first use: the one pass over the
    map that :func:`match_networks`, :func:`sky_values` and :func:`classify` share) and, per sky of the networks,
    whether it fits the map (:meth:`problem`, found once per sky).  Memory: ``bad`` adds one byte per pixel."""

    def __init__(self, values):
        self.values = np.asarray(values)
        self._problems = {}  # Network.sky_key -> its _sky_problem (None: the sky fits the map)

    @cached_property
    def bad(self) -> np.ndarray:
        return bad_pixels(self.values)

    @cached_property
    def empty(self) -> bool:
        """Whether every pixel is bad (no map to classify)."""
        return bool(self.bad.all())

    def problem(self, net) -> str | None:
        """Why the sky of the network ``net`` cannot analyse the map (:func:`_sky_problem`, naming the footprint it
        was trained on), or None: worked out for the first network of each sky (:attr:`Network.sky_key`), the
        others of that sky given the same answer."""
        key = net.sky_key
        if key not in self._problems:
            self._problems[key] = _sky_problem(self.bad, net.sky_setting(), net.footprint_name)
        return self._problems[key]


def _user_map(m) -> UserMap:
    """``m`` where it is a :class:`UserMap`, else the UserMap of the NESTED map ``m`` (its bad pixels found anew)."""
    return m if isinstance(m, UserMap) else UserMap(m)


def read_user_headers(paths, field: int | None = None) -> tuple[int | None, dict, dict]:
    """``(nside, {path: (UserFits, column)}, {path: problem})``: the headers of the FITS files ``paths`` and the data
    column of each (:func:`map_field` of ``field``: resolved once, here), every one checked before any map is read
    (:func:`read_user_fits`, :func:`map_field`).  A missing or unreadable file, a missing or ambiguous column, a RING
    file is that file's problem (the message, naming it), the others go on; files of different NSIDE are refused
    (ValueError: the networks are chosen by nside).  ``nside`` is None when no file is left.  Then :func:`user_map`
    reads each file's column alone, one file at a time (memory: one map per file, plus ~4 maps while one is read; was
    every file's whole table at once before the nside comparison); each file is opened twice in all (header, data)."""
    files, problems = {}, {}
    for p in paths:
        try:
            files[p] = read_user_fits(p)
        except ValueError as exc:
            problems[p] = str(exc)
    nsides = {p: f.nside for p, f in files.items()}
    if len(set(nsides.values())) > 1:
        raise ValueError("the maps have different nside (" + ", ".join(f"{p}: {n}" for p, n in nsides.items())
                         + "); classify maps of one nside at a time")
    columns = {}
    for p, f in files.items():
        try:
            columns[p] = (f, map_field(f, field))
        except ValueError as exc:
            problems[p] = str(exc)
    return next(iter(nsides.values()), None), columns, problems


def _patch_sky_that_fits(bad: np.ndarray) -> str | None:
    """The largest nested patches (sky fraction "1/12", "1/48", ...) that a map with ``bad`` pixels (12 nside^2,)
    gives whole: every patch either without a bad pixel or all bad (outside the map), one at least whole;
    patches of 4 pixels at least (the smallest a network input is checked on).  None if there are none."""
    nside = int(round(np.sqrt(bad.size / 12)))
    level = 0
    while 2 ** (level + 1) <= nside:  # nside^2 / 4^level >= 4 pixels
        per_patch = bad.reshape(12 * 4**level, -1)
        whole, outside = ~per_patch.any(-1), per_patch.all(-1)
        if whole.any() and np.all(whole | outside):
            return f"1/{12 * 4**level}"
        level += 1
    return None


def _sky_problem(bad: np.ndarray, sky, footprint: str | None = None) -> str | None:
    """Why the sky setting ``sky`` cannot analyse a map of ``bad`` pixels (12 nside^2,) (UNSEEN/NaN/inf:
    :func:`~deepsphere_gen.datasets.bad_pixels`), or None: bad pixels inside the full sky, inside a footprint
    (``footprint``: the network's, named), or inside a nested patch that the map covers in part (patches entirely
    outside the map are left out).  One line, without the file's name."""
    if sky.footprint is not None:
        n = int(bad[np.asarray(sky.footprint, dtype=bool)].sum())
        trained = "" if footprint is None else f" the network was trained on ({footprint})"
        return f"{n} UNSEEN/NaN pixel(s) of the map lie inside the footprint{trained}" if n else None
    if sky.level is not None:
        per_patch = bad.reshape(12 * 4**sky.level, -1)
        inside = ~per_patch.all(-1)  # patches the map covers, at least in part
        n = int(per_patch[inside].sum())
        if not n:
            return None
        partial = int((inside & per_patch.any(-1)).sum())
        return f"{n} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction {sky.name}: {partial} of {len(inside)} " \
               "patches partly covered)"
    return f"{int(bad.sum())} UNSEEN/NaN pixel(s) inside the analysed sky (sky fraction 1)" if bad.any() else None


def _covers(bad: np.ndarray, net) -> bool:
    """Whether a map of ``bad`` pixels fits the sky of ``net`` (False where its footprint cannot be read)."""
    try:
        sky = net.sky_setting()
    except (OSError, ValueError):
        return False
    return _sky_problem(bad, sky) is None


def _advice(bad: np.ndarray, others=()) -> str:
    """What would classify a map of ``bad`` pixels that a network's sky does not fit: trained networks that fit it
    (among ``others``: networks not used for it, their classify options to paste), else networks of the patches
    the map gives whole (:func:`_patch_sky_that_fits`) or of a footprint that excludes the bad pixels, to train."""
    fit = [n for n in others if _covers(bad, n)]
    if fit:
        options = dict.fromkeys(f"--sky-fractions {n.sky} {n.noise_option}" for n in fit)
        return f"trained networks that fit it: classify {' or '.join(options)}"
    fits_sky = _patch_sky_that_fits(bad)
    if fits_sky is not None:
        advice = (f"the map gives whole {fits_sky} patches: classify them with networks of sky fraction {fits_sky} "
                  f"(`deepsphere-gen massmaps train --sky-fractions {fits_sky}`, then classify --sky-fractions "
                  f"{fits_sky}), or with networks")
    else:
        advice = "classify it with networks"
    return (f"{advice} trained on a footprint that excludes them (`deepsphere-gen massmaps train --sky-fractions "
            "footprint --footprint MASK`, then classify --sky-fractions footprint)")


def sky_values(m, sky, file) -> tuple[np.ndarray, np.ndarray]:
    """``(values (samples, pixels), indices (pixels,))`` of one full-sky NESTED map ``m`` (an array, or a
    :class:`UserMap`: its bad pixels found once for every sky) for a sky setting (full sky, nested patches, footprint).

    Nested patches: the patches the map covers whole are the samples; patches entirely UNSEEN/NaN lie
    outside the map (a cut-sky file: ``healpy.write_map(..., partial=True)``) and are left out, so a map
    of one base pixel is one 1/12 sample.  UNSEEN/NaN inside the analysed sky (the full sky, a footprint,
    a patch partly covered) -> ValueError naming ``file`` and the patch size that would classify the map, if
    any (:func:`_sky_problem`, :func:`_advice`); a map without a valid pixel -> ValueError."""
    m = _user_map(m)
    if m.empty:
        raise ValueError(f"{file}: every pixel is UNSEEN/NaN (no map to classify)")
    problem = _sky_problem(m.bad, sky)
    if problem is not None:
        raise ValueError(f"{file}: {problem}; {_advice(m.bad)}")
    return _fitting_values(m, sky)


def _fitting_values(m: UserMap, sky) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sky_values` of a map whose bad pixels the sky ``sky`` was found to leave out (:func:`_sky_problem`
    None): no check here (the footprint's pixels indexed, not checked again)."""
    if sky.footprint is not None:
        idx = np.flatnonzero(sky.footprint)
        return m.values[idx][None], idx
    if sky.level is not None:
        values, idx = split_patches(m.values, sky.level)
        inside = ~m.bad.reshape(values.shape).all(-1)  # the patches the map covers (whole: no problem)
        return values[inside], idx[inside][0]
    values, idx = m.values[None], np.arange(m.values.size)
    low = getattr(sky, "nside", None)  # a full sky analysed at a lower resolution: average the children
    if sky.full_sky and low is not None and 12 * low**2 < values.shape[-1]:
        values = values.reshape(1, 12 * low**2, -1).mean(-1)
        idx = np.arange(12 * low**2)
    return values, idx


@dataclass
class Network:
    """A trained network read from ``checkpoint``: method, sky (name), noise (the setting's name:
    "none", "ngal22.47", "rel2"; and its value: galaxies per arcmin^2 or the relative level, 0
    without noise), nside (of the data set), meta, noise kind ("none", "ngal", "relative") and
    ``sigma_e``, the ellipticity dispersion of its shape noise (None unless the kind is "ngal")."""

    checkpoint: Path
    method: str
    sky: str
    noise: str
    noise_level: float
    nside: int
    meta: dict
    noise_kind: str = "relative"
    sigma_e: float | None = None
    _sky: object = field(default=None, init=False, repr=False, compare=False)  # sky_setting(), once read
    #: the footprint file whose content :meth:`sky_setting` found to hold the network's mask (--footprint, or the
    #: file recorded at training; "builtin": the built-in footprint), None where it read none
    mask_file: str | None = field(default=None, init=False, repr=False, compare=False)
    #: the checkpoint's model weights, kept from the one read that also gave ``meta`` (:func:`_model` uses them)
    weights: dict | None = field(default=None, repr=False, compare=False)

    @property
    def noise_option(self) -> str:
        """The classify options that select this network's noise (to paste: ``--ngal 22.47 --sigma-e 0.26``)."""
        if self.noise_kind == "none":
            return "--deepsphere-level 0"
        if self.noise_kind == "ngal":
            return f"--ngal {self.noise_level:.6g}" + ("" if self.sigma_e is None else f" --sigma-e {self.sigma_e:g}")
        return f"--relative-noise {self.noise_level:g}"

    @property
    def classes(self) -> str:
        """What class 0 and class 1 are: "class 0: Omega_m 0.31, sigma_8 0.82; class 1: ..." (stored with the
        checkpoint; older checkpoints: the cosmologies of this version, which generated their data too)."""
        cosmologies = self.meta.get("classes") or class_cosmologies()
        return "; ".join(f"class {i}: Omega_m {c['omega_m']:g}, sigma_8 {c['sigma8']:g}" for i, c in enumerate(cosmologies))

    def _mask_source(self) -> str | None:
        """Where the footprint's mask is known to be, for messages: :attr:`mask_file` (its content checked), else
        "builtin" for the built-in footprint, else, before :meth:`sky_setting` read it, the file recorded at training
        by a checkpoint that does not store its mask, where it is still there (the file sky_setting reads); None
        otherwise (a file recorded by a checkpoint that stores its mask is never read: gone or rewritten, it would
        name another mask), the mask then named by its content hash."""
        if self.mask_file is not None:
            return self.mask_file
        recorded = self.meta.get("footprint")
        if recorded == "builtin" or ("footprint_mask" not in self.meta and recorded is not None and Path(recorded).is_file()):
            return recorded
        return None

    @property
    def footprint_name(self) -> str:
        """The footprint the network was trained on, for messages: its mask file (:meth:`_mask_source`), "the built-in
        footprint", or "mask hash" and the first 8 hex digits of the mask's content hash."""
        path = self._mask_source()
        if path is None:
            stored = ", stored in its checkpoint" if "footprint_mask" in self.meta else ""
            return f"mask hash {str(self.sky_key[1])[:8]}{stored}"
        return "the built-in footprint" if path == "builtin" else str(path)

    @property
    def sky_label(self) -> str:
        """The sky for messages: the sky fraction ("1", "1/12"), or for a footprint network "footprint (NAME, hash
        HASH)", NAME the file name of its mask (:meth:`_mask_source`; "built-in" for the built-in footprint; left out
        where none) and HASH the first 8 hex digits of the mask's content hash: networks of two footprints are told
        apart (both were "footprint"), also where their mask files share a name (north/mask.fits, south/mask.fits)."""
        if self.sky != "footprint":
            return self.sky
        path, digits = self._mask_source(), str(self.sky_key[1])[:8]
        name = None if path is None else "built-in" if path == "builtin" else Path(path).name
        return f"footprint ({'' if name is None else name + ', '}hash {digits})"

    @property
    def sky_key(self) -> tuple:
        """What tells the networks' skies apart: (sky name, content hash of the footprint mask, None for no mask)."""
        return self.sky, self.meta["fields"]["run"].get("footprint") if self.sky == "footprint" else None

    def sky_setting(self, footprint=None):
        """The SkySetting the network was trained on (reads its footprint, checks its hash: on the first
        call only, the later ones return the same setting).

        A footprint network's mask is the one its checkpoint stores (:meth:`_stored_sky`: no file read), where
        it stores one; in checkpoints written before it did, ``footprint`` (classify's --footprint: the mask's new
        place after it moved) or the file recorded at training, whichever holds the mask the network was trained on
        (its content hash is in the checkpoint; a file that is no longer a mask of this nside, rewritten since or
        given by mistake, is not it).  A ``footprint`` that does not hold the network's mask is not its own: the
        network ignores it (it may be another network's); :attr:`mask_file` is the file that held it.  ValueError
        naming the checkpoint, the recorded file and what to do where no file holds it."""
        if self._sky is not None:
            return self._sky
        if self.sky != "footprint":
            experiment = self.meta["fields"]["experiment"]
            kw = {"full_sky_nside": experiment["full_sky_nside"]} if "full_sky_nside" in experiment else {}
            self._sky = parse_sky_fraction(self.sky, self.nside, None, **kw)
            return self._sky
        recorded, want = self.meta.get("footprint"), self.meta["fields"]["run"]["footprint"]
        if "footprint_mask" in self.meta:
            self._sky = self._stored_sky(want, footprint)
            return self._sky
        tried, why = [], {}  # why: a file's refusal as a mask of this nside (rewritten since, another map given)
        for path in dict.fromkeys(p for p in (footprint, recorded) if p is not None):
            if path != "builtin" and not Path(path).is_file():
                continue
            tried.append(path)
            mask, why[path] = _mask_in(path, self.nside, want)
            if mask is not None:
                self._sky, self.mask_file = _footprint_sky(mask, self.nside), path
                return self._sky
        named = "the built-in footprint" if recorded == "builtin" else recorded
        where = (f"the footprint mask it was trained on, {named}, is no longer there (moved or deleted)"
                 if recorded not in tried else f"the footprint mask {named} changed since it was trained "
                 f"on it{why.get(recorded, '')}")
        given = f"; --footprint {footprint} is not that mask either{why.get(footprint, '')}" if footprint is not None else ""
        raise ValueError(f"{self.checkpoint}: {where}{given}; give the mask it was trained on with --footprint FITS "
                         "(recognised by its content hash, stored in the checkpoint), or leave this network out with "
                         "--sky-fractions")

    def _stored_sky(self, want: str, footprint):
        """The footprint SkySetting of the mask the checkpoint stores (:func:`~.runs.footprint_from_record`), which
        must hash to the recorded ``want`` (ValueError naming the checkpoint: altered or damaged); ``footprint``
        (classify's --footprint), where given and holding that mask, is :attr:`mask_file` (it names the network)."""
        try:
            mask = footprint_from_record(self.meta["footprint_mask"], self.nside)
            why = "" if mask_hash(mask) == want else " (not the content hash recorded at training)"
        except ValueError as exc:
            why = f" ({exc})"
        if why:
            raise ValueError(f"{self.checkpoint}: the footprint mask stored in it is not the mask it was trained on{why}: "
                             "the checkpoint was altered or damaged; retrain it with `deepsphere-gen massmaps train`, "
                             "or leave this network out with --sky-fractions")
        if footprint is not None and _mask_in(footprint, self.nside, want)[0] is not None:
            self.mask_file = footprint
        return _footprint_sky(mask, self.nside)


def _footprint_sky(mask: np.ndarray, nside: int) -> SkySetting:
    """The SkySetting of a footprint network of NESTED bool ``mask`` (12 nside^2,), as :func:`.parse_sky_fraction`
    gives it."""
    return SkySetting("footprint", None, mask, float(mask.mean()), nside)


def _mask_in(path, nside: int, want: str | None) -> tuple[np.ndarray | None, str]:
    """``(mask, "")`` where the footprint ``path`` ("builtin" or a FITS file, read once) holds the NESTED bool mask
    at ``nside`` of content hash ``want`` (:func:`~deepsphere_gen._fingerprint.mask_hash`), else ``(None, why)``:
    ``""`` for another mask, ``" (the refusal)"`` for a file that is no mask of this nside (rewritten since, or given
    by mistake; matched by hash, so the refusal names no remedy: neither --nside nor thresholding gives that mask)."""
    try:
        mask = parse_sky_fraction("footprint", nside, path, remedy=False).footprint
    except ValueError as exc:
        return None, f" ({exc})"
    return (mask, "") if mask_hash(mask) == want else (None, "")


def _network(path: Path) -> Network:
    state = load_checkpoint(path)
    meta = state.get("meta") or {}
    fields = meta.get("fields")
    if isinstance(fields, dict) and "run" not in fields:
        other = " (a `deepsphere-gen cosmo` network)" if "grid" in fields else ""
        raise CheckpointError(f"checkpoint {path} is not a massmaps checkpoint{other}: classify applies the networks "
                              "of `deepsphere-gen massmaps train`")
    if not fields or "distribution" not in meta:
        raise CheckpointError(f"checkpoint {path} has no record of its settings and training inputs "
                              "(not a massmaps checkpoint, or one written by an older version: retrain it with "
                              "`deepsphere-gen massmaps train`)")
    run = fields["run"]
    noise = run["noise"]
    sigma_e = None
    if isinstance(noise, dict):
        kind = noise.get("kind", "relative")
        level = 0.0 if kind == "none" else noise["value"]
        if kind == "ngal" and noise.get("sigma_e") is not None:
            sigma_e = float(noise["sigma_e"])
    else:
        level = float(noise)
        kind = "relative" if level else "none"
    return Network(Path(path), run["method"], run["sky"], run.get("noise_name", f"{level:g}"), float(level),
                   int(fields["experiment"]["nside"]), meta, kind, sigma_e, weights=state.get("model"))


def sky_name(text: str, nside: int) -> str:
    """The name of a sky fraction as the networks record it ("1", "1/12", "footprint"), checked as
    ``massmaps train`` checks it (ValueError for "abc", "0", "2", "1/13", or a patch finer than ``nside``)."""
    parse_sky_fraction(text, nside)
    text = str(text).strip()
    return text if text == "footprint" else str(Fraction(text))


def _noise_matches(net: Network, wanted) -> bool:
    """``wanted``: a setting name ("ngal22.47") or a noise setting (kind, value): the same kind and
    a value within :data:`NOISE_RTOL` (the precision a user types: 22.5 for 22.47)."""
    if isinstance(wanted, str):
        return net.noise == wanted
    if net.noise_kind != wanted.kind:
        return False
    return wanted.kind == "none" or math.isclose(net.noise_level, wanted.value, rel_tol=NOISE_RTOL)


def _sigma_matches(net: Network, sigma_e: float | None) -> bool:
    """``sigma_e`` (None: not asked for) is the network's ellipticity dispersion within :data:`NOISE_RTOL`;
    networks without shape noise (noise-free, relative noise) match any."""
    if sigma_e is None or net.noise_kind != "ngal" or net.sigma_e is None:
        return True
    return math.isclose(net.sigma_e, sigma_e, rel_tol=NOISE_RTOL)


def _select_noise(nets: list[Network], noises) -> list[Network]:
    """The networks whose noise matches one of ``noises``; for each requested setting and sky, only
    the trained noise value closest to it (so --ngal 22.5 never picks 22.6 beside a trained 22.47)."""
    keep = set()
    for wanted in noises:
        for sky in {n.sky_key for n in nets}:
            match = [n for n in nets if n.sky_key == sky and _noise_matches(n, wanted)]
            if match:
                target = getattr(wanted, "value", 0.0)
                best = min(abs(n.noise_level - target) for n in match)
                keep.update(id(n) for n in match if abs(n.noise_level - target) == best)
    return [n for n in nets if id(n) in keep]


def _describe(noise) -> str:
    return noise if isinstance(noise, str) else noise.name


def trained_networks(method: str, out_dir) -> list[Network]:
    """Every network of ``method`` under ``out_dir/checkpoints`` (each checkpoint read once, weights included:
    :func:`select_networks` drops those it does not choose)."""
    return [_network(p) for p in find_checkpoints(out_dir, method)]


def select_networks(method: str, out_dir, nside: int, skies=None, noises=None, files=None,
                    method_given: bool = False, sigma_e: float | None = None, found=None) -> list[Network]:
    """The trained networks to apply: the given checkpoint ``files``, else those of ``method``
    under ``out_dir`` at ``nside`` (optionally only sky names ``skies``, noise settings
    ``noises``: names such as ``"ngal22.47"`` or settings with ``kind`` and ``value``, matched
    within :data:`NOISE_RTOL`, and shape-noise networks of ellipticity dispersion ``sigma_e``,
    matched within the same tolerance; None: any).

    Raises ValueError when none fits (listing the trained settings, with their --sigma-e, as options
    to paste), when ``sigma_e`` matches none of the shape-noise networks (not a silent fall-back to
    the noise-free ones), when two runs of other settings share a (sky, noise) (names both files: choose one
    with --checkpoint, or --sigma-e where theirs differ), or when given ``files`` disagree with
    ``method`` (if ``method_given``), ``skies``, ``noises`` or ``sigma_e``.  ``found``: the networks of
    :func:`trained_networks` where the caller read them (None: read here).
    """
    if files:
        nets = [_network(Path(f)) for f in files]
        for n in nets:
            if n.nside != nside:
                raise ValueError(f"{n.checkpoint} was trained at nside {n.nside}, the map has nside {nside}")
            wrong = [f"--method {method}" if method_given and n.method != method else "",
                     f"--sky-fractions {' '.join(skies)}" if skies is not None and n.sky not in skies else "",
                     "the noise options" if noises is not None and not _select_noise([n], noises) else "",
                     f"--sigma-e {sigma_e:g}" if not _sigma_matches(n, sigma_e) else ""]
            wrong = [w for w in wrong if w]
            if wrong:
                raise ValueError(f"{n.checkpoint} holds a {n.method} network of sky {n.sky_label}, noise {n.noise}, "
                                 f"which {' and '.join(wrong)} exclude(s); --checkpoint chooses the network itself: "
                                 "leave out the other options")
        return nets
    found = trained_networks(method, out_dir) if found is None else found
    nets = [n for n in found if n.nside == nside and (skies is None or n.sky in skies) and _sigma_matches(n, sigma_e)]
    if noises is not None:
        nets = _select_noise(nets, noises)
    shape_noise = {n.sigma_e for n in found if n.nside == nside and n.noise_kind == "ngal" and n.sigma_e is not None}
    if sigma_e is not None and noises is None and shape_noise and not any(n.noise_kind == "ngal" for n in nets):
        raise ValueError(f"no {method} network with shape noise of sigma_e {sigma_e:g} at nside {nside} (trained: sigma_e "
                         f"{', '.join(f'{v:g}' for v in sorted(shape_noise))}); leave out --sigma-e to use them, or "
                         "train with that --sigma-e first")
    if not nets:
        trained = sorted({f"nside {n.nside} sky {n.sky_label} noise {n.noise} (--sky-fractions {n.sky} {n.noise_option})"
                          for n in found})
        raise ValueError(f"no trained {method} network for nside {nside}"
                         + (f", sky fraction(s) {' '.join(skies)}" if skies else "")
                         + (f", noise {' '.join(_describe(x) for x in noises)}" if noises else "")
                         + (f", sigma_e {sigma_e:g}" if sigma_e is not None else "")
                         + f" in {Path(out_dir) / 'checkpoints'}"
                         + (f" (trained there: {'; '.join(trained)})" if trained else "")
                         + "; choose a trained setting or run `deepsphere-gen massmaps train` with those settings first")
    by_key = {}
    for n in nets:  # two footprints are two skies (their networks classify the maps that fit each)
        by_key.setdefault((n.sky_key, n.noise), []).append(n)
    for (_, noise), group in by_key.items():
        sky = group[0].sky_label
        if len(group) > 1:
            sigmas = sorted({g.sigma_e for g in group if g.sigma_e is not None})
            by_sigma = f"--sigma-e ({' or '.join(f'{v:g}' for v in sigmas)}) or " if len(sigmas) > 1 else ""
            differ = sorted(set().union(*(differing_fields(g.meta["fields"], group[0].meta["fields"]) for g in group)))
            files = ", ".join(f"{g.checkpoint} (" + "; ".join(f"{d} {field_value(g.meta['fields'], d)}" for d in differ[:3])
                              + (", ..." if len(differ) > 3 else "") + ")" for g in group)
            raise ValueError(f"{len(group)} trained {method} networks for sky {sky}, noise {noise} at nside "
                             f"{nside} (other settings): {files}; choose one with {by_sigma}--checkpoint FILE")
    chosen = {id(n) for n in nets}
    for n in found:  # only the chosen networks keep their weights in memory
        if id(n) not in chosen:
            n.weights = None
    return sorted(nets, key=lambda n: (n.sky, n.sky_label, n.noise))


def read_skies(nets: list[Network], footprint=None) -> None:
    """Read the sky of every network of ``nets`` (:meth:`Network.sky_setting` with classify's --footprint
    ``footprint``: each footprint read once, before any map is checked against it; a network whose mask it is not
    ignores it).  ValueError (one line) where ``footprint`` is given and holds the mask of none of the footprint
    networks among ``nets`` (they have theirs: stored in their checkpoints, or at the files recorded at training),
    and each network's refusal (:meth:`Network.sky_setting`)."""
    for net in nets:
        net.sky_setting(footprint)
    mine = [n for n in nets if n.sky == "footprint"]
    if footprint is None or not mine or any(n.mask_file == footprint for n in mine):
        return
    why = _mask_in(footprint, mine[0].nside, None)[1]
    skies = ", ".join(dict.fromkeys(n.sky_label for n in mine))
    raise ValueError(f"--footprint {footprint} is the mask of none of the chosen footprint networks{why}; they have "
                     f"their own (sky {skies}): leave out --footprint")


def match_networks(files, maps: dict, nets: list[Network], others=(), chosen: bool = False) -> tuple[dict, list, dict]:
    """Which of the networks ``nets`` classify which map: those whose sky the map covers (:func:`_sky_problem`:
    no UNSEEN/NaN pixel inside the full sky, the footprint, or a nested patch the map covers in part).

    Returns ``({file: networks}, notes, {file: problems})``, one line each, naming the file.  A network whose sky
    a map does not cover is a note where another network classifies the map ("not classified by the networks of
    sky fraction 1 (...); classified by those of sky fraction 1/12"), and a problem only where none does: one line
    per sky fraction where the networks were ``chosen`` (--sky-fractions, --checkpoint), else one line for all; a
    problem's advice names the networks of ``others`` (trained, not used for the map) that would fit, else what
    to train (:func:`_advice`).  ``maps``: ``{file: NESTED map or UserMap}``.  Cost: one pass over each map (its
    bad pixels: none where a :class:`UserMap` found them before), then one over its bad pixels per sky setting
    (:meth:`UserMap.problem`: kept with a UserMap, which :func:`classify` then does not check again)."""
    use, notes, problems = {}, [], {}
    for file in files:
        m = _user_map(maps[file])
        if m.empty:
            problems[file] = [f"{file}: every pixel is UNSEEN/NaN (no map to classify)"]
            continue
        fit, why = [], {}  # why: sky_key -> (its label, its problem): two footprints are two skies
        for net in nets:
            problem = m.problem(net)
            if problem is None:
                fit.append(net)
            else:
                why.setdefault(net.sky_key, (net.sky_label, problem))
        if fit:
            use[file] = fit
        if not why:
            continue
        labels, lines = [w[0] for w in why.values()], [w[1] for w in why.values()]
        if not fit:
            if chosen:
                problems[file] = [f"{file}: {problem}; {_advice(m.bad, others)}" for problem in lines]
            else:
                problems[file] = [f"{file}: no trained network's sky fits the map: {'; '.join(lines)}; "
                                  f"{_advice(m.bad, others)}"]
        else:
            notes.append(f"{file}: not classified by the networks of sky fraction {', '.join(labels)} "
                         f"({'; '.join(lines)}); classified by those of sky fraction "
                         f"{', '.join(dict.fromkeys(n.sky_label for n in fit))}")
    return use, notes, problems


def _model(net: Network, device):
    fields = net.meta["fields"]
    unknown = sorted(set(fields["experiment"]) - {f.name for f in dataclass_fields(ExperimentConfig)})
    if unknown:
        raise CheckpointError(f"checkpoint {net.checkpoint} was written by an older version (settings "
                              f"{', '.join(unknown)} no longer exist): retrain it with `deepsphere-gen massmaps train`")
    config = config_from_record(fields["experiment"])
    sky = net.sky_setting()
    model = build_model(net.method, sky, config, scale=1.0)  # the scale is a buffer of the checkpoint
    state = {"model": net.weights} if net.weights is not None else load_checkpoint(net.checkpoint, map_location=device)
    load_model_state(model, state, net.checkpoint)  # the weights read with the meta: the file is read once
    return model.to(device).eval(), sky


def classify(files, maps: dict, networks: list[Network], device="cpu", force: bool = False, out=print,
             use: dict | None = None) -> int:
    """Print class probabilities of every map for every network: a patch network's are the mean of its
    probabilities over the patches the map covers whole ("mean over 12 patches: P(class 0) = ..."; the sky named
    "sky 1/12 (2 of 12 patches in the map)" where the map covers fewer than all).

    ``maps``: ``{file: NESTED map or UserMap}`` (a UserMap that :func:`match_networks` checked: its bad pixels and
    each sky's fit not worked out again); ``use``: ``{file: the networks that classify it}`` (:func:`match_networks`;
    None: every network every file; a network used by no file is not built).  A map that a network's sky does not
    fit: ValueError (:func:`sky_values`).  An input outside the network's training distribution is reported instead of
    probabilities (with them when ``force``).  Returns the number of (file, network) pairs flagged as out of
    distribution.
    """
    user = {file: _user_map(maps[file]) for file in files}
    flagged = 0
    for net in networks:
        mine = [f for f in files if use is None or any(n is net for n in use.get(f, ()))]
        if not mine:
            continue
        model, sky = _model(net, device)
        for file in mine:
            m = user[file]
            fits = not m.empty and m.problem(net) is None
            values, idx = _fitting_values(m, sky) if fits else sky_values(m, sky, file)  # the latter refuses it
            sigma = "" if net.sigma_e is None else f" (sigma_e {net.sigma_e:g})"
            n_patches = None if sky.level is None else 12 * 4**sky.level
            part = f" ({len(values)} of {n_patches} patches in the map)" if n_patches and len(values) < n_patches else ""
            head = f"{file}: sky {net.sky_label}{part}, noise {net.noise}{sigma}, {net.method}"
            problems = check_inputs(values, idx, net.meta["distribution"])
            if problems:
                flagged += 1
                out(f"{head}: input is outside the training distribution ({'; '.join(problems)}); "
                    "the class probabilities are not meaningful" + ("" if force else " (--force prints them)"))
                if not force:
                    continue
            x = torch.as_tensor(values, dtype=torch.float32, device=device)[..., None]
            with torch.no_grad():
                p = torch.softmax(model(x), -1).mean(0)
            mean = f"mean over {len(values)} patches: " if len(values) > 1 else ""
            out(f"{head}: {mean}P(class 0) = {float(p[0]):.3f}, P(class 1) = {float(p[1]):.3f} ({net.classes})"
                + (" (out of distribution, forced)" if problems else ""))
    return flagged
