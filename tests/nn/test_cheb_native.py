"""The compiled CPU kernels of the Chebyshev filter (deepsphere_gen.nn._cheb_native).

Checked against scipy (the step), the dense polynomial and torch's sparse/dense products
(the filter with the kernels switched off by DEEPSPHERE_GEN_NATIVE=0), on shapes that hit
every tile and remainder path of the C code (channels not multiples of the vector width,
row counts not multiples of the row blocks), float32 and float64, one and two threads.
"""
import gc
import os
import shlex
import shutil

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from deepsphere_gen.nn import _cheb_native
from deepsphere_gen.nn._cheb_sparse import Scratch, cheb_filter, to_torch_csr

HAVE_CC = shutil.which(shlex.split(os.environ.get("CC") or "cc")[0]) is not None  # the compiler the build uses

pytestmark = pytest.mark.skipif(not HAVE_CC, reason="no C compiler: the kernels are not built (torch fallback)")


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch):
    """These tests exercise the kernels: a user's DEEPSPHERE_GEN_NATIVE=0 must not turn them into failures."""
    monkeypatch.setenv(_cheb_native.ENV_VAR, "1")


def test_kernel_builds_where_a_compiler_exists():
    assert _cheb_native.available()


def _laplacian(n, seed=0, dtype=torch.float64):
    A = sp.random(n, n, density=min(1.0, 20 / n), random_state=seed, format="csr")
    A = (A + A.T) / 2 - 0.5 * sp.identity(n)
    return A.tocsr(), to_torch_csr(A, dtype=dtype)


@pytest.mark.parametrize("n_cols", [1, 3, 16, 17, 130])
def test_step_against_scipy(n_cols):
    A, lap = _laplacian(50)
    rng = np.random.default_rng(n_cols)
    x, a, z = (rng.standard_normal((50, n_cols)) for _ in range(3))
    out = torch.empty(50, 2 * n_cols, dtype=torch.float64)[:, :n_cols]  # row stride != n_cols
    assert _cheb_native.step(out, lap, torch.from_numpy(x), 2.0, torch.from_numpy(a), 1.0, torch.from_numpy(z), 1.0)
    np.testing.assert_allclose(out.numpy(), 2 * (A @ x) + a - z, rtol=1e-12, atol=1e-12)
    assert _cheb_native.step(out, lap, torch.from_numpy(x))  # terms left out
    np.testing.assert_allclose(out.numpy(), A @ x, rtol=1e-12, atol=1e-12)


def test_step_declines_what_it_does_not_cover():
    _, lap = _laplacian(20)
    x = torch.randn(20, 4, dtype=torch.float64)
    assert not _cheb_native.step(torch.empty(20, 4), lap, x.float())  # dtype mismatch with the matrix
    assert not _cheb_native.step(torch.empty(4, 20, dtype=torch.float64).T, lap, x)  # column stride != 1


def test_kernels_refuse_wrong_shapes_before_touching_memory():
    # the kernels index raw pointers: a shape that does not fit must be an error naming the operand
    _, lap = _laplacian(20)
    x = torch.randn(20, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="x has shape"):
        _cheb_native.step(torch.empty(20, 4, dtype=torch.float64), lap, x[:12])
    with pytest.raises(ValueError, match="a_term has shape"):
        _cheb_native.step(torch.empty(20, 4, dtype=torch.float64), lap, x, a_term=x[:10])
    basis, weight = torch.randn(3, 6, 8), torch.randn(3, 4, 5)  # K=3, P*B=12 rows of C=4 channels
    with pytest.raises(ValueError, match="y has shape"):
        _cheb_native.forward(torch.empty(10, 5), basis, weight, None)
    with pytest.raises(ValueError, match="bias has shape"):
        _cheb_native.forward(torch.empty(12, 5), basis, weight, torch.zeros(4))
    with pytest.raises(ValueError, match="gy has shape"):
        _cheb_native.backward(basis, torch.randn(2, 6, 4), weight, True, True, True)
    assert _cheb_native.forward(y := torch.empty(12, 5), basis, weight, None)
    torch.testing.assert_close(y, torch.einsum("krc,kco->ro", basis.reshape(3, 12, 4), weight))


