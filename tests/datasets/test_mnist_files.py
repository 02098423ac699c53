"""MNIST readers on tiny IDX / NPZ files written here (byte layout built by hand with struct)."""
import gzip
import struct

import numpy as np
import pytest

from deepsphere_gen.datasets import load_mnist, read_idx

RNG = np.random.default_rng(0)
X_TRAIN = RNG.integers(0, 256, (5, 4, 3), dtype=np.uint8)
Y_TRAIN = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
X_TEST = RNG.integers(0, 256, (2, 4, 3), dtype=np.uint8)
Y_TEST = np.array([7, 2], dtype=np.uint8)


def idx_bytes(a: np.ndarray, code: int = 0x08, big: str = ">u1") -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, a.ndim) + b"".join(struct.pack(">I", s) for s in a.shape)
    return head + a.astype(big).tobytes()


def write_idx_dir(path, compress=False):
    files = {
        "train-images-idx3-ubyte": X_TRAIN,
        "train-labels-idx1-ubyte": Y_TRAIN,
        "t10k-images-idx3-ubyte": X_TEST,
        "t10k-labels-idx1-ubyte": Y_TEST,
    }
    for name, a in files.items():
        raw = idx_bytes(a)
        if compress:
            (path / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (path / name).write_bytes(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_directory_round_trip(tmp_path, compress):
    write_idx_dir(tmp_path, compress)
    d = load_mnist(tmp_path)
    np.testing.assert_array_equal(d["x_train"], X_TRAIN)
    np.testing.assert_array_equal(d["y_train"], Y_TRAIN)
    np.testing.assert_array_equal(d["x_test"], X_TEST)
    np.testing.assert_array_equal(d["y_test"], Y_TEST)
    assert d["y_train"].dtype == np.int64 and d["x_train"].dtype == np.uint8


def test_idx_other_dtypes(tmp_path):
    a = RNG.standard_normal((3, 2)).astype(np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(a, 0x0D, ">f4"))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), a)
    b = RNG.integers(-1000, 1000, 7).astype(np.int16)
    (tmp_path / "s.idx").write_bytes(idx_bytes(b, 0x0B, ">i2"))
    np.testing.assert_array_equal(read_idx(tmp_path / "s.idx"), b)


def test_idx_truncated_data(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(X_TRAIN)[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(p)


def test_idx_trailing_bytes(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(X_TRAIN) + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(p)


def test_idx_truncated_header(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(X_TRAIN)[:9])
    with pytest.raises(ValueError, match="header"):
        read_idx(p)


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "x"
    raw = bytearray(idx_bytes(X_TRAIN))
    raw[2] = 0x42
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="magic"):
        read_idx(p)
    p.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="too short"):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(idx_bytes(X_TRAIN))[:-10])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(p)


def test_idx_wrong_shape_and_mismatch(tmp_path):
    write_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(X_TRAIN.reshape(5, 12)))
    with pytest.raises(ValueError, match=r"x_train must be shaped \(n, height, width\)"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(X_TRAIN[:4]))
    with pytest.raises(ValueError, match="4 images but y_train holds 5 labels"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match="no IDX file train-images"):
        load_mnist(tmp_path)


def save_npz(path, **over):
    arrays = dict(x_train=X_TRAIN, y_train=Y_TRAIN, x_test=X_TEST, y_test=Y_TEST)
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_round_trip(tmp_path):
    d = load_mnist(save_npz(tmp_path / "m.npz"))
    np.testing.assert_array_equal(d["x_test"], X_TEST)
    np.testing.assert_array_equal(d["y_test"], Y_TEST)


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(x_train=X_TRAIN.reshape(5, 12)), r"x_train must be shaped \(n, height, width\)"),
        (dict(y_test=Y_TEST[:, None]), r"y_test must be shaped \(n,\)"),
        (dict(y_train=np.array([0, 1, 2, 3, 10])), "labels must lie in 0..9"),
        (dict(y_train=Y_TRAIN.astype(np.float32)), "integer labels"),
        (dict(x_test=X_TEST[:, :3]), "train images are"),
        (dict(x_test=None), r"lacks array\(s\) \['x_test'\]"),
        (dict(x_train=np.full((5, 4, 3), np.nan)), "finite"),
    ],
)
def test_npz_bad_content(tmp_path, over, match):
    p = save_npz(tmp_path / "m.npz", **over)
    with pytest.raises(ValueError, match=match):
        load_mnist(p)


def test_npz_truncated(tmp_path):
    p = save_npz(tmp_path / "m.npz")
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable NPZ"):
        load_mnist(p)


def test_missing_path(tmp_path):
    with pytest.raises(ValueError, match="no such MNIST"):
        load_mnist(tmp_path / "nothing.npz")
