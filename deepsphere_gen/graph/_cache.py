"""On-disk cache of graph weight matrices: scipy ``save_npz`` + JSON metadata, atomic writes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import _cache_dirs
from .._io import atomic_write, atomic_write_json

__all__ = ["cache_directory", "sampling_key", "load_cached", "save_cached"]

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
        if meta.get("params") != params:
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
    meta = {"params": params, **extra}
    atomic_write_json(directory / f"{stem}.json", meta)
    return directory / f"{stem}.npz"
