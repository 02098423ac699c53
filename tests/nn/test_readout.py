"""Invariant readout: invariance and features."""
import pytest
import torch

from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.nn import GeneralizedSignal, InvariantReadout


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def signal(L=4, K=3, tau=(2, 1, 2, 1), B=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, tau[l], generator=g, dtype=torch.float64).to(dtype)
                              for l in range(L)])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_invariance(dtype, tol):
    torch.manual_seed(0)
    head = InvariantReadout(4, 3, (2, 1, 2, 1), n_out=5, hidden=(16,)).to(dtype)
    x = signal(dtype=dtype)
    assert head(x).shape == (3, 5)
    assert_equivariant(head, x, rotations(4), lambda s, a: s.rotate(a), lambda y, a: y, tol=tol)


def test_features():
    head = InvariantReadout(4, 3, (2, 1, 2, 1), n_out=2)
    x = signal(dtype=torch.float32)
    f = head.features(x)
    assert f.shape == (3, head.n_features) and head.n_features == 3 * 6
    assert torch.allclose(f[:, :6], x.fragments[0].reshape(3, -1))
    assert torch.allclose(f[:, 6:9], x.fragments[1].norm(dim=2).reshape(3, -1), atol=1e-4)
    assert InvariantReadout(4, 3, (2, 1, 2, 1), 2, use_norms=False).n_features == 6


def test_bad_input():
    head = InvariantReadout(4, 3, (2, 1, 2, 1), n_out=2)
    with pytest.raises(ValueError, match="expects L=4"):
        head(signal(L=3, tau=(2, 1, 2)).to(torch.float32))
    with pytest.raises(ValueError, match="GeneralizedSignal"):
        head(torch.zeros(3, 10))
