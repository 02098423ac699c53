"""Spherical-digit splits (NR/NR, R/R, NR/R), their disk cache, the Dataset and the figure."""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from deepsphere_gen.datasets import (
    SPLITS,
    SphericalDigits,
    build_split,
    load_sklearn_digits,
    plot_digits,
    project_images,
)
from deepsphere_gen.datasets import digits as digits_module
from deepsphere_gen.sampling import DriscollHealySampling, HealpixSampling

HP = HealpixSampling(4)
SMALL = dict(n_train=30, n_test=12)


def test_sklearn_digits():
    images, labels = load_sklearn_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 16
    assert set(labels.tolist()) == set(range(10))
    np.testing.assert_array_equal(images.reshape(1797, 64), load_digits().data)


@pytest.mark.parametrize("split", list(SPLITS))
def test_split_shapes_labels_and_rotations(tmp_path, split):
    s = build_split(split, HP, data_dir=tmp_path, **SMALL)
    assert s.split == split
    assert s.x_train.shape == (30, HP.npix, 1) and s.x_test.shape == (12, HP.npix, 1)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert s.images_train.shape == (30, 8, 8) and float(s.images_train.max()) <= 1.0
    assert float(s.x_train.min()) >= 0 and float(s.x_train.max()) <= 1.0
    rot_train, rot_test = SPLITS[split]
    assert (s.rotations_train is not None) == rot_train and (s.rotations_test is not None) == rot_test
    # the maps are the projections of the flat images with the recorded rotations
    for x, img, rot in ((s.x_train, s.images_train, s.rotations_train), (s.x_test, s.images_test, s.rotations_test)):
        torch.testing.assert_close(x, project_images(img, HP, rot), atol=1e-6, rtol=0)
    # labels belong to the images: look the flat images up in sklearn's data
    images, labels = load_sklearn_digits()
    flat = images.reshape(len(labels), -1) / 16
    for img, y in zip(s.images_test.numpy(), s.y_test.numpy()):
        k = np.flatnonzero(np.abs(flat - img.ravel()).max(axis=1) < 1e-6)
        assert k.size >= 1 and labels[k[0]] == y


def test_splits_share_samples_and_test_rotations(tmp_path):
    a = build_split("NR/NR", HP, data_dir=tmp_path, **SMALL)
    b = build_split("NR/R", HP, data_dir=tmp_path, **SMALL)
    c = build_split("R/R", HP, data_dir=tmp_path, **SMALL)
    torch.testing.assert_close(a.x_train, b.x_train)
    torch.testing.assert_close(a.y_test, c.y_test)
    np.testing.assert_array_equal(b.rotations_test, c.rotations_test)
    assert not torch.allclose(a.x_test, b.x_test)
    assert not np.allclose(c.rotations_train[:12], c.rotations_test)
    d = build_split("R/R", HP, data_dir=tmp_path, seed=1, **SMALL)
    assert not np.allclose(d.rotations_test, c.rotations_test)
    # every test rotation differs (one per sample, not one per chunk)
    assert np.unique(c.rotations_test[:, 1]).size == 12


def test_cache_round_trip(tmp_path, monkeypatch):
    s = build_split("R/R", HP, data_dir=tmp_path, **SMALL)
    npz, meta = sorted(tmp_path.glob("*.npz")), sorted(tmp_path.glob("*.json"))
    assert len(npz) == 1 and len(meta) == 1 and not list(tmp_path.glob("*.tmp"))
    stored = json.loads(meta[0].read_text())
    assert stored["params"]["split"] == "R/R" and stored["params"]["sampling"] == HP.cache_key()

    def fail(*args, **kwargs):
        raise AssertionError("projected again instead of loading the cache")

    monkeypatch.setattr(digits_module, "project_images", fail)
    t = build_split("r_r", HP, data_dir=tmp_path, **SMALL)
    torch.testing.assert_close(s.x_test, t.x_test, atol=0, rtol=0)
    np.testing.assert_array_equal(s.rotations_train, t.rotations_train)
    with pytest.raises(AssertionError, match="projected again"):
        build_split("R/R", HealpixSampling(2), data_dir=tmp_path, **SMALL)  # other key
    # a metadata file that does not match forces a rebuild
    stored["params"]["seed"] = 99
    meta[0].write_text(json.dumps(stored))
    with pytest.raises(AssertionError, match="projected again"):
        build_split("R/R", HP, data_dir=tmp_path, **SMALL)


