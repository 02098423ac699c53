"""On-disk cache of generated mass maps: keys, atomic directory writes, metadata, estimates."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import socket
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, stale folders are only reported
    fcntl = None

from .._io import plain_mode
from .._validation import check_positive_int

__all__ = ["limit_threads", "cache_key", "package_versions", "atomic_directory", "clean_stale_temporaries", "read_metadata",
           "preallocated_memmap",
           "estimate_cost", "cost_note", "damaged_data_set", "open_data_npy", "METADATA", "LOCK"]

#: Bump when the generated content changes for the same parameters.
FORMAT_VERSION = 2
METADATA = "metadata.json"

# Measured on the 2-core dev box with no other job (healpy on 1 OpenMP thread, iter 0,
# three transforms at lmax 3 nside - 1, cost ~ nside**3): 11.0 s per map at nside 1024
# (44 s for 4 maps, 2026-12-07; 33-37 s had been measured under heavy load), the default
# run's 96 maps at nside 256 in 21 s; set-up (pyccl, log-normal C_l^G, pixel window) 2-3 s,
# about 6 s at nside 1024.
_SECONDS_PER_MAP_1024 = 11.0
_SECONDS_PER_MAP_MIN = 0.02


def limit_threads(n: int | None):
    """Context limiting OpenMP threads (healpy's transforms) to ``n``; None leaves them alone.

    On a busy machine healpy's OpenMP threads spin against each other: anafast at
    nside 64 took 90 ms with 2 threads against 1.8 ms with 1 on the 2-core dev box.
    """
    if n is None:
        return contextlib.nullcontext()
    n = check_positive_int(n, "threads", optional=True)
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


#: lock file inside a temporary data folder: its writer holds ``flock(LOCK_EX)`` on it for the folder's
#: whole life (the kernel drops the lock when the writer ends, even by SIGKILL); it reads "HOST PID"
LOCK = ".writer.lock"


def _lock_writer(tmp: Path):
    """Open, lock and install ``tmp/LOCK``; the open descriptor (keep it open: closing drops the lock),
    or None where this file system has no ``flock`` (then no lock file: the folder is never removed
    by another process, only reported).  The file is locked under another name, then renamed, so a
    cleaner never finds :data:`LOCK` unlocked while its writer lives."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    staging = tmp / (LOCK + ".new")
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, plain_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        staging.unlink()
        return None
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())  # for a person looking; the lock decides
    os.rename(staging, tmp / LOCK)
    return fd


def _writer_gone(tmp: Path) -> tuple[bool, str | None]:
    """(True, None) if ``tmp``'s writer has ended (:data:`LOCK` exists and ``LOCK_EX | LOCK_NB``
    succeeds: no process holds it, in whatever PID namespace or host); (False, None) if a writer
    holds it; (False, why) if it cannot be told (no lock file, or no ``flock`` on this file system).
    An ended writer never comes back, so the lock is released at once (NFS could not remove an open file)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return False, "no flock on this system"
    try:
        fd = os.open(tmp / LOCK, os.O_RDWR)  # NFS's emulated flock wants write access for LOCK_EX
    except FileNotFoundError:
        return False, "no record of its writer"
    except OSError as err:
        return False, f"its lock file cannot be opened: {err.strerror}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False, None
    except OSError as err:
        return False, f"this file system does not lock files ({err.strerror})"
    finally:
        os.close(fd)
    return True, None


def clean_stale_temporaries(final: Path, log=None) -> list[Path]:
    """Remove the temporary folders next to ``final`` that an interrupted writer left (killed by SIGKILL,
    or by SIGTERM outside the commands: no cleanup ran): those whose :data:`LOCK` no process holds, of
    ``final`` (``.NAME.tmp-*``) and of any other data set in its folder (``.*.tmp-*``: another seed or
    setting that may never be generated again; was: kept until a write of that same data set).
    A writer is detected by its lock, not its process id, so one in another PID namespace (a
    container) or on another machine sharing the file system is never taken for gone.  Folders of
    ``final`` that cannot be told (no lock file: older versions or a writer just starting; file systems
    without ``flock``) are kept and reported through ``log``; such folders of other data sets are kept
    silently (a write of their own data set reports them).  Returns the removed folders."""
    final = Path(final)
    removed, unknown = [], []
    own = f".{final.name}.tmp-"
    for tmp in sorted(final.parent.glob(".*.tmp-*")):
        if not tmp.is_dir():
            continue
        gone, why = _writer_gone(tmp)
        if gone:
            shutil.rmtree(tmp, ignore_errors=True)
            if tmp.exists():
                unknown.append((tmp, "its writer has ended but it could not be removed"))
            else:
                removed.append(tmp)
        elif why is not None and tmp.name.startswith(own):
            unknown.append((tmp, why))
    if log is not None:
        for tmp in removed:
            log(f"deepsphere_gen: removed {tmp}, left by an interrupted generation")
        for tmp, why in unknown:
            if tmp.exists():  # not removed meanwhile by another process
                log(f"deepsphere_gen: {tmp} may be left by an interrupted generation ({why}): "
                    "remove it if no generation is running")
    return removed


@contextlib.contextmanager
def atomic_directory(final: Path, log=None):
    """Yield a fresh temporary directory next to ``final``; rename it to ``final`` on success.

    The directory gets the permissions of a plain ``mkdir`` (0o777 & ~umask), not mkdtemp's 0o700,
    and holds a lock for its whole life (:data:`LOCK`, removed before the rename), so that a later
    call removes what a killed writer left and nothing else (:func:`clean_stale_temporaries`,
    reported through ``log``).  On any exception the temporary directory is removed and nothing
    appears at ``final``.  If ``final`` appeared meanwhile (another process), the new copy is discarded.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(final, log)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    lock = None
    try:
        os.chmod(tmp, plain_mode(directory=True))  # mkdtemp's 0o700 -> what mkdir would give
        lock = _lock_writer(tmp)
        yield tmp
        (tmp / LOCK).unlink(missing_ok=True)  # still locked through the open descriptor until the end
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / METADATA).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if lock is not None:  # closed first: NFS cannot remove an open file
            os.close(lock)
            lock = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


