"""Pure-torch engine of the SHT (CUDA, and the reference implementation on any device).

Ring / FFT plan (``_sht_rings``) + on-the-fly Legendre engine (``_sht_legendre``) + the
gathers between the (m, k) coefficient grid and our flat real index l*l + l + m.  Every
step is a differentiable torch operation: autograd gives the backward.  Memory O(L^2 +
npix) buffers plus one Legendre block (no L^3 table); see the two modules for costs.
"""
from __future__ import annotations

import numpy as np
import torch

from ._sht_geometry import RingGeometry
from ._sht_legendre import DEFAULT_BLOCK_BYTES, ChunkedLegendre
from ._sht_rings import RingPlan

__all__ = ["TorchEngine"]


class TorchEngine(torch.nn.Module):
    """``synthesis`` (coeffs (B, L*L, C) -> maps (B, npix, C)) and ``analysis`` (the geometry's
    theta rule) with torch operations on ``device`` in ``dtype``."""

    name = "torch"
    #: device types it runs on: any
    device_types = None

    @staticmethod
    def cache_key(dtype: torch.dtype, device) -> tuple:
        """One engine per (device, dtype): its buffers live there."""
        return ("torch", str(device), dtype)

    @classmethod
    def build(cls, geom: RingGeometry, dtype: torch.dtype, device, block_bytes: int) -> "TorchEngine":
        """The SHT's constructor call."""
        return cls(geom, dtype, device, block_bytes)

    def __init__(self, geom: RingGeometry, dtype: torch.dtype, device=None, block_bytes: int = DEFAULT_BLOCK_BYTES):
        super().__init__()
        L = self.L = geom.L
        self.rings = RingPlan(geom, dtype, device)
        self.legendre = ChunkedLegendre(L, self.rings.theta_stored, dtype, device, block_bytes)
        # grid row (m * L + k) * 2 + part of every flat coefficient (part 0: cos / m >= 0, 1: sin / m < 0)
        ell = np.floor(np.sqrt(np.arange(L * L))).astype(np.int64)
        em = np.arange(L * L) - ell * ell - ell
        ma = np.abs(em)
        flat_to_grid = (ma * L + (ell - ma)) * 2 + (em < 0)  # gathered by analysis, scattered by synthesis
        self.register_buffer("flat_to_grid", torch.as_tensor(flat_to_grid, device=device), persistent=False)

    def analysis(self, maps: torch.Tensor) -> torch.Tensor:
        B, _, C = maps.shape
        even, odd = self.rings.analysis(maps)
        grid = self.legendre.project(even, odd)  # (L, L, K * 2) [m, k, (map, part)]
        L, K = self.L, B * C
        rows = grid.view(L, L, K, 2).permute(0, 1, 3, 2).reshape(-1, K)
        return rows.index_select(0, self.flat_to_grid).view(-1, B, C).permute(1, 0, 2)

    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        B, _, C = coeffs.shape
        L, K = self.L, B * C
        flat = coeffs.permute(1, 0, 2).reshape(-1, K)
        grid = flat.new_zeros(L * L * 2, K).index_copy_(0, self.flat_to_grid, flat)
        grid = grid.view(L, L, 2, K).permute(0, 1, 3, 2).reshape(L, L, 2 * K)
        even, odd = self.legendre.evaluate(grid)
        return self.rings.synthesis(even, odd, B, C)