def _close(a, r, tol):
    """max |a - r| within tol of max |r| (float32 sums of growing Chebyshev terms: relative to the scale)."""
    assert float((a - r).abs().max()) <= tol * float(r.abs().max()), (float((a - r).abs().max()), float(r.abs().max()))


def _filter(x, w, b, lap, native, monkeypatch):
    monkeypatch.setenv(_cheb_native.ENV_VAR, "1" if native else "0")
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    br = None if b is None else b.clone().requires_grad_()
    y = cheb_filter(xr, wr, br, lap, scratch=Scratch())
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(y, [t for t in (xr, wr, br) if t is not None], g)
    return [y.detach()] + list(grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,C,O,K,bias", [(1, 1, 1, 5, False), (3, 17, 33, 4, True), (2, 16, 32, 5, True),
                                          (1, 5, 40, 1, True), (4, 40, 3, 2, False), (2, 9, 18, 3, True)])
def test_filter_equals_torch_products(B, C, O, K, bias, dtype, monkeypatch):
    n = 301  # not a multiple of the 6-row tiles or of the 256-row backward blocks (with B > 1)
    _, lap = _laplacian(n, seed=C, dtype=dtype)
    g = torch.Generator().manual_seed(B * C * O)
    x = torch.randn(B, n, C, dtype=dtype, generator=g)
    w = torch.randn(K, C, O, dtype=dtype, generator=g)
    b = torch.randn(O, dtype=dtype, generator=g) if bias else None
    ours = _filter(x, w, b, lap, True, monkeypatch)
    ref = _filter(x, w, b, lap, False, monkeypatch)
    for a, r in zip(ours, ref):
        _close(a, r, 1e-5 if dtype == torch.float32 else 1e-12)


def test_filter_gradcheck_native():
    _, lap = _laplacian(13, seed=3)
    x = torch.randn(2, 13, 17, dtype=torch.float64, requires_grad=True)  # 17: 2 vectors of 8 + 1
    w = torch.randn(3, 17, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, requires_grad=True)
    scratch = Scratch()
    assert torch.autograd.gradcheck(lambda x, w, b: cheb_filter(x, w, b, lap, scratch=scratch), (x, w, b))


def test_two_threads_equal_one(monkeypatch):
    """Rows split over threads: the same values (the weight gradient sums per-thread parts)."""
    n = 3000
    _, lap = _laplacian(n, seed=5, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, n, 16, generator=g)
    w = torch.randn(5, 16, 32, generator=g)
    b = torch.randn(32, generator=g)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _filter(x, w, b, lap, True, monkeypatch)
        torch.set_num_threads(2)
        two = _filter(x, w, b, lap, True, monkeypatch)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(two[0], one[0], rtol=0, atol=0)  # output rows: same arithmetic
    for a, r in zip(two[1:], one[1:]):
        _close(a, r, 1e-5)


def _schedule_reference(crow, col, window):
    """Columns each row reads that no row in (i - window, i) read, by the definition."""
    last, out = {}, []
    for i in range(len(crow) - 1):
        row = []
        for j in col[crow[i]:crow[i + 1]]:
            if i - last.get(j, -(1 << 40)) > window:
                row.append(j)
            last[j] = i
        out.append(row)
    return out