def preallocated_memmap(path, shape, dtype="float32"):
    """``np.lib.format.open_memmap(path, "w+", dtype, shape)`` with the file's disk blocks allocated before any
    store: numpy creates a sparse file, and a store into a page that the file system then cannot back (a full
    disk) kills the process with SIGBUS, without a message or cleanup.  Allocated first, a full
    disk is an ``OSError`` (ENOSPC) here, which the commands report in one line.  ``os.posix_fallocate`` where the
    system and file system have it (milliseconds: extents, not writes); elsewhere zeros are written (one pass
    over the file, ~1 s per GB).  A copy-on-write file system (btrfs, ZFS) may still fail a later store."""
    import numpy as np

    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
            return out
        except AttributeError:  # pragma: no cover - no posix_fallocate (macOS)
            pass
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        chunk, offset = 1 << 24, out.offset
        fh.seek(offset)
        while offset < size:
            offset += fh.write(bytes(min(chunk, size - offset)))
        fh.flush()
    return out


def read_metadata(directory: Path) -> dict | None:
    """Parsed metadata.json of a dataset directory, or None if absent or unreadable."""
    try:
        with open(Path(directory) / METADATA) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def estimate_cost(nside: int, n_maps_total: int, itemsize: int = 4,
                  seconds_per_map_1024: float = _SECONDS_PER_MAP_1024) -> tuple[int, float]:
    """(bytes on disk, seconds on one core) expected for ``n_maps_total`` full-sky maps at ``nside``, each costing
    ``seconds_per_map_1024`` at nside 1024 (default: the generator's; cost ~ nside^3), plus the set-up."""
    nbytes = n_maps_total * 12 * nside * nside * itemsize
    per_map = max(seconds_per_map_1024 * (nside / 1024) ** 3, _SECONDS_PER_MAP_MIN)
    setup = 3.0 + 3.0 * (nside / 1024) ** 2
    return nbytes, setup + n_maps_total * per_map


def cost_note(nside: int, n_maps_total: int, seconds_per_map_1024: float = _SECONDS_PER_MAP_1024) -> str:
    """The :func:`estimate_cost` of float32 maps as a generation line gives it: "~12.0 MiB, ~21 s estimated (1 core)"."""
    nbytes, seconds = estimate_cost(nside, n_maps_total, seconds_per_map_1024=seconds_per_map_1024)
    return f"~{nbytes / 2**20:.1f} MiB, ~{_duration(seconds)} estimated (1 core)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def damaged_data_set(path: Path, file: Path, why: str) -> ValueError:
    """The refusal of a generated data set (mass maps, cosmo grid) whose ``file`` is ``why`` (missing,
    damaged, of another shape): names the file and says to remove the folder ``path``."""
    return ValueError(f"{file} is {why}; remove {path} to generate it again")


def open_data_npy(path: Path, name: str, mmap: bool = True):
    """``path / name`` as a read-only memory map (``mmap``; else read), or :func:`damaged_data_set`'s
    ValueError where it is missing, truncated ("mmap length is greater than file size"), empty
    (EOFError) or not an .npy file."""
    import numpy as np

    file = Path(path) / name
    try:
        return np.load(file, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise damaged_data_set(path, file, f"missing or damaged ({type(exc).__name__}: {exc})") from None
