"""ChebConv against torch_geometric.nn.ChebConv on the same HEALPix kNN graph."""
import copy
import io

import healpy as hp
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch_geometric
from scipy.spatial import cKDTree

from deepsphere_gen._validation import UNSEEN
from deepsphere_gen.nn import ChebConv
from tests._copies import deep_and_pickled_copies

pytestmark = pytest.mark.usefixtures("one_thread")


def _knn_weights(nside=4, k=8):
    """Symmetrised Gaussian kNN weight matrix on the NESTED HEALPix pixel centres."""
    npix = 12 * nside**2
    xyz = np.stack(hp.pix2vec(nside, np.arange(npix), nest=True), axis=-1)
    d, j = cKDTree(xyz).query(xyz, k + 1)
    sigma = 0.03185 * 32 / nside
    w = np.exp(-np.log(2) * d[:, 1:].ravel() ** 2 / sigma**2)
    W = sp.csr_matrix((w, (np.repeat(np.arange(npix), k), j[:, 1:].ravel())), shape=(npix, npix))
    return W.maximum(W.T).tocsr()


def _laplacian(W, normalization):
    deg = np.asarray(W.sum(1)).ravel()
    if normalization is None:
        L = sp.diags(deg) - W
    else:  # "sym"
        dm = sp.diags(1 / np.sqrt(deg))
        L = sp.identity(W.shape[0]) - dm @ W @ dm
    lmax = float(np.linalg.eigvalsh(L.toarray()).max())
    return L, lmax




@pytest.fixture(scope="module")
def graph():
    return _knn_weights()


def _pyg_pair(W, normalization, K, cin, cout, dtype):
    L, lmax = _laplacian(W, normalization)
    rescaled = (2.0 / lmax) * L - sp.identity(W.shape[0])
    ours = ChebConv(cin, cout, K, rescaled, dtype=dtype)
    with torch.no_grad():
        ours.bias.normal_()
    ref = torch_geometric.nn.ChebConv(cin, cout, K, normalization=normalization).to(dtype)
    with torch.no_grad():
        for k, lin in enumerate(ref.lins):
            lin.weight.copy_(ours.weight[k].T)  # PyG Linear keeps (out, in)
        ref.bias.copy_(ours.bias)
    coo = W.tocoo()
    edge_index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    edge_weight = torch.from_numpy(coo.data).to(dtype)
    return ours, ref, edge_index, edge_weight, lmax


