"""On-disk cache of generated mass maps: keys, atomic directory writes, metadata, estimates."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import tempfile
from pathlib import Path

from .._io import plain_mode

__all__ = ["limit_threads", "cache_key", "package_versions", "atomic_directory", "clean_stale_temporaries", "read_metadata",
           "estimate_cost", "METADATA", "OWNER"]

#: Bump when the generated content changes for the same parameters.
FORMAT_VERSION = 2
METADATA = "metadata.json"

# Measured on the shared 2-core dev box (healpy on 1 OpenMP thread, iter 0, three
# transforms at lmax 3 nside - 1, cost ~ nside**3): 0.02 s per map at nside 64, 0.67 s
# at 256, 33-37 s at 1024 (iter 1: 2.5 s and 109 s under heavier load); set-up (pyccl,
# log-normal C_l^G, pixel window) 2-3 s, 6 s at nside 1024.
_SECONDS_PER_MAP_1024 = 35.0
_SECONDS_PER_MAP_MIN = 0.02


def limit_threads(n: int | None):
    """Context limiting OpenMP threads (healpy's transforms) to ``n``; None leaves them alone.

    On a busy machine healpy's OpenMP threads spin against each other: anafast at
    nside 64 took 90 ms with 2 threads against 1.8 ms with 1 on the 2-core dev box.
    """
    if n is None:
        return contextlib.nullcontext()
    if int(n) != n or n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="openmp")


def cache_key(params: dict) -> str:
    """Short stable hash of the generation parameters (JSON, sorted keys) and FORMAT_VERSION."""
    blob = json.dumps({"format": FORMAT_VERSION, **params}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def package_versions() -> dict:
    """Versions of the packages that determine the generated maps."""
    import healpy
    import numpy
    import pyccl
    import scipy

    from .. import __version__ as ours

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "healpy": healpy.__version__,
        "pyccl": pyccl.__version__,
        "deepsphere_gen": ours,
        "format": FORMAT_VERSION,
    }


#: file inside a temporary data folder naming the host and process writing it
OWNER = ".owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: a process of another user
        return True
    return True


def clean_stale_temporaries(final: Path, log=None) -> list[Path]:
    """Remove the temporary folders of ``final`` (``.NAME.tmp-*``) that an interrupted writer left
    (killed by SIGTERM or SIGKILL: no cleanup ran): those whose :data:`OWNER` names this host and a
    process that no longer exists.  Folders without an owner (older versions) or of another host are
    only reported through ``log``.  Returns the removed folders."""
    final = Path(final)
    removed, unknown = [], []
    host = socket.gethostname()
    for tmp in sorted(final.parent.glob(f".{final.name}.tmp-*")):
        if not tmp.is_dir():
            continue
        try:
            owner_host, pid = (tmp / OWNER).read_text().split()
            pid = int(pid)
        except (OSError, ValueError):
            unknown.append(tmp)
            continue
        if owner_host == host and not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    if log is not None:
        for tmp in removed:
            log(f"massmaps: removed {tmp}, left by an interrupted generation")
        for tmp in unknown:
            log(f"massmaps: {tmp} may be left by an interrupted generation (no record of its writer): "
                "remove it if no generation is running")
    return removed


@contextlib.contextmanager
def atomic_directory(final: Path, log=None):
    """Yield a fresh temporary directory next to ``final``; rename it to ``final`` on success.

    The directory gets the permissions of a plain ``mkdir`` (0o777 & ~umask), not mkdtemp's 0o700,
    and records its writer (:data:`OWNER`, removed before the rename), so that a later call
    removes what a killed writer left (:func:`clean_stale_temporaries`, reported through ``log``).
    On any exception the temporary directory is removed and nothing appears at ``final``.
    If ``final`` appeared meanwhile (another process), the new copy is discarded.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(final, log)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, plain_mode(directory=True))  # mkdtemp's 0o700 -> what mkdir would give
        (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        yield tmp
        (tmp / OWNER).unlink(missing_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / METADATA).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_metadata(directory: Path) -> dict | None:
    """Parsed metadata.json of a dataset directory, or None if absent or unreadable."""
    try:
        with open(Path(directory) / METADATA) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def estimate_cost(nside: int, n_maps_total: int, itemsize: int = 4) -> tuple[int, float]:
    """(bytes on disk, seconds) expected for ``n_maps_total`` full-sky maps at ``nside``."""
    nbytes = n_maps_total * 12 * nside * nside * itemsize
    per_map = max(_SECONDS_PER_MAP_1024 * (nside / 1024) ** 3, _SECONDS_PER_MAP_MIN)
    setup = 3.0 + 3.0 * (nside / 1024) ** 2
    return nbytes, setup + n_maps_total * per_map