@pytest.mark.parametrize("partial", [False, True])
def test_prefetch_schedule_matches_its_definition(partial, monkeypatch):
    """The schedule of a HEALPix graph (full sky, and a partial sky whose edge rows have fewer
    neighbours), against a Python transcription of its definition, for two windows."""
    from deepsphere_gen.graph import build_graph
    from deepsphere_gen.sampling import HealpixSampling

    nside = 8
    sampling = HealpixSampling(nside, indices=np.arange(0, 12 * nside**2, 3)[:150] if partial else None)
    lap = to_torch_csr(build_graph(sampling, k=8, cache=False), dtype=torch.float32)
    crow, col = lap.crow_indices().tolist(), lap.col_indices().tolist()
    if partial:
        counts = np.diff(crow)
        assert counts.min() < counts.max()  # rows with fewer neighbours
    for window in (3, 256):
        monkeypatch.setattr(_cheb_native, "PREFETCH_WINDOW", window)
        _cheb_native._schedules.clear()
        ptr, rows = _cheb_native.schedule(lap)
        ref = _schedule_reference(crow, col, window)
        assert ptr.tolist() == list(np.cumsum([0] + [len(r) for r in ref]))
        assert rows.tolist() == [j for r in ref for j in r]
    assert _cheb_native.schedule(lap)[0] is ptr  # computed once per matrix
    key = id(lap)
    del lap, ptr, rows
    gc.collect()
    assert key not in _cheb_native._schedules  # dropped with its matrix, not at the next schedule


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_cols", [1, 17, 32, 130])
def test_step_with_prefetch_and_streaming_stores(n_cols, dtype, monkeypatch):
    """The prefetching and streaming-store paths (thresholds lowered to reach them on a small
    matrix) give the products of scipy, in place (a_term = out) too; 64-byte aligned rows
    (streamed) and unaligned ones (17 columns: plain stores), a 1-column prefetch distance
    shorter than the matrix."""
    monkeypatch.setattr(_cheb_native, "PREFETCH_MIN_BYTES", 0)
    monkeypatch.setattr(_cheb_native, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(_cheb_native, "PREFETCH_WINDOW", 4)
    monkeypatch.setattr(_cheb_native, "COLUMN_PREFETCH_BYTES", 64)
    _cheb_native._schedules.clear()
    A, lap = _laplacian(203, seed=n_cols, dtype=dtype)
    rng = np.random.default_rng(n_cols)
    x, a, z = (rng.standard_normal((203, n_cols)) for _ in range(3))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    t = lambda v: torch.from_numpy(v).to(dtype)
    out = torch.empty(203, n_cols, dtype=dtype)
    assert _cheb_native.step(out, lap, t(x), 2.0, t(a), 1.0, t(z), 1.0)
    np.testing.assert_allclose(out.double().numpy(), 2 * (A @ x) + a - z, rtol=tol, atol=tol * 10)
    out = t(a).clone()
    assert _cheb_native.step(out, lap, t(x), 2.0, out, 1.0, None)  # a_term is out
    np.testing.assert_allclose(out.double().numpy(), 2 * (A @ x) + a, rtol=tol, atol=tol * 10)
    assert _cheb_native._stream(out) == (n_cols * out.element_size() % 64 == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,C,O,K", [(1, 1, 16, 5), (2, 16, 32, 5), (3, 17, 9, 3)])
def test_padded_stack_equals_contiguous_one(B, C, O, K, dtype):
    """The dense kernels on a stack whose orders are padded apart (the layer's CPU layout)
    give bitwise the products of the same stack contiguous, and leave the padding alone."""
    from deepsphere_gen.nn._cheb_sparse import _empty_stack

    P = 301
    g = torch.Generator().manual_seed(B * C + K)
    dense = torch.randn(K, P, B * C, dtype=dtype, generator=g)
    padded = _empty_stack(dense.shape, dense, 1024)
    assert not padded.is_contiguous() and padded.stride(0) > P * B * C and padded[1].is_contiguous()
    padded.copy_(dense)
    pad = padded.as_strided((K - 1, padded.stride(0) - P * B * C), (padded.stride(0), 1), P * B * C)
    pad.fill_(7.0)  # between the orders: must stay untouched
    w = torch.randn(K, C, O, dtype=dtype, generator=g)
    b = torch.randn(O, dtype=dtype, generator=g)
    gy = torch.randn(B, P, O, dtype=dtype, generator=g)
    ys = [torch.empty(P * B, O, dtype=dtype) for _ in range(2)]
    assert _cheb_native.forward(ys[0], dense, w, b) and _cheb_native.forward(ys[1], padded, w, b)
    torch.testing.assert_close(ys[1], ys[0], rtol=0, atol=0)
    ref = torch.einsum("kpbc,kco->pbo", dense.view(K, P, B, C), w).reshape(P * B, O) + b
    _close(ys[0], ref, 1e-5 if dtype == torch.float32 else 1e-12)
    grads = [_cheb_native.backward(s, gy, w, True, True, True) for s in (dense, padded)]
    for a, r in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
    torch.testing.assert_close(padded, dense, rtol=0, atol=0)  # G_k = g W_k^T, written alike
    assert bool((pad == 7.0).all())
