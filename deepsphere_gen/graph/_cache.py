"""On-disk cache of graph weight matrices: npz + JSON metadata, atomic writes.

An entry is ``<stem>.npz`` (W as scipy's ``save_npz``, or a kNN pattern's index arrays,
memory-mapped on load) and ``<stem>.json`` (the parameters, lmax, ...; written last: the
completeness marker), ``<stem>`` naming the parameters' hash.  An entry may also hold arrays
derived from it, each ``<stem>.<tag>.npy`` (read by memory map) with a record in the JSON
(dtype, size, CRC-32, the CRC-32s of the npz members it was made from, and what the caller
binds it to: lmax, the format of its computation): a file whose record is missing or does
not match is not used (it is rebuilt).  The JSON carries the SHA-256 of its own other fields
(``meta_sha256``): a JSON that does not match it (damaged, edited by hand, or written before
the checksum existed) is not used either, and the whole entry is rebuilt.

Entries are keyed by the package version among the parameters: :func:`cache_entries` lists
the entries of a cache folder (path, size, version, parameters), :func:`prune_cache` removes
those of other versions (or all).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import __version__, _cache_dirs
from .._env import switched_off
from .._io import array_crc32, atomic_write, atomic_write_json

__all__ = ["cache_directory", "sampling_key", "load_cached", "save_cached", "save_pattern", "update_meta",
           "load_array", "save_array", "values_cached", "VALUES_ENV_VAR", "cache_entries", "prune_cache",
           "other_versions"]

ENV_VAR = _cache_dirs.ENV_VAR

#: set to 0 to neither write nor read cached float32 values (each build from the cache then recomputes them)
VALUES_ENV_VAR = "DEEPSPHERE_GEN_GRAPH_CACHE_VALUES"


def values_cached() -> bool:
    """False when ``$DEEPSPHERE_GEN_GRAPH_CACHE_VALUES`` is 0 / false / no / off (read on each call)."""
    return not switched_off(VALUES_ENV_VAR)


def cache_directory(cache_dir=None) -> Path:
    """Folder of the graph cache: ``<cache_dir>/graphs`` when ``cache_dir`` is given, else
    :func:`deepsphere_gen._cache_dirs.graph_cache_dir` (``$DEEPSPHERE_GEN_CACHE/graphs``, else
    ``$XDG_CACHE_HOME/deepsphere_gen/graphs``, else ``~/.cache/deepsphere_gen/graphs``)."""
    if cache_dir:
        return Path(cache_dir).expanduser() / "graphs"
    return _cache_dirs.graph_cache_dir()


def sampling_key(sampling) -> str:
    """``sampling.cache_key()``, or a hash of the coordinates for samplings without one."""
    try:
        return sampling.cache_key()
    except NotImplementedError:
        xyz = np.ascontiguousarray(sampling.xyz, dtype=np.float64)
        return f"{type(sampling).__name__}-{xyz.shape[0]}-{hashlib.sha1(xyz.tobytes()).hexdigest()[:16]}"


def _stem(params: dict) -> str:
    text = json.dumps(params, sort_keys=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(params["sampling"]))[:80]
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


#: the JSON field holding the SHA-256 of the JSON's other fields (see :func:`_read_meta`)
_CHECKSUM = "meta_sha256"


def _digest(meta: dict) -> str:
    fields = {key: value for key, value in meta.items() if key != _CHECKSUM}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _write_meta(path: Path, meta: dict) -> None:
    """Write an entry's JSON with :data:`_CHECKSUM` (atomic)."""
    atomic_write_json(path, {**meta, _CHECKSUM: _digest(meta)})


def _read_meta(path: Path, params: dict) -> dict | None:
    """The JSON of the entry of ``params`` if it is for exactly ``params`` and matches its
    :data:`_CHECKSUM`, else None (absent, unreadable, damaged, edited, or without the checksum:
    written by a version before it)."""
    try:
        meta = json.loads(path.read_text())  # takes NaN / Infinity, which _digest refuses (ValueError)
        if not isinstance(meta, dict) or meta.get("params") != params or meta.get(_CHECKSUM) != _digest(meta):
            return None
    except (OSError, ValueError):
        return None
    return meta


