"""Rotations: random ZYZ angles, matrices, and rotating points, coefficients, fragments, maps.

Convention (docs/conventions.md): active rotations, ZYZ Euler angles (alpha, beta, gamma) in
radians, ``R = Rz(alpha) Ry(beta) Rz(gamma)``, ``(R f)(w) = f(R^-1 w)``.  Angles are
tensors shaped (..., 3); a single rotation is shaped (3,).  Functions that rotate data
accept either one rotation (applied to the whole batch) or one per batch element
(shape (batch, 3)), or ``matrix=`` rotation matrices instead of angles.

healpy (checked in tests/harmonic/test_rotation.py, after ``real_to_healpy_alm``):

* ``healpy.rotate_alm(alm, matrix=R)`` applies our active rotation with matrix ``R``;
* ``healpy.rotate_alm(alm, psi, theta, phi)`` applies ``Rz(phi) Ry(theta) Rz(psi)``, i.e.
  our ``(alpha, beta, gamma) = (phi, theta, psi)``;
* ``healpy.Rotator(...).rotate_alm(alm)`` applies our rotation with matrix
  ``Rotator.mat``; for ZYZ angles use ``eulertype="Y"``:
  ``Rotator(rot=(-gamma, beta, -alpha), eulertype="Y", deg=False)`` is our
  ``(alpha, beta, gamma)``.  healpy has no ``eulertype="ZYZ"``: any unknown name silently
  falls back to "ZYX".
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_nonnegative_int, check_positive_int
from ._sht import analysis, synthesis
from ._wigner import apply_D_real, as_angles

__all__ = [
    "random_rotations",
    "euler_to_matrix",
    "matrix_to_euler",
    "compose_rotations",
    "invert_rotation",
    "rotate_points",
    "rotate_coefficients",
    "rotate_fragments",
    "rotate_map",
    "MapRotator",
]


def random_rotations(n: int, seed=None) -> torch.Tensor:
    """``n`` rotations uniform on SO(3) as ZYZ angles, (n, 3) float64 on the CPU.

    alpha, gamma uniform in [0, 2 pi), cos(beta) uniform in [-1, 1] (Haar measure).
    ``seed``: None (fresh entropy), an int, or a ``torch.Generator``.
    """
    n = check_nonnegative_int(n, "n (number of rotations)")
    if isinstance(seed, torch.Generator):
        gen = seed
    else:
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
    u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return torch.stack([2 * math.pi * u[:, 0], torch.acos(1 - 2 * u[:, 1]), 2 * math.pi * u[:, 2]], dim=1)


def _rz(a: torch.Tensor) -> torch.Tensor:
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(*a.shape, 3, 3)


def _ry(b: torch.Tensor) -> torch.Tensor:
    c, s, z, o = torch.cos(b), torch.sin(b), torch.zeros_like(b), torch.ones_like(b)
    return torch.stack([c, z, s, z, o, z, -s, z, c], dim=-1).reshape(*b.shape, 3, 3)


def euler_to_matrix(angles, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """ZYZ angles (..., 3) -> rotation matrices (..., 3, 3), ``Rz(alpha) Ry(beta) Rz(gamma)``."""
    ang = as_angles(angles, dtype, device)
    return _rz(ang[..., 0]) @ _ry(ang[..., 1]) @ _rz(ang[..., 2])


def matrix_to_euler(matrix, tol: float = 1e-5) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> ZYZ angles (..., 3), beta in [0, pi].

    ``alpha`` comes from the third column, then ``gamma`` from ``alpha + gamma`` (upper
    2x2 block: ``(R10 - R01, R00 + R11) = (1 + cos beta) (sin, cos)``) when cos beta >= 0,
    else from ``alpha - gamma`` (``(-(R10 + R01), R11 - R00) = (1 - cos beta) (sin, cos)``):
    the reconstructed matrix is accurate to working precision even next to the poles
    (where the split between alpha and gamma is ill-defined).  Raises ValueError unless
    the matrices are orthogonal with determinant +1 to within ``tol``.
    """
    R = torch.as_tensor(matrix)
    if not R.is_floating_point():
        R = R.to(torch.float64)
    if R.dim() < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must be shaped (..., 3, 3), got {tuple(R.shape)}")
    if not bool(torch.isfinite(R).all()):
        raise ValueError("rotation matrices hold NaN or inf values")
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    if R.numel() and (
        float((R @ R.transpose(-1, -2) - eye).abs().max()) > tol
        or float((torch.linalg.det(R) - 1).abs().max()) > tol
    ):
        raise ValueError("matrices are not rotations (orthogonal with determinant +1)")
    beta = torch.atan2(torch.hypot(R[..., 0, 2], R[..., 1, 2]), R[..., 2, 2])
    alpha = torch.atan2(R[..., 1, 2], R[..., 0, 2])
    plus = torch.atan2(R[..., 1, 0] - R[..., 0, 1], R[..., 0, 0] + R[..., 1, 1])
    minus = torch.atan2(-(R[..., 1, 0] + R[..., 0, 1]), R[..., 1, 1] - R[..., 0, 0])
    gamma = torch.where(R[..., 2, 2] >= 0, plus - alpha, alpha - minus)
    return torch.stack([alpha, beta, gamma], dim=-1)


