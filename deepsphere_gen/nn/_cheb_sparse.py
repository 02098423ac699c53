"""Sparse Chebyshev filtering: the rescaled Laplacian as torch CSR, and the filter kernels.

- :func:`to_torch_csr`: a rescaled Laplacian (scipy, torch sparse, or a graph) as CSR.
- :func:`chebyshev_basis`: ``[T_0(L~) x, ..., T_{K-1}(L~) x]`` built from differentiable
  sparse products (any order of derivatives; the reference the fused filter is checked against).
- :func:`cheb_filter`: ``y = sum_k T_k(L~) x W_k + b`` as ONE autograd node.  Forward runs the
  three-term recursion in the pixel-major layout ``(pixels, batch*channels)`` (one in-place
  sparse product per order for all maps, into a reused buffer), then the K GEMMs into the
  output by row blocks; backward gets ``dW = T^T g`` from the kept basis and ``dx`` from the
  adjoint (Clenshaw) recursion ``b_k = G_k + 2 L~^T b_{k+1} - b_{k+2}`` with ``G_k = g W_k^T``
  written over the basis: no per-order autograd graph, no saved copies, K-1 sparse products
  each way.  The run time is memory traffic: every choice here saves passes over arrays.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from . import _cheb_native

__all__ = ["to_torch_csr", "chebyshev_basis", "cheb_filter", "Scratch", "BLOCK_BYTES", "KEEP_BYTES"]


def to_torch_csr(laplacian, dtype=None, device=None) -> torch.Tensor:
    """Rescaled Laplacian as a square torch sparse CSR tensor (int32 indices when they fit).

    ``laplacian``: scipy sparse matrix, torch sparse tensor (COO or CSR), or a graph with
    ``to_torch(dtype, device, rescaled=True)`` (``deepsphere_gen.graph.SphereGraph``: written
    directly in ``dtype``) or ``rescaled_laplacian()``.  The matrix must already be rescaled to
    spectrum [-1, 1] (``2 L / lmax - I``); :class:`~deepsphere_gen.nn.Laplacian` checks that.
    """
    if hasattr(laplacian, "to_torch") and not sp.issparse(laplacian) and not torch.is_tensor(laplacian):
        laplacian = laplacian.to_torch(dtype=dtype or torch.get_default_dtype(), device=device, rescaled=True)
    elif hasattr(laplacian, "rescaled_laplacian") and not sp.issparse(laplacian):
        laplacian = laplacian.rescaled_laplacian()
    if sp.issparse(laplacian):
        m = sp.csr_matrix(laplacian)
        m.sum_duplicates()
        m.sort_indices()
        if dtype is None:
            dtype = torch.float64 if m.dtype == np.float64 else torch.get_default_dtype()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.sparse_csr_tensor(
                torch.from_numpy(m.indptr.astype(np.int64)),
                torch.from_numpy(m.indices.astype(np.int64)),
                torch.from_numpy(np.asarray(m.data)).to(dtype),
                size=m.shape,
            )
    elif torch.is_tensor(laplacian) and laplacian.layout == torch.sparse_coo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = laplacian.coalesce().to_sparse_csr()
    elif torch.is_tensor(laplacian) and laplacian.layout == torch.sparse_csr:
        t = laplacian
    else:
        raise ValueError(
            "laplacian must be a scipy sparse matrix, a torch sparse (COO/CSR) tensor or a graph "
            f"with rescaled_laplacian(); got {type(laplacian).__name__}"
        )
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"laplacian must be a square matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"laplacian must hold floating-point values, got {t.dtype}")
    values = t.values()
    step = 1 << 20  # in slices of 4 MiB (float32): isfinite's temporaries stay small
    if not all(bool(torch.isfinite(values[i : i + step]).all()) for i in range(0, values.numel(), step)):
        raise ValueError("laplacian has NaN/inf entries")
    return _with_index_dtype(t).to(dtype=dtype or t.dtype, device=device)


def _with_index_dtype(t: torch.Tensor) -> torch.Tensor:
    """int32 indices when they fit (the CPU sparse kernels run about 2x faster), else int64."""
    idx = torch.int32 if max(t.shape[0], t.values().numel()) < 2**31 - 1 else torch.int64
    if t.crow_indices().dtype == idx:
        return t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(t.crow_indices().to(idx), t.col_indices().to(idx), t.values(), size=t.shape)


class _SparseMM(torch.autograd.Function):
    """y = A x for sparse A (no gradient) and dense x, with the gradient A^T g from a given A^T.

    torch's own backward of a CSR product re-sorts A^T on every call; a stored transpose (A
    itself for a symmetric Laplacian) avoids it.  Differentiable any number of times.
    """

    @staticmethod
    def forward(ctx, a, a_t, x):
        ctx.a, ctx.a_t = a, a_t
        return torch.mm(a, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, _SparseMM.apply(ctx.a_t, ctx.a, grad)


def chebyshev_basis(laplacian: torch.Tensor, x: torch.Tensor, K: int, laplacian_t: torch.Tensor | None = None):
    """[T_0(L~) x, ..., T_{K-1}(L~) x] for x shaped (pixels, n): one sparse-dense product per order.

    ``laplacian_t``: the transpose of ``laplacian`` for the backward pass (None: symmetric).
    Built from differentiable operations (higher-order gradients work); :func:`cheb_filter`
    is the fast fused filter.
    """
    lt = laplacian if laplacian_t is None else laplacian_t
    out = [x]
    if K > 1:
        out.append(_SparseMM.apply(laplacian, lt, x))
    for _ in range(2, K):
        out.append(2.0 * _SparseMM.apply(laplacian, lt, out[-1]) - out[-2])
    return out


def _reference_filter(x, weight, bias, laplacian, laplacian_t):
    """``sum_k T_k(L~) x W_k + b`` from :func:`chebyshev_basis` (x: (batch, pixels, C_in))."""
    B, P, C = x.shape
    K, _, O = weight.shape
    terms = chebyshev_basis(laplacian, x.transpose(0, 1).reshape(P, B * C), K, laplacian_t)
    t = torch.stack(terms, 0).view(K, P, B, C).permute(2, 1, 0, 3).reshape(B * P, K * C)
    y = torch.mm(t, weight.reshape(K * C, O)).view(B, P, O)
    return y if bias is None else y + bias


class Scratch:
    """Work buffers a layer reuses from call to call, one per role.

    Fresh multi-megabyte CPU tensors cost a page fault per 4 KiB page on first touch (as much
    as the arithmetic of a Chebyshev layer); a buffer handed back after use is taken again by
    the next call of the same shape, dtype and device (else replaced).  A taken buffer belongs
    to its caller until handed back, so overlapping calls never share one.

    Outputs (:meth:`take_output`) are recycled differently: the buffer stays referenced here
    and is handed out again only once nothing else holds its storage (the caller has dropped
    every tensor and view of the previous result), else a fresh one replaces it.  Buffers no
    backward needs (outputs, the inference-time stack) are kept only up to
    :data:`KEEP_BYTES` (outputs: or up to the size the caller passes), so large maps do not
    pin gigabytes between calls.  Never pickled or
    deep-copied (an empty holder comes back).
    """

    def __init__(self):
        self._idle: dict[str, torch.Tensor] = {}
        self._outputs: dict[str, torch.Tensor] = {}

    def take(self, role: str, shape, like: torch.Tensor, pad_bytes: int = 0) -> torch.Tensor:
        """A buffer of ``shape``; ``pad_bytes`` > 0: (K, rows, n) with at least that many bytes
        (whole rows) between consecutive ``[k]`` (each still contiguous; see :func:`_empty_stack`)."""
        t = self._idle.pop(role, None)
        if not _fits(t, shape, like):
            t = _empty_stack(shape, like, pad_bytes) if pad_bytes else torch.empty(shape, dtype=like.dtype,
                                                                                    device=like.device)
        return t

    def give(self, role: str, t: torch.Tensor) -> None:
        self._idle[role] = t

    def take_output(self, role: str, shape, like: torch.Tensor, keep_bytes: int = 0) -> torch.Tensor:
        """A buffer for a result handed to the caller: the last one if it is free, else fresh.

        Kept between calls up to ``max(KEEP_BYTES, keep_bytes)`` (the filter passes the size of
        its Laplacian, and in training that of the Chebyshev stack, which the layer holds
        anyway: a fresh 800 MB output costs ~0.3 s of page faults).  CPU only (a GPU caching allocator already recycles memory; elsewhere
        this is ``torch.empty``).
        """
        if like.device.type != "cpu" or _nbytes(shape, like) > max(KEEP_BYTES, keep_bytes):
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        t = self._outputs.get(role)
        if not (_fits(t, shape, like) and _unshared(t)):
            t = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._outputs[role] = t
        return t

    def give_if_small(self, role: str, t: torch.Tensor) -> None:
        """:meth:`give` for a buffer nothing else will need: kept up to :data:`KEEP_BYTES`."""
        if t.numel() * t.element_size() <= KEEP_BYTES:
            self.give(role, t)

    def clear(self) -> None:
        self._idle.clear()
        self._outputs.clear()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


#: bytes of padding between consecutive orders of the CPU Chebyshev stack (rounded up to whole
#: rows; see :func:`_empty_stack`)
STACK_PAD_BYTES = 1024


def _empty_stack(shape, like: torch.Tensor, pad_bytes: int) -> torch.Tensor:
    """An uninitialised (K, rows, n) stack whose orders ``[k]`` are contiguous and lie
    ``rows + ceil(pad_bytes / row bytes)`` rows apart instead of ``rows``.

    Why: the contiguous stack of a HEALPix nside-256 layer (batch 8, 16 channels) puts its
    orders 3 * 2**27 bytes apart, and the forward GEMM, which reads the same rows of all K
    orders together, ran 1.33x slower than from the same data with the orders 512 B - 4 KiB
    further apart (one Zen 4 core, K = 5: 443 -> 333 ms; nside 64 / 128 and the nside-1024
    one-channel forward: within +-5 %; an offset of 64 B did not help).  Memory: + K pad rows.
    """
    K, rows, n = shape
    row_bytes = max(1, n) * like.element_size()
    pad_rows = -(-pad_bytes // row_bytes)
    return torch.empty((K, rows + pad_rows, n), dtype=like.dtype, device=like.device)[:, :rows]


#: largest buffer kept between calls that no backward needs (inference stacks, outputs): above
#: it the page faults of a fresh buffer cost a smaller share than the memory held would
KEEP_BYTES = 256 << 20


def _nbytes(shape, like: torch.Tensor) -> int:
    n = like.element_size()
    for d in shape:
        n *= int(d)
    return n


def _csr_bytes(m: torch.Tensor) -> int:
    """Bytes of a sparse CSR matrix's three arrays."""
    return sum(t.numel() * t.element_size() for t in (m.crow_indices(), m.col_indices(), m.values()))