def load_cached(directory: Path, params: dict):
    """``(stored, meta, source, realign)`` if a complete entry for exactly ``params`` exists, else
    None; ``stored`` is W (a scipy CSR) or a kNN pattern's ``(indptr, indices)``, ``source`` the
    CRC-32s of the npz members it was read from (``{member: crc}``: what derived arrays are
    bound to, see :func:`save_array`), ``realign`` True when the pattern's npz should be
    rewritten by :func:`save_pattern` (see :func:`_map_npz`; False for W)."""
    stem = _stem(params)
    meta_path, npz_path = directory / f"{stem}.json", directory / f"{stem}.npz"
    if not (meta_path.exists() and npz_path.exists()):
        return None
    meta = _read_meta(meta_path, params)
    if meta is None:
        return None
    try:
        with open(npz_path, "rb") as fh:  # one open file: the CRCs are those of the arrays read
            if meta.get("stored") == "pattern":
                arrays, source, realign = _map_npz(fh)
                stored = (arrays["indptr"], arrays["indices"])
            else:
                source, realign = _member_crcs(fh), False
                fh.seek(0)
                stored = sp.load_npz(fh).tocsr()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable, partial or damaged entry: rebuild (and overwrite)
    return stored, meta, source, realign


def _member_crcs(fh) -> dict[str, int]:
    """``{member name less .npy: CRC-32}`` from the zip's central directory (no data read)."""
    with zipfile.ZipFile(fh) as zf:
        return _crcs(zf)


def _crcs(zf: zipfile.ZipFile) -> dict[str, int]:
    return {info.filename.removesuffix(".npy"): info.CRC for info in zf.infolist()}


