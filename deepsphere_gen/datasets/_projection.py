"""Flat images <-> spherical signals: the spherical-MNIST projection and its inverse.

Geometry (that of Cohen et al. 2018's ``gendata.py`` for spherical MNIST, in the
notation of the unit sphere centred at the origin): the image lies on the plane tangent
to the sphere at the point ``c`` (default: the south pole), with its rows along ``e_u``
and its columns along ``e_v``; the square image covers ``[-a, a]^2`` on that plane
(``a = half_width``, default 1.5 sphere radii, as in gendata).  A sphere point ``w`` is
carried to the plane along the ray from the antipode ``-c`` (stereographic projection)::

    u = 2 <w, e_u> / (1 + <w, c>),   v = 2 <w, e_v> / (1 + <w, c>)

and the signal there is the bilinear interpolation of the image between pixel centres
(pixel (i, j) sits at u = -a + (i + 1/2) 2a/H, v = -a + (j + 1/2) 2a/W), with zeros
outside the image.  Only the hemisphere ``<w, c> >= 0`` receives the image (its
boundary maps to the circle of radius 2, so the corners of the image beyond it are
cut, as in gendata).  The default frame (e_u, e_v, c) = (x, y, -z) is gendata's; seen
from outside the sphere the digit then appears mirrored, which no classifier minds.

Differences from gendata: gendata interpolates between pixels i-1 and i+1 (a slight
blur) and rescales every sample to [0, 255]; here the interpolation is the exact
bilinear one and values keep the image's scale (so they lie in [0, max(image)]).

Rotations are active: the projection rotated by R is ``(R f)(w) = f(R^-1 w)``,
evaluated exactly by projecting the rotated points ``R^T w``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from ..harmonic import euler_to_matrix, rotate_map
from ..sampling import Sampling

__all__ = [
    "DEFAULT_FRAME",
    "HALF_WIDTH",
    "sphere_to_plane",
    "plane_to_sphere",
    "project_images",
    "BackProjection",
]

#: columns (e_u, e_v, c): image rows along +x, columns along +y, tangent at the south pole.
DEFAULT_FRAME = np.diag([1.0, 1.0, -1.0])
#: half side of the image on the tangent plane, in sphere radii (gendata's 1.5).
HALF_WIDTH = 1.5
# points this close to the hemisphere edge count as on it (rotations round exact zeros)
_EDGE_TOL = 1e-12


def _frame(frame) -> np.ndarray:
    f = DEFAULT_FRAME if frame is None else np.asarray(frame, dtype=np.float64)
    if f.shape != (3, 3) or not np.allclose(f.T @ f, np.eye(3), atol=1e-10):
        raise ValueError(f"frame must be a 3x3 matrix with orthonormal columns (e_u, e_v, c), got {f!r}")
    return f


def _points(where) -> np.ndarray:
    if isinstance(where, Sampling):
        return where.xyz
    xyz = np.asarray(where, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must be a Sampling or an (npix, 3) array of unit vectors, got shape {xyz.shape}")
    if not np.allclose(np.linalg.norm(xyz, axis=1), 1.0, atol=1e-8):
        raise ValueError("points must be unit vectors")
    return xyz


def _half_width(a) -> float:
    a = float(a)
    if not 0 < a < np.inf:
        raise ValueError(f"half_width must be a positive number of sphere radii, got {a}")
    return a


def _rotation_matrices(rotations, n: int) -> np.ndarray:
    """(n, 3, 3) float64 from (n, 3) ZYZ Euler angles or (n, 3, 3) matrices."""
    r = rotations.detach().cpu().numpy() if torch.is_tensor(rotations) else np.asarray(rotations)
    r = r.astype(np.float64)
    if r.shape == (n, 3):
        r = euler_to_matrix(r).numpy()
    elif r.shape != (n, 3, 3):
        raise ValueError(
            f"rotations must be ({n}, 3) ZYZ Euler angles or ({n}, 3, 3) matrices (one per image), "
            f"got shape {r.shape}"
        )
    if not np.allclose(np.einsum("nji,njk->nik", r, r), np.eye(3), atol=1e-8):
        raise ValueError("rotation matrices must be orthogonal")
    return r


def sphere_to_plane(xyz: np.ndarray, frame=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plane coordinates (u, v) of unit vectors ``xyz`` (..., 3), and the front mask.

    Returns ``u, v`` (...,) in sphere radii (stereographic from ``-c``) and ``front``
    (...,) bool, true on the hemisphere ``<w, c> >= 0`` (to 1e-12) that receives the image;
    behind it, u and v are finite but meaningless.
    """
    f = _frame(frame)
    wu, wv, wc = np.moveaxis(np.asarray(xyz, dtype=np.float64) @ f, -1, 0)
    front = wc >= -_EDGE_TOL
    denom = np.where(front, 1.0 + wc, 1.0)
    return 2 * wu / denom, 2 * wv / denom, front