@pytest.mark.parametrize("normalization", [None, "sym"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
def test_equals_torch_geometric_with_gradients(graph, normalization, dtype, tol, K):
    torch.manual_seed(K)
    ours, ref, ei, ew, lmax = _pyg_pair(graph, normalization, K, 3, 4, dtype)
    x = torch.randn(3, graph.shape[0], 3, dtype=dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1 = ours(x1)
    y2 = ref(x2, ei, ew, lambda_max=lmax)  # PyG broadcasts over the leading batch axis
    scale = y2.abs().max()
    assert y1.shape == (3, graph.shape[0], 4)
    assert ((y1 - y2).abs().max() / scale) < tol
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    assert rel(x1.grad, x2.grad) < tol
    for k, lin in enumerate(ref.lins):
        assert rel(ours.weight.grad[k], lin.weight.grad.T) < tol
    assert rel(ours.bias.grad, ref.bias.grad) < tol


def test_k1_is_pointwise_linear(graph):
    conv = ChebConv(3, 5, 1, sp.identity(graph.shape[0], format="csr"))
    x = torch.randn(2, graph.shape[0], 3)
    torch.testing.assert_close(conv(x), x @ conv.weight[0] + conv.bias)


def test_accepts_torch_sparse_coo_and_csr(graph):
    L, lmax = _laplacian(graph, None)
    r = ((2 / lmax) * L - sp.identity(graph.shape[0])).tocoo()
    coo = torch.sparse_coo_tensor(np.stack([r.row, r.col]), r.data, r.shape, dtype=torch.float32)
    a = ChebConv(2, 2, 3, r)
    b = ChebConv(2, 2, 3, coo)
    c = ChebConv(2, 2, 3, coo.to_sparse_csr())
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    x = torch.randn(2, graph.shape[0], 2)
    torch.testing.assert_close(a(x), b(x))
    torch.testing.assert_close(a(x), c(x))


def test_buffer_moves_and_state_dict_round_trip(graph):
    L, lmax = _laplacian(graph, None)
    r = (2 / lmax) * L - sp.identity(graph.shape[0])
    conv = ChebConv(2, 3, 4, r).float().double()
    assert "laplacian" in dict(conv.named_buffers())
    assert conv.laplacian.dtype == torch.float64 and conv.laplacian.layout == torch.sparse_csr
    x = torch.randn(2, graph.shape[0], 2, dtype=torch.float64)
    y = conv(x)
    buf = io.BytesIO()
    torch.save(conv.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)
    # a layer built on another graph (other number of non-zeros) takes the saved Laplacian
    other = ChebConv(2, 3, 4, sp.identity(graph.shape[0], format="csr")).double()
    assert other.laplacian.values().numel() != conv.laplacian.values().numel()
    other.load_state_dict(state)
    torch.testing.assert_close(other(x), y, rtol=0, atol=1e-13)
    same = ChebConv(2, 3, 4, r, dtype=torch.float64)
    same.load_state_dict(state)
    torch.testing.assert_close(same(x), y, rtol=0, atol=1e-13)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ChebConv(2, 3, 4, sp.identity(7, format="csr")).double().load_state_dict(state)


def test_state_dict_deep_copies_and_loads_both_formats(graph):
    """The state dict holds the Laplacian as dense CSR arrays: copy.deepcopy (best-model
    snapshots) and weights_only loading work; the older format (a sparse tensor) still loads."""
    L, lmax = _laplacian(graph, None)
    r = (2 / lmax) * L - sp.identity(graph.shape[0])
    conv = ChebConv(2, 3, 4, r, dtype=torch.float64)
    x = torch.randn(2, graph.shape[0], 2, dtype=torch.float64)
    y = conv(x)
    state = conv.state_dict()
    assert {"laplacian_crow", "laplacian_col", "laplacian_values"} <= set(state) and "laplacian" not in state
    snapshot = copy.deepcopy(state)
    with torch.no_grad():
        conv.weight.mul_(3)  # training goes on; the snapshot keeps the old weights
    buf = io.BytesIO()
    torch.save(snapshot, buf)
    buf.seek(0)
    for sd in (snapshot, torch.load(buf, weights_only=True)):
        fresh = ChebConv(2, 3, 4, sp.identity(graph.shape[0], format="csr"), dtype=torch.float64)
        fresh.load_state_dict(sd)
        torch.testing.assert_close(fresh(x), y, rtol=0, atol=1e-13)
    old = {k: v for k, v in snapshot.items() if not k.startswith("laplacian_")}
    old["laplacian"] = conv.laplacian  # how earlier versions wrote it
    fresh = ChebConv(2, 3, 4, sp.identity(graph.shape[0], format="csr"), dtype=torch.float64)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh(x), y, rtol=0, atol=1e-13)
    del old["laplacian"], snapshot["laplacian_col"]
    with pytest.raises(RuntimeError, match="incomplete Laplacian"):
        fresh.load_state_dict(snapshot)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deepcopy_and_pickle(graph, symmetric, dtype):
    """copy.deepcopy (EMA/SWA copies) and torch.save of the module: independent, equal, same dtype."""
    L, lmax = _laplacian(graph, None)
    r = (2 / lmax) * L - sp.identity(graph.shape[0])
    if not symmetric:  # a small non-symmetric perturbation, the spectrum kept inside [-1, 1]
        r = 0.8 * r + 0.05 * sp.random(*r.shape, density=0.01, random_state=0)
    conv = ChebConv(2, 3, 4, r, dtype=dtype)
    assert (conv.laplacian_t is None) == symmetric
    x = torch.randn(2, graph.shape[0], 2, dtype=dtype)
    y = conv(x)
    y.sum().backward()  # fills the kept work buffers
    twin, loaded = deep_and_pickled_copies(conv)
    for c in (twin, loaded):
        assert c.laplacian.layout == torch.sparse_csr and c.laplacian.dtype == dtype
        assert c.laplacian.device == conv.laplacian.device
        assert c.laplacian.values().data_ptr() != conv.laplacian.values().data_ptr()
        assert (c.laplacian_t is None) == symmetric
        torch.testing.assert_close(c(x), y, rtol=0, atol=0)
    with torch.no_grad():
        twin.weight.mul_(2)
    torch.testing.assert_close(conv(x), y, rtol=0, atol=0)  # the original is untouched


def test_bad_inputs(graph):
    n = graph.shape[0]
    conv = ChebConv(2, 3, 3, sp.identity(n, format="csr"))
    with pytest.raises(ValueError, match="pixels"):
        conv(torch.randn(1, n - 1, 2))
    with pytest.raises(ValueError, match="channels"):
        conv(torch.randn(1, n, 3))
    with pytest.raises(ValueError, match="batch, pixels, channels"):
        conv(torch.randn(n, 2))
    x = torch.randn(1, n, 2)
    x[0, 5, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        conv(x)
    x[0, 5, 1] = UNSEEN
    with pytest.raises(ValueError, match="UNSEEN"):
        conv(x)
    with pytest.raises(ValueError, match="dtype"):
        conv(torch.randn(1, n, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="K"):
        ChebConv(2, 3, 0, sp.identity(n, format="csr"))
    with pytest.raises(ValueError, match="square"):
        ChebConv(2, 3, 2, sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="laplacian must be"):
        ChebConv(2, 3, 2, np.eye(3))


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bfloat16])
def test_unsupported_dtypes_refused_and_never_advised(graph, dtype):
    """Only float32 / float64 are advised (torch's CPU sparse CSR product has no half kernel, an int64
    Laplacian is refused): an input of another dtype is told to cast itself, building in it is refused."""
    n = graph.shape[0]
    conv = ChebConv(2, 3, 3, sp.identity(n, format="csr"), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"cast the input \(x.to\(torch.float32\)\): the layer computes in "
                                         r"torch.float32 or torch.float64 only") as err:
        conv(torch.zeros(1, n, 2, dtype=dtype))
    assert f"dtype={dtype}" not in str(err.value)
    with pytest.raises(ValueError, match=f"ChebConv computes in torch.float32 or torch.float64, got dtype={dtype}"):
        ChebConv(2, 3, 3, sp.identity(n, format="csr"), dtype=dtype)
    if dtype.is_floating_point:  # cast after construction: named, before torch's NotImplementedError
        with pytest.raises(ValueError, match=f"this ChebConv was cast to {dtype}"):
            conv.to(dtype)(torch.zeros(1, n, 2, dtype=dtype))
        # a float32 input to the cast module: the cast is named, never "cast the input to" the module's dtype
        with pytest.raises(ValueError, match=f"this ChebConv was cast to {dtype}") as err:
            conv(torch.zeros(1, n, 2, dtype=torch.float32))
        assert f"x.to({dtype})" not in str(err.value) and f"dtype={dtype}" not in str(err.value)
    # the advice a supported dtype gets still names dtype=
    with pytest.raises(ValueError, match=r"build the module with dtype=torch.float64"):
        ChebConv(2, 3, 3, sp.identity(n, format="csr"), dtype=torch.float32)(torch.zeros(1, n, 2, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cin, K", [(1, 1), (1, 4), (2, 3)])
def test_empty_batch_forward_and_backward(graph, dtype, cin, K):
    """An empty batch: empty output and empty / zero gradients (was: ZeroDivisionError in the backward)."""
    L, lmax = _laplacian(graph, None)
    conv = ChebConv(cin, 3, K, (2.0 / lmax) * L - sp.identity(graph.shape[0]), dtype=dtype)
    x = torch.zeros(0, graph.shape[0], cin, dtype=dtype, requires_grad=True)
    y = conv(x)
    assert y.shape == (0, graph.shape[0], 3)
    y.sum().backward()
    assert x.grad.shape == x.shape and conv.weight.grad.shape == conv.weight.shape
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


def test_init_scale_shrinks_with_K(graph):
    n = graph.shape[0]
    w1 = ChebConv(16, 16, 1, sp.identity(n, format="csr")).weight
    w5 = ChebConv(16, 16, 5, sp.identity(n, format="csr")).weight
    assert w5.shape == (5, 16, 16)
    assert w5.abs().max() <= np.sqrt(6 / (5 * 32)) < w1.abs().max()


def test_gradcheck_nonsymmetric_laplacian():
    """The stored-transpose backward is right for a non-symmetric operator too (and twice differentiable)."""
    A = (sp.random(20, 20, density=0.2, random_state=0, format="csr") - 0.5 * sp.identity(20)) / 4  # spectrum in [-1, 1]
    conv = ChebConv(2, 3, 4, A, dtype=torch.float64)
    assert conv.laplacian_t is not None
    x = torch.randn(2, 20, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    assert torch.autograd.gradgradcheck(conv, (x,))
    dense = torch.from_numpy(A.toarray())
    ref = sum(t @ w for t, w in zip(_dense_basis(dense, x, 4), conv.weight)) + conv.bias
    torch.testing.assert_close(conv(x), ref)


def _dense_basis(A, x, K):
    out = [x, A @ x]
    for _ in range(2, K):
        out.append(2 * A @ out[-1] - out[-2])
    return out[:K]


# --- the fused filter (one autograd node, hand-written backward) -------------------------

from deepsphere_gen.nn._cheb_sparse import (  # noqa: E402
    Scratch,
    _reference_filter,
    cheb_filter,
    to_torch_csr,
)


def _operator(n=12, symmetric=True, seed=0):
    A = sp.random(n, n, density=0.3, random_state=seed, format="csr") - 0.5 * sp.identity(n)
    A = (A + A.T) / 2 if symmetric else A
    lap = to_torch_csr(A, dtype=torch.float64)
    lap_t = None if symmetric else to_torch_csr(A.T.tocsr(), dtype=torch.float64)
    return A.toarray(), lap, lap_t


@pytest.mark.parametrize(
    "symmetric,K,with_bias,block_rows",
    [(True, 3, True, None), (False, 5, False, 5), (True, 1, True, 5), (False, 2, True, None), (True, 4, False, 3)],
)
def test_fused_filter_gradcheck(symmetric, K, with_bias, block_rows):
    dense, lap, lap_t = _operator(n=8, symmetric=symmetric)
    torch.manual_seed(K)
    x = torch.randn(2, 8, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(K, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True) if with_bias else None
    scratch = Scratch()
    f = lambda x, w, *b: cheb_filter(x, w, b[0] if b else None, lap, lap_t, scratch, block_rows)  # noqa: E731
    args = (x, w) + ((b,) if with_bias else ())
    assert torch.autograd.gradcheck(f, args)
    # against the dense polynomial, independent of the sparse code
    A = torch.from_numpy(dense)
    ref = sum(t @ wk for t, wk in zip(_dense_basis(A, x, K), w)) + (0 if b is None else b)
    torch.testing.assert_close(f(*args), ref)


def test_fused_filter_partial_requirements():
    """Only the weight, or only the input, needs a gradient: same values as with both."""
    _, lap, _ = _operator()
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    w = torch.randn(4, 3, 2, dtype=torch.float64)
    g = torch.randn(2, 12, 2, dtype=torch.float64)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    gx, gw = torch.autograd.grad(cheb_filter(xr, wr, None, lap), (xr, wr), g)
    wo = w.clone().requires_grad_()
    (gw_only,) = torch.autograd.grad(cheb_filter(x, wo, None, lap), (wo,), g)
    xo = x.clone().requires_grad_()
    (gx_only,) = torch.autograd.grad(cheb_filter(xo, w, None, lap), (xo,), g)
    torch.testing.assert_close(gw_only, gw)
    torch.testing.assert_close(gx_only, gx)


def test_fused_filter_no_grad_and_retained_graph():
    """Inference path (no kept basis) equals the training one; a second backward through a
    retained graph (the kept basis was consumed by the first) gives the same gradients."""
    _, lap, _ = _operator()
    x = torch.randn(3, 12, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 12, 3, dtype=torch.float64)
    with torch.no_grad():
        y0 = cheb_filter(x, w, None, lap)
    y = cheb_filter(x, w, None, lap)
    torch.testing.assert_close(y0, y, rtol=0, atol=1e-14)
    first = torch.autograd.grad(y, (x, w), g, retain_graph=True)
    second = torch.autograd.grad(y, (x, w), g)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("block_rows", [None, 7, 10**6])
@pytest.mark.parametrize("batch_major_grad", [True, False])
def test_fused_filter_matches_reference_float32(block_rows, batch_major_grad):
    """Row blocks (ragged, one, the default policy) and both layouts of the output gradient.

    float32 sums in another order than the reference's: compared to 2e-6 of each tensor's
    largest magnitude (element-wise 1e-5 failed ~1 run in 5 on cancelling entries)."""
    _, lap64, _ = _operator()
    lap = lap64.to(torch.float32)
    torch.manual_seed(0)
    x = torch.randn(4, 12, 3, requires_grad=True)
    w = torch.randn(4, 3, 5, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    g = torch.randn(4, 12, 5) if batch_major_grad else torch.randn(12, 4, 5).transpose(0, 1)
    y = cheb_filter(x, w, b, lap, block_rows=block_rows)
    yr = _reference_filter(x, w, b, lap, None)
    outs = (y,) + torch.autograd.grad(y, (x, w, b), g)
    for a, r in zip(outs, (yr,) + torch.autograd.grad(yr, (x, w, b), g)):
        torch.testing.assert_close(a, r, rtol=1.3e-6, atol=2e-6 * float(r.detach().abs().max()))


def test_layout_and_chaining(graph):
    """Output and input gradient are pixel-major views; a second layer consumes them as they are."""
    L, lmax = _laplacian(graph, None)
    r = (2 / lmax) * L - sp.identity(graph.shape[0])
    c1, c2 = ChebConv(2, 3, 3, r, dtype=torch.float64), ChebConv(3, 2, 4, r, dtype=torch.float64)
    x = torch.randn(5, graph.shape[0], 2, dtype=torch.float64, requires_grad=True)
    y = c1(x)
    assert y.shape == (5, graph.shape[0], 3) and y.transpose(0, 1).is_contiguous()
    z = c2(torch.relu(y))
    (gx,) = torch.autograd.grad(z.square().sum(), x)
    assert gx.shape == x.shape and gx.transpose(0, 1).is_contiguous()
    lap = c1.laplacian
    zr = _reference_filter(torch.relu(_reference_filter(x, c1.weight, c1.bias, lap, None)), c2.weight, c2.bias, lap, None)
    (gr,) = torch.autograd.grad(zr.square().sum(), x)
    torch.testing.assert_close(z, zr)
    torch.testing.assert_close(gx, gr)


def test_scratch_reused_and_not_shared(graph):
    """The basis buffer comes back to the layer after backward and is taken again; two forwards
    before their backwards each get their own; copies of the holder carry no buffers."""
    import pickle

    conv = ChebConv(2, 3, 3, sp.identity(graph.shape[0], format="csr") * 0.5, dtype=torch.float64)
    x = torch.randn(2, graph.shape[0], 2, dtype=torch.float64, requires_grad=True)
    conv(x).sum().backward()
    ptr = conv._scratch._idle["basis"].data_ptr()
    conv(x).sum().backward()
    assert conv._scratch._idle["basis"].data_ptr() == ptr
    y1 = conv(x)
    assert "basis" not in conv._scratch._idle  # taken by y1 until its backward
    y2 = conv(2 * x)
    gw1 = torch.autograd.grad(y1.sum(), conv.weight)[0]
    gw2 = torch.autograd.grad(y2.sum(), conv.weight)[0]
    torch.testing.assert_close(gw2, 2 * gw1)  # the basis of 2x is twice that of x
    assert copy.deepcopy(conv._scratch)._idle == {}
    assert pickle.loads(pickle.dumps(conv._scratch))._idle == {}
    conv.release_scratch()
    assert conv._scratch._idle == {}


# --- the spectrum check (an unrescaled Laplacian is rejected) ----------------------------

from deepsphere_gen.graph import build_graph, estimate_lmax, rescale_laplacian  # noqa: E402
from deepsphere_gen.nn import Laplacian  # noqa: E402
from deepsphere_gen.sampling import HealpixSampling  # noqa: E402


@pytest.mark.parametrize("nside", [2, 8])  # dense (48 nodes) and Lanczos (768 nodes) checks
@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
def test_unrescaled_laplacian_is_rejected(nside, kind):
    """The raw Laplacian (eigenvalues up to ~2 max degree or 2) raises a ValueError that
    names the problem and the fix; the rescaled one, the graph and a Laplacian object pass."""
    g = build_graph(HealpixSampling(nside), k=8, laplacian=kind, cache=False)
    L = g.laplacian
    top = float(np.linalg.eigvalsh(L.toarray())[-1])
    assert top > (1.5 if kind == "combinatorial" else 1.1)
    for bad in (L, torch.sparse_csr_tensor(torch.from_numpy(L.indptr.astype(np.int64)),
                                           torch.from_numpy(L.indices.astype(np.int64)),
                                           torch.from_numpy(L.data), size=L.shape)):
        with pytest.raises(ValueError, match=r"outside \[-1, 1\].*rescale_laplacian"):
            ChebConv(1, 2, 3, bad)
    with pytest.raises(ValueError, match="RESCALED"):
        ChebConv(1, 2, 3, 3.0 * g.rescaled_laplacian())  # a wrong lmax is caught too
    ok = rescale_laplacian(L, estimate_lmax(L))
    ChebConv(1, 2, 3, ok)
    conv = ChebConv(1, 2, 3, g)  # certified by the graph's lmax: no check
    np.testing.assert_allclose(conv.laplacian.to_dense().double().numpy(), ok.toarray(), rtol=0, atol=1e-6)
    lap = Laplacian.from_graph(g)
    assert lap.spectrum == (-1.0, 1.0) and lap.transpose is None
    assert Laplacian.from_matrix(ok).spectrum[1] <= 1.0 + 1e-12  # Ritz values never exceed the spectrum


def test_laplacian_object_is_shared_and_converted_once():
    g = build_graph(HealpixSampling(2), k=8, cache=False)
    lap = Laplacian.from_graph(g)
    a, b = ChebConv(1, 2, 3, lap), ChebConv(2, 2, 3, lap)
    assert a.laplacian is b.laplacian is lap.matrix
    assert lap.to(torch.float64) is lap.to(torch.float64)  # memoised
    c = ChebConv(1, 2, 3, lap, dtype=torch.float64)
    assert c.laplacian is lap.to(torch.float64).matrix
    seq = torch.nn.Sequential(a, b).double()  # one .to() call converts the shared tensor once
    assert seq[0].laplacian is seq[1].laplacian and seq[0].laplacian.dtype == torch.float64


def test_a_traced_chebconv_gives_the_eager_output(graph):
    """torch.jit.trace of a lone ChebConv failed its sanity check: the grad-mode flag handed to the filter was
    True in the trace and False in the check's rerun."""
    import warnings

    conv = ChebConv(2, 3, 3, sp.identity(graph.shape[0], format="csr")).eval()
    x = torch.randn(2, graph.shape[0], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning, the deprecation of torch.jit
        traced = torch.jit.trace(conv, x)
    torch.testing.assert_close(traced(x), conv(x), rtol=0, atol=0)


def test_float64_from_a_float32_laplacian_is_written_from_the_graph():
    """A float32 Laplacian built from a graph and converted to float64 (ChebConv(...,
    laplacian=lap32, dtype=float64), Laplacian.to) is written again from the graph: the float64
    build's exact values, not float32 ones cast (which are ~1e-8 off)."""
    g = build_graph(HealpixSampling(8), k=20, cache=False)
    exact = Laplacian.from_graph(g, dtype=torch.float64).matrix.to_dense()
    lap32 = Laplacian.from_graph(g, dtype=torch.float32)
    cast = lap32.matrix.to(torch.float64).to_dense()
    assert float((cast - exact).abs().max()) > 1e-9  # the precision the cast would lose
    for m in (lap32.to(torch.float64).matrix, ChebConv(3, 4, K=3, laplacian=lap32, dtype=torch.float64).laplacian):
        assert torch.equal(m.to_dense(), exact)


def test_double_of_a_float32_layer_warns_naming_the_remedy_at_the_callers_line():
    """.double() of a float32 layer can only cast its Laplacian (rounded to float32): it says so, pointing
    at the user's line (not at torch.nn or this package, where Python's default filter would show it
    once per process for every model), whether the layer is cast alone or inside a model."""
    g = build_graph(HealpixSampling(8), k=20, cache=False)
    for make in (lambda: ChebConv(3, 4, K=3, laplacian=g), lambda: torch.nn.Sequential(ChebConv(3, 4, K=3, laplacian=g))):
        with pytest.warns(UserWarning, match="build it in torch.float64") as got:
            make().double()
        assert [w.filename for w in got] == [__file__]
    lap = Laplacian.from_matrix(rescale_laplacian(g.laplacian, g.lmax), dtype=torch.float32)
    with pytest.warns(UserWarning, match="build it in torch.float64") as got:
        lap.to(torch.float64)
    assert [w.filename for w in got] == [__file__]


def test_a_laplacian_holds_its_graph_weakly_and_passes_it_on_through_casts():
    """The graph a Laplacian was written from stays alive only as long as the user keeps it; while
    it lives, a float64 -> float32 -> float64 round trip is written again from it (exact, no warning)."""
    import gc
    import warnings
    import weakref

    g = build_graph(HealpixSampling(8), k=20, cache=False)
    lap64 = Laplacian.from_graph(g, dtype=torch.float64)
    lap32 = lap64.to(torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = lap32.to(torch.float64)
    assert torch.equal(back.matrix.to_dense(), lap64.matrix.to_dense())
    other32 = Laplacian.from_graph(g, dtype=torch.float32)
    alive = weakref.ref(g)
    del g
    gc.collect()
    assert alive() is None  # the Laplacians did not keep the graph
    with pytest.warns(UserWarning, match="build it in torch.float64"):
        other32.to(torch.float64)  # the graph is gone: a cast
