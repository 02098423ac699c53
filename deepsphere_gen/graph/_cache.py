"""On-disk cache of graph weight matrices: scipy ``save_npz`` + JSON metadata, atomic writes.

An entry is ``<stem>.npz`` (W, or a kNN pattern's index arrays) and ``<stem>.json`` (the
parameters, lmax, ...; written last: the completeness marker), ``<stem>`` naming the
parameters' hash.  An entry may also hold arrays derived from it, each ``<stem>.<tag>.npy``
(read by memory map) with a record in the JSON (dtype, size, CRC-32 and the lmax it was made
with): a file whose record is missing or does not match is not used (it is rebuilt).
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import _cache_dirs
from .._io import atomic_write, atomic_write_json

__all__ = ["cache_directory", "sampling_key", "load_cached", "save_cached", "update_meta", "load_array",
           "save_array"]

ENV_VAR = _cache_dirs.ENV_VAR


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
            with np.load(npz_path) as f:
                stored = (f["indptr"], f["indices"])
        else:
            stored = sp.load_npz(npz_path).tocsr()
    except (OSError, ValueError, KeyError):
        return None  # unreadable or partial entry: rebuild (and overwrite)
    return stored, meta


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


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))  # ~4 GB/s


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
