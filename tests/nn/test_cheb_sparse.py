"""Buffer recycling of the fused Chebyshev filter (deepsphere_gen.nn._cheb_sparse.Scratch).

The numerics of the filter are tested against torch_geometric and a dense polynomial in
test_chebconv.py; here: a recycled output never overwrites a result the caller still holds.
"""
import copy
import pickle

import pytest
import scipy.sparse as sp
import torch

from deepsphere_gen.nn import _cheb_sparse
from deepsphere_gen.nn._cheb_sparse import (
    _SOLE_REFS,
    Scratch,
    cheb_filter,
    to_torch_csr,
)

pytestmark = pytest.mark.skipif(_SOLE_REFS is None, reason="torch lacks storage use counts: outputs never recycled")


def _setup(n=10, B=2, C=3, O=4, K=3, seed=0):
    A = sp.random(n, n, density=0.4, random_state=seed, format="csr")
    lap = to_torch_csr((A + A.T) / 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, C, dtype=torch.float64, generator=g)
    w = torch.randn(K, C, O, dtype=torch.float64, generator=g)
    return lap, x, w


def test_output_recycled_once_dropped():
    lap, x, w = _setup()
    scratch = Scratch()
    y = cheb_filter(x, w, None, lap, scratch=scratch)
    ptr = y.data_ptr()
    del y
    assert cheb_filter(x, w, None, lap, scratch=scratch).data_ptr() == ptr


