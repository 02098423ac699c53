"""Channel-wise tensor-product activation: equivariance, explicit CG sums, e3nn agreement."""
import math

import pytest
import torch

from deepsphere_gen.bench.e3nn_basis import e3nn_basis
from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.harmonic import random_rotations
from deepsphere_gen.harmonic._clebsch_gordan import clebsch_gordan
from deepsphere_gen.nn import GeneralizedSignal, TensorProductActivation
from tests._copies import deep_and_pickled_copies


def rotations(n, seed=0):
    """Uniform random rotations on SO(3) (ZYZ angles, float64)."""
    return list(random_rotations(n, seed))


def rot(x, angles):
    return x.rotate(angles)


def random_signal(L, K, tau, B=2, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    tau = (tau,) * L if isinstance(tau, int) else tau
    return GeneralizedSignal([torch.randn(B, K, 2 * l + 1, t, generator=g, dtype=torch.float64).to(dtype)
                              for l, t in enumerate(tau)])


@pytest.mark.parametrize("mixing", ["full", "mst", "rmst"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 5e-7)])
def test_equivariance(mixing, dtype, tol):
    tp = TensorProductActivation(6, 3, (2, 1, 2, 1, 1, 2), L_out=5, mixing=mixing).to(dtype)
    x = random_signal(6, 3, tp.type_in, dtype=dtype)
    res = assert_equivariant(tp, x, rotations(4), rot, tol=tol)
    assert res.max < 10 * tol


def test_type_and_explicit_sum():
    L, tau = 4, (2, 3, 1, 2)
    tp = TensorProductActivation(L, 2, tau, mixing="full").double()
    x = random_signal(L, 2, tau)
    y = tp(x)
    assert y.type == tp.type_out
    # expected type: sum over pairs, t1*t2 (l1 != l2), t(t+1)/2 (even l) or t(t-1)/2 (odd l)
    for l, pairs in enumerate(tp.mixing.pairs):
        n = 0
        for a, b in pairs:
            if a != b:
                n += tau[a] * tau[b]
            else:
                n += tau[a] * (tau[a] + (1 if l % 2 == 0 else -1)) // 2
        assert tp.type_out[l] == n
    # explicit CG sum for every column of output degree 2, channel 1
    l = 2
    col = 0
    for a, b in tp.mixing.pairs[l]:
        C = clebsch_gordan(a, b, l)
        for i in range(tau[a]):
            for j in range(tau[b]):
                if a == b and j < i:
                    continue
                ref = torch.einsum("pqM,zp,zq->zM", C, x.fragments[a][:, 1, :, i], x.fragments[b][:, 1, :, j])
                assert torch.allclose(y.fragments[l][:, 1, :, col], ref, atol=1e-13)
                col += 1
    assert col == tp.type_out[l]


def dense_reference(tp, x):
    """Output of tp by the definition: dense CG einsum per (pair, l, i, j), in the documented order."""
    tau = tp.type_in
    out = []
    for l, pairs in enumerate(tp.mixing.pairs):
        cols = []
        for a, b in pairs:
            C = clebsch_gordan(a, b, l)
            for i in range(tau[a]):
                for j in range(tau[b]):
                    if a == b and (j < i or (j == i and l % 2)):
                        continue
                    cols.append(torch.einsum("pqM,zkp,zkq->zkM", C, x.fragments[a][..., i], x.fragments[b][..., j]))
        out.append(torch.stack(cols, dim=-1))
    return out


@pytest.mark.parametrize("mixing,tau", [("full", (2, 1, 3, 1, 1)), ("mst", (2, 1, 3, 1, 2, 1, 1)),
                                        ("rmst", (2, 1, 3, 1, 2, 1, 1))])