def plane_to_sphere(u, v, frame=None) -> np.ndarray:
    """Unit vectors (..., 3) whose plane coordinates are (u, v): the inverse stereographic map."""
    f = _frame(frame)
    u, v = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
    r2 = u * u + v * v
    s = 4.0 / (4.0 + r2)
    local = np.stack([s * u, s * v, (4.0 - r2) / (4.0 + r2)], axis=-1)
    return local @ f.T


def _sample(images: torch.Tensor, u: np.ndarray, v: np.ndarray, front: np.ndarray, a: float) -> torch.Tensor:
    """Bilinear samples of images (n, H, W) at plane points u, v (n or 1, npix) -> (n, npix)."""
    grid = np.stack([v / a, u / a], axis=-1)  # grid_sample: x indexes columns, y rows
    grid = torch.as_tensor(grid, dtype=images.dtype)[:, None].expand(images.shape[0], 1, -1, 2)
    out = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0, 0] * torch.as_tensor(front, dtype=images.dtype)


def project_images(
    images,
    where,
    rotations=None,
    *,
    method: str = "points",
    L: int | None = None,
    half_width: float = HALF_WIDTH,
    frame=None,
    dtype: torch.dtype = torch.float32,
    chunk: int = 256,
) -> torch.Tensor:
    """Project flat images onto the sphere, optionally rotated (one rotation per image).

    Parameters
    ----------
    images : (n, H, W) array or tensor (any real dtype; values are kept, not rescaled).
    where : a :class:`~deepsphere_gen.sampling.Sampling` or (npix, 3) unit vectors.
    rotations : None, or (n, 3) ZYZ Euler angles / (n, 3, 3) matrices; image k becomes
        ``(R_k f_k)(w) = f_k(R_k^T w)``.
    method : how rotations are applied: "points" (exact: the image is sampled at the
        rotated points R^T w) or "harmonic" (the unrotated projection is rotated through
        the SHT at bandlimit ``L``, :func:`deepsphere_gen.harmonic.rotate_map`: the result
        is band-limited to l < L, with ringing, and needs a full-sky sampling with rings;
        ``L`` defaults to the bandlimit of an equiangular grid (``sampling.L``); HEALPix has no
        exact bandlimit, so there ``L`` must be given (ValueError otherwise): it sets the
        resolution kept, and the SHT's accuracy on HEALPix falls as L grows (e.g. L = 2 nside;
        :func:`~deepsphere_gen.harmonic.rotate_map` gives measured errors)).
    half_width, frame : the placement on the tangent plane (module docstring).
    chunk : images processed at once (bounds memory to chunk * npix * 3 floats).

    Returns (n, npix, 1) tensor of ``dtype``; values in [min(0, image), max(image)].
    """
    img = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images.detach().cpu())
    if img.dim() != 3 or img.shape[0] == 0 or img.shape[1] == 0 or img.shape[2] == 0:
        raise ValueError(f"images must be shaped (n, height, width) with n >= 1, got {tuple(img.shape)}")
    img = img.to(torch.float64)
    if not bool(torch.isfinite(img).all()):
        raise ValueError("images hold NaN or inf values")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if method not in ("points", "harmonic"):
        raise ValueError(f"method must be 'points' or 'harmonic', got {method!r}")
    a = _half_width(half_width)
    xyz = _points(where)
    n = img.shape[0]
    if rotations is not None and method == "harmonic":
        if not isinstance(where, Sampling):
            raise ValueError("method 'harmonic' needs a Sampling (the SHT works on its rings), not bare points")
        mats = torch.as_tensor(_rotation_matrices(rotations, n))
        flat = project_images(img, where, half_width=a, frame=frame, dtype=torch.float64, chunk=chunk)
        parts = [
            rotate_map(flat[i : i + chunk], where, L=L, matrix=mats[i : i + chunk])[..., 0].to(dtype)
            for i in range(0, n, chunk)
        ]
    elif rotations is None:
        u, v, front = sphere_to_plane(xyz, frame)
        parts = [_sample(img[i : i + chunk], u[None], v[None], front[None], a).to(dtype) for i in range(0, n, chunk)]
    else:
        mats = _rotation_matrices(rotations, n)
        parts = []
        for i in range(0, n, chunk):
            pts = np.einsum("nji,pj->npi", mats[i : i + chunk], xyz)  # R^T w
            u, v, front = sphere_to_plane(pts, frame)
            parts.append(_sample(img[i : i + chunk], u, v, front, a).to(dtype))
    return torch.cat(parts)[..., None]