def _fits(t: torch.Tensor | None, shape, like: torch.Tensor) -> bool:
    return t is not None and tuple(t.shape) == tuple(shape) and t.dtype == like.dtype and t.device == like.device


def _storage_refs(t: torch.Tensor) -> int:
    """References to t's storage (tensors, views, saved tensors), as torch counts them."""
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


#: the count :func:`_storage_refs` gives for a tensor nothing else shares (None: not available)
try:
    _SOLE_REFS = _storage_refs(torch.empty(1))
except (AttributeError, RuntimeError):  # private torch API gone: never recycle
    _SOLE_REFS = None


def _unshared(t: torch.Tensor) -> bool:
    return _SOLE_REFS is not None and _storage_refs(t) == _SOLE_REFS


#: bytes of a GEMM row block on CPU (see :func:`_block_rows`), measured best at HEALPix
#: nside 64 on a 2-core EPYC (1 MiB L2 per core, 32 MiB L3): 4-16 MiB with 1 or 2 threads
BLOCK_BYTES = 4 << 20


def _block_rows(total: int, row_bytes: int, device: torch.device) -> int:
    """Rows per GEMM block: about :data:`BLOCK_BYTES` on CPU, all rows in one call on a GPU.

    Blocking keeps the rows of the output (forward) or of the output gradient (backward) in
    cache while all K orders use them: they cross the memory bus once instead of K times
    (with 2 threads, fwd+bwd at nside 64 took 136 ms blocked against 170 ms in one call).
    On a GPU every call is a kernel launch and one call does all rows.
    """
    if device.type != "cpu":
        return total
    return max(1, min(total, BLOCK_BYTES // row_bytes))


def _blocks(total: int, size: int):
    return ((r, min(r + size, total)) for r in range(0, total, size))


def _recur(out, lap, x, alpha, a_term, z_term):
    """``out = alpha lap x + a_term - z_term`` (terms None: left out; ``a_term`` may be ``out``).

    The compiled kernel (:mod:`._cheb_native`, one pass, CPU) where it applies, else torch's
    sparse product in place plus the axpy terms.
    """
    if _cheb_native.step(out, lap, x, alpha, a_term, 1.0, z_term, 1.0):
        return out
    if a_term is None:
        out.addmm_(lap, x, beta=0, alpha=alpha)  # beta 0: the old contents are ignored
    else:
        if a_term is not out:
            out.copy_(a_term)
        out.addmm_(lap, x, alpha=alpha)
    if z_term is not None:
        out.sub_(z_term)
    return out


def _stack_pad(x: torch.Tensor) -> int:
    """Padding of the stack between orders: :data:`STACK_PAD_BYTES` on CPU, none elsewhere."""
    return STACK_PAD_BYTES if x.device.type == "cpu" else 0


def _fill_basis(basis, x, laplacian):
    """basis (K, pixels, batch*C_in) <- [T_0(L~) x, ..., T_{K-1}(L~) x], x (batch, pixels, C_in)."""
    B, P, C = x.shape
    basis[0].view(P, B, C).copy_(x.transpose(0, 1))
    for k in range(1, basis.shape[0]):  # T_1 = L~ T_0, T_k = 2 L~ T_{k-1} - T_{k-2}
        _recur(basis[k], laplacian, basis[k - 1], 1.0 if k == 1 else 2.0, None, basis[k - 2] if k > 1 else None)
    return basis


class _ChebFilter(torch.autograd.Function):
    """y = sum_k T_k(L~) x W_k + b with a hand-written backward (see the module docstring).

    Sparse products run in place (``addmm_``: no output zero-fill or input copy); the GEMMs
    run over row blocks (:func:`_block_rows`), the backward ones as batched products over k.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, laplacian, laplacian_t, scratch, block_rows, grad_mode):
        B, P, C = x.shape
        K, _, O = weight.shape
        n = B * C
        # needs_input_grad says True under torch.no_grad() too: without grad mode no backward
        # comes, and the basis goes back to the scratch (no fresh buffer, no page faults, next call)
        keep = grad_mode and (ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        basis = _fill_basis(scratch.take("basis", (K, P, n), x, _stack_pad(x)), x, laplacian)
        # y = sum_k T_k W_k (+ b), rows (pixel, batch), one row block at a time
        t = basis.view(K, P * B, C)
        held = basis.numel() * basis.element_size() if keep else 0  # the stack stays in the scratch
        # an output as large as the Laplacian the layer holds anyway is kept too (inference on
        # large maps: a fresh 768 MiB output at nside 1024 costs more page faults than the arithmetic)
        y = scratch.take_output("out", (P * B, O), x, keep_bytes=max(held, _csr_bytes(laplacian)))
        if not _cheb_native.forward(y, basis, weight, bias):
            rows = block_rows or _block_rows(P * B, (K * C + O) * x.element_size(), x.device)
            for r0, r1 in _blocks(P * B, rows):
                yb = y[r0:r1]
                if bias is None:
                    torch.mm(t[0, r0:r1], weight[0], out=yb)
                else:
                    torch.addmm(bias, t[0, r0:r1], weight[0], out=yb)
                for k in range(1, K):
                    yb.addmm_(t[k, r0:r1], weight[k])
        ctx.save_for_backward(x, weight, bias)
        ctx.basis = basis if keep else None
        if not keep:  # no backward will use it
            scratch.give_if_small("basis", basis)
        ctx.laplacian, ctx.laplacian_t, ctx.scratch, ctx.block_rows = laplacian, laplacian_t, scratch, block_rows
        # (pixels, batch, out) buffer seen as (batch, pixels, out): no transposing copy
        return y.view(P, B, O).transpose(0, 1)

    @staticmethod
    def backward(ctx, gy):
        x, weight, bias = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        basis, ctx.basis = ctx.basis, None
        if torch.is_grad_enabled():
            # higher-order gradients (create_graph): differentiate the composable reference
            return _reference_grads(x, weight, bias, ctx.laplacian, ctx.laplacian_t, gy, needs) + (None,) * 5
        B, P, C = x.shape
        K, _, O = weight.shape
        scratch = ctx.scratch
        if basis is None and (needs[0] or needs[1]):
            # a second backward through a retained graph (the basis was consumed): rebuild it,
            # so that every backward runs the same arithmetic (bitwise equal gradients)
            basis = _fill_basis(scratch.take("basis", (K, P, B * C), x, _stack_pad(x)), x, ctx.laplacian)
        native = None if basis is None else _cheb_native.backward(basis, gy, weight, needs[1], needs[2], needs[0])
        if native is not None:
            dW, db = native
        else:
            dW, db = _dense_grads(basis, gy, weight, needs, scratch, ctx.block_rows)
        dx = None
        if needs[0]:
            lt = ctx.laplacian if ctx.laplacian_t is None else ctx.laplacian_t
            for k in range(K - 2, 0, -1):  # slot k <- b_k = G_k + 2 L~^T b_{k+1} - b_{k+2}
                _recur(basis[k], lt, basis[k + 1], 2.0, basis[k], basis[k + 2] if k + 2 < K else None)
            if K > 1:  # b_0 = G_0 + L~^T b_1 - b_2, in its own memory
                d = scratch.take_output("dx", basis[0].shape, basis, keep_bytes=basis.numel() * basis.element_size())
                _recur(d, lt, basis[1], 1.0, basis[0], basis[2] if K > 2 else None)
            else:
                d = basis[0].clone()
            dx = d.view(P, B, C).transpose(0, 1)  # pixel-major like the output
        if basis is not None:
            scratch.give("basis", basis)
        return dx, dW, db, None, None, None, None, None


def _dense_grads(basis, gy, weight, needs, scratch, block_rows):
    """dW, db of the filter and G_k = g W_k^T written over the stack, with torch products by row blocks."""
    K, C, O = weight.shape
    B, P, _ = gy.shape
    rows = block_rows or _block_rows(P * B, (2 * K * C + O) * gy.element_size(), gy.device)
    pix = max(1, rows // max(B, 1))  # blocks of whole pixels: rows (pixel, batch) of g are contiguous (B = 0: empty)
    gt = gy.transpose(0, 1)  # (pixels, batch, out)
    gbuf = None if gt.is_contiguous() else scratch.take("grad", (min(pix, P), B, O), gy)
    t = basis.view(K, P * B, C) if basis is not None else None
    wt = weight.transpose(1, 2)
    db = gy.new_zeros(O) if needs[2] else None
    dW = gy.new_zeros((K, C, O)) if needs[1] else None
    for p0, p1 in _blocks(P, pix):
        r0, r1 = p0 * B, p1 * B
        gb = gt[p0:p1] if gbuf is None else gbuf[: p1 - p0].copy_(gt[p0:p1])
        g = gb.reshape(r1 - r0, O)
        if db is not None:
            db.add_(g.sum(0))
        if t is None:
            continue
        gk = g.expand(K, r1 - r0, O)
        if dW is not None:  # dW_k += T_k^T g
            if gy.device.type == "cpu":
                dW.baddbmm_(t[:, r0:r1].transpose(1, 2), gk)
            else:  # cuBLAS runs this long reduction 25x faster as 2-D products than batched
                for k in range(K):
                    dW[k].addmm_(t[k, r0:r1].T, g)
        if needs[0]:  # G_k = g W_k^T, in place of T_k (used up by dW)
            torch.bmm(gk, wt, out=t[:, r0:r1])
    if gbuf is not None:
        scratch.give("grad", gbuf)
    return dW, db


def _reference_grads(x, weight, bias, laplacian, laplacian_t, gy, needs):
    """Gradients of the reference filter (a graph for double backward when grad mode is on)."""
    inputs = [t for t, need in zip((x, weight, bias), needs) if need]
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        y = _reference_filter(x, weight, bias, laplacian, laplacian_t)
        grads = iter(torch.autograd.grad(y, inputs, gy, create_graph=create_graph))
    return tuple(next(grads) if need else None for need in needs)


def cheb_filter(x, weight, bias, laplacian, laplacian_t=None, scratch: Scratch | None = None,
                block_rows: int | None = None):
    """``sum_k T_k(L~) x W_k + b`` for x (batch, pixels, C_in), weight (K, C_in, C_out).

    ``laplacian``: CSR (pixels, pixels); ``laplacian_t``: its transpose for the backward pass
    (None: symmetric); ``scratch``: reused work buffers (a fresh one if None);
    ``block_rows``: rows of (pixel, batch) per GEMM block (None: :func:`_block_rows`).  Returns
    (batch, pixels, C_out), a view of a pixel-major buffer (strides ``(C_out, batch*C_out,
    1)``); gradients for x, weight and bias, of any order (the one for x is pixel-major too).
    Under ``torch.jit.trace`` the grad-mode flag is True whatever the mode (the trace records it as a constant,
    and its sanity check reruns without grad mode: a flag that changed made the graphs differ); a traced
    module then keeps the basis for a backward, memory only, the same values.
    """
    return _ChebFilter.apply(x, weight, bias, laplacian, laplacian_t, scratch or Scratch(), block_rows,
                             torch.is_grad_enabled() or torch.jit.is_tracing())