def compose_rotations(first, second) -> torch.Tensor:
    """Angles of ``R1 R2`` (apply ``second``, then ``first``): D(R1 R2) = D(R1) D(R2)."""
    return matrix_to_euler(euler_to_matrix(first) @ euler_to_matrix(second))


def invert_rotation(angles) -> torch.Tensor:
    """Angles of ``R^-1`` with beta in [0, pi]: (pi - gamma, beta, -pi - alpha)."""
    ang = as_angles(angles, None, None)
    return torch.stack([math.pi - ang[..., 2], ang[..., 1], -math.pi - ang[..., 0]], dim=-1)


def _resolve(angles, matrix, dtype, device) -> torch.Tensor:
    if (angles is None) == (matrix is None):
        raise ValueError("give exactly one of angles (ZYZ Euler angles) or matrix (rotation matrices)")
    if matrix is not None:
        if not torch.is_tensor(matrix):
            matrix = torch.as_tensor(np.array(matrix, dtype=np.float64))  # a copy: views with negative strides too
        angles = matrix_to_euler(matrix.to(torch.float64))
    return as_angles(angles, dtype, device)


def rotate_points(points, angles=None, *, matrix=None, inverse: bool = False):
    """Apply R (or R^-1 with ``inverse=True``) to points on the sphere.

    ``points``: unit vectors (..., 3) (numpy array or tensor), or a tuple
    ``(theta, phi)`` of colatitude / longitude arrays in radians.  Returns the same kind.
    One rotation (``angles`` shaped (3,) or ``matrix`` (3, 3)), or one per leading index.
    """
    as_pair = isinstance(points, tuple)
    if as_pair:
        if len(points) != 2:
            raise ValueError("points given as a tuple must be (theta, phi)")
        theta, phi = points
        is_np = not torch.is_tensor(theta)
        theta = torch.as_tensor(theta, dtype=torch.float64) if is_np else theta
        if not torch.is_tensor(phi):
            phi = torch.as_tensor(phi, dtype=theta.dtype, device=theta.device)
        st = torch.sin(theta)
        xyz = torch.stack([st * torch.cos(phi), st * torch.sin(phi), torch.cos(theta)], dim=-1)
    else:
        is_np = not torch.is_tensor(points)
        xyz = torch.as_tensor(points, dtype=torch.float64) if is_np else points
        if xyz.dim() == 0 or xyz.shape[-1] != 3:
            raise ValueError(f"points must be shaped (..., 3), got {tuple(xyz.shape)}")
    if not xyz.is_floating_point():
        xyz = xyz.to(torch.float64)
    R = euler_to_matrix(_resolve(angles, matrix, xyz.dtype, xyz.device))
    if inverse:
        R = R.transpose(-1, -2)
    out = (R @ xyz.unsqueeze(-1)).squeeze(-1)
    if as_pair:
        lon = torch.remainder(torch.atan2(out[..., 1], out[..., 0]), 2 * math.pi)
        out = (torch.acos(out[..., 2].clamp(-1, 1)), lon)
        return tuple(o.numpy() for o in out) if is_np else out
    return out.numpy() if is_np else out


def rotate_coefficients(
    coeffs: torch.Tensor, angles=None, L: int | None = None, *, matrix=None
) -> torch.Tensor:
    """Coefficients of ``R f`` from those of ``f``: (batch, L*L, channels) -> same shape.

    Flat index ``l*l + l + m``.  ``L`` defaults to sqrt(number of coefficients).  One
    rotation for the whole batch, or ``(batch, 3)`` angles / ``(batch, 3, 3)`` matrices.
    The Wigner-D factors are applied in the coefficients' dtype on their device
    (``Delta_l`` tables cached per dtype/device), never forming D: cost
    ~4 sum_l (2l+1)^2 * batch * channels.
    """
    if not torch.is_tensor(coeffs) or coeffs.dim() != 3 or not coeffs.is_floating_point():
        raise ValueError("coeffs must be a real floating tensor shaped (batch, L*L, channels)")
    n = coeffs.shape[1]
    L = int(round(math.sqrt(n))) if L is None else check_positive_int(L, "bandlimit L")
    if L < 1 or L * L != n:
        raise ValueError(f"coeffs has {n} coefficients per channel, expected L*L for bandlimit L={L!r}")
    ang = _resolve(angles, matrix, coeffs.dtype, coeffs.device)
    _check_batch(ang, coeffs.shape[0])
    out = [apply_D_real(l, ang, coeffs[:, l * l : (l + 1) * (l + 1), :]) for l in range(L)]
    return torch.cat(out, dim=1)


