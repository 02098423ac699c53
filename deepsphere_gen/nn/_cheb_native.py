"""A compiled CPU kernel for one Chebyshev / Clenshaw step ``Y = alpha L X + a A - z Z`` (CSR L).

torch's CPU product of a CSR matrix with a dense one (MKL) runs at ~5x its memory/flop floor
for the 128 columns of a batch-8, 16-channel layer and ~1.4x slower than needed for one
column, and a recursion step ``2 L x - x_prev`` costs it a second pass over the output.
:file:`_cheb_kernel.c` accumulates each output row in registers while the matrix row streams
once and fuses the axpy terms into the store: 1.6x faster on 128 columns (HEALPix nside 64,
k = 20) and 1.4x on one column (nside 512), one Zen 4 thread (this Xeon: the `cheb_step` record).

Memory traffic of large operands (HEALPix nside >= 64 with 128 columns), measured on one
Zen 4 core at nside 64: with neighbours in NESTED order, a row of the dense input is read
first by a row far ahead of it, out of any hardware prefetcher's pattern, so its first
read waits on memory (a step ran ~2.5x the time of the same arithmetic on a sequential
input).  :func:`schedule` lists, once per matrix, the rows of the input each output row
reads that no row in the :data:`PREFETCH_WINDOW` rows before it read; the kernel prefetches
the list of row i + :data:`PREFETCH_AHEAD` while it computes row i (~1.4 input rows per
output row: -25 % time per step), and the rows of the streamed operands 32 rows ahead (the
hardware prefetcher fell behind: -15 to -25 % more); with one column, x is prefetched
:data:`COLUMN_PREFETCH_BYTES` ahead of the current row (-20 % at nside 1024).  Outputs above
:data:`STREAM_MIN_BYTES` are written with streaming stores (no read of each output line
before its write: -10 %), except in place (``a_term`` is ``out``: the line was just read;
streaming it out cost +19 % at nside 256).

The C source is compiled on first use with the system C compiler (``$CC``, else ``cc``;
``-O3 -march=native``: vectorised for this CPU) into the cache directory
(:func:`deepsphere_gen._cache_dirs.cache_root` ``/ "kernels"``), keyed by the source, the
compiler, its flags and the CPU, and loaded with :mod:`ctypes` (which releases the GIL
during the call: rows are split over ``torch.get_num_threads()`` Python threads).  Without
a working compiler, or with ``DEEPSPHERE_GEN_NATIVE=0`` in the environment, :func:`step`
returns False and callers use torch's sparse product (the GPU path always does).

One float32 column (one map, one channel): with AVX-512, :func:`sliced` keeps a second copy of
the matrix in slices of 16 rows (see :file:`_cheb_kernel.c`), where most entries of a HEALPix
NESTED graph read x from the slice's own 16 values (a register permutation, no load): a step
at nside 1024 (k = 8) 60 -> 42 ms, for 8 more bytes per non-zero held while the matrix lives.

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
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch

from .._cache_dirs import cache_root
from .._env import switched_off
from .._memory import available_memory

__all__ = ["ENV_VAR", "available", "step", "forward", "backward", "schedule", "sliced", "release", "build_library",
           "lazy_library", "parallel_rows"]

#: set to 0 to never compile or use the kernel (torch's sparse product instead)
ENV_VAR = "DEEPSPHERE_GEN_NATIVE"

_SOURCE = Path(__file__).with_name("_cheb_kernel.c")
#: -march=native: the vector width follows the host (VEC_BYTES in the C source: 64 bytes with
#: AVX-512, 32 with AVX2); no -mtune / -mprefer-vector-width: the source's vector loads and
#: stores are single instructions under any tuning (see ld_ there; copies through memcpy were
#: split by the Rocket Lake tuning GCC picks for some AVX-512 Xeons: 4x slower than torch)
_FLAGS = ("-O3", "-march=native", "-std=gnu11", "-shared", "-fPIC")
#: multiply-adds below which one call runs on one thread (thread start-up ~ 50 us)
_THREAD_MIN_WORK = 1 << 22

#: rows of the dense input read within this many preceding rows count as cached (no prefetch)
PREFETCH_WINDOW = 256
#: output rows ahead whose listed input rows are prefetched (2-4 best at nside 64 and 256)
PREFETCH_AHEAD = 2
#: one column: the kernel prefetches x this many bytes ahead of the current row (HEALPix
#: nside 1024, k = 8: a step 75 -> 59 ms; 16-64 KiB ahead: 61-62 ms, 1 MiB: 68 ms)
COLUMN_PREFETCH_BYTES = 128 << 10
#: dense inputs below this size (bytes) are served by the caches: no schedule, no prefetch
PREFETCH_MIN_BYTES = 4 << 20
#: outputs from this size (bytes, half of a 32 MiB L3) are written with streaming stores
STREAM_MIN_BYTES = 16 << 20
#: rows per slice of the one-column sliced layout (one AVX-512 vector of float32)
SLICE = 16
#: a step of 2 or more columns whose rows hold at most this many bytes (float32: 2-8 columns,
#: float64: 2-4) is left to torch's CSR product (MKL), measured faster there: the ``cheb_step``
#: bench suite's ``dispatch="off"`` cases (benchmarks/results/cheb_step_cpu_1thread_xeon_avx512.json:
#: HEALPix nside 256, k = 20, one thread on an AVX-512 Xeon, best of 7 interleaved rounds), the
#: kernel's time / torch's: float32 2, 4, 5, 6, 8 columns 1.17, 1.44, 1.05, 1.04, 1.14 (the kernel
#: from 12: 0.90); float64 2, 4 columns 1.03, 1.10 (the kernel from 5: 0.85)
TORCH_MAX_ROW_BYTES = 32
#: the sliced layout is built only if its padding is at most this fraction of the non-zeros
SLICE_MAX_PADDING = 0.25
#: ... and only if the copy takes at most this fraction of the memory still available
SLICE_MAX_MEMORY_FRACTION = 0.25
#: the sliced one-column kernel prefetches x this many bytes ahead (HEALPix nside 1024, k = 8:
#: a step 44 ms at 32 KiB, 41-42 at 128 KiB, 40 at 512 KiB)
SLICE_PREFETCH_BYTES = 512 << 10

_lock = threading.Lock()
_state: dict = {}
#: id(CSR matrix) -> (weak reference to it, (col pointer, nnz, shape), (ptr, rows) of its schedule)
_schedules: dict = {}
#: id(CSR matrix) -> (weak reference to it, its key, its sliced layout or None)
_sliced: dict = {}


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU model and flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.platform() + platform.processor()


def build_library(source: Path, stem: str) -> ctypes.CDLL | None:
    """Compile the C file ``source`` (:data:`_FLAGS`) into the kernel cache as ``<stem>-<key>.so``
    (key: the source, the compiler, its flags and the CPU), once, and load it; None without a
    working compiler.  Also used by :mod:`._pool_native`."""
    cc = shlex.split(os.environ.get("CC") or "cc")
    try:
        version = subprocess.run(cc + ["--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    key = hashlib.sha256(b"\0".join([source.read_bytes(), " ".join(cc + list(_FLAGS)).encode(), version.encode(),
                                     _cpu_id().encode()])).hexdigest()[:20]
    folder = cache_root() / "kernels"
    lib = folder / f"{stem}-{key}.so"
    if not lib.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
            try:
                done = subprocess.run(cc + list(_FLAGS) + ["-o", tmp, str(source)], capture_output=True, timeout=120)
                if done.returncode != 0:
                    return None
                os.replace(tmp, lib)  # atomic: concurrent processes never load a half-written file
            finally:
                if os.path.exists(tmp):  # failed, timed out or interrupted: no stray file in the cache
                    os.unlink(tmp)
        except (OSError, subprocess.SubprocessError):
            return None
    try:
        return ctypes.CDLL(str(lib))
    except OSError:
        return None


def _compile() -> ctypes.CDLL | None:
    dll = build_library(_SOURCE, "cheb")
    if dll is None:
        return None
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
    for suffix, scalar in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        signatures = {
            "cheb_step": [i64, i64, ptr, ptr, ptr, ptr, i64, ptr, i64, ptr, i64, ptr, i64, i64, scalar, scalar, scalar,
                          ptr, ptr, i64, i32],
            "cheb_forward": [i64, i64, i64, i64, i64, ptr, i64, ptr, ptr, ptr, i32],
            "cheb_backward": [i64, i64, i64, i64, i64, ptr, i64, ptr, i64, i64, i64, ptr, ptr, ptr, i32],
        }
        for name, args in signatures.items():
            fn = getattr(dll, f"{name}_{suffix}")
            fn.argtypes, fn.restype = args, (ctypes.c_int if name == "cheb_backward" else None)
    dll.cheb_schedule.argtypes, dll.cheb_schedule.restype = [i64, ptr, ptr, i64, i64, ptr, ptr, ptr], None
    dll.cheb_sell_available.argtypes, dll.cheb_sell_available.restype = [], ctypes.c_int
    if dll.cheb_sell_available():
        dll.cheb_sell_build.argtypes, dll.cheb_sell_build.restype = [i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr], None
        dll.cheb_sell_step_f32.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                                           ctypes.c_float, ctypes.c_float, ctypes.c_float, i64, i32]
        dll.cheb_sell_step_f32.restype = None
    return dll


def lazy_library(compile_library: Callable[[], ctypes.CDLL | None]) -> Callable[[], ctypes.CDLL | None]:
    """A function returning the library that ``compile_library`` builds, built once at its first
    call (thread-safe); it returns None while :data:`ENV_VAR` is 0 / false / no / off (:func:`deepsphere_gen._env.switched_off`) or where the build failed.
    Also used by :mod:`._pool_native`."""
    lock, built = threading.Lock(), {}

    def library() -> ctypes.CDLL | None:
        if switched_off(ENV_VAR):
            return None
        with lock:
            if "dll" not in built:
                built["dll"] = compile_library()
            return built["dll"]

    return library


_library = lazy_library(_compile)


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


def _check_shapes(what: str, **pairs) -> None:
    """ValueError naming the operand whose shape differs: the kernels index raw pointers, so a
    wrong shape would read or write out of bounds instead of failing.  ``pairs``: name ->
    (actual shape, expected shape)."""
    for name, (got, want) in pairs.items():
        if tuple(got) != tuple(want):
            raise ValueError(f"{what}: {name} has shape {tuple(got)}, expected {tuple(want)}")


def step(out: torch.Tensor, m: torch.Tensor, x: torch.Tensor, alpha: float = 1.0, a_term: torch.Tensor | None = None,
         a: float = 1.0, z_term: torch.Tensor | None = None, z: float = 1.0) -> bool:
    """``out = alpha m x + a a_term - z z_term`` for CSR ``m`` (rows, cols), dense (rows|cols, n).

    ``a_term`` / ``z_term``: (rows, n) or None (term left out); ``a_term`` may be ``out``
    itself, ``x`` must not share memory with ``out``.  Returns False, doing nothing, when the
    kernel is not available, the operands are outside its scope (see the module docstring), or
    with 2 or more columns of at most :data:`TORCH_MAX_ROW_BYTES` per row (torch's product is faster).
    Cost: one pass over m (nnz (4 + element) bytes) and over each dense operand.
    """
    if not _usable(m, out, x, a_term, z_term):
        return False
    dll = _library()
    if dll is None:
        return False
    rows, n = out.shape
    _check_shapes("ChebConv step", out=(out.shape, (m.shape[0], n)), x=(x.shape, (m.shape[1], n)),
                  **{k: (t.shape, out.shape) for k, t in (("a_term", a_term), ("z_term", z_term)) if t is not None})
    if 1 < n and n * out.element_size() <= TORCH_MAX_ROW_BYTES:
        return False
    if n == 1 and _sliced_step(dll, out, m, x, alpha, a_term, a, z_term, z):
        return True
    fn = dll.cheb_step_f32 if m.dtype == torch.float32 else dll.cheb_step_f64
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    sched = schedule(m) if n > 1 and x.shape[0] * x.stride(0) * x.element_size() >= PREFETCH_MIN_BYTES else None
    ptrs = (crow.data_ptr(), col.data_ptr(), val.data_ptr(), x.data_ptr(), x.stride(0), out.data_ptr(), out.stride(0),
            None if a_term is None else a_term.data_ptr(), 0 if a_term is None else a_term.stride(0),
            None if z_term is None else z_term.data_ptr(), 0 if z_term is None else z_term.stride(0),
            n, float(alpha), float(a), float(z),
            None if sched is None else sched[0].data_ptr(), None if sched is None else sched[1].data_ptr(),
            _prefetch_distance(m, x, n), int(_stream(out, a_term)))
    nnz = val.numel()
    workers = _workers(nnz * n, rows)
    if workers == 1:
        fn(0, rows, *ptrs)
        return True
    # rows split at equal shares of non-zeros
    bounds = torch.searchsorted(crow, torch.linspace(0, nnz, workers + 1, dtype=torch.float64).to(crow.dtype))
    cuts = [0] + [min(max(int(b), 0), rows) for b in bounds[1:-1].tolist()] + [rows]
    _run([(fn, (r0, r1) + ptrs) for r0, r1 in zip(cuts[:-1], cuts[1:]) if r1 > r0])
    return True


def _sliced_step(dll, out, m, x, alpha, a_term, a, z_term, z) -> bool:
    """The one-column step from the sliced layout (:func:`sliced`): float32, square ``m``, every
    operand a contiguous column.  False (nothing done) where it does not apply."""
    rows = out.shape[0]
    if m.dtype != torch.float32 or m.shape[0] != m.shape[1] or rows < SLICE:
        return False
    if any(t is not None and t.stride(0) != 1 for t in (out, x, a_term, z_term)):
        return False
    layout = sliced(m)
    if layout is None:
        return False
    soff, npm, scol, sval = layout
    args = (rows, soff.data_ptr(), npm.data_ptr(), scol.data_ptr(), sval.data_ptr(), m.crow_indices().data_ptr(),
            m.col_indices().data_ptr(), m.values().data_ptr(), x.data_ptr(), out.data_ptr(),
            None if a_term is None else a_term.data_ptr(), None if z_term is None else z_term.data_ptr(),
            float(alpha), float(a), float(z), _prefetch_distance(m, x, 1, SLICE_PREFETCH_BYTES),
            int(_stream(out, a_term, rows_per_store=SLICE)))  # the kernel stores a slice's 16 rows at once
    slices = rows // SLICE
    parts = _even_cuts(slices, _workers(m.values().numel(), slices))
    cuts = [(s0 * SLICE, rows if s1 == slices else s1 * SLICE) for s0, s1 in parts]
    _run([(dll.cheb_sell_step_f32, (r0, r1) + args) for r0, r1 in cuts])
    return True


def sliced(m: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """The sliced layout of float32 CSR ``m`` for the one-column kernel (see _cheb_kernel.c),
    built once per matrix; None where the kernel lacks it (no AVX-512), where its padding
    would exceed :data:`SLICE_MAX_PADDING` of the non-zeros, or where the copy would take more
    than :data:`SLICE_MAX_MEMORY_FRACTION` of the memory still available (``MemAvailable``):
    a copy for speed never pushes a large map towards the OOM killer (the CSR kernel runs then).

    Returns (soff (S + 1,) int64, np (S,) int32, col (soff[S],) int32, values (soff[S],)) for
    S = rows // 16 slices.  Memory: 8 bytes per stored entry (non-zeros of the first 16 S rows
    plus padding) + 12 bytes per slice, held while the matrix lives (HEALPix nside 1024,
    k = 8: 865 MiB + 1 MiB padding, beside the CSR's 913 MiB).  Cost: two O(nnz) passes.
    """
    dll = _library()
    if dll is None or not dll.cheb_sell_available():
        return None
    col = m.col_indices()
    key = (col.data_ptr(), col.numel(), tuple(m.shape), m.values().data_ptr())
    with _lock:
        hit = _sliced.get(id(m))
        if hit is not None and hit[0]() is m and hit[1] == key:
            return hit[2]
    rows = m.shape[0]
    S = rows // SLICE
    soff = torch.empty(S + 1, dtype=torch.int64)
    npm = torch.empty(S, dtype=torch.int32)
    args = (rows, m.crow_indices().data_ptr(), col.data_ptr(), m.values().data_ptr(), soff.data_ptr(), npm.data_ptr())
    dll.cheb_sell_build(*args, None, None)
    stored = int(soff[-1])
    layout = None
    free = available_memory()
    fits = free is None or 8 * stored <= SLICE_MAX_MEMORY_FRACTION * free
    if fits and stored - int(m.crow_indices()[S * SLICE]) <= SLICE_MAX_PADDING * col.numel():
        scol = torch.empty(stored, dtype=torch.int32)
        sval = torch.empty(stored, dtype=torch.float32)
        dll.cheb_sell_build(*args, scol.data_ptr(), sval.data_ptr())
        layout = (soff, npm, scol, sval)
    with _lock:
        _sliced[id(m)] = (weakref.ref(m, _forget_matrix), key, layout)
    return layout


def schedule(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The prefetch schedule of CSR ``m`` (see the module docstring), computed once per matrix.

    Returns (ptr (rows + 1,), rows (ptr[-1],)) int32: output row i prefetches the input rows
    ``rows[ptr[i]:ptr[i + 1]]``; None without the kernel.  Cost: one O(nnz) pass and
    ~(1.4 + 1) x rows int32 held while the matrix lives (entries of dead matrices are dropped).
    """
    dll = _library()
    if dll is None:
        return None
    col = m.col_indices()
    key = (col.data_ptr(), col.numel(), tuple(m.shape))
    with _lock:
        hit = _schedules.get(id(m))
        if hit is not None and hit[0]() is m and hit[1] == key:
            return hit[2]
    rows, ncols = m.shape
    last = torch.empty(ncols, dtype=torch.int32)
    ptr = torch.empty(rows + 1, dtype=torch.int32)
    args = (rows, m.crow_indices().data_ptr(), col.data_ptr(), ncols, PREFETCH_WINDOW, last.data_ptr(), ptr.data_ptr())
    dll.cheb_schedule(*args, None)
    listed = torch.empty(int(ptr[-1]), dtype=torch.int32)
    dll.cheb_schedule(*args, listed.data_ptr())
    with _lock:
        _schedules[id(m)] = (weakref.ref(m, _forget_matrix), key, (ptr, listed))
    return ptr, listed


def release(m: torch.Tensor) -> None:
    """Drop the prefetch schedule and the sliced layout kept for CSR ``m`` (rebuilt at its next
    use, e.g. the sliced one in ~0.6 s at HEALPix nside 1024)."""
    with _lock:
        for cache in (_schedules, _sliced):
            hit = cache.get(id(m))
            if hit is not None and hit[0]() is m:
                del cache[id(m)]


def _forget_matrix(ref: weakref.ref) -> None:
    """Weakref callback: drop a collected matrix's schedule and sliced copy at once (at nside 1024
    ~100 MB and ~865 MB).
    Runs inside garbage collection, possibly while this thread holds ``_lock``: no lock, only
    single dictionary operations (atomic under the GIL), and only the entry of this very ref."""
    for cache in (_schedules, _sliced):
        for k, v in list(cache.items()):
            if v[0] is ref:
                cache.pop(k, None)


def _prefetch_distance(m: torch.Tensor, x: torch.Tensor, n: int, column_bytes: int | None = None) -> int:
    """The kernels' prefetch distance: rows ahead (n > 1, with a schedule), or for one contiguous
    column, elements of x ahead where x is beyond the caches (:data:`PREFETCH_MIN_BYTES`; else 0:
    none): ``column_bytes`` of them (default :data:`COLUMN_PREFETCH_BYTES`, the CSR kernel's; the
    sliced kernel's: :data:`SLICE_PREFETCH_BYTES`)."""
    if n > 1:
        return PREFETCH_AHEAD
    big = x.shape[0] * x.element_size() >= PREFETCH_MIN_BYTES and x.shape[0] >= m.shape[0]
    return (COLUMN_PREFETCH_BYTES if column_bytes is None else column_bytes) // x.element_size() if big else 0


def _stream(out: torch.Tensor, a_term: torch.Tensor | None = None, rows_per_store: int = 1) -> bool:
    """Streaming stores for ``out`` (rows, n): large (:data:`STREAM_MIN_BYTES`), 64-byte aligned,
    each store of whole 64-byte lines (a store: ``rows_per_store`` rows, one for the CSR and dense
    kernels, :data:`SLICE` for the sliced one-column kernel), and not in place (``a_term`` is not
    ``out``: the line was just read; see the module docstring)."""
    size = out.shape[0] * out.stride(0) * out.element_size()
    return (size >= STREAM_MIN_BYTES and out.data_ptr() % 64 == 0
            and (rows_per_store * out.stride(0) * out.element_size()) % 64 == 0
            and (a_term is None or a_term.data_ptr() != out.data_ptr()))


def _workers(work: int, rows: int) -> int:
    """Threads for a call of ``work`` multiply-adds over ``rows`` rows (1: run inline)."""
    workers = min(torch.get_num_threads(), max(1, work // _THREAD_MIN_WORK))
    return workers if rows >= 2 * workers else 1


def _run(calls) -> list:
    """Run [(fn, args), ...] on the thread pool (ctypes drops the GIL during each call); results."""
    if len(calls) == 1:
        fn, args = calls[0]
        return [fn(*args)]
    pool = _executor(len(calls))
    return [f.result() for f in [pool.submit(fn, *args) for fn, args in calls]]


def parallel_rows(fn, rows: int, work: int, *args) -> list:
    """``fn(r0, r1, *args)`` over ``rows`` cut into even ranges, one per thread (as many as ``work``
    multiply-adds or bytes justify, :func:`_workers`); their results.  The dense forward's split, also
    used by :mod:`._pool_native`."""
    return _run([(fn, (r0, r1) + args) for r0, r1 in _even_cuts(rows, _workers(work, rows))])


def _even_cuts(rows: int, parts: int) -> list[tuple[int, int]]:
    edges = [rows * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _orders_contiguous(basis: torch.Tensor) -> bool:
    """(K, P, n) with each ``basis[k]`` contiguous and the orders apart by any stride (padded stack)."""
    if basis.dim() != 3:
        return False
    K, P, n = basis.shape
    return (n <= 1 or basis.stride(2) == 1) and (P <= 1 or basis.stride(1) == n) and (K <= 1 or basis.stride(0) >= P * n)


def _dense_ok(basis: torch.Tensor, weight: torch.Tensor, *others: torch.Tensor | None) -> bool:
    return (basis.device.type == "cpu" and basis.dtype in (torch.float32, torch.float64) and _orders_contiguous(basis)
            and weight.dtype == basis.dtype and weight.device == basis.device
            and all(t is None or (t.dtype == basis.dtype and t.device == basis.device) for t in others))


def forward(y: torch.Tensor, basis: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """``y[r] = bias + sum_k T_k[r] W_k`` for the stack ``basis`` (K, P, B*C) seen as K (P*B, C)
    matrices (row r = (pixel, batch)), ``weight`` (K, C, O), ``y`` (P*B, O) contiguous; each
    ``basis[k]`` contiguous, the orders ``basis.stride(0)`` elements apart (may be padded).

    Returns False, doing nothing, when the kernel is unavailable or the operands are outside
    its scope.  Cost: 2 P B K C O flops, one pass over the stack and the output.
    """
    if not (_dense_ok(basis, weight, y, bias) and y.is_contiguous()) or _library() is None:
        return False
    K, C, O = weight.shape
    rows = y.shape[0]
    _check_shapes("ChebConv forward", basis_orders=((basis.shape[0],), (K,)), y=(y.shape, (basis[0].numel() // C, O)),
                  bias=((O,) if bias is None else bias.shape, (O,)))
    if basis[0].numel() % C:
        raise ValueError(f"ChebConv forward: basis orders of {basis[0].numel()} values are not rows of {C} channels")
    dll = _library()
    fn = dll.cheb_forward_f32 if basis.dtype == torch.float32 else dll.cheb_forward_f64
    w = weight.detach().contiguous()
    b = None if bias is None else bias.detach().contiguous()
    args = (K, C, O, basis.data_ptr(), basis.stride(0), w.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(),
            int(_stream(y)))
    parallel_rows(fn, rows, rows * K * C * O, *args)
    return True


def backward(basis: torch.Tensor, gy: torch.Tensor, weight: torch.Tensor, need_dw: bool, need_db: bool,
             need_dt: bool):
    """Gradient products of :func:`forward` for the output gradient ``gy`` (B, P, O).

    Returns (dW (K, C, O) or None, db (O,) or None) and, if ``need_dt``, writes
    ``G_k = g W_k^T`` over the stack (``basis[k]`` seen as (P*B, C)); None, doing nothing,
    when the kernel is unavailable or the operands are outside its scope.
    Cost: 4 P B K C O flops (2 each for dW and G), one pass over the stack and over g.
    """
    if not (_dense_ok(basis, weight, gy) and gy.dim() == 3 and gy.stride(2) == 1) or _library() is None:
        return None
    K, C, O = weight.shape
    B, P, _ = gy.shape
    rows = P * B
    _check_shapes("ChebConv backward", basis=((basis.shape[0], basis[0].numel()), (K, rows * C)), gy=(gy.shape, (B, P, O)))
    dll = _library()
    fn = dll.cheb_backward_f32 if basis.dtype == torch.float32 else dll.cheb_backward_f64
    wt = weight.detach().transpose(1, 2).contiguous()  # (K, O, C)
    cuts = _even_cuts(rows, _workers(rows * K * C * O * (need_dw + need_dt), rows))
    dw = torch.zeros((len(cuts), K, C, O), dtype=basis.dtype) if need_dw else None
    db = torch.zeros((len(cuts), O), dtype=basis.dtype) if need_db else None
    calls = []
    for i, (r0, r1) in enumerate(cuts):
        calls.append((fn, (r0, r1, K, C, O, basis.data_ptr(), basis.stride(0), gy.data_ptr(), B, gy.stride(0),
                           gy.stride(1), wt.data_ptr(), None if dw is None else dw[i].data_ptr(),
                           None if db is None else db[i].data_ptr(), int(need_dt))))
    if any(_run(calls)):
        raise MemoryError("ChebConv backward kernel: no memory for the bias-gradient sums")
    return (None if dw is None else dw.sum(0)), (None if db is None else db.sum(0))

