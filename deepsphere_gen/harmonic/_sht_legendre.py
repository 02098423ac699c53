"""Torch Legendre engine of the SHT: values computed on the fly, never stored as an L^3 table.

For every order m the orthonormal Legendre functions (``_legendre``: no Condon-Shortley
phase) satisfy, with l = m + k and x = cos(theta),

    lambda_{m+k}^m = A[k, m] (x lambda_{m+k-1}^m - B[k, m] lambda_{m+k-2}^m),

so one step of the recursion in k advances every order at once (rows m < L - k: the
triangle l < L) and its parity (-1)^(l+m) = (-1)^k is the same for all of them.  The
sectoral start lambda_m^m = c_m sin(theta)^m is kept as mantissa and power of two (the
mantissas rescaled by 2^-600 whenever they grow past 2^600), so sin^m never underflows
before the recursion has grown the values back (float64 state whatever the transform's
dtype; float32 values only for the matmuls).

The steps are grouped in blocks of ``nk`` degrees offsets k (even, sized to a byte budget):
a block's values (rows, nk, rings) feed two batched matmuls over m (even k with the
north + south ring sums, odd k with north - south), then are dropped.  Memory: the state
and the recursion coefficients, O(L * rings + L^2), plus one block, at most
``block_bytes`` (but at least 2 steps: O(L * rings)).  Cost: O(L^2 rings) for the
recursion plus O(L^2 rings maps) for the matmuls per transform direction; L sequential
steps of a few element-wise kernels each.

Coefficients live on an (m, k) grid (L, L, J): entry (m, k) is degree l = m + k (zero for
l >= L), J columns (cos / sin parts of every map).
"""
from __future__ import annotations

import numpy as np
import torch

from ._per_thread import PerThread

__all__ = ["ChunkedLegendre", "DEFAULT_BLOCK_BYTES"]

#: byte budget of one block of Legendre values (the engine's only table-like buffer).
DEFAULT_BLOCK_BYTES = 32 * 2**20
_RESCALE_BITS = 600
_RESCALE_EVERY = 32  # steps between rescales: mantissas grow by < 2^7 per step, 2^600 * 2^224 < 2^1023


def _start_and_coefficients(L: int, theta: np.ndarray):
    """Sectoral mantissas / exponents (L, R) and recursion coefficients A, B (L, L) [k, m], float64."""
    x = np.cos(theta)
    s = np.where((theta == 0) | (theta == np.pi), 0.0, np.sin(theta))
    m = np.arange(L)
    k = np.arange(1, L)
    cum = np.concatenate([[0.0], np.cumsum(np.log2((2 * k + 1) / (2 * k)))])
    log_c = 0.5 * (cum[m] - np.log2(4 * np.pi))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mm = log_c[:, None] + np.where(m[:, None] == 0, 0.0, m[:, None] * np.log2(s)[None, :])
    zero = np.isneginf(log_mm)
    e = np.where(zero, 0.0, np.floor(np.where(zero, 0.0, log_mm)))
    mant = np.where(zero, 0.0, np.exp2(np.where(zero, 0.0, log_mm) - e))
    kk, mm = np.meshgrid(np.arange(L), m, indexing="ij")
    ll = (kk + mm).astype(np.float64)
    ok = (kk >= 1) & (ll < L)
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(ok, np.sqrt((4 * ll * ll - 1) / (ll * ll - mm * mm)), 0.0)
        B = np.where(ok & (kk >= 2), np.sqrt(((ll - 1) ** 2 - mm * mm) / (4 * (ll - 1) ** 2 - 1)), 0.0)
    return x, mant, e, A, B