def _map_npz(fh) -> tuple[dict[str, np.ndarray], dict[str, int], bool]:
    """The arrays of the uncompressed npz open as ``fh``, each memory-mapped copy-on-write where
    it lies in the zip file, after checking the member's CRC-32 over the mapping (the check
    ``np.load`` makes while it copies the file: ~0.35 s instead of ~1.1 s for the 1.4 GiB of
    patterns of an nside-1024 model), the members' CRC-32s, and ``realign``.  A member whose
    data is not aligned to its item size (npz files of ``np.savez``, written before
    :func:`_write_npz`) comes back as an aligned copy: nothing unaligned reaches torch or the C
    kernels.  ``realign``: some member was copied and the npz was not written by
    :func:`_write_npz` (its members carry the padding block: were they unaligned all the same,
    another zip layout than this Python's, rewriting would not help);
    :func:`~deepsphere_gen.graph.build_graph` then rewrites it aligned.
    ValueError / BadZipFile for anything else."""
    out, copied = {}, False
    with zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename}: not an uncompressed .npy member")
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"{info.filename}: bad local header")
            start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{info.filename}: .npy format {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
            if dtype.hasobject or len(shape) != 1 or offset - start + shape[0] * dtype.itemsize != info.file_size:
                raise ValueError(f"{info.filename}: not a 1-d array filling its member")
            fh.seek(start)
            crc = zlib.crc32(fh.read(offset - start))
            array = np.memmap(fh, dtype=dtype, mode="c", offset=offset, shape=shape) if shape[0] else np.empty(0, dtype)
            if array_crc32(array, crc) != info.CRC:
                raise zipfile.BadZipFile(f"Bad CRC-32 for {info.filename}")
            if not array.flags.aligned:
                array, copied = np.array(array), True  # a fresh (aligned) ndarray
            out[info.filename[:-4]] = array
        return out, _crcs(zf), copied and not all(_has_pad(info.extra) for info in zf.infolist())


#: byte alignment of the array data in the npz files :func:`_write_npz` writes (numpy's own for .npy data)
_ALIGN = 64

#: id of the zip extra block that pads a local header (Android's zipalign / apksigner alignment block:
#: 2 bytes of alignment, then zeros); zip readers skip extra blocks they do not know
_ALIGN_EXTRA_ID = 0xD935


def _write_npz(fh, arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Write ``arrays`` (1-d) as an uncompressed npz (what ``np.savez`` writes, ``np.load`` reads
    it) whose members' array data start at multiples of 64 bytes in the file: each local header
    is padded with an extra block, so a memory map of a member is aligned.  Returns the
    members' CRC-32s (``{name: crc}``).  ``fh``: a new binary file, written from its start."""
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = info.compress_size = header.tell() + array.nbytes
            info.CRC, info.extra = 0, b""  # (the header's length does not depend on them)
            data_at = fh.tell() + len(info.FileHeader(zip64=True)) + header.tell()
            pad = -data_at % _ALIGN
            while pad < 6:  # an extra block takes at least 6 bytes
                pad += _ALIGN
            info.extra = struct.pack("<HHH", _ALIGN_EXTRA_ID, pad - 4, _ALIGN) + bytes(pad - 6)
            with zf.open(info, "w", force_zip64=True) as member:
                member.write(header.getvalue())
                member.write(memoryview(array).cast("B"))
        return _crcs(zf)


def save_cached(directory: Path, params: dict, stored, extra) -> dict[str, int]:
    """Write W (scipy ``save_npz``, uncompressed) or a pattern's ``(indptr, indices)``
    (:func:`save_pattern`), then the metadata ``extra(source)`` (JSON, the completeness marker;
    ``source``: the npz members' CRC-32s just written, what the caller binds lmax to).  Returns
    ``source`` (that of :func:`load_cached`)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = _stem(params)
    if isinstance(stored, tuple):
        source = save_pattern(directory, params, stored)
        kind = {"stored": "pattern"}
    else:
        path = directory / f"{stem}.npz"
        atomic_write(path, lambda f: sp.save_npz(f, stored, compressed=False))
        with open(path, "rb") as fh:
            source = _member_crcs(fh)
        kind = {}
    _write_meta(directory / f"{stem}.json", {"params": params, **extra(source), **kind})
    return source


def save_pattern(directory: Path, params: dict, pattern: tuple) -> dict[str, int]:
    """(Re)write the npz of a pattern's ``(indptr, indices)`` (:func:`_write_npz`: aligned members;
    the members' bytes, hence their CRC-32s, are those ``np.savez`` writes); returns the CRC-32s."""
    indptr, indices = pattern
    crcs = {}
    atomic_write(directory / f"{_stem(params)}.npz",
                 lambda f: crcs.update(_write_npz(f, {"indptr": indptr, "indices": indices})))
    return crcs


def _has_pad(extra: bytes) -> bool:
    """True when the zip extra field holds a :data:`_ALIGN_EXTRA_ID` block."""
    at = 0
    while at + 4 <= len(extra):
        block_id, size = struct.unpack("<HH", extra[at : at + 4])
        if block_id == _ALIGN_EXTRA_ID:
            return True
        at += 4 + size
    return False


def _rewrite_meta(directory: Path, params: dict, change) -> None:
    """Replace the metadata of the entry of ``params`` by ``change(meta)`` (atomic rewrite); nothing
    is written when there is no valid entry for exactly ``params`` (:func:`_read_meta`)."""
    path = directory / f"{_stem(params)}.json"
    meta = _read_meta(path, params)
    if meta is not None:
        _write_meta(path, change(meta))


def update_meta(directory: Path, params: dict, **fields) -> None:
    """Set ``fields`` in the metadata of the entry of ``params`` (nothing if there is no such entry)."""
    _rewrite_meta(directory, params, lambda meta: {**meta, **fields})


def _arrays(meta: dict) -> dict:
    arrays = meta.get("arrays")
    return arrays if isinstance(arrays, dict) else {}


def _write_npy(fh, array: np.ndarray) -> None:
    """``np.save`` by Python file writes (``np.save`` writes with ``ndarray.tofile``, whose error on
    a full disk says only "N requested and M written"; a file write's OSError names the cause)."""
    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
    fh.write(memoryview(array).cast("B"))


def save_array(directory: Path, params: dict, tag: str, array: np.ndarray, bound: dict) -> None:
    """Add the 1-d ``array`` to the entry of ``params``: ``<stem>.<tag>.npy``, then its record in
    the JSON: dtype, size, CRC-32 and the JSON-able ``bound`` (what it was made from and with,
    e.g. lmax, the format of its computation, the ``source`` CRCs of the entry's npz), all
    compared by :func:`load_array`.  Disk: the array's bytes (float32 values on a HEALPix
    nside-1024, k = 20 pattern: 1.0 GiB).  Nothing is written if the entry is gone."""
    if not (directory / f"{_stem(params)}.json").exists():
        return
    atomic_write(directory / f"{_stem(params)}.{tag}.npy", lambda f: _write_npy(f, array))
    record = {**bound, "dtype": array.dtype.str, "size": int(array.size), "crc32": array_crc32(array)}
    _rewrite_meta(directory, params, lambda meta: {**meta, "arrays": {**_arrays(meta), tag: record}})


def load_array(directory: Path, params: dict, meta: dict, tag: str, bound: dict) -> np.ndarray | None:
    """The array ``tag`` of the entry of ``params`` (metadata ``meta``) made from and with
    ``bound`` (see :func:`save_array`), memory-mapped copy-on-write (pages read on first touch,
    shared with the page cache; writes stay private), or None when it is absent or does not
    match its record (each item of ``bound``, dtype, size, CRC-32: one pass over the file,
    ~0.25 s per GiB)."""
    record = _arrays(meta).get(tag)
    if not isinstance(record, dict) or any(record.get(key) != value for key, value in bound.items()):
        return None
    try:
        array = np.load(directory / f"{_stem(params)}.{tag}.npy", mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None  # missing, truncated or not an .npy file
    if (array.ndim != 1 or array.dtype.str != record.get("dtype") or array.size != record.get("size")
            or not array.flags.aligned or array_crc32(array) != record.get("crc32")):
        return None
    return array


#: an entry's file name: its stem (``_stem``: ends with 20 hex digits), then .json, .npz or .<tag>.npy
_ENTRY_FILE = re.compile(r"(?P<stem>.*-[0-9a-f]{20})\.(?:json|npz|[^.]+\.npy)")


def cache_entries(cache_dir=None) -> list[dict]:
    """The entries of the graph cache (:func:`cache_directory` of ``cache_dir``), sorted by path.

    Each is a dict: ``path`` (its JSON's path; the JSON may not exist: an entry being written, or
    left by an interrupted build), ``files`` (its paths: JSON, npz, derived
    .npy), ``bytes`` (their total size), ``version`` (the package version that wrote it; None if
    its JSON is missing or unreadable) and ``params`` (its parameters: :func:`graph_params`; None
    likewise).  Reads only the JSON files (no array data)."""
    return _entries(cache_directory(cache_dir))


def _entries(directory: Path) -> list[dict]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = _ENTRY_FILE.fullmatch(path.name)
        if match and path.is_file():
            groups.setdefault(match["stem"], []).append(path)
    entries = []
    for stem, files in sorted(groups.items()):
        path = directory / f"{stem}.json"
        try:
            meta = json.loads(path.read_text())
            params = meta["params"] if isinstance(meta, dict) and isinstance(meta.get("params"), dict) else None
        except (OSError, ValueError):
            params = None
        entries.append({"path": path, "files": files, "bytes": sum(_size(f) for f in files),
                        "version": params.get("version") if params else None, "params": params})
    return entries


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # removed since the listing (another process pruning or rewriting)
        return 0


def prune_cache(keep_current_version: bool = True, cache_dir=None) -> list[dict]:
    """Remove graph cache entries; returns those removed (as :func:`cache_entries` lists them).

    ``keep_current_version=True``: the entries written by other package versions (this version
    never reads them: the version is part of their key); False: every entry with a readable
    JSON.  Entries whose JSON is missing or unreadable are left alone (another process may be
    writing one; a damaged one is rewritten by the next build of its parameters).  Safe for
    processes that hold a graph from a removed entry (its files stay readable until closed),
    not for one writing the same entry at the same time."""
    removed = []
    for entry in cache_entries(cache_dir):
        if entry["params"] is None or (keep_current_version and entry["version"] == __version__):
            continue
        for path in entry["files"]:
            path.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def other_versions(directory: Path, params: dict) -> list[dict]:
    """The entries of ``directory`` for ``params`` but another package version (:func:`cache_entries`)."""
    def rest(p):
        return {key: value for key, value in p.items() if key != "version"}

    return [entry for entry in _entries(directory)
            if entry["params"] is not None and entry["version"] != params.get("version")
            and rest(entry["params"]) == rest(params)]
