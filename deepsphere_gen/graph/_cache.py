"""On-disk cache of graph weight matrices: scipy ``save_npz`` + JSON metadata, atomic writes.

An entry is ``<stem>.npz`` (W, or a kNN pattern's index arrays, memory-mapped on load) and
``<stem>.json`` (the parameters, lmax, ...; written last: the completeness marker), ``<stem>``
naming the parameters' hash.  An entry may also hold arrays derived from it, each ``<stem>.<tag>.npy``
(read by memory map) with a record in the JSON (dtype, size, CRC-32 and the lmax it was made
with): a file whose record is missing or does not match is not used (it is rebuilt).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import _cache_dirs
from .._io import atomic_write, atomic_write_json

__all__ = ["cache_directory", "sampling_key", "load_cached", "save_cached", "update_meta", "load_array",
           "save_array", "values_cached", "VALUES_ENV_VAR"]

ENV_VAR = _cache_dirs.ENV_VAR

#: set to 0 to neither write nor read cached float32 values (each build from the cache then recomputes them)
VALUES_ENV_VAR = "DEEPSPHERE_GEN_GRAPH_CACHE_VALUES"


def values_cached() -> bool:
    """False when ``$DEEPSPHERE_GEN_GRAPH_CACHE_VALUES`` is 0 / false / no / off (read on each call)."""
    return os.environ.get(VALUES_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


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


def load_cached(directory: Path, params: dict):
    """``(stored, meta)`` if a complete entry for exactly ``params`` exists, else None; ``stored``
    is W (a scipy CSR) or a kNN pattern's ``(indptr, indices)``."""
    stem = _stem(params)
    meta_path, npz_path = directory / f"{stem}.json", directory / f"{stem}.npz"
    if not (meta_path.exists() and npz_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("params") != params:
            return None
        if meta.get("stored") == "pattern":
            arrays = _map_npz(npz_path)
            stored = (arrays["indptr"], arrays["indices"])
        else:
            stored = sp.load_npz(npz_path).tocsr()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable, partial or damaged entry: rebuild (and overwrite)
    return stored, meta


def _map_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed npz (``np.savez``), each memory-mapped copy-on-write where it
    lies in the zip file, after checking the member's CRC-32 over the mapping (the check
    ``np.load`` makes while it copies the file: ~0.35 s instead of ~1.1 s for the 1.4 GiB of
    patterns of an nside-1024 model).  ValueError / BadZipFile for anything else."""
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
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
            array = np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape) if shape[0] else np.empty(0, dtype)
            if _crc32(array, crc) != info.CRC:
                raise zipfile.BadZipFile(f"Bad CRC-32 for {info.filename}")
            out[info.filename[:-4]] = array
    return out


def save_cached(directory: Path, params: dict, stored, extra: dict) -> Path:
    """Write W or a pattern's ``(indptr, indices)`` (npz, uncompressed), then the metadata
    (JSON, the completeness marker)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = _stem(params)
    if isinstance(stored, tuple):
        indptr, indices = stored
        atomic_write(directory / f"{stem}.npz", lambda f: np.savez(f, indptr=indptr, indices=indices))
        extra = {**extra, "stored": "pattern"}
    else:
        atomic_write(directory / f"{stem}.npz", lambda f: sp.save_npz(f, stored, compressed=False))
    atomic_write_json(directory / f"{stem}.json", {"params": params, **extra})
    return directory / f"{stem}.npz"


def _rewrite_meta(directory: Path, params: dict, change) -> bool:
    """Replace the metadata of the entry of ``params`` by ``change(meta)`` (atomic rewrite); False
    (nothing written) when there is no readable entry for exactly ``params``."""
    path = directory / f"{_stem(params)}.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("params") != params:
        return False
    atomic_write_json(path, change(meta))
    return True


def update_meta(directory: Path, params: dict, **fields) -> bool:
    """Set ``fields`` in the metadata of the entry of ``params``; False if there is no such entry."""
    return _rewrite_meta(directory, params, lambda meta: {**meta, **fields})


def _crc32(array: np.ndarray, start: int = 0) -> int:
    """CRC-32 of the array's bytes (continuing ``start``), ~4 GB/s."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), start)


def _arrays(meta: dict) -> dict:
    arrays = meta.get("arrays")
    return arrays if isinstance(arrays, dict) else {}


def save_array(directory: Path, params: dict, tag: str, array: np.ndarray, lmax: float) -> bool:
    """Add the 1-d ``array`` derived with ``lmax`` to the entry of ``params``: ``<stem>.<tag>.npy``,
    then its record (dtype, size, CRC-32, lmax) in the JSON.  Disk: the array's bytes (float32
    values on a HEALPix nside-1024, k = 20 pattern: 1.0 GiB).  False (nothing written) if the
    entry is gone."""
    if not (directory / f"{_stem(params)}.json").exists():
        return False
    atomic_write(directory / f"{_stem(params)}.{tag}.npy", lambda f: np.save(f, array, allow_pickle=False))
    record = {"dtype": array.dtype.str, "size": int(array.size), "crc32": _crc32(array), "lmax": float(lmax)}
    return _rewrite_meta(directory, params, lambda meta: {**meta, "arrays": {**_arrays(meta), tag: record}})


def load_array(directory: Path, params: dict, meta: dict, tag: str, lmax: float) -> np.ndarray | None:
    """The array ``tag`` derived with ``lmax`` from the entry of ``params`` (metadata ``meta``),
    memory-mapped copy-on-write (pages read on first touch, shared with the page cache; writes
    stay private), or None when it is absent or does not match its record (dtype, size, lmax,
    CRC-32: one pass over the file, ~0.25 s per GiB)."""
    record = _arrays(meta).get(tag)
    if not isinstance(record, dict) or record.get("lmax") != float(lmax):
        return None
    try:
        array = np.load(directory / f"{_stem(params)}.{tag}.npy", mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None  # missing, truncated or not an .npy file
    if (array.ndim != 1 or array.dtype.str != record.get("dtype") or array.size != record.get("size")
            or _crc32(array) != record.get("crc32")):
        return None
    return array
