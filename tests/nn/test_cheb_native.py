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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_cols", [1, 2, 3, 4, 8, 12, 16, 17, 20, 24, 130])
def test_step_against_scipy(n_cols, dtype, monkeypatch):
    """Every column count class: one column, fewer than a vector (masked tail only), whole
    vectors plus a masked tail (12, 20, 17 with float32 / float64 vectors of 16 / 8); the
    narrow counts the layer leaves to torch (TORCH_MAX_ROW_BYTES) forced through the kernel."""
    monkeypatch.setattr(_cheb_native, "TORCH_MAX_ROW_BYTES", 0)
    A, lap = _laplacian(50, dtype=dtype)
    rng = np.random.default_rng(n_cols)
    x, a, z = (torch.from_numpy(rng.standard_normal((50, n_cols))).to(dtype) for _ in range(3))
    out = torch.full((50, 2 * n_cols), 7.0, dtype=dtype)  # row stride != n_cols
    A = A.astype(np.float32 if dtype == torch.float32 else np.float64)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert _cheb_native.step(out[:, :n_cols], lap, x, 2.0, a, 1.0, z, 1.0)
    np.testing.assert_allclose(out[:, :n_cols].numpy(), 2 * (A @ x.numpy()) + a.numpy() - z.numpy(), rtol=tol, atol=tol)
    assert (out[:, n_cols:] == 7).all()  # the masked tail writes nothing past the row's columns
    assert _cheb_native.step(out[:, :n_cols], lap, x)  # terms left out
    np.testing.assert_allclose(out[:, :n_cols].numpy(), A @ x.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,narrow", [(torch.float32, (2, 4, 8)), (torch.float64, (2, 4))])
def test_step_leaves_narrow_rows_to_torch(dtype, narrow):
    """2 to TORCH_MAX_ROW_BYTES bytes per row: torch's product (measured faster), not the kernel."""
    _, lap = _laplacian(20, dtype=dtype)
    for n in range(1, 20):
        x = torch.randn(20, n, dtype=dtype)
        assert _cheb_native.step(torch.empty_like(x), lap, x) == (n not in range(2, max(narrow) + 1)), n


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
                                          (1, 5, 40, 1, True), (4, 40, 3, 2, False), (2, 9, 18, 3, True),
                                          (2, 4, 16, 5, True), (8, 1, 16, 5, True), (3, 12, 16, 3, False),
                                          (1, 2, 16, 4, True), (1, 20, 16, 5, True), (1, 24, 16, 5, True)])
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


def _healpix_laplacian(nside, indices=None):
    from deepsphere_gen.graph import build_graph
    from deepsphere_gen.sampling import HealpixSampling

    graph = build_graph(HealpixSampling(nside, indices=indices), k=8, cache=False)
    return to_torch_csr(graph, dtype=torch.float32)


def _sliced_or_skip(lap):
    layout = _cheb_native.sliced(lap)
    if layout is None and not _cheb_native._library().cheb_sell_available():
        pytest.skip("the sliced one-column kernel needs AVX-512")
    return layout