def test_matches_dense_reference(mixing, tau):
    """Sparse contraction == dense Clebsch-Gordan einsum, every degree and column (float64)."""
    L = len(tau)
    tp = TensorProductActivation(L, 2, tau, L_out=L - 1, mixing=mixing).double()
    x = random_signal(L, 2, tau, B=3)
    y, ref = tp(x), dense_reference(tp, x)
    assert y.type == tp.type_out == tuple(r.shape[-1] for r in ref)
    for a, b in zip(y.fragments, ref):
        assert (a - b).abs().max() <= 1e-14 * b.abs().max()
    # custom accessor (dense tensors, sparsified) gives the same layer
    tp2 = TensorProductActivation(L, 2, tau, L_out=L - 1, mixing=mixing, cg=clebsch_gordan).double()
    assert (tp2.n_products, tp2.nnz) == (tp.n_products, tp.nnz)
    for a, b in zip(tp2(x).fragments, y.fragments):
        assert (a - b).abs().max() <= 1e-15 * b.abs().max()


def test_chunking_and_gradients(monkeypatch):
    """Tiny chunks (many of them) give the same output and gradient; gradcheck in float64."""
    tau = (1, 2, 1, 2, 1)
    tp = TensorProductActivation(5, 2, tau, mixing="full").double()
    x = random_signal(5, 2, tau, B=2)
    frags = [f.clone().requires_grad_(True) for f in x.fragments]
    g = [torch.randn(f.shape, dtype=f.dtype) for f in tp(x).fragments]

    def run():
        y = tp(GeneralizedSignal(frags))
        return y.fragments, torch.autograd.grad(y.fragments, frags, g)

    y1, g1 = run()
    assert len(tp._chunks(torch.float64, torch.device("cpu"), 4)[0]) == 1
    monkeypatch.setattr(TensorProductActivation, "CHUNK_ELEMENTS", {"cpu": 64, "cuda": 64})
    assert len(tp._chunks(torch.float64, torch.device("cpu"), 4)[0]) > 5
    y2, g2 = run()
    for a, b in zip(list(y1) + list(g1), list(y2) + list(g2)):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)

    small = [f[:1, :1].detach().clone().requires_grad_(True) for f in random_signal(4, 1, (1, 2, 1, 1)).fragments]
    tp1 = TensorProductActivation(4, 1, (1, 2, 1, 1), mixing="full").double()
    assert torch.autograd.gradcheck(lambda *fr: tuple(tp1(GeneralizedSignal(list(fr), check_values=False)).fragments),
                                    small)


def test_double_backward_gradgradcheck(monkeypatch):
    """Second derivatives (gradient penalties): gradgradcheck in float64 on a tiny layer, in one
    chunk and in many; the create_graph gradient equals the in-place one."""
    tau = (1, 2, 1, 1)
    tp = TensorProductActivation(4, 1, tau, mixing="full").double()
    small = [f[:1].detach().clone().requires_grad_(True) for f in random_signal(4, 1, tau).fragments]

    def f(*fr):
        return tuple(tp(GeneralizedSignal(list(fr), check_values=False)).fragments)

    assert torch.autograd.gradgradcheck(f, small)
    g = [torch.randn(y.shape, dtype=y.dtype) for y in f(*small)]
    fast = torch.autograd.grad(f(*small), small, g)
    graph = torch.autograd.grad(f(*small), small, g, create_graph=True)
    assert all(b.requires_grad for b in graph)
    for a, b in zip(fast, graph):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)
    monkeypatch.setattr(TensorProductActivation, "CHUNK_ELEMENTS", {"cpu": 4, "cuda": 4})
    assert len(tp._chunks(torch.float64, torch.device("cpu"), 1)[0]) > 3
    assert torch.autograd.gradgradcheck(f, small)


def test_harmonic_classifier_input_gradient_penalty():
    """A gradient penalty ||d loss / d x||^2 on a HarmonicClassifier (SHT, tensor products)
    backpropagates to the weights: its derivative matches central differences (float64)."""
    from deepsphere_gen.models import HarmonicClassifier
    from deepsphere_gen.sampling import GaussLegendreSampling

    torch.manual_seed(0)
    s = GaussLegendreSampling(4)
    model = HarmonicClassifier(3, bandlimits=(4, 3), channels=(2, 2), sampling=s, dtype=torch.float64)
    x = torch.randn(2, s.npix, 1, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2])

    def penalty():
        loss = torch.nn.functional.cross_entropy(model(x), target)
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        return gx.pow(2).sum()

    model.zero_grad()
    penalty().backward()
    w = next(p for p in model.parameters() if p.requires_grad)
    got, h = w.grad.reshape(-1)[:3].clone(), 1e-6
    for i in range(3):
        with torch.no_grad():
            w.view(-1)[i] += h
        up = penalty().item()
        with torch.no_grad():
            w.view(-1)[i] -= 2 * h
        down = penalty().item()
        with torch.no_grad():
            w.view(-1)[i] += h
        assert abs(got[i].item() - (up - down) / (2 * h)) <= 1e-6 * max(1.0, abs(got[i].item()))
    assert got.abs().max() > 0


