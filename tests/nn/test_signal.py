"""GeneralizedSignal: layout validation, conversions, rotation."""
import math

import pytest
import torch

from deepsphere_gen.harmonic._wigner import wigner_D_real
from deepsphere_gen.nn import GeneralizedSignal


def _signal(L=4, B=2, K=3, tau=(1, 2, 3, 1), dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, tau[l], generator=g, dtype=dtype) for l in range(L)])


def test_description_and_flat_roundtrip():
    x = _signal()
    assert (x.L, x.batch, x.channels, x.type) == (4, 2, 3, (1, 2, 3, 1))
    flat = x.to_flat()
    assert flat.shape == (2, 3, 1 + 3 * 2 + 5 * 3 + 7)
    y = GeneralizedSignal.from_flat(flat, x.type)
    assert all(torch.equal(a, b) for a, b in zip(x.fragments, y.fragments))
    assert torch.allclose(x.norm(), flat.norm(dim=(1, 2)))
    assert "type=(1, 2, 3, 1)" in repr(x)


def test_coefficients_roundtrip():
    c = torch.randn(2, 16, 5, dtype=torch.float64)
    x = GeneralizedSignal.from_coefficients(c)
    assert x.type == (5,) * 4 and x.channels == 1
    assert torch.equal(x.to_coefficients(), c)
    with pytest.raises(ValueError, match="L\\*L"):
        GeneralizedSignal.from_coefficients(torch.randn(1, 15, 1))


def test_rotate_matches_wigner_and_inverse():
    x = _signal()
    a = torch.tensor([0.3, 1.1, -2.0], dtype=torch.float64)
    y = x.rotate(a)
    for l in range(x.L):
        ref = torch.einsum("mn,bknt->bkmt", wigner_D_real(l, a), x.fragments[l])
        assert torch.allclose(y.fragments[l], ref, atol=1e-13)
    # R^-1 = (-gamma, -beta, -alpha)
    back = y.rotate(torch.tensor([2.0, -1.1, -0.3], dtype=torch.float64))
    assert all(torch.allclose(p, q, atol=1e-12) for p, q in zip(back.fragments, x.fragments))
    for n0, n1 in zip(x.degree_norms(), y.degree_norms()):
        assert torch.allclose(n0, n1, atol=1e-12)


def test_to_dtype():
    x = _signal().to(torch.float32)
    assert x.dtype == torch.float32 and x.type == (1, 2, 3, 1)


def test_bad_input():
    with pytest.raises(ValueError, match="2l\\+1"):
        GeneralizedSignal([torch.randn(1, 1, 1, 1), torch.randn(1, 1, 2, 1)])
    with pytest.raises(ValueError, match="batch, channels"):
        GeneralizedSignal([torch.randn(1, 1, 1, 1), torch.randn(1, 2, 3, 1)])
    with pytest.raises(ValueError, match="4-d"):
        GeneralizedSignal([torch.randn(1, 1, 1)])
    with pytest.raises(ValueError, match="NaN"):
        GeneralizedSignal([torch.tensor([[[[math.nan]]]])])
    with pytest.raises(ValueError, match="at least one"):
        GeneralizedSignal([])
    x = _signal()
    with pytest.raises(ValueError, match="bandlimit L=4, the layer expects L=5"):
        x.check(L=5)
    with pytest.raises(ValueError, match="type"):
        x.check(type=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="flat tensor"):
        GeneralizedSignal.from_flat(torch.randn(1, 1, 5), (1, 1))
