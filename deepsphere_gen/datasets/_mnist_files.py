"""Readers for MNIST-style digit files the user already has: IDX (gzip or not) and NPZ.

Nothing is downloaded.  Every inconsistency (bad magic number, truncated data, wrong
shape, labels outside 0..9, train / test images of different sizes) raises ValueError
naming the file and the problem.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "load_mnist"]

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# file stems of the four IDX files, as distributed (with or without .gz)
_IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != b"\x1f\x8b":  # not gzip: plain IDX
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path}: gzip stream is truncated or corrupt ({err})") from None


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not, detected from its content).

    Layout: two zero bytes, a type code, the number of dimensions ``ndim``, then
    ``ndim`` big-endian uint32 sizes and the data in big-endian row-major order.
    Returns the array in native byte order, shaped by the header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000TTNN with a type "
            f"code TT in {sorted(hex(k) for k in _IDX_DTYPES)})"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {what}: header declares shape {shape} of {dtype.name} "
            f"({expected} bytes in all), file holds {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise ValueError(f"{directory}: no IDX file {stem}[.gz] found")


def _check_pair(images: np.ndarray, labels: np.ndarray, part: str, source) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3:
        raise ValueError(f"{source}: x_{part} must be shaped (n, height, width), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{source}: y_{part} must be shaped (n,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{source}: x_{part} holds {images.shape[0]} images but y_{part} holds {labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{source}: x_{part} holds no images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{source}: y_{part} must hold integer labels, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{source}: y_{part} labels must lie in 0..9, got [{labels.min()}, {labels.max()}]")
    if not np.issubdtype(images.dtype, np.number) or not np.all(np.isfinite(images)):
        raise ValueError(f"{source}: x_{part} must hold finite numbers")
    return images, labels.astype(np.int64)


def load_mnist(path) -> dict[str, np.ndarray]:
    """Load MNIST (or a same-format digit set) from local files.

    ``path`` is either an ``.npz`` file with arrays ``x_train`` (n, H, W), ``y_train`` (n,),
    ``x_test``, ``y_test`` (Keras' ``mnist.npz`` layout), or a directory holding the four
    IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
    Returns a dict with those four keys; labels are int64, images keep their dtype.
    """
    path = Path(os.fspath(path))
    if path.is_dir():
        arrays = {key: read_idx(_find_idx(path, stem)) for key, stem in _IDX_STEMS.items()}
    elif path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                files = list(npz.files)
                arrays = {k: npz[k] for k in _IDX_STEMS if k in files}
        except Exception as err:  # zipfile.BadZipFile, EOFError, object arrays refused...
            raise ValueError(f"{path}: not a readable NPZ file ({type(err).__name__}: {err})") from None
        missing = [k for k in _IDX_STEMS if k not in arrays]
        if missing:
            raise ValueError(f"{path}: NPZ file lacks array(s) {missing} (has {files})")
    else:
        raise ValueError(f"{path}: no such MNIST file or directory")
    out = {}
    for part in ("train", "test"):
        out[f"x_{part}"], out[f"y_{part}"] = _check_pair(arrays[f"x_{part}"], arrays[f"y_{part}"], part, path)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise ValueError(
            f"{path}: train images are {out['x_train'].shape[1:]} but test images are {out['x_test'].shape[1:]}"
        )
    return out