def test_copy_and_pickle():

    tp = TensorProductActivation(4, 2, 1)
    x = random_signal(4, 2, 1, dtype=torch.float32)
    y = tp(x)  # fills the table cache
    for other in deep_and_pickled_copies(tp):
        for a, b in zip(other(x).fragments, y.fragments):
            assert torch.equal(a, b)


def test_dropped_columns_are_redundant():
    """(j, i) = (-1)^l (i, j) for l1 == l2, and (i, i) vanishes at odd l: keeping i <= j loses nothing."""
    u, v = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    for l in range(5):
        C = clebsch_gordan(2, 2, l)
        uv = torch.einsum("pqM,p,q->M", C, u, v)
        vu = torch.einsum("pqM,p,q->M", C, v, u)
        assert torch.allclose(vu, (-1) ** l * uv, atol=1e-13)
        if l % 2:
            assert torch.einsum("pqM,p,q->M", C, u, u).abs().max() < 1e-13


def test_agrees_with_e3nn_uuu():
    o3 = pytest.importorskip("e3nn.o3")
    L, K, B = 5, 3, 2
    tp = TensorProductActivation(L, K, 1, mixing="mst").double()
    irr = o3.Irreps([(K, (l, 1)) for l in range(L)])
    triples = [(a, b, l) for l, ps in enumerate(tp.mixing.pairs) for a, b in ps if not (a == b and l % 2)]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = o3.TensorProduct(irr, irr, o3.Irreps([(K, (l, 1)) for *_, l in triples]),
                               [(a, b, i, "uuu", False) for i, (a, b, _) in enumerate(triples)],
                               irrep_normalization="none", path_normalization="none")
    finally:
        torch.set_default_dtype(old)
    Qs = e3nn_basis(L)
    x = random_signal(L, K, 1, B=B)
    xe = torch.cat([torch.einsum("mn,bkn->bkm", Qs[l], f[..., 0]).reshape(B, -1) for l, f in enumerate(x.fragments)], 1)
    ye, y = ref(xe, xe), tp(x)
    off, col = 0, [0] * L
    for a, b, l in triples:
        d = K * (2 * l + 1)
        theirs = torch.einsum("nm,bkn->bkm", Qs[l], ye[:, off:off + d].reshape(B, K, 2 * l + 1))
        off += d
        ours = y.fragments[l][..., col[l]]
        col[l] += 1
        c = (ours * theirs).sum() / (theirs * theirs).sum()
        assert abs(abs(c.item()) - math.sqrt(2 * l + 1)) < 1e-10  # normalisation: ours orthonormal, e3nn unit-norm
        assert (ours - c * theirs).norm() <= 1e-12 * ours.norm()
    assert col == list(tp.type_out)


def test_bad_input():
    tp = TensorProductActivation(3, 2, 1, mixing="mst")
    with pytest.raises(ValueError, match="L=4, the layer expects L=3"):
        tp(random_signal(4, 2, 1, dtype=torch.float32))
    with pytest.raises(ValueError, match="channels"):
        tp(random_signal(3, 3, 1, dtype=torch.float32))
    with pytest.raises(ValueError, match="type"):
        tp(random_signal(3, 2, 2, dtype=torch.float32))
    with pytest.raises(ValueError, match="GeneralizedSignal"):
        tp([torch.zeros(1, 2, 1, 1)])
    with pytest.raises(ValueError, match="mixing set is for"):
        from deepsphere_gen.harmonic import mst_mixing_set

        TensorProductActivation(3, 2, 1, mixing=mst_mixing_set(4))
    with pytest.raises(ValueError, match="unknown mixing"):
        TensorProductActivation(3, 2, 1, mixing="dense")
