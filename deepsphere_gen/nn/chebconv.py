"""Chebyshev graph convolution (Defferrard et al. 2016), the DeepSphere layer."""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .._validation import check_channels, check_finite, check_pixels
from ._cheb_sparse import to_torch_csr

__all__ = ["ChebConv", "chebyshev_basis"]


class _SparseMM(torch.autograd.Function):
    """y = A x for sparse A (no gradient) and dense x, with the gradient A^T g from a given A^T.

    torch's own backward of a CSR product re-sorts A^T on every call (most of the time of a
    layer); a stored transpose (A itself for a symmetric Laplacian) avoids it.
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
    """
    lt = laplacian if laplacian_t is None else laplacian_t
    out = [x]
    if K > 1:
        out.append(_SparseMM.apply(laplacian, lt, x))
    for _ in range(2, K):
        out.append(2.0 * _SparseMM.apply(laplacian, lt, out[-1]) - out[-2])
    return out


class ChebConv(nn.Module):
    """Chebyshev polynomial graph filter ``y = sum_k T_k(L~) x W_k + b``.

    Parameters
    ----------
    in_channels, out_channels : feature sizes.
    K : number of Chebyshev orders (polynomial degree K-1); K = 1 is a pointwise linear layer.
    laplacian : RESCALED Laplacian L~ = 2 L / lmax - I, (pixels, pixels): scipy sparse, torch
        sparse (COO/CSR), or a graph with ``rescaled_laplacian()``.  Held as a sparse CSR
        buffer ``laplacian`` (moves with ``.to()``/``.double()``, saved in ``state_dict``).
    bias : learn an additive bias.
    dtype, device : factory arguments (default: torch's default dtype, CPU).  Build in float64
        for float64 work: ``.double()`` on a float32 layer cannot restore the Laplacian's digits.

    Shapes: input (batch, pixels, in_channels) -> output (batch, pixels, out_channels).
    ``weight`` is (K, in_channels, out_channels), ``weight[k]`` the order-k coefficient.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, laplacian, bias: bool = True, dtype=None, device=None):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("K", K)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.in_channels, self.out_channels, self.K = int(in_channels), int(out_channels), int(K)
        dtype = dtype or torch.get_default_dtype()
        lap = to_torch_csr(laplacian, dtype=dtype, device=device)
        self.npix = int(lap.shape[0])
        self.register_buffer("laplacian", lap)
        self._set_transpose()
        fk = {"dtype": dtype, "device": device}
        self.weight = nn.Parameter(torch.empty(self.K, self.in_channels, self.out_channels, **fk))
        self.bias = nn.Parameter(torch.empty(self.out_channels, **fk)) if bias else None
        self.reset_parameters()

    def _set_transpose(self) -> None:
        """Non-persistent buffer ``laplacian_t``: None when L~ is symmetric, else its transpose."""
        lap = self.laplacian
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = to_torch_csr(lap.to_sparse_coo().t())
            symmetric = torch.equal(t.crow_indices(), lap.crow_indices()) and torch.equal(
                t.col_indices(), lap.col_indices()) and torch.equal(t.values(), lap.values())
        self.register_buffer("laplacian_t", None if symmetric else t, persistent=False)

    def reset_parameters(self) -> None:
        """Glorot-uniform scaled by K: the K terms of the sum share the fan-in budget."""
        bound = math.sqrt(6.0 / (self.K * (self.in_channels + self.out_channels)))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_pixels(x, self.npix, what="number of nodes of the layer's Laplacian")
        check_channels(x, self.in_channels)
        check_finite(x)
        B, P, C = x.shape
        lap = self.laplacian
        if lap.dtype != x.dtype:
            raise ValueError(f"input dtype {x.dtype} differs from the layer's {lap.dtype}; call .to(dtype)")
        # (pixels, batch*channels): every order is ONE sparse-dense product for all maps.
        x0 = x.transpose(0, 1).reshape(P, B * C)
        terms = chebyshev_basis(lap, x0, self.K, self.laplacian_t)
        # (K, P, B, C) -> (B, P, K, C) -> one GEMM with weights (K*C, out).
        t = torch.stack(terms, 0).view(self.K, P, B, C).permute(2, 1, 0, 3).reshape(B * P, self.K * C)
        y = torch.mm(t, self.weight.reshape(self.K * C, self.out_channels)).view(B, P, self.out_channels)
        if self.bias is not None:
            y = y + self.bias
        return y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # A sparse buffer cannot be copy_()'d into one with another number of non-zeros: replace it.
        key = prefix + "laplacian"
        if key in state_dict:
            new = state_dict[key]
            if tuple(new.shape) != tuple(self.laplacian.shape):
                errors.append(
                    f"size mismatch for {key}: checkpoint {tuple(new.shape)}, model {tuple(self.laplacian.shape)}"
                )
            else:
                self.laplacian = to_torch_csr(new, dtype=self.laplacian.dtype, device=self.laplacian.device)
                self._set_transpose()
            state_dict = {k: v for k, v in state_dict.items() if k != key}
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
            missing[:] = [m for m in missing if m != key]
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, K={self.K}, pixels={self.npix}, "
            f"nnz={self.laplacian.values().numel()}, bias={self.bias is not None}"
        )
