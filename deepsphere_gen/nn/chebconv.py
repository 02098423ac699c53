"""Chebyshev graph convolution (Defferrard et al. 2016), the DeepSphere layer."""
from __future__ import annotations

import copy
import math
import warnings
import weakref

import torch
from torch import nn

from .._validation import check_channels, check_dtype, check_finite, check_pixels, check_positive_int
from . import _cheb_native
from ._cheb_sparse import Scratch, cheb_filter, chebyshev_basis, to_torch_csr
from .laplacian import Laplacian, warn_if_widened

__all__ = ["ChebConv", "chebyshev_basis"]


#: the dtypes a ChebConv is built and runs in
DTYPES = (torch.float32, torch.float64)

#: names of the CSR arrays of the Laplacian in a state dict: ``laplacian_crow`` etc.
_CSR_PARTS = ("crow", "col", "values")


class ChebConv(nn.Module):
    """Chebyshev polynomial graph filter ``y = sum_k T_k(L~) x W_k + b``.

    Parameters
    ----------
    in_channels, out_channels : feature sizes.
    K : number of Chebyshev orders (polynomial degree K-1); K = 1 is a pointwise linear layer.
    laplacian : RESCALED Laplacian L~ = 2 L / lmax - I, (pixels, pixels): a
        :class:`~deepsphere_gen.nn.Laplacian` (layers given the same one share its tensors), a
        graph (``SphereGraph``: written directly in the layer's dtype, symmetric and with a
        certified spectrum), or a scipy / torch sparse (COO/CSR) matrix, checked by
        :meth:`Laplacian.from_matrix`: a matrix whose spectrum leaves [-1, 1] (e.g. an
        unrescaled Laplacian) raises ValueError.  Held as a sparse CSR buffer ``laplacian``
        (moves with ``.to()``/``.double()``, saved in ``state_dict``); layers sharing one keep
        sharing it through ``.to()`` (each distinct CSR tensor is converted once per call).
        ``copy.deepcopy`` and pickling work (shared Laplacians stay shared in the copy).  In
        ``state_dict`` it appears as three dense arrays ``laplacian_crow``/``_col``/``_values``
        (a state dict can be deep-copied and loaded with ``weights_only=True``); state dicts
        of earlier versions, with a sparse ``laplacian``, still load.
    bias : learn an additive bias.
    dtype, device : factory arguments (default: torch's default dtype, CPU): torch.float32 or
        torch.float64 (ValueError otherwise: torch's sparse CSR product has no half-precision CPU
        kernel, and the layer is tested in these two only).  Build in float64 for float64 work:
        ``.double()`` on a float32 layer cannot restore the Laplacian's digits (it warns; a
        float32 :class:`Laplacian` from a graph given with ``dtype=torch.float64`` is written
        again from the graph while that graph is alive, exact: :meth:`Laplacian.to`).
    check_input : reject NaN / inf / UNSEEN input values (ValueError).  This value check costs
        one host synchronisation per call (on a GPU: a wait for the device); models pass False
        for convs fed by their own layers, having checked their input once.  Shape, channel
        and dtype checks always run (they cost no synchronisation).

    Shapes: input (batch, pixels, in_channels) -> output (batch, pixels, out_channels), a view
    of a pixel-major buffer (strides ``(out, batch*out, 1)``: the next graph layer takes it
    without a transposing copy; ``.contiguous()`` gives the batch-major one).  The gradient
    with respect to the input is pixel-major too.
    ``weight`` is (K, in_channels, out_channels), ``weight[k]`` the order-k coefficient.

    The filter is one fused autograd node (:func:`~deepsphere_gen.nn._cheb_sparse.cheb_filter`).
    The layer keeps its work buffers (K x pixels x batch x in_channels values, the output and
    the input gradient) from call to call, and reuses its last output buffer on CPU once
    the caller has dropped every tensor that shares it: this skips the page faults of fresh
    allocations (as costly as the arithmetic); ``release_scratch()`` frees them, and the
    sliced copy of the Laplacian that float32 layers with ONE input map and channel keep on
    CPUs with AVX-512 (the one-column kernel's layout, 8 bytes per non-zero: +865 MiB at HEALPix
    nside 1024, k = 8, beside the CSR's 913 MiB; shared by layers sharing the Laplacian; not built
    where it would take over a quarter of the available memory).  Buffers
    that no backward needs (outputs, the inference-time stack) are kept only up to
    ``_cheb_sparse.KEEP_BYTES`` (256 MiB), or up to the size of the layer's Laplacian
    (outputs), or in training (where the stack is kept for the backward anyway) each up to
    the stack's size.  ``torch.jit.trace`` starts from empty buffers (every trace records the ops of a first
    call; the traced module then reuses its buffers as the layer does).  Speed: the
    layer is bound by memory traffic; on a CPU shared by other jobs, ``torch.set_num_threads(1)``
    avoids threads waiting on each other (the GEMMs run in cache-sized row blocks,
    ``_cheb_sparse._block_rows``).
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, laplacian, bias: bool = True, dtype=None, device=None,
                 check_input: bool = True):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.K = check_positive_int(K, "K")
        self.check_input = bool(check_input)
        dtype = dtype or torch.get_default_dtype()
        if dtype not in DTYPES:
            raise ValueError(f"ChebConv computes in {' or '.join(map(str, DTYPES))}, got dtype={dtype}")
        lap = Laplacian.of(laplacian, dtype=dtype, device=device)
        self.npix = lap.npix
        self.register_buffer("laplacian", lap.matrix)
        self.register_buffer("laplacian_t", lap.transpose, persistent=False)
        self._scratch = Scratch()
        fk = {"dtype": dtype, "device": device}
        self.weight = nn.Parameter(torch.empty(self.K, self.in_channels, self.out_channels, **fk))
        self.bias = nn.Parameter(torch.empty(self.out_channels, **fk)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform scaled by K: the K terms of the sum share the fan-in budget."""
        bound = math.sqrt(6.0 / (self.K * (self.in_channels + self.out_channels)))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pixels(x, self.npix, what="number of nodes of the layer's Laplacian")
        check_channels(x, self.in_channels)
        if self.check_input:
            check_finite(x)
        lap_dtype = self.laplacian.dtype
        if lap_dtype not in DTYPES:  # cast after construction (module.half()): before check_dtype, which would
            # advise casting the input to the module's unsupported dtype
            raise ValueError(f"this ChebConv was cast to {lap_dtype}; it computes in {' or '.join(map(str, DTYPES))} "
                             "only: cast it back (module.float() or module.double()) and its input too")
        check_dtype(x.dtype, lap_dtype, supported=DTYPES)
        if torch.jit.is_tracing():  # record a first call's allocations each time: torch.jit.trace's check traces
            self._scratch.clear()  # again, and values after this layer were numbered after fewer allocations
        return cheb_filter(x, self.weight, self.bias, self.laplacian, self.laplacian_t, self._scratch)

    def release_scratch(self) -> None:
        """Free the work buffers kept between calls (they come back on the next call), and the
        copies of the Laplacian the CPU kernels keep (see the class docstring)."""
        self._scratch.clear()
        for lap in (self.laplacian, self.laplacian_t):  # the backward's transpose, where it is its own matrix
            if lap is not None:
                _cheb_native.release(lap)

    def _apply(self, fn, *args, **kwargs):
        # One call of model.to()/.double()/... hands the same fn to every module: convert each
        # distinct sparse Laplacian once per fn, so that convs sharing one keep sharing it.
        self._scratch.clear()  # buffers of the old dtype/device
        try:
            memo = _CONVERSIONS.setdefault(fn, {})
        except TypeError:  # fn not weak-referenceable: no sharing across modules
            memo = {}

        def once(t):
            if t.layout != torch.sparse_csr:
                return fn(t)
            hit = memo.get(id(t))
            if hit is None or hit[0] is not t:
                hit = memo[id(t)] = (t, fn(t))
                warn_if_widened(t.dtype, hit[1].dtype)
            return hit[1]

        return super()._apply(once, *args, **kwargs)

    def __deepcopy__(self, memo):
        # torch cannot deep-copy a sparse CSR tensor (no storage): clone the Laplacians first,
        # memoised by object so convs sharing one Laplacian share one copy; the rest as usual.
        for t in (self.laplacian, self.laplacian_t):
            if t is not None and id(t) not in memo:
                memo[id(t)] = t.clone()
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__dict__, memo))
        return new

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # The Laplacian goes in as its three dense CSR arrays (views, no copy): a state dict then
        # survives copy.deepcopy (torch cannot deep-copy a sparse CSR tensor), e.g. for
        # best-model snapshots, and loads with weights_only=True.
        super()._save_to_state_dict(destination, prefix, keep_vars)
        lap = destination.pop(prefix + "laplacian", None)
        if lap is not None:
            for part, t in zip(_CSR_PARTS, (lap.crow_indices(), lap.col_indices(), lap.values())):
                destination[prefix + "laplacian_" + part] = t

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # A sparse buffer cannot be copy_()'d into one with another number of non-zeros: replace it,
        # unless the checkpoint holds the same matrix (then keep ours: it may be shared with other convs).
        # Checkpoints hold either the three CSR arrays (this version) or a sparse tensor (older ones).
        key = prefix + "laplacian"
        parts = [key + "_" + part for part in _CSR_PARTS]
        found = [k for k in parts if k in state_dict]
        if found:
            if len(found) < len(parts):
                errors.append(f"incomplete Laplacian in the checkpoint: has {found}, needs {parts}")
                return
            crow, col, values = (state_dict[k] for k in parts)
            if crow.dim() != 1 or col.shape != values.shape or crow.numel() < 1:
                errors.append(f"malformed Laplacian arrays {parts} in the checkpoint")
                return
            n = crow.numel() - 1
            state_dict = {k: v for k, v in state_dict.items() if k not in parts}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                state_dict[key] = torch.sparse_csr_tensor(crow, col, values, size=(n, n))
        if key in state_dict:
            new = state_dict[key]
            if tuple(new.shape) != tuple(self.laplacian.shape):
                errors.append(
                    f"size mismatch for {key}: checkpoint {tuple(new.shape)}, model {tuple(self.laplacian.shape)}"
                )
            else:
                new = to_torch_csr(new, dtype=self.laplacian.dtype, device=self.laplacian.device)
                if not Laplacian.same(new, self.laplacian):
                    lap = Laplacian.from_matrix(new)
                    self.laplacian, self.laplacian_t = lap.matrix, lap.transpose
            state_dict = {k: v for k, v in state_dict.items() if k != key}
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
            missing[:] = [m for m in missing if m != key]
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, K={self.K}, pixels={self.npix}, "
            f"nnz={self.laplacian.values().numel()}, bias={self.bias is not None}"
            + ("" if self.check_input else ", check_input=False")
        )



#: fn of a Module._apply call -> {id(source CSR): (source, converted)}; entries die with fn
_CONVERSIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