@pytest.mark.parametrize("hold", ["tensor", "view", "numpy", "autograd"])
def test_held_output_is_never_overwritten(hold):
    lap, x, w = _setup()
    scratch = Scratch()
    wr = w.clone().requires_grad_(hold == "autograd")
    y1 = cheb_filter(x, wr, None, lap, scratch=scratch)
    expected = y1.detach().clone()
    held = {"tensor": y1, "view": y1[:, 2:, :1], "numpy": y1.detach().numpy(),
            "autograd": y1.pow(2).sum()}[hold]  # pow keeps its input for backward
    keep_ptr = y1.data_ptr()
    if hold != "tensor":
        del y1
    y2 = cheb_filter(2 * x, wr, None, lap, scratch=scratch)
    assert y2.data_ptr() != keep_ptr
    if hold == "autograd":  # the backward of pow reads the kept y1, not y2
        (gw,) = torch.autograd.grad(held, wr)
        wf = w.clone().requires_grad_()
        (ref,) = torch.autograd.grad(cheb_filter(x, wf, None, lap).pow(2).sum(), wf)
        torch.testing.assert_close(gw, ref, rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(torch.as_tensor(held), torch.as_tensor(
            {"tensor": expected, "view": expected[:, 2:, :1], "numpy": expected.numpy()}[hold]), rtol=0, atol=0)
    torch.testing.assert_close(y2.detach(), 2 * expected, rtol=0, atol=1e-12)


def test_recycling_follows_shape_dtype_and_clear():
    lap, x, w = _setup()
    scratch = Scratch()
    ptr = cheb_filter(x, w, None, lap, scratch=scratch).data_ptr()
    y = cheb_filter(x[:1], w, None, lap, scratch=scratch)  # other batch: a fresh buffer
    assert y.shape == (1, 10, 4) and y.data_ptr() != ptr
    scratch.clear()
    assert scratch._outputs == {} and scratch._idle == {}


def test_scratch_copies_and_pickles_empty():
    lap, x, w = _setup()
    scratch = Scratch()
    cheb_filter(x, w, None, lap, scratch=scratch)
    for other in (copy.deepcopy(scratch), pickle.loads(pickle.dumps(scratch))):
        assert other._outputs == {} and other._idle == {}


def test_inference_basis_returned_to_scratch():
    """Without gradients the Chebyshev stack goes back to the scratch at the end of forward."""
    lap, x, w = _setup()
    scratch = Scratch()
    with torch.no_grad():
        cheb_filter(x, w, None, lap, scratch=scratch)
        basis = scratch._idle["basis"]
        cheb_filter(x, w, None, lap, scratch=scratch)
    assert scratch._idle["basis"] is basis


def test_large_buffers_are_not_kept(monkeypatch):
    """Outputs above KEEP_BYTES and the Laplacian's size, and inference stacks above KEEP_BYTES,
    are fresh each call and not held after it."""
    lap, x, w = _setup(B=8)
    assert _cheb_sparse._csr_bytes(lap) < 8 * 10 * 4 * 8  # the output: 2560 bytes
    monkeypatch.setattr(_cheb_sparse, "KEEP_BYTES", 100)
    scratch = Scratch()
    with torch.no_grad():
        y = cheb_filter(x, w, None, lap, scratch=scratch)
    assert scratch._outputs == {} and scratch._idle == {}
    torch.testing.assert_close(cheb_filter(x, w, None, lap, scratch=scratch), y, rtol=0, atol=0)
    assert scratch._outputs == {} and scratch._idle == {}


def test_inference_output_up_to_the_laplacian_size_is_kept(monkeypatch):
    """Above KEEP_BYTES, an inference output no larger than the Laplacian is recycled once
    dropped (no page faults of a fresh buffer per call); the values stay right."""
    lap, x, w = _setup(B=1)
    out_bytes = 1 * 10 * 4 * 8
    assert out_bytes <= _cheb_sparse._csr_bytes(lap)
    monkeypatch.setattr(_cheb_sparse, "KEEP_BYTES", 100)
    scratch = Scratch()
    with torch.no_grad():
        y = cheb_filter(x, w, None, lap, scratch=scratch)
        ptr, ref = y.data_ptr(), y.clone()
        held = cheb_filter(x, w, None, lap, scratch=scratch)  # y still held: a fresh buffer
        hptr = held.data_ptr()
        assert hptr != ptr
        del y, held
        y = cheb_filter(x, w, None, lap, scratch=scratch)  # the last buffer, now free
    assert y.data_ptr() == hptr
    torch.testing.assert_close(y, ref, rtol=0, atol=0)


def test_inference_recycles_the_basis_of_trainable_weights():
    """Under torch.no_grad() no backward comes: the Chebyshev stack goes back to the scratch
    even when the weights require gradients (autograd still reports needs_input_grad)."""
    lap, x, w = _setup()
    scratch = Scratch()
    wr = w.clone().requires_grad_()
    with torch.no_grad():
        cheb_filter(x, wr, None, lap, scratch=scratch)
    ptr = scratch._idle["basis"].data_ptr()
    with torch.no_grad():
        cheb_filter(x, wr, None, lap, scratch=scratch)
    assert scratch._idle["basis"].data_ptr() == ptr
    cheb_filter(x, wr, None, lap, scratch=scratch)  # grad mode: the basis waits for a backward
    assert "basis" not in scratch._idle


def test_training_keeps_outputs_up_to_the_stack_size(monkeypatch):
    """In training the output and input-gradient buffers are recycled even above KEEP_BYTES
    (up to the size of the stack the scratch keeps anyway); the values stay right."""
    lap, x, w = _setup()
    monkeypatch.setattr(_cheb_sparse, "KEEP_BYTES", 100)  # output 640 bytes, stack 3*10*2*3*8 = 1440
    scratch = Scratch()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    g = torch.randn(2, 10, 4, dtype=torch.float64)

    def step():
        y = cheb_filter(xr, wr, None, lap, scratch=scratch)
        gx, gw = torch.autograd.grad(y, (xr, wr), g)
        return y.data_ptr(), gx.data_ptr(), y.detach().clone(), gx.clone(), gw

    p1, q1, y1, gx1, gw1 = step()
    p2, q2, y2, gx2, gw2 = step()
    assert (p2, q2) == (p1, q1)
    for a, b in ((y1, y2), (gx1, gx2), (gw1, gw2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("B,C", [(2, 3), (1, 1), (8, 16)])
def test_cpu_stack_orders_are_padded_apart(B, C, monkeypatch):
    """On CPU the stack's orders lie whole rows >= STACK_PAD_BYTES apart (each contiguous), and
    the padding changes no value: output and gradients bitwise equal to an unpadded stack."""
    lap, x, w = _setup(n=40, B=B, C=C, K=4)
    x.requires_grad_(), w.requires_grad_()
    results = []
    for pad in (_cheb_sparse.STACK_PAD_BYTES, 0):
        monkeypatch.setattr(_cheb_sparse, "STACK_PAD_BYTES", pad)
        scratch = Scratch()
        y = cheb_filter(x, w, None, lap, scratch=scratch)
        results.append([y.detach().clone()] + list(torch.autograd.grad(y, (x, w), torch.ones_like(y))))
        basis = scratch._idle["basis"]
        row = B * C * basis.element_size()
        assert basis.shape == (4, 40, B * C) and basis[2].is_contiguous()
        gap = basis.stride(0) * basis.element_size() - 40 * row
        assert gap == (-(-pad // row) * row if pad else 0)
        assert gap >= pad
    for a, r in zip(*results):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