class BackProjection(torch.nn.Module):
    """Map spherical signals back onto the tangent-plane image grid (inverse of the projection).

    Pixel (i, j) of the H x W output is the sphere point ``plane_to_sphere(u_i, v_j)``;
    its value is the inverse-distance-weighted mean of the ``k`` nearest samples of the
    input map (weights 1 / chordal distance^2, exact at a sample).  Pixels beyond the
    hemisphere edge (plane radius > 2), which the projection never fills, are zero.
    The planar baseline sees rotated spherical digits through this map.

    forward: maps (batch, npix, channels) -> images (batch, channels, H, W).
    """

    def __init__(self, sampling, size, *, half_width: float = HALF_WIDTH, frame=None, k: int = 4):
        super().__init__()
        H, W = (size, size) if np.ndim(size) == 0 else tuple(size)
        if int(H) != H or int(W) != W or H < 1 or W < 1:
            raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
        if not 1 <= int(k):
            raise ValueError(f"k must be >= 1, got {k}")
        self.size, self.npix = (int(H), int(W)), _points(sampling).shape[0]
        a = _half_width(half_width)
        u = -a + (np.arange(H) + 0.5) * 2 * a / H
        v = -a + (np.arange(W) + 0.5) * 2 * a / W
        uu, vv = np.meshgrid(u, v, indexing="ij")
        query = plane_to_sphere(uu.ravel(), vv.ravel(), frame)
        k = min(int(k), self.npix)
        dist, idx = cKDTree(_points(sampling)).query(query, k=k)
        dist, idx = dist.reshape(-1, k), idx.reshape(-1, k)
        exact = dist[:, :1] < 1e-12
        w = np.where(exact, (dist < 1e-12).astype(np.float64), 1.0 / np.maximum(dist, 1e-12) ** 2)
        w /= w.sum(axis=1, keepdims=True)
        w *= (uu.ravel() ** 2 + vv.ravel() ** 2 <= 4.0)[:, None]
        self.register_buffer("index", torch.as_tensor(idx, dtype=torch.long))
        self.register_buffer("weight", torch.as_tensor(w, dtype=torch.get_default_dtype()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if maps.dim() != 3 or maps.shape[1] != self.npix:
            raise ValueError(f"maps must be shaped (batch, {self.npix}, channels), got {tuple(maps.shape)}")
        out = (maps[:, self.index, :] * self.weight.to(maps.dtype)[None, :, :, None]).sum(dim=2)
        return out.transpose(1, 2).reshape(maps.shape[0], maps.shape[2], *self.size)
