"""HarmonicClassifier: invariance of the whole model, learning a toy invariant task, summary."""
import math

import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.equivariance import assert_equivariant, assert_map_equivariant
from deepsphere_gen.models import HarmonicClassifier
from deepsphere_gen.nn import GeneralizedSignal
from deepsphere_gen.sampling import EquiangularSampling, GaussLegendreSampling, McEwenWiauxSampling


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def rotate_coeffs(c, a):
    return GeneralizedSignal.from_coefficients(c).rotate(a).to_coefficients()


@pytest.mark.parametrize("mixing", ["mst", "rmst", pytest.param("full", marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_classifier_invariant(mixing, dtype, tol):
    torch.manual_seed(0)
    model = HarmonicClassifier(4, bandlimits=(6, 5, 3), channels=(3, 4, 4), mixing=mixing).to(dtype)
    x = torch.randn(3, 36, 1, dtype=dtype)
    assert model(x).shape == (3, 4)
    assert_equivariant(model, x, rotations(4), rotate_coeffs, lambda y, a: y, tol=tol)
    # the generalized signal before the readout is equivariant
    assert_equivariant(model.signal, x, rotations(2), rotate_coeffs, lambda s, a: s.rotate(a), tol=tol)


def test_classifier_on_maps_invariant():
    """Two random band-limited maps on its Gauss-Legendre grid, rotated exactly: the logits do not change."""
    torch.manual_seed(0)
    L = 6
    s = GaussLegendreSampling(L)
    model = HarmonicClassifier(3, bandlimits=(L, 4), channels=(2, 3), sampling=s, dtype=torch.float64).double()
    assert_map_equivariant(model, s, L=L, rotations=rotations(3), batch=2, invariant=True, tol=1e-12)


def test_classifier_on_mcewen_wiaux_maps_invariant_below_the_grid_bandlimit():
    """First bandlimit 8 on an MW(12) grid fed maps with l < 12: the analysis at 8 keeps l < 8 of the exact
    analysis at 12 (ducc0's MW analysis at lmax 7 aliased l >= 8 onto it: invariance error 4e-4)."""
    torch.manual_seed(0)
    s = McEwenWiauxSampling(12)
    model = HarmonicClassifier(4, sampling=s, dtype=torch.float64).eval()
    assert model.bandlimits[0] == 8
    assert_map_equivariant(model, s, L=12, rotations=4, batch=2, invariant=True, tol=1e-13)


def _toy(n, L, g):
    """Class = the degree (1 or 2) carrying the power of a random band-limited signal."""
    y = torch.randint(0, 2, (n,), generator=g)
    c = 0.05 * torch.randn(n, L * L, 1, generator=g)
    for i in range(n):
        l = 1 + int(y[i])
        c[i, l * l:(l + 1) ** 2, 0] += torch.randn(2 * l + 1, generator=g)
    return c, y


def test_learns_toy_invariant_task_and_gradients_reach_every_weight():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    L = 4
    model = HarmonicClassifier(2, bandlimits=(L, 3), channels=(2, 3), tau=1, hidden=(8,))
    x, y = _toy(128, L, g)
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        loss0 = loss_fn(model(x), y).item()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for step in range(60):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        opt.step()
    # held-out data, randomly rotated: invariant model generalises
    xt, yt = _toy(128, L, g)
    xt = torch.cat([rotate_coeffs(xt[i:i + 1].double(), a).float() for i, a in enumerate(rotations(128, seed=5))])
    with torch.no_grad():
        logits = model(xt)
    acc = (logits.argmax(1) == yt).float().mean().item()
    assert loss.item() < 0.5 * min(loss0, math.log(2))
    assert acc > 0.85, acc


@pytest.mark.parametrize("mixing", ["mst", "rmst", "full"])
def test_empty_batch_gives_empty_logits_and_gradients(mixing):
    """An empty batch of maps: (0, n_classes) logits, gradients to the input (was: a reshape error)."""
    s = GaussLegendreSampling(4)
    m = HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 2), sampling=s, mixing=mixing, dtype=torch.float64)
    x = torch.zeros(0, s.npix, 1, dtype=torch.float64, requires_grad=True)
    y = m(x)
    assert y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape


def test_summary_and_repr():
    model = HarmonicClassifier(10, bandlimits=(8, 6, 4), channels=(4, 8, 8))
    n = sum(p.numel() for p in model.parameters())
    text = model.summary()
    assert "total" in text and str(n) in text
    assert f"params={n}" in repr(model)


def test_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        HarmonicClassifier(2, bandlimits=(4, 3), channels=(2,))
    with pytest.raises(ValueError, match="non-increasing"):
        HarmonicClassifier(2, bandlimits=(4, 5), channels=(2, 2))
    model = HarmonicClassifier(2, bandlimits=(4, 3), channels=(2, 2))
    with pytest.raises(ValueError, match="L\\*L = 16"):
        model(torch.randn(1, 25, 1))
    x = torch.randn(1, 16, 1)
    x[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/inf"):
        model(x)


def test_sampling_without_quadrature_weights_is_refused_at_construction():
    """The model was built, and its first forward call failed: it can never analyse its input."""
    s = EquiangularSampling(8, np.pi * (np.arange(16) + 0.5) / 16, 32, None)
    with pytest.raises(ValueError, match=r"has no quadrature weights: no analysis possible"):
        HarmonicClassifier(2, bandlimits=(8, 4), channels=(2, 2), sampling=s)
