"""A compiled CPU kernel for partial-sky HEALPix max pooling (:class:`~.pooling.HealpixPartialPool`).

With torch operations, pooling a partial sky is a gather of the kept children (``index_select``),
a max with argmax (``max_pool2d``), and in the backward a scatter into zeros, a zero fill and an
``index_add`` back to the map: five passes over the map.  :file:`_pool_kernel.c` reads the
children where they lie and writes the max and the argmax in one pass, and writes the
whole input gradient in one pass (zeros included): the default cosmo network's training
4.2 -> 3.8 s CPU per epoch, one thread (timings in :func:`gather_max`); values, argmax and gradients
are the bits of the torch path (tests/nn/test_pooling.py).

Compiled at first use with the ChebConv kernels' builder (:func:`._cheb_native.build_library`:
``$CC``, ``-O3 -march=native``, cached by source, compiler and CPU); ``DEEPSPHERE_GEN_NATIVE=0``
or no compiler: :func:`available` is False and the pooling runs on torch operations.
Scope: CPU, float32 / float64.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from ._cheb_native import build_library, lazy_library, parallel_rows

__all__ = ["available", "usable", "check_groups", "gather_max"]

_SOURCE = Path(__file__).with_name("_pool_kernel.c")


def _compile() -> ctypes.CDLL | None:
    dll = build_library(_SOURCE, "pool")
    if dll is None:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        fwd, bwd = getattr(dll, f"pool_max_forward_{suffix}"), getattr(dll, f"pool_max_backward_{suffix}")
        fwd.argtypes, fwd.restype = [i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr], None
        bwd.argtypes, bwd.restype = [i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, i64, ptr, ptr], None
    return dll


_library = lazy_library(_compile)


def available() -> bool:
    """Whether the compiled kernel is in use (compiles it on the first call)."""
    return _library() is not None


def usable(x: torch.Tensor, groups: torch.Tensor) -> bool:
    """Whether :func:`gather_max` runs ``x`` (B, P, C) with ``groups`` (Q, f) on the kernel: both on
    the CPU (a CUDA module with a CPU map takes the torch path and its device error), x a float
    map with at least one sample."""
    return (x.device.type == "cpu" and groups.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.dim() == 3 and x.shape[0] > 0 and groups.dim() == 2 and groups.shape[1] >= 1 and available())


class _GatherMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, groups, dropped, reference):
        B, P, C = x.shape
        Q, f = groups.shape
        xc = x.detach().contiguous()
        y = torch.empty((B, Q, C), dtype=x.dtype)
        arg = torch.empty((B, Q, C), dtype=torch.int32 if x.dtype == torch.float32 else torch.int64)
        dll = _library()
        fn = dll.pool_max_forward_f32 if x.dtype == torch.float32 else dll.pool_max_forward_f64
        parallel_rows(fn, B, B * P * C * x.element_size(), P, C, Q, f, groups.data_ptr(), xc.data_ptr(), y.data_ptr(), arg.data_ptr())
        ctx.save_for_backward(x, groups, dropped, arg)
        ctx.reference = reference
        return y

    @staticmethod
    def backward(ctx, g):
        x, groups, dropped, arg = ctx.saved_tensors
        if torch.is_grad_enabled():  # double backward (create_graph): the torch path's gradient, a graph
            (gx,) = torch.autograd.grad(ctx.reference(x), x, g, create_graph=True)
            return gx, None, None, None
        B, P, C = x.shape
        Q, f = groups.shape
        gc = g.contiguous()
        gx = torch.empty((B, P, C), dtype=x.dtype)
        dll = _library()
        fn = dll.pool_max_backward_f32 if x.dtype == torch.float32 else dll.pool_max_backward_f64
        parallel_rows(fn, B, B * P * C * x.element_size(), P, C, Q, f, groups.data_ptr(), arg.data_ptr(), gc.data_ptr(),
                      dropped.numel(), dropped.data_ptr() if dropped.numel() else None, gx.data_ptr())
        return gx, None, None, None


def check_groups(groups: torch.Tensor, dropped: torch.Tensor, P: int) -> None:
    """ValueError unless ``groups`` (Q, f) and ``dropped`` are int64 positions in [0, P) listing each
    of the P pixels of a map once: the kernel indexes raw pointers, and its backward writes each
    pixel's gradient once (no zero fill).  Once per pair of tables (their owner checks them when it
    builds them), not per call of :func:`gather_max`.  Cost: O(P)."""
    positions = torch.cat([groups.flatten(), dropped.flatten()])
    if (groups.dtype != torch.int64 or dropped.dtype != torch.int64 or groups.dim() != 2 or positions.numel() != P
            or P and (int(positions.min()) < 0 or int(positions.max()) >= P
                      or not bool(torch.bincount(positions, minlength=P).eq(1).all()))):
        raise ValueError(f"gather_max: groups {tuple(groups.shape)} and dropped ({dropped.numel()}) must be int64 "
                         f"positions in [0, {P}) listing each of the {P} pixels of x once")


def gather_max(x: torch.Tensor, groups: torch.Tensor, dropped: torch.Tensor, reference) -> torch.Tensor:
    """Max over the children ``groups`` (Q, f) int64 (positions in x's pixel axis, every pixel of x
    in one group or in ``dropped`` (int64): tables that passed :func:`check_groups` for P = x.shape[1])
    of x (B, P, C): (B, Q, C), contiguous.  The gradient is written by the kernel; ``reference`` (x ->
    the same values with torch operations) serves a second derivative.  Check :func:`usable` first.
    The default cosmo network's poolings (32 maps), forward + backward on one thread, torch path ->
    kernel: 4,762 -> 1,131 pixels x 16 channels 8.4-10.2 -> 3.2-3.6 ms CPU, 1,131 -> 246 x 32: 2.7 ->
    0.9-1.1 ms (the kernel's own passes take 0.9 + 0.8 ms of the first: the rest is the fresh
    gradient buffer and autograd).
    """
    if dropped.device.type != "cpu" or groups.numel() + dropped.numel() != x.shape[1]:
        raise ValueError(f"gather_max: groups {tuple(groups.shape)} and dropped ({dropped.numel()}) on the CPU must "
                         f"cover the {x.shape[1]} pixels of x (tables checked by check_groups)")
    return _GatherMax.apply(x, groups.contiguous(), dropped.contiguous(), reference)
