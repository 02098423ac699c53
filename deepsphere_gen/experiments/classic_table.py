"""Equivariance table of the spherical-CNN layer family (Cobb et al. 2021, table 1 pattern).

Every row is ``equivariance.equivariance_error`` of one layer on random band-limited
generalized signals (white coefficients, float32 by default), random rotations uniform
on SO(3), inputs and outputs rotated exactly in harmonic space (``GeneralizedSignal.rotate``).
Convolutions and the tensor-product layer are equivariant to floating-point precision;
the pointwise ReLUs on a grid are not.  Run ``python -m deepsphere_gen.experiments.classic_table``.
"""
from __future__ import annotations

import torch

from ..equivariance import equivariance_error
from ..harmonic import random_rotations
from ..nn import (
    EfficientGeneralizedLayer,
    GeneralizedSignal,
    S2Conv,
    S2ReLU,
    S2ToSO3Conv,
    SO3Conv,
    SO3ReLU,
    s2_near_identity_grid,
    so3_near_identity_grid,
)

__all__ = ["PUBLISHED", "classic_equivariance_table", "format_table"]

#: Cobb et al. 2021 (float32 mean relative errors).
PUBLISHED = {
    "S2 -> S2 conv": 4.4e-7,
    "S2 -> SO(3) conv": 5.3e-7,
    "SO(3) -> SO(3) conv": 9.3e-7,
    "tensor-product activation -> generalized conv": 5.0e-7,
    "S2 ReLU": 3.4e-1,
    "SO(3) ReLU": 3.7e-1,
}


def _signal(L: int, channels: int, tau, batch: int, dtype: torch.dtype, gen: torch.Generator) -> GeneralizedSignal:
    return GeneralizedSignal([torch.randn(batch, channels, 2 * l + 1, tau(l), generator=gen, dtype=torch.float64).to(dtype)
                              for l in range(L)])


def classic_equivariance_table(L: int = 8, channels: int = 4, batch: int = 4, n_rotations: int = 4,
                               dtype: torch.dtype = torch.float32, seed: int = 0,
                               oversampling: float = 1.0) -> list[dict]:
    """Rows {"layer", "mean", "max", "published"} for the six layers of the published table.

    Layers at bandlimit ``L`` with ``channels`` in and out: S2Conv (zonal, 3 anchors),
    S2ToSO3Conv / SO3Conv (near-identity kernel grids), EfficientGeneralizedLayer (MST),
    S2ReLU (MW grid) and SO3ReLU (MW-SO(3) grid) with the given ``oversampling``.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    s2 = _signal(L, channels, lambda l: 1, batch, dtype, gen)
    so3 = _signal(L, channels, lambda l: 2 * l + 1, batch, dtype, gen)
    tp = _signal(L, channels, lambda l: 2, batch, dtype, gen)
    layers = [
        ("S2 -> S2 conv", S2Conv(L, channels, channels, n_anchors=3), s2),
        ("S2 -> SO(3) conv", S2ToSO3Conv(L, channels, channels, kernel_grid=s2_near_identity_grid()), s2),
        ("SO(3) -> SO(3) conv", SO3Conv(L, channels, channels, kernel_grid=so3_near_identity_grid()), so3),
        ("tensor-product activation -> generalized conv",
         EfficientGeneralizedLayer(L, channels, 2, type_out=2, mixing="mst"), tp),
        ("S2 ReLU", S2ReLU(L, channels, oversampling=oversampling, dtype=dtype), s2),
        ("SO(3) ReLU", SO3ReLU(L, channels, oversampling=oversampling), so3),
    ]
    rotations = list(random_rotations(n_rotations, seed=seed + 1))
    rows = []
    for name, layer, x in layers:
        layer = layer.to(dtype)
        res = equivariance_error(layer, x, rotations, lambda s, a: s.rotate(a))
        rows.append({"layer": name, "mean": res.mean, "max": res.max, "published": PUBLISHED[name]})
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table: layer, our mean and max relative error, the published figure."""
    lines = [f"{'layer':<48}{'mean':>10}{'max':>10}{'published':>11}"]
    for r in rows:
        lines.append(f"{r['layer']:<48}{r['mean']:>10.1e}{r['max']:>10.1e}{r['published']:>11.1e}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(classic_equivariance_table()))
