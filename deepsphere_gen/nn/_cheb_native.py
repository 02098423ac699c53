"""A compiled CPU kernel for one Chebyshev / Clenshaw step ``Y = alpha L X + a A - z Z`` (CSR L).

torch's CPU product of a CSR matrix with a dense one (MKL) runs at ~5x its memory/flop floor
for the 128 columns of a batch-8, 16-channel layer and ~1.4x slower than needed for one
column, and a recursion step ``2 L x - x_prev`` costs it a second pass over the output.
:file:`_cheb_kernel.c` accumulates each output row in registers while the matrix row streams
once and fuses the axpy terms into the store: 1.6x faster on 128 columns (HEALPix nside 64,
k = 20) and 1.4x on one column (nside 512), one thread.

The C source is compiled on first use with the system C compiler (``$CC``, else ``cc``;
``-O3 -march=native``: vectorised for this CPU) into the cache directory
(:func:`deepsphere_gen._cache_dirs.cache_root` ``/ "kernels"``), keyed by the source, the
compiler, its flags and the CPU, and loaded with :mod:`ctypes` (which releases the GIL
during the call: rows are split over ``torch.get_num_threads()`` Python threads).  Without
a working compiler, or with ``DEEPSPHERE_GEN_NATIVE=0`` in the environment, :func:`step`
returns False and callers use torch's sparse product (the GPU path always does).

Scope: CPU, float32 / float64, int32 CSR indices, dense operands with unit column stride.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .._cache_dirs import cache_root

__all__ = ["ENV_VAR", "available", "step"]

#: set to 0 to never compile or use the kernel (torch's sparse product instead)
ENV_VAR = "DEEPSPHERE_GEN_NATIVE"

_SOURCE = Path(__file__).with_name("_cheb_kernel.c")
_FLAGS = ("-O3", "-march=native", "-std=gnu11", "-shared", "-fPIC")
#: multiply-adds below which one call runs on one thread (thread start-up ~ 50 us)
_THREAD_MIN_WORK = 1 << 22

_lock = threading.Lock()
_state: dict = {}


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU model and flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.platform() + platform.processor()


def _compile() -> ctypes.CDLL | None:
    cc = shlex.split(os.environ.get("CC") or "cc")
    try:
        version = subprocess.run(cc + ["--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(cc + list(_FLAGS)).encode(), version.encode(),
                                     _cpu_id().encode()])).hexdigest()[:20]
    folder = cache_root() / "kernels"
    lib = folder / f"cheb-{key}.so"
    if not lib.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
            done = subprocess.run(cc + list(_FLAGS) + ["-o", tmp, str(_SOURCE)], capture_output=True, timeout=120)
            if done.returncode != 0:
                os.unlink(tmp)
                return None
            os.replace(tmp, lib)  # atomic: concurrent processes never load a half-written file
        except (OSError, subprocess.SubprocessError):
            return None
    try:
        dll = ctypes.CDLL(str(lib))
    except OSError:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for suffix, scalar in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fn = getattr(dll, f"cheb_step_{suffix}")
        fn.argtypes = [i64, i64, ptr, ptr, ptr, ptr, i64, ptr, i64, ptr, i64, ptr, i64, i64, scalar, scalar, scalar]
        fn.restype = None
    return dll


def _library() -> ctypes.CDLL | None:
    if os.environ.get(ENV_VAR, "1") == "0":
        return None
    with _lock:
        if "dll" not in _state:
            _state["dll"] = _compile()
        return _state["dll"]


def available() -> bool:
    """Whether the compiled kernel is in use (compiles it on the first call)."""
    return _library() is not None


def _executor(workers: int) -> ThreadPoolExecutor:
    with _lock:
        if _state.get("pool_size", 0) < workers:
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cheb")
            _state["pool_size"] = workers
        return _state["pool"]


def _usable(m: torch.Tensor, *dense: torch.Tensor | None) -> bool:
    if m.device.type != "cpu" or m.dtype not in (torch.float32, torch.float64):
        return False
    if m.crow_indices().dtype != torch.int32 or m.col_indices().dtype != torch.int32:
        return False
    return all(t is None or (t.device.type == "cpu" and t.dtype == m.dtype and t.dim() == 2 and t.stride(1) == 1)
               for t in dense)


def step(out: torch.Tensor, m: torch.Tensor, x: torch.Tensor, alpha: float = 1.0, a_term: torch.Tensor | None = None,
         a: float = 1.0, z_term: torch.Tensor | None = None, z: float = 1.0) -> bool:
    """``out = alpha m x + a a_term - z z_term`` for CSR ``m`` (rows, cols), dense (rows|cols, n).

    ``a_term`` / ``z_term``: (rows, n) or None (term left out); ``a_term`` may be ``out``
    itself, ``x`` must not share memory with ``out``.  Returns False, doing nothing, when the
    kernel is not available or the operands are outside its scope (see the module docstring).
    Cost: one pass over m (nnz (4 + element) bytes) and over each dense operand.
    """
    if not _usable(m, out, x, a_term, z_term):
        return False
    dll = _library()
    if dll is None:
        return False
    rows, n = out.shape
    fn = dll.cheb_step_f32 if m.dtype == torch.float32 else dll.cheb_step_f64
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    ptrs = (crow.data_ptr(), col.data_ptr(), val.data_ptr(), x.data_ptr(), x.stride(0), out.data_ptr(), out.stride(0),
            None if a_term is None else a_term.data_ptr(), 0 if a_term is None else a_term.stride(0),
            None if z_term is None else z_term.data_ptr(), 0 if z_term is None else z_term.stride(0),
            n, float(alpha), float(a), float(z))
    nnz = val.numel()
    workers = min(torch.get_num_threads(), max(1, nnz * n // _THREAD_MIN_WORK))
    if workers <= 1 or rows < 2 * workers:
        fn(0, rows, *ptrs)
        return True
    # rows split at equal shares of non-zeros
    bounds = torch.searchsorted(crow, torch.linspace(0, nnz, workers + 1, dtype=torch.float64).to(crow.dtype))
    cuts = [0] + [min(max(int(b), 0), rows) for b in bounds[1:-1].tolist()] + [rows]
    pool = _executor(workers)
    futures = [pool.submit(fn, r0, r1, *ptrs) for r0, r1 in zip(cuts[:-1], cuts[1:]) if r1 > r0]
    for f in futures:
        f.result()
    return True