class ChunkedLegendre(torch.nn.Module):
    """Legendre sums (synthesis) and projections (analysis) on rings ``theta`` at bandlimit L.

    Buffers (non-persistent; float64 recursion state): x (R,), start mantissa and exponent
    (L, R), A and -B (L, L, 1).  ``block_bytes``: budget of one block of values in ``dtype``.
    """

    def __init__(self, L: int, theta: np.ndarray, dtype: torch.dtype, device=None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
        super().__init__()
        self.L, self.R, self.dtype = int(L), int(theta.size), dtype
        x, mant, e, A, B = _start_and_coefficients(self.L, np.asarray(theta, dtype=np.float64))
        rescale = np.array([2.0**-_RESCALE_BITS, 1.0])
        # A and -B as (L, L, 1) [k, m, 1]: a step reads A[k, :M] with no indexing beyond a slice
        for name, v in (("x", x), ("mant0", mant), ("exp0", e), ("A", A[:, :, None]), ("negB", -B[:, :, None]),
                        ("rescale", rescale)):
            self.register_buffer(name, torch.as_tensor(v, dtype=torch.float64, device=device), persistent=False)
        self._kept = PerThread()
        row = self.L * self.R * max(torch.empty((), dtype=dtype).element_size(), 8)
        nk = max(2, int(block_bytes) // max(row, 1))
        self.nk = min(nk + nk % 2, self.L + self.L % 2)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._kept = PerThread()  # kept views point at the old buffers
        return out

    def _steps(self):
        """This thread's recursion state (two mantissa buffers, exponents, factors 2^e) and, per
        step k (rows M = L - k), its views: (new, old, -B, A, exponents, factors), all [:M].
        Built at the first call: a step then creates no tensor views (at L = 64 the views cost
        as much as the kernels)."""
        st = getattr(self._kept, "steps", None)
        if st is None:
            L = self.L
            bufs = (torch.empty_like(self.mant0), torch.empty_like(self.mant0))
            ex, scale = torch.empty_like(self.exp0), torch.empty_like(self.exp0)
            views = [(bufs[k % 2][: L - k], bufs[(k - 1) % 2][: L - k], self.negB[k, : L - k], self.A[k, : L - k],
                      ex[: L - k], scale[: L - k]) for k in range(L)]
            st = self._kept.steps = (bufs, ex, scale, views)
        return st

    def _block_buffer(self, recorded: bool):
        """The (2, L, nk / 2, R) block buffer and, if it is kept, its per-step destinations (the
        slot of step k, rows [:L - k]).  Kept per thread between calls on the CPU when autograd
        does not record (a fresh 32 MiB buffer costs 8192 page faults, ~20 ms on the development
        VM, 40 % of a GL L = 256 transform; CUDA's caching allocator reuses memory by itself)."""
        shape = (2, self.L, (self.nk + 1) // 2, self.R)
        if recorded or self.x.device.type != "cpu":
            return torch.empty(shape, dtype=self.dtype, device=self.x.device), None
        kept = getattr(self._kept, "block", None)
        if kept is None:
            buf = torch.empty(shape, dtype=self.dtype)
            kept = self._kept.block = (buf, [buf[k % 2, : self.L - k, (k % self.nk) // 2] for k in range(self.L)])
        return kept

    def _blocks(self, recorded: bool):
        """Yield (k0, rows, lam_even, lam_odd): values lambda_{m+k}^m for k in [k0, k0 + nk),
        rows m < L - k0, as (rows, steps of one parity, R) in the engine dtype.

        One step of k costs three in-place kernels on the active rows (the recursion) and one
        that writes the values, mantissa times 2^exponent, into the block; the factors 2^e are
        recomputed only when the exponents change (every ``_RESCALE_EVERY`` steps).  The block
        buffer (:meth:`_block_buffer`) is zeroed per block (entries l >= L stay zero), or fresh
        per block when autograd records the matmuls (``recorded``: it keeps the blocks)."""
        L, nk = self.L, self.nk
        big = 2.0**_RESCALE_BITS  # compared with float64 mantissas: exact
        bufs, ex, scale, views = self._steps()
        bufs[0].copy_(self.mant0)  # lambda_{m+k}^m mantissas, k even / odd
        bufs[1].zero_()
        ex.copy_(self.exp0)
        two = self.rescale.new_tensor(2.0)
        torch.pow(two, ex, out=scale)  # what torch.ldexp multiplies by (0 below 2^-1074: values too small to matter)
        lam, dsts = self._block_buffer(recorded)
        direct = self.dtype == torch.float64
        for k0 in range(0, L, nk):
            rows = L - k0
            if recorded and k0 > 0:
                lam = torch.empty_like(lam)
            lam[:, :rows].zero_()
            for k in range(k0, min(k0 + nk, L)):
                new, old, neg_b, a, e, sc = views[k]
                if k > 0:  # new <- A (x old - B new) in place: rows >= L - k are done
                    new.mul_(neg_b).addcmul_(self.x, old).mul_(a)
                    if k % _RESCALE_EVERY == 0:
                        over = new.abs() > big
                        # float64 device scalars: a Python 2^-600 would become float32 (0) in where
                        factor = torch.where(over, self.rescale[0], self.rescale[1])
                        new *= factor
                        old *= factor
                        e += over * float(_RESCALE_BITS)
                        torch.pow(two, e, out=sc)
                dst = lam[k % 2, : L - k, (k - k0) // 2] if dsts is None else dsts[k]
                if direct:
                    torch.mul(new, sc, out=dst)
                else:
                    dst.copy_(new * sc)
            yield k0, rows, lam[0, :rows], lam[1, :rows]

    def project(self, z_even: torch.Tensor, z_odd: torch.Tensor) -> torch.Tensor:
        """Analysis: ring sums (L, R, J) of even / odd parity -> coefficient grid (L, L, J) [m, k]."""
        out = z_even.new_zeros(self.L, self.L + self.L % 2 + self.nk, z_even.shape[-1])
        for k0, rows, le, lo in self._blocks(torch.is_grad_enabled() and z_even.requires_grad):
            out[:rows, k0 : k0 + self.nk : 2] = torch.bmm(le, z_even[:rows])
            out[:rows, k0 + 1 : k0 + self.nk : 2] = torch.bmm(lo, z_odd[:rows])
        return out[:, : self.L]

    def evaluate(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthesis: coefficient grid (L, L, J) [m, k] -> even and odd Legendre sums, each (L, R, J)."""
        L, J = self.L, grid.shape[-1]
        g = torch.nn.functional.pad(grid, (0, 0, 0, self.nk + L % 2))
        even = grid.new_zeros(L, self.R, J)
        odd = grid.new_zeros(L, self.R, J)
        for k0, rows, le, lo in self._blocks(torch.is_grad_enabled() and grid.requires_grad):
            even[:rows].baddbmm_(le.transpose(1, 2), g[:rows, k0 : k0 + self.nk : 2])
            odd[:rows].baddbmm_(lo.transpose(1, 2), g[:rows, k0 + 1 : k0 + self.nk : 2])
        return even, odd
