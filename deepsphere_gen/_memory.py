"""Process memory helpers shared by the graph builder and the benchmark harness."""
from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["available_memory", "index_dtype", "raise_mmap_threshold", "release_free_memory"]

#: bytes of the block freed by :func:`raise_mmap_threshold` (under glibc's 32 MiB cap)
_HEAP_BLOCK = 16 << 20


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the operating system (glibc's ``malloc_trim(0)``;
    nothing on other C libraries).  Many freed temporaries below glibc's mmap threshold (32 MiB),
    some freed by worker threads into their own arenas, stay resident otherwise: ~130 MiB after
    the HEALPix kNN search at nside 1024, which would add to the peak of what follows; the
    benchmark harness calls it so that a case's peak is not hidden by the previous case's heap."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)


def index_dtype(n: int):
    """Smallest index dtype for indices below ``n``: numpy int32 below 2**31, else int64 (graphs'
    neighbour lists and patterns, the SHT's NESTED <-> RING permutations)."""
    import numpy as np

    return np.int32 if n < 2**31 else np.int64


def raise_mmap_threshold() -> None:
    """Let the following temporaries of a few MB come from the C heap rather than fresh mappings.

    glibc serves an allocation at or above its mmap threshold (128 KiB at start) with a fresh
    mapping whose pages fault one by one on first touch, and raises the threshold to the size
    of any mapped block that is freed (its documented dynamic rule, up to 32 MiB).  Allocating
    and freeing one :data:`_HEAP_BLOCK` block (never touched: no page is faulted) applies that
    rule at once.  The graph's values pass (row blocks of ~40 temporaries of a few MB, nothing
    large freed before it once the pixel angles are computed per block) faulted 604K pages
    without it and 11K with it, +30 % time (DeepSphereClassifier at nside 512, cached graph).
    Other C libraries: a harmless allocation."""
    import numpy as np

    np.empty(_HEAP_BLOCK, dtype=np.uint8)


def available_memory() -> int | None:
    """Bytes the system can still give processes without swapping (Linux ``MemAvailable`` of
    ``/proc/meminfo``); None where that is not known (other systems)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