def test_harmonic_rotation_option(tmp_path):
    dh = DriscollHealySampling(8)
    h = build_split("NR/R", dh, data_dir=tmp_path, rotation_method="harmonic", n_train=4, n_test=4, dtype=torch.float64)
    p = build_split("NR/R", dh, data_dir=tmp_path, n_train=4, n_test=4, dtype=torch.float64)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # separate cache entries
    np.testing.assert_array_equal(h.rotations_test, p.rotations_test)
    torch.testing.assert_close(h.x_train, p.x_train)
    expected = project_images(h.images_test, dh, h.rotations_test, method="harmonic", dtype=torch.float64)
    torch.testing.assert_close(h.x_test, expected)
    assert not torch.allclose(h.x_test, p.x_test)


def test_no_cache_writes_nothing(tmp_path):
    build_split("NR/NR", HP, data_dir=tmp_path, cache=False, n_train=5, n_test=5)
    assert not list(tmp_path.iterdir())


def test_dataset_and_loader(tmp_path):
    s = build_split("NR/R", HP, data_dir=tmp_path, **SMALL)
    train, test = s.datasets()
    assert len(train) == 30 and len(test) == 12
    x, y = train[3]
    assert x.shape == (HP.npix, 1) and int(y) == int(s.y_train[3])
    xb, yb = next(iter(torch.utils.data.DataLoader(test, batch_size=5)))
    assert xb.shape == (5, HP.npix, 1) and yb.shape == (5,)
    with pytest.raises(ValueError, match="channels"):
        SphericalDigits(torch.zeros(3, 4), torch.zeros(3))


def test_planar_view(tmp_path):
    s = build_split("NR/R", DriscollHealySampling(30), data_dir=tmp_path, n_train=20, n_test=20)
    ptrain, ptest = s.planar()
    assert ptrain.shape == (20, 1, 8, 8) and ptest.shape == (20, 1, 8, 8)
    # unrotated digits come back close to the flat images; rotated ones mostly leave the view
    err = (ptrain[:, 0] - s.images_train).abs().mean()
    assert float(err) < 0.03
    assert float(ptest.sum()) < 0.7 * float(s.images_test.sum())


def test_mnist_source(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "m.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6),
        x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        y_test=np.arange(4),
    )
    s = build_split("NR/R", HP, source="mnist", mnist_path=path, data_dir=tmp_path / "cache")
    assert s.x_train.shape == (6, HP.npix, 1) and s.images_test.shape == (4, 28, 28)
    np.testing.assert_array_equal(s.y_test.numpy(), np.arange(4))
    assert float(s.images_train.max()) == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="XR"), "unknown split"),
        (dict(source="cifar"), "unknown source"),
        (dict(source="mnist"), "mnist_path"),
        (dict(n_train=10**6), "n_train"),
        (dict(test_fraction=1.5), "test_fraction"),
        (dict(sampling="dh"), "Sampling"),
        (dict(rotation_method="wigner"), "rotation_method"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(split="NR/NR", sampling=HP, data_dir=tmp_path)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_split(args.pop("split"), args.pop("sampling"), **args)


def test_plot_digits(tmp_path):
    images, labels = load_sklearn_digits()
    path = tmp_path / "digits.png"
    fig = plot_digits(images[:3] / 16, DriscollHealySampling(16), labels=labels[:3], path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 12
    titles = [ax.get_title() for ax in fig.axes]  # was "projected (view at c)": c, the frame's tangent point
    assert titles[1::4] == ["projected (seen from the south pole)"] * 3, titles
    assert titles[3::4] == ["rotated (seen from the south pole)"] * 3, titles
    with pytest.raises(ValueError, match="ZYZ"):
        plot_digits(images[:3] / 16, HP, rotations=np.zeros((2, 3)))


def test_default_data_dir_follows_the_cache_root(monkeypatch, tmp_path):
    """The digits cache honours $XDG_CACHE_HOME as the mass maps and graphs do (it read only
    $DEEPSPHERE_GEN_CACHE, else ~/.cache); the rule is _cache_dirs.digits_data_dir's (was: digits' own
    default_data_dir), and build_split without data_dir writes there."""
    from deepsphere_gen._cache_dirs import digits_data_dir

    monkeypatch.delenv("DEEPSPHERE_GEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert digits_data_dir() == tmp_path / "deepsphere_gen" / "digits"
    build_split("NR/NR", HP, **SMALL)
    assert list((tmp_path / "deepsphere_gen" / "digits").glob("digits-NR_NR-*"))
    monkeypatch.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path / "root"))
    assert digits_data_dir() == tmp_path / "root" / "digits"
    build_split("NR/NR", HP, **SMALL)
    assert list((tmp_path / "root" / "digits").glob("digits-NR_NR-*"))