def rotate_fragments(fragments, angles=None, *, matrix=None) -> list[torch.Tensor]:
    """Rotate harmonic fragments: list over l of (batch, channels, 2l+1, tau_l) -> same.

    The fragment at position l must have 2l+1 rows (dim -2); D^l acts on that dim.
    One rotation for the batch, or (batch, 3) angles / (batch, 3, 3) matrices.
    """
    if not isinstance(fragments, (list, tuple)) or not fragments:
        raise ValueError("fragments must be a non-empty list over l of (batch, channels, 2l+1, tau) tensors")
    first = fragments[0]
    ang = _resolve(angles, matrix, first.dtype, first.device)
    out = []
    for l, f in enumerate(fragments):
        if not torch.is_tensor(f) or f.dim() != 4 or f.shape[2] != 2 * l + 1:
            shape = tuple(f.shape) if torch.is_tensor(f) else type(f).__name__
            raise ValueError(f"fragment {l} must be shaped (batch, channels, {2 * l + 1}, tau), got {shape}")
        if f.dtype != first.dtype or f.device != first.device:
            raise ValueError(
                f"fragment {l} has dtype/device {f.dtype}/{f.device}, fragment 0 has {first.dtype}/{first.device}"
            )
        _check_batch(ang, f.shape[0])
        b, c, n, t = f.shape
        x = apply_D_real(l, ang, f.transpose(1, 2).reshape(b, n, c * t))
        out.append(x.reshape(b, n, c, t).transpose(1, 2))
    return out


def rotate_map(
    maps: torch.Tensor,
    sampling,
    angles=None,
    L: int | None = None,
    *,
    matrix=None,
    iterations: int | None = None,
    order: str = "NESTED",
) -> torch.Tensor:
    """Rotate maps (batch, npix, channels) on a full-sky sampling through the SHT at L.

    ``maps -> analysis -> rotate_coefficients -> synthesis``; any power at l >= L is
    removed.  Exact (float64 ~1e-14) for band-limited maps on GL / DH / MW grids.  On
    HEALPix the analysis is approximate even for band-limited maps; measured relative
    error of the rotated map (float64, random band-limited coefficients):
    nside 16, L = 17: 9e-4 (iterations=0), 2e-8 (3); nside 8, L = 17: 2e-2 (0), 4e-5 (3);
    nside 16, L = 48: 0.15 (0), 0.08 (3).  Keep L <= nside + 1 or so for accurate rotations.
    ``L`` defaults to the sampling's own bandlimit ``sampling.L`` where it has one (equiangular
    grids; HEALPix has none: give L);
    ``iterations`` (Jacobi steps of the analysis) defaults to 3 on HEALPix, 0 elsewhere
    (:func:`~deepsphere_gen.harmonic.default_iterations`, the analysis' own default).
    """
    if L is None:
        L = getattr(sampling, "L", None)
        if L is None:
            raise ValueError(f"give the bandlimit L for {sampling!r}: it has no exact bandlimit (the SHT takes L <= "
                             f"{sampling.max_bandlimit}; the rotation is more accurate the lower L, see rotate_map)")
    coeffs = analysis(maps, sampling, L, iterations=iterations, order=order)
    rotated = rotate_coefficients(coeffs, angles, L, matrix=matrix)
    return synthesis(rotated, sampling, L, order=order, check_input=False)  # computed here: no re-check


class MapRotator:
    """:func:`rotate_map` bound to one sampling, bandlimit and iteration count: ``rot(maps, angles)``.

    Rotates pixel maps (batch, npix, C) through the SHT at bandlimit ``L``: analysis
    (``iterations`` Jacobi steps on HEALPix, ignored on equiangular grids) ->
    :func:`rotate_coefficients` -> synthesis; power at l >= L is removed.  The default 10
    iterations bring the HEALPix analysis of maps band-limited below L <= 2 nside to float64
    precision (floor ~1e-12 at nside 32); at L = 3 nside it stays approximate.  Use it as
    ``rotate_output`` of :func:`deepsphere_gen.equivariance.equivariance_error`.
    """

    def __init__(self, sampling, L: int, iterations: int = 10):
        self.sampling, self.L = sampling, check_positive_int(L, "bandlimit L")
        self.iterations = check_nonnegative_int(iterations, "iterations")

    def __call__(self, maps: torch.Tensor, angles) -> torch.Tensor:
        return rotate_map(maps, self.sampling, angles, self.L, iterations=self.iterations)

    def __repr__(self) -> str:
        return f"MapRotator({self.sampling!r}, L={self.L}, iterations={self.iterations})"


def _check_batch(ang: torch.Tensor, batch: int) -> None:
    if ang.dim() == 1:
        return
    if ang.dim() != 2 or ang.shape[0] != batch:
        raise ValueError(
            f"give one rotation (3,) or one per batch element ({batch}, 3); got angles of shape {tuple(ang.shape)}"
        )
