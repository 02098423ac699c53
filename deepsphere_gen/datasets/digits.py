"""Spherical digits: handwritten digits projected onto the sphere, rotated or not.

Sources (no download): scikit-learn's ``load_digits`` (1,797 images of 8x8, values
0..16) or MNIST from the user's local files (:func:`load_mnist`).  Images are scaled
to [0, 1] and projected with :func:`project_images` (tangent plane at the south pole,
stereographic, bilinear; see ``_projection``) onto any sampling: Driscoll-Healy
bandwidth 30 (60 x 60) by default, or HEALPix (NESTED) for the graph models.

Splits (Cohen et al. 2018): ``"NR/NR"`` train and test unrotated, ``"R/R"`` both
rotated, ``"NR/R"`` train unrotated, test rotated.  Rotations are uniform on SO(3), one
per sample, drawn from ``seed`` (the test rotations of R/R and NR/R are the same), and
applied by rotating the sample points (exact).  Built splits are cached on disk as
NPZ + JSON metadata, written atomically, under ``data_dir`` (default
:func:`deepsphere_gen._cache_dirs.digits_data_dir`: ``digits`` under the cache root, ``$DEEPSPHERE_GEN_CACHE``,
else ``$XDG_CACHE_HOME/deepsphere_gen``, else ``~/.cache/deepsphere_gen``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._cache_dirs import digits_data_dir
from .._io import atomic_savefig, atomic_write, atomic_write_json
from .._validation import as_integer
from ..harmonic import random_rotations
from ..sampling import DriscollHealySampling, Sampling
from ._mnist_files import load_mnist
from ._projection import DEFAULT_FRAME, HALF_WIDTH, BackProjection, project_images

__all__ = [
    "SPLITS",
    "load_sklearn_digits",
    "DigitSplit",
    "SphericalDigits",
    "build_split",
    "plot_digits",
]

#: split name -> (rotate train, rotate test)
SPLITS = {"NR/NR": (False, False), "R/R": (True, True), "NR/R": (False, True)}
_CACHE_VERSION = 1


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (1797, 8, 8) float64 in 0..16, labels (1797,) int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float64), d.target.astype(np.int64)


def _split_name(split: str) -> str:
    name = str(split).upper().replace("_", "/").replace("-", "/")
    if name not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {list(SPLITS)}")
    return name


class SphericalDigits(torch.utils.data.Dataset):
    """Pairs (map (npix, channels), label) from tensors x (n, npix, channels), y (n,)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.dim() != 3 or y.shape != (x.shape[0],):
            raise ValueError(f"x must be (n, npix, channels) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@dataclass
class DigitSplit:
    """One split: spherical maps, labels, the rotations used and the flat source images.

    x_* : (n, npix, 1) maps on ``sampling``; y_* : (n,) int64 labels;
    rotations_* : (n, 3) float64 ZYZ angles, or None for an unrotated part;
    images_* : (n, H, W) float32 flat images in [0, 1] (before projection).
    """

    split: str
    sampling: Sampling
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    rotations_train: np.ndarray | None
    rotations_test: np.ndarray | None
    images_train: torch.Tensor = field(repr=False)
    images_test: torch.Tensor = field(repr=False)
    meta: dict = field(default_factory=dict, repr=False)

    def datasets(self) -> tuple[SphericalDigits, SphericalDigits]:
        return SphericalDigits(self.x_train, self.y_train), SphericalDigits(self.x_test, self.y_test)

    def planar(self, size=None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test maps carried back to the tangent-plane grid: (n, 1, H, W) each.

        What the planar baseline sees (rotated digits mostly leave the plane's view).
        ``size`` defaults to the source image size; kwargs go to :class:`BackProjection`.
        """
        size = size or tuple(self.images_train.shape[1:])
        bp = BackProjection(self.sampling, size, half_width=self.meta.get("half_width", HALF_WIDTH), **kwargs)
        bp = bp.to(self.x_train.dtype)
        with torch.no_grad():
            return bp(self.x_train), bp(self.x_test)


def _seed_for(seed: int, part: int) -> int:
    return int(np.random.SeedSequence([int(seed), part]).generate_state(1)[0])


def _source(source: str, mnist_path, seed: int, test_fraction: float):
    if source == "sklearn":
        from sklearn.model_selection import train_test_split

        images, labels = load_sklearn_digits()
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        idx_train, idx_test = train_test_split(
            np.arange(labels.size), test_size=test_fraction, stratify=labels, random_state=int(seed)
        )
        return images[idx_train], labels[idx_train], images[idx_test], labels[idx_test], 16.0, "sklearn"
    if source == "mnist":
        if mnist_path is None:
            raise ValueError("source 'mnist' needs mnist_path (an .npz file or a directory of IDX files)")
        d = load_mnist(mnist_path)
        scale = float(max(np.abs(d["x_train"]).max(), np.abs(d["x_test"]).max())) or 1.0
        h = hashlib.sha1()
        for k in sorted(d):
            h.update(np.ascontiguousarray(d[k]).tobytes())
        return d["x_train"], d["y_train"], d["x_test"], d["y_test"], scale, "mnist-" + h.hexdigest()[:12]
    raise ValueError(f"unknown source {source!r}: expected 'sklearn' or 'mnist'")


def _limit(n, available: int, name: str) -> int:
    if n is None:
        return available
    k = as_integer(n)
    if k is None or not 1 <= k <= available:
        raise ValueError(f"{name} must be an integer in [1, {available}], got {n!r}")
    return k


def _save(stem: Path, arrays: dict, meta: dict) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(stem.with_suffix(".npz"), lambda fh: np.savez(fh, **arrays))
    # the JSON is written last: its presence marks a complete entry
    atomic_write_json(stem.with_suffix(".json"), meta, sort_keys=True)


def _load(stem: Path, meta: dict) -> dict | None:
    try:
        with open(stem.with_suffix(".json")) as fh:
            stored = json.load(fh)
        if stored.get("params") != meta["params"]:
            return None
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError):
        return None


def build_split(
    split: str,
    sampling: Sampling | None = None,
    *,
    source: str = "sklearn",
    mnist_path=None,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    test_fraction: float = 0.25,
    rotation_method: str = "points",
    L: int | None = None,
    half_width: float = HALF_WIDTH,
    dtype: torch.dtype = torch.float32,
    data_dir=None,
    cache: bool = True,
) -> DigitSplit:
    """Build (or load from the disk cache) one split of spherical digits.

    Parameters
    ----------
    split : "NR/NR", "R/R" or "NR/R" (also "NR_R", "nr-r", ...).
    sampling : where the maps live; default ``DriscollHealySampling(30)`` (60 x 60).
    source : "sklearn" (train / test drawn stratified with ``test_fraction``, seeded)
        or "mnist" (the files' own train / test parts, from ``mnist_path``).
    seed : seeds the sklearn train / test draw and the rotations.
    n_train, n_test : keep the first n of each part (default: all).
    rotation_method, L : "points" (exact) or "harmonic" (through the SHT at bandlimit L,
        band-limited result); see :func:`project_images`.
    Returns a :class:`DigitSplit`; maps (n, npix, 1) of ``dtype`` with values in [0, 1]
    (rotation_method "points").  Unknown arguments raise ValueError before any work.
    """
    name = _split_name(split)
    if rotation_method not in ("points", "harmonic"):
        raise ValueError(f"rotation_method must be 'points' or 'harmonic', got {rotation_method!r}")
    sampling = sampling if sampling is not None else DriscollHealySampling(30)
    if not isinstance(sampling, Sampling):
        raise ValueError(f"sampling must be a deepsphere_gen.sampling.Sampling, got {type(sampling).__name__}")
    xtr, ytr, xte, yte, scale, source_key = _source(source, mnist_path, seed, test_fraction)
    ntr, nte = _limit(n_train, len(ytr), "n_train"), _limit(n_test, len(yte), "n_test")
    xtr, ytr, xte, yte = xtr[:ntr], ytr[:ntr], xte[:nte], yte[:nte]
    rot_train, rot_test = SPLITS[name]
    params = {
        "version": _CACHE_VERSION,
        "split": name,
        "source": source_key,
        "sampling": sampling.cache_key(),
        "seed": int(seed),
        "n_train": ntr,
        "n_test": nte,
        "test_fraction": float(test_fraction) if source == "sklearn" else None,
        "half_width": float(half_width),
        "rotation_method": rotation_method,
        "L": None if L is None else int(L),
        "dtype": str(dtype).replace("torch.", ""),
    }
    meta = {"params": params, "npix": sampling.npix, "image_shape": list(xtr.shape[1:]), "scale": scale}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    stem = Path(data_dir or digits_data_dir()) / f"digits-{name.replace('/', '_')}-{sampling.cache_key()}-{key}"
    arrays = _load(stem, meta) if cache else None
    if arrays is None:
        rtr = random_rotations(ntr, seed=_seed_for(seed, 1)).numpy() if rot_train else np.zeros((0, 3))
        rte = random_rotations(nte, seed=_seed_for(seed, 2)).numpy() if rot_test else np.zeros((0, 3))
        itr, ite = np.asarray(xtr, np.float64) / scale, np.asarray(xte, np.float64) / scale
        proj = dict(half_width=half_width, dtype=dtype, method=rotation_method, L=L)
        arrays = {
            "x_train": project_images(itr, sampling, rtr if rot_train else None, **proj).numpy(),
            "x_test": project_images(ite, sampling, rte if rot_test else None, **proj).numpy(),
            "y_train": ytr,
            "y_test": yte,
            "rotations_train": np.asarray(rtr, np.float64),
            "rotations_test": np.asarray(rte, np.float64),
            "images_train": itr.astype(np.float32),
            "images_test": ite.astype(np.float32),
        }
        if cache:
            _save(stem, arrays, meta)
    return DigitSplit(
        split=name,
        sampling=sampling,
        x_train=torch.from_numpy(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]).long(),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]).long(),
        rotations_train=arrays["rotations_train"] if rot_train else None,
        rotations_test=arrays["rotations_test"] if rot_test else None,
        images_train=torch.from_numpy(arrays["images_train"]),
        images_test=torch.from_numpy(arrays["images_test"]),
        meta={**meta, "cache_file": str(stem.with_suffix(".npz")) if cache else None, "half_width": half_width},
    )


def _viewpoint(frame) -> str:
    """Where a frame's tangent point c (its third column) lies, in words: "the south pole", "lat 30, lon 45 deg"."""
    c = np.asarray(frame, dtype=np.float64)[:, 2]
    lat = np.degrees(np.arcsin(np.clip(c[2], -1.0, 1.0)))
    if abs(abs(lat) - 90) < 1e-6:
        return "the north pole" if lat > 0 else "the south pole"
    return f"lat {lat:.0f}, lon {np.degrees(np.arctan2(c[1], c[0])) % 360:.0f} deg"


def _ortho(ax, values, xyz, frame, title):
    """Orthographic view of the hemisphere centred on frame's c, rows (e_u) downwards."""
    import matplotlib.tri as mtri

    wu, wv, wc = np.moveaxis(xyz @ frame, -1, 0)
    keep = wc > 0
    tri = mtri.Triangulation(wv[keep], -wu[keep])
    ax.tripcolor(tri, values[keep], shading="gouraud", cmap="gray_r", vmin=0, vmax=1)
    ax.set_aspect("equal")
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_digits(
    images,
    sampling: Sampling | None = None,
    rotations=None,
    *,
    labels=None,
    path=None,
    half_width: float = HALF_WIDTH,
    seed: int = 0,
):
    """Figure of a few digits: flat, projected, rotated (full sky), rotated seen from the plane.

    images : (n, H, W) in [0, 1] (n <= 8 is readable); sampling defaults to DH(30);
    rotations : (n, 3) ZYZ angles, default drawn from ``seed``.  Rows: the flat image;
    the projection seen from above its tangent point; the rotated projection on a
    Mollweide map (longitude, latitude); the rotated projection seen from the unrotated
    tangent point (what a planar model sees after back-projection).
    Saves a PNG to ``path`` if given (Agg backend); returns the matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images, dtype=np.float64)
    n = images.shape[0]
    sampling = sampling if sampling is not None else DriscollHealySampling(30)
    rotations = random_rotations(n, seed=seed).numpy() if rotations is None else np.asarray(rotations, dtype=np.float64)
    if rotations.shape != (n, 3):
        raise ValueError(f"rotations must be ({n}, 3) ZYZ Euler angles, got shape {rotations.shape}")
    flat = project_images(images, sampling, half_width=half_width, dtype=torch.float64)[..., 0].numpy()
    rot = project_images(images, sampling, rotations, half_width=half_width, dtype=torch.float64)[..., 0].numpy()
    xyz = sampling.xyz
    lon = np.where(sampling.phi > np.pi, sampling.phi - 2 * np.pi, sampling.phi)
    lat = np.pi / 2 - sampling.theta
    fig = plt.figure(figsize=(2.2 * n, 8.4))
    seen = f"seen from {_viewpoint(DEFAULT_FRAME)}"  # the tangent point of the projection
    for k in range(n):
        ax = fig.add_subplot(4, n, k + 1)
        ax.imshow(images[k], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"flat{'' if labels is None else f' ({labels[k]})'}", fontsize=7)
        _ortho(fig.add_subplot(4, n, n + k + 1), flat[k], xyz, DEFAULT_FRAME, f"projected ({seen})")
        ax = fig.add_subplot(4, n, 2 * n + k + 1, projection="mollweide")
        ax.scatter(lon, lat, c=rot[k], s=1.5, cmap="gray_r", vmin=0, vmax=1, linewidths=0)
        ax.set_xticks([]), ax.set_yticks([])
        a, b, g = np.degrees(rotations[k])
        ax.set_title(f"rotated ({a:.0f}, {b:.0f}, {g:.0f}) deg", fontsize=7)
        _ortho(fig.add_subplot(4, n, 3 * n + k + 1), rot[k], xyz, DEFAULT_FRAME, f"rotated ({seen})")
    fig.tight_layout()
    if path is not None:
        atomic_savefig(fig, path, dpi=110)
    return fig
