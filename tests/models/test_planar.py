"""Planar CNN baseline: shapes, gradients, parameter count, learns sklearn digits."""
import pytest
import torch

from deepsphere_gen.models import PlanarCNN


def test_forward_shapes_and_parameter_count():
    m = PlanarCNN(image_size=8, channels=(16, 32), n_classes=10)
    assert m(torch.rand(5, 8, 8)).shape == (5, 10)
    assert m(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    # conv 1->16 (3x3 + bias), conv 16->32, linear 32*2*2 -> 10
    expected = (9 * 16 + 16) + (9 * 16 * 32 + 32) + (32 * 4 * 10 + 10)
    assert sum(p.numel() for p in m.parameters()) == expected
    m28 = PlanarCNN(image_size=(28, 20), channels=(8, 8, 8), in_channels=2, kernel_size=5)
    assert m28(torch.rand(2, 2, 28, 20)).shape == (2, 10)


def test_backward_and_float64():
    m = PlanarCNN(image_size=8).double()
    x = torch.rand(4, 8, 8, dtype=torch.float64)
    m(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in m.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(kernel_size=4), "odd"), (dict(image_size=4, channels=(1, 1, 1)), "at least 8"),
     (dict(n_classes=0), "n_classes must be a positive integer, got 0"),
     (dict(n_classes=True), "n_classes must be a positive integer, got True"),
     (dict(in_channels=True), "in_channels must be a positive integer, got True"),
     (dict(kernel_size=True), "kernel_size must be a positive integer, got True"),
     (dict(channels=(16, 0)), "channels must be a non-empty sequence of positive integers"),
     (dict(image_size=(8, 8, 8)), "image_size must be a positive integer or \\(H, W\\)"),
     (dict(image_size=2.5), "image_size must be a positive integer, got 2.5")],
)
def test_bad_construction(kwargs, match):
    """(was: a check of its own that took True for a count and a message naming no argument)"""
    with pytest.raises(ValueError, match=match):
        PlanarCNN(**kwargs)


def test_bad_input():
    m = PlanarCNN(image_size=8)
    with pytest.raises(ValueError, match=r"\(batch, 1, 8, 8\)"):
        m(torch.rand(2, 1, 9, 8))
    with pytest.raises(ValueError, match="NaN"):
        m(torch.full((2, 8, 8), float("nan")))


def test_learns_sklearn_digits(one_thread):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16, dtype=torch.float32)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    tr, te = perm[:1400], perm[1400:]
    torch.manual_seed(0)
    m = PlanarCNN(image_size=8)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for epoch in range(4):
        for idx in tr[torch.randperm(len(tr), generator=g)].split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = float((m(x[te]).argmax(1) == y[te]).float().mean())
    assert acc > 0.85, acc