@pytest.mark.parametrize("case", ["full", "partial", "random"])
def test_sliced_layout_matches_its_definition(case, monkeypatch):
    """Each slice of 16 rows holds every entry of its rows once (plus zero padding on the row's
    own column), in-window entries first, out-of-window ones in the last slots, and its first
    np slots read only inside the window [16 s, 16 s + 16)."""
    monkeypatch.setattr(_cheb_native, "SLICE_MAX_PADDING", 10.0)  # random rows differ in length
    if case == "random":
        _, lap = _laplacian(203, seed=4, dtype=torch.float32)
    else:
        lap = _healpix_laplacian(8, np.arange(0, 768, 3)[:150] if case == "partial" else None)
    soff, npm, scol, sval = _sliced_or_skip(lap)
    crow, col, val = (t.numpy() for t in (lap.crow_indices(), lap.col_indices(), lap.values()))
    S = lap.shape[0] // 16
    assert len(npm) == S and soff[-1] == len(scol) == len(sval)
    in_window = 0
    for s in range(S):
        w = int(soff[s + 1] - soff[s]) // 16
        slots_c = scol[soff[s]:soff[s + 1]].numpy().reshape(w, 16)
        slots_v = sval[soff[s]:soff[s + 1]].numpy().reshape(w, 16)
        assert (slots_c[: int(npm[s])] // 16 == s).all()
        for lane in range(16):
            i = 16 * s + lane
            entries = sorted(zip(col[crow[i]:crow[i + 1]].tolist(), val[crow[i]:crow[i + 1]].tolist()))
            pads = [(c, v) for c, v in zip(slots_c[:, lane].tolist(), slots_v[:, lane].tolist()) if v == 0 and c == i]
            stored = [(c, v) for c, v in zip(slots_c[:, lane].tolist(), slots_v[:, lane].tolist())
                      if not (v == 0 and c == i)]
            assert sorted(stored) == [e for e in entries if not (e[1] == 0 and e[0] == i)]
            assert len(pads) + len(stored) == w
            inside = (slots_c[:, lane] // 16 == s)
            assert not (~inside[:-1] & inside[1:]).any()  # outside entries come last
            in_window += int(inside.sum())
    if case == "full":  # NESTED 4 x 4 blocks: most entries inside the window, > 3 permuted slots per slice
        assert in_window > 0.6 * soff[-1] and npm.double().mean() > 3


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", ["full", "partial", "random"])
def test_sliced_step_against_scipy_and_csr(case, threads, monkeypatch):
    """The one-column float32 step from the sliced layout equals scipy's product (all terms, terms
    left out, in place, streaming stores, prefetch), and the CSR kernel's up to rounding; row
    counts not multiples of 16 (partial sky: 150 rows, random: 203) run their last rows from CSR."""
    if case == "random":
        A, lap = _laplacian(203, seed=7, dtype=torch.float32)
    else:
        lap = _healpix_laplacian(8, np.arange(0, 768, 3)[:150] if case == "partial" else None)
        A = sp.csr_matrix((lap.values().double().numpy(), lap.col_indices().numpy(), lap.crow_indices().numpy()),
                          shape=lap.shape)
    monkeypatch.setattr(_cheb_native, "SLICE_MAX_PADDING", 10.0)  # random rows differ in length
    assert _sliced_or_skip(lap) is not None
    n = lap.shape[0]
    monkeypatch.setattr(_cheb_native, "_THREAD_MIN_WORK", 1)
    monkeypatch.setattr(_cheb_native, "PREFETCH_MIN_BYTES", 0)
    monkeypatch.setattr(_cheb_native, "SLICE_PREFETCH_BYTES", 64)
    monkeypatch.setattr(_cheb_native, "STREAM_MIN_BYTES", 0)
    rng = np.random.default_rng(n)
    x, a, z = (torch.from_numpy(rng.standard_normal((n, 1))).float() for _ in range(3))
    ref = 2 * (A @ x.double().numpy()) + a.double().numpy() - z.double().numpy()
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        out = torch.empty(n + 1, 1)[1:] if threads == 2 else torch.empty(n, 1)  # 4 bytes off 64-byte alignment (plain stores) or aligned (streamed)
        assert _cheb_native.step(out, lap, x, 2.0, a, 1.0, z, 1.0)
        np.testing.assert_allclose(out.double().numpy(), ref, rtol=1e-5, atol=1e-5)
        inplace = a.clone()
        assert _cheb_native.step(inplace, lap, x, 2.0, inplace, 1.0, z, 1.0)
        torch.testing.assert_close(inplace, out, rtol=0, atol=0)
        assert _cheb_native.step(out, lap, x)
        np.testing.assert_allclose(out.double().numpy(), A @ x.double().numpy(), rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(_cheb_native, "sliced", lambda m: None)  # no sliced layout: the CSR kernel
        csr = torch.empty(n, 1)
        assert _cheb_native.step(csr, lap, x)
        _close(out, csr, 1e-6)
    finally:
        torch.set_num_threads(saved)


def test_one_column_prefetch_and_streaming_decisions(monkeypatch):
    """The prefetch distance and streaming stores handed to the one-column kernels (the arguments the
    kernel receives): x prefetched from PREFETCH_MIN_BYTES on (SLICE_PREFETCH_BYTES ahead in the sliced
    kernel, COLUMN_PREFETCH_BYTES in the CSR one); streaming stores from STREAM_MIN_BYTES on, for a
    64-byte aligned output written not in place, by the sliced kernel only (it stores 16 rows = one
    line at once; a CSR row of one float32 is 4 bytes)."""
    lap = _healpix_laplacian(8)
    _sliced_or_skip(lap)
    n = lap.shape[0]
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    seen, dll = [], _cheb_native._library()

    class Recorder:  # the kernel library, recording each step kernel's name and arguments
        def __getattr__(self, name):
            fn = getattr(dll, name)
            if name not in ("cheb_step_f32", "cheb_sell_step_f32"):
                return fn
            return lambda *args: seen.append((name, args)) or fn(*args)

    monkeypatch.setattr(_cheb_native, "_library", Recorder)
    monkeypatch.setattr(_cheb_native, "SLICE_PREFETCH_BYTES", 256)
    monkeypatch.setattr(_cheb_native, "COLUMN_PREFETCH_BYTES", 128)

    def decisions(out, a_term=None, x_min=n * 4, out_min=n * 4):
        monkeypatch.setattr(_cheb_native, "PREFETCH_MIN_BYTES", x_min)
        monkeypatch.setattr(_cheb_native, "STREAM_MIN_BYTES", out_min)
        seen.clear()
        assert _cheb_native.step(out, lap, x, 1.0, a_term)
        names = {name for name, _ in seen}
        assert len(names) == 1
        return (names.pop(), *{tuple(args[-2:]) for _, args in seen})

    aligned, shifted = torch.zeros(n, 1), torch.zeros(n + 1, 1)[1:]
    assert aligned.data_ptr() % 64 == 0 and shifted.data_ptr() % 64 == 4
    assert decisions(aligned) == ("cheb_sell_step_f32", (64, 1))
    assert decisions(aligned, x_min=n * 4 + 1) == ("cheb_sell_step_f32", (0, 1))
    assert decisions(aligned, out_min=n * 4 + 1) == ("cheb_sell_step_f32", (64, 0))
    assert decisions(shifted) == ("cheb_sell_step_f32", (64, 0))
    assert decisions(aligned, aligned.clone()) == ("cheb_sell_step_f32", (64, 1))
    assert decisions(aligned, aligned) == ("cheb_sell_step_f32", (64, 0))  # in place
    monkeypatch.setattr(_cheb_native, "sliced", lambda m: None)  # the CSR kernel
    assert decisions(aligned) == ("cheb_step_f32", (32, 0))
    assert decisions(aligned, x_min=n * 4 + 1) == ("cheb_step_f32", (0, 0))


def test_sliced_layout_only_where_it_applies(monkeypatch):
    """float64, strided columns and padding above SLICE_MAX_PADDING use the CSR
    kernel (same products); the layout is built once per matrix and dropped with it."""
    lap = _healpix_laplacian(4)
    layout = _sliced_or_skip(lap)
    assert _cheb_native.sliced(lap) is layout
    lap64 = lap.double()
    x = torch.randn(lap.shape[0], 2, dtype=torch.float64)
    out = torch.empty(lap.shape[0], 1, dtype=torch.float64)
    assert _cheb_native.step(out, lap64, x[:, :1])  # float64, x strided: the CSR kernel
    torch.testing.assert_close(out, torch.mm(lap64.to_dense(), x[:, :1]), rtol=1e-12, atol=1e-12)
    assert id(lap64) not in _cheb_native._sliced
    key = id(lap)
    del lap, layout
    gc.collect()
    assert key not in _cheb_native._sliced
    _, rnd = _laplacian(64, seed=1, dtype=torch.float32)
    monkeypatch.setattr(_cheb_native, "SLICE_MAX_PADDING", 0.0)
    _cheb_native._sliced.clear()
    assert _cheb_native.sliced(rnd) is None  # random rows differ in length: padding above the limit
    out, x1 = torch.empty(64, 1), torch.randn(64, 1)
    assert _cheb_native.step(out, rnd, x1)
    torch.testing.assert_close(out, torch.mm(rnd.to_dense(), x1), rtol=1e-5, atol=1e-5)


def test_sliced_copy_not_built_beyond_its_memory_share(monkeypatch):
    """A sliced copy larger than SLICE_MAX_MEMORY_FRACTION of the available memory is not built
    (the CSR kernel gives the product); with room it is."""
    lap = _healpix_laplacian(4)
    _sliced_or_skip(lap)
    _cheb_native._sliced.clear()
    nbytes = 8 * lap.values().numel()
    monkeypatch.setattr(_cheb_native, "available_memory", lambda: int(nbytes / _cheb_native.SLICE_MAX_MEMORY_FRACTION) - 1)
    assert _cheb_native.sliced(lap) is None
    x, out = torch.randn(lap.shape[0], 1), torch.empty(lap.shape[0], 1)
    assert _cheb_native.step(out, lap, x)
    torch.testing.assert_close(out, torch.mm(lap.to_dense(), x), rtol=1e-5, atol=1e-5)
    _cheb_native._sliced.clear()
    monkeypatch.setattr(_cheb_native, "available_memory", lambda: 100 * nbytes)
    assert _cheb_native.sliced(lap) is not None


def test_available_memory_reads_the_system():
    from deepsphere_gen._memory import available_memory

    free = available_memory()
    if free is None:
        pytest.skip("no /proc/meminfo")
    assert 0 < free < 1 << 50


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("dtype,O", [(torch.float32, 16), (torch.float32, 48), (torch.float64, 8), (torch.float64, 24),
                                     (torch.float32, 17)])
def test_forward_streaming_stores_equal_plain_ones(dtype, O, C, monkeypatch):
    """The forward product with streaming stores (64-byte rows of whole vectors) gives bitwise
    the plain stores' output; other widths (17) stay on plain stores.  C = 1: the one-channel
    kernel (4 rows at a time: 301-303 rows leave 1-3 over), O of 1-3 vectors."""
    K = 5
    for P in (301, 302, 303) if C == 1 else (301,):
        g = torch.Generator().manual_seed(O + P)
        basis = torch.randn(K, P, C, dtype=dtype, generator=g)
        w = torch.randn(K, C, O, dtype=dtype, generator=g)
        b = torch.randn(O, dtype=dtype, generator=g)
        ys = []
        for limit in (1 << 62, 0):
            monkeypatch.setattr(_cheb_native, "STREAM_MIN_BYTES", limit)
            y = torch.empty(P, O, dtype=dtype)
            assert _cheb_native.forward(y, basis, w, b)
            ys.append(y)
        assert _cheb_native._stream(ys[1]) == (O * ys[1].element_size() % 64 == 0 and ys[1].data_ptr() % 64 == 0)
        torch.testing.assert_close(ys[1], ys[0], rtol=0, atol=0)
        _close(ys[0], torch.einsum("kpc,kco->po", basis, w) + b, 1e-5 if dtype == torch.float32 else 1e-12)
        assert _cheb_native.forward(y, basis, w, None)  # no bias
        _close(y, torch.einsum("kpc,kco->po", basis, w), 1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("symmetric", [True, False])
def test_layer_release_scratch_drops_the_sliced_copy(symmetric, monkeypatch):
    """A one-map one-channel float32 layer builds the sliced copy at its first call;
    release_scratch() drops it, and the next call rebuilds it with the same output; a
    non-symmetric layer's copy of its transposed Laplacian (the backward's) is dropped too."""
    from deepsphere_gen.nn import ChebConv

    monkeypatch.setattr(_cheb_native, "SLICE_MAX_PADDING", 10.0)  # random entries: rows differ in length
    lap = _healpix_laplacian(4)
    if not symmetric:  # a small non-symmetric perturbation, the spectrum kept inside [-1, 1]
        A = sp.csr_matrix((lap.values().numpy(), lap.col_indices().numpy(), lap.crow_indices().numpy()),
                          shape=lap.shape)
        lap = to_torch_csr(0.8 * A + 0.05 * sp.random(*A.shape, density=0.01, random_state=0), dtype=torch.float32)
    _sliced_or_skip(lap)
    conv = ChebConv(1, 4, 3, lap)
    assert (conv.laplacian_t is None) == symmetric
    _cheb_native.release(conv.laplacian)
    x = torch.randn(1, lap.shape[0], 1)
    with torch.no_grad():
        y = conv(x).clone()
        assert _cheb_native._sliced[id(conv.laplacian)][2] is not None
        conv.release_scratch()
        assert id(conv.laplacian) not in _cheb_native._sliced
        torch.testing.assert_close(conv(x), y, rtol=0, atol=0)
    assert id(conv.laplacian) in _cheb_native._sliced
    if not symmetric:  # the backward's transpose: its copy is dropped too
        assert _cheb_native.sliced(conv.laplacian_t) is not None and id(conv.laplacian_t) in _cheb_native._sliced
        conv.release_scratch()
        assert id(conv.laplacian_t) not in _cheb_native._sliced


def _cpu_flags() -> set[str]:
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return set()
    return {f for ln in lines if ln.split(":")[0].strip() == "flags" for f in ln.split(":", 1)[1].split()}


#: narrower builds than -march=native on an AVX-512 machine, and the CPU flags they need to run
_NARROW = {"avx2": ("-march=haswell", {"avx2", "fma", "bmi2", "movbe", "f16c"}), "sse2": ("-march=x86-64", set())}


@pytest.fixture(scope="module", params=sorted(_NARROW))
def narrow_library(request, tmp_path_factory):
    """The kernels built for 32-byte (AVX2) or 16-byte (SSE2) vectors, into a temporary cache."""
    march, needs = _NARROW[request.param]
    flags = _cpu_flags()
    if "avx2" not in flags or not needs <= flags:  # not an x86 CPU that runs this build
        pytest.skip(f"{march} builds do not run here")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPSPHERE_GEN_CACHE", str(tmp_path_factory.mktemp("kernels")))
        mp.setattr(_cheb_native, "_FLAGS", ("-O3", march) + _cheb_native._FLAGS[2:])
        dll = _cheb_native._compile()
    assert dll is not None
    return dll


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,C,O,K", [(2, 16, 32, 5), (3, 17, 33, 4), (1, 1, 16, 5), (2, 32, 64, 3), (2, 4, 16, 5),
                                     (1, 6, 8, 3)])
def test_narrow_vector_builds_equal_torch_products(B, C, O, K, dtype, narrow_library, monkeypatch):
    """The kernels as an AVX2-only or SSE2 CPU builds them (vectors of 32 / 16 bytes: other tile
    widths, tails, the 8-channel dW tiles in place of the 16-channel ones, and the AVX2 streaming
    stores of the forward and the step; SSE2 has none) give torch's products."""
    monkeypatch.setattr(_cheb_native, "_library", _cheb_native.lazy_library(lambda: narrow_library))
    monkeypatch.setattr(_cheb_native, "STREAM_MIN_BYTES", 0)  # stream every output that can be
    monkeypatch.setattr(_cheb_native, "TORCH_MAX_ROW_BYTES", 0)  # the kernel for every column count
    n = 301
    _, lap = _laplacian(n, seed=C, dtype=dtype)
    g = torch.Generator().manual_seed(B * C * O)
    x = torch.randn(B, n, C, dtype=dtype, generator=g)
    w = torch.randn(K, C, O, dtype=dtype, generator=g)
    b = torch.randn(O, dtype=dtype, generator=g)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, r in zip(_filter(x, w, b, lap, True, monkeypatch), _filter(x, w, b, lap, False, monkeypatch)):
        _close(a, r, tol)
    monkeypatch.setenv(_cheb_native.ENV_VAR, "1")  # _filter left the kernels off
    xs = x.reshape(n, -1) if B == 1 else x.transpose(0, 1).reshape(n, -1)
    out = torch.empty_like(xs)
    assert _cheb_native.step(out, lap, xs, 2.0, None, 1.0, xs, 1.0)
    _close(out, 2 * (lap.to_dense() @ xs) - xs, tol)
