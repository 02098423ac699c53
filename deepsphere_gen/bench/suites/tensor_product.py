"""Tensor-product suite: our channel-wise TP activation vs e3nn's TensorProduct ("uuu").

Both compute, for each of K channels and each (l1, l2 -> l) triple of our MST mixing set
(tau = 1, so one column per channel and degree; triples l1 == l2 with odd l are
identically zero and are skipped by both), the Clebsch-Gordan projection of
f^l1 (x) f^l2.  The peer is e3nn.o3.TensorProduct with one "uuu" instruction per triple,
no weights, irrep/path normalisation "none", all irreps even (our basis has no parity).
Without e3nn the case records our timings with ``peer_unavailable`` (no crash).
Outputs agree up to the basis convention: e3nn's real harmonics are Q_l @ ours (Q_l
orthogonal, fitted at random points) and its CG tensors are unit-norm (ours
orthonormal, a factor sqrt(2l+1) and a sign per triple, fitted); ``max_rel_diff`` is
measured after undoing both.  Timed, float32, on the harness device: forward (no
autograd graph), and forward + backward (gradient of <y, g> w.r.t. the input).

Ours contracts sparse Clebsch-Gordan tables (at most 2 non-zeros per (m1, m2)); e3nn
contracts its dense Wigner-3j tensor per instruction.  Extras: our products and
non-zeros per channel, multiply-adds per sample.

Threads: both sides run with ``torch.set_num_threads(1)`` (restored afterwards): the
GEMMs are small, and on a shared 2-core CPU multi-threaded BLAS calls of this size
stall for tens of ms on thread hand-offs, which would measure the machine's load
rather than the code.
"""
from __future__ import annotations

import torch

from ..e3nn_basis import e3nn_basis
from ..peers import one_torch_thread, optional_peer
from deepsphere_gen.nn import GeneralizedSignal, TensorProductActivation

NAME = "tensor_product"
PEER = "e3nn.o3.TensorProduct(uuu)"


def cases(quick: bool) -> list[dict]:
    Ls = (8,) if quick else (8, 10, 12)  # e3nn's spherical_harmonics (basis fit) stops at l = 11
    return [{"L": L, "channels": 16, "batch": 32, "mixing": "mst"} for L in Ls]


def run(case: dict, device, harness) -> list[dict]:
    with one_torch_thread():  # see module doc: small GEMMs, shared CPU
        return _run(case, device, harness)


def _ours_only(case: dict, device, harness, reason: str) -> list[dict]:
    """Our timings without the peer (e3nn not installed): records with ``peer_unavailable``."""
    L, K, B = case["L"], case["channels"], case["batch"]
    tp = TensorProductActivation(L, K, 1, mixing=case["mixing"]).to(device)
    g = torch.Generator().manual_seed(0)
    frags = [torch.randn(B, K, 2 * l + 1, 1, generator=g).to(device).requires_grad_(True) for l in range(L)]
    x = GeneralizedSignal(frags, check_values=False)
    with torch.no_grad():
        g_ours = [torch.randn(y_.shape, generator=g).to(device) for y_ in tp(x).fragments]

    def ours_fn():
        with torch.no_grad():
            return tp(x)

    def ours_fb():
        return torch.autograd.grad(tp(x).fragments, frags, g_ours)

    extras = dict(products=tp.n_products, nnz=tp.nnz, flops_per_sample=tp.flops, threads=1, peer_unavailable=reason)
    return [
        harness.record("channel-wise TP forward", case, harness.time(ours_fn).median,
                       peak_mem_mb=harness.peak_memory_mb(ours_fn), **extras),
        harness.record("channel-wise TP fwd+bwd", case, harness.time(ours_fb).median,
                       peak_mem_mb=harness.peak_memory_mb(ours_fb), **extras),
    ]


def _run(case: dict, device, harness) -> list[dict]:
    o3, reason = optional_peer("e3nn.o3")
    if o3 is None:
        return _ours_only(case, device, harness, reason)
    L, K, B = case["L"], case["channels"], case["batch"]
    tp = TensorProductActivation(L, K, 1, mixing=case["mixing"]).to(device)
    triples = [(a, b, l) for l, ps in enumerate(tp.mixing.pairs) for a, b in ps if not (a == b and l % 2)]
    irr = o3.Irreps([(K, (l, 1)) for l in range(L)])
    peer = o3.TensorProduct(irr, irr, o3.Irreps([(K, (l, 1)) for *_, l in triples]),
                            [(a, b, i, "uuu", False) for i, (a, b, _) in enumerate(triples)],
                            irrep_normalization="none", path_normalization="none").to(device)
    Qs = [q.to(device=device, dtype=torch.float32) for q in e3nn_basis(L)]
    g = torch.Generator().manual_seed(0)
    frags = [torch.randn(B, K, 2 * l + 1, 1, generator=g).to(device) for l in range(L)]
    x = GeneralizedSignal(frags)
    xe = torch.cat([torch.einsum("mn,bkn->bkm", Qs[l], f[..., 0]).reshape(B, -1) for l, f in enumerate(frags)], 1)

    with torch.no_grad():
        y, ye = tp(x), peer(xe, xe)
        off, col, worst = 0, [0] * L, 0.0
        for a, b, l in triples:
            d = K * (2 * l + 1)
            theirs = torch.einsum("nm,bkn->bkm", Qs[l], ye[:, off:off + d].reshape(B, K, 2 * l + 1))
            off += d
            ours = y.fragments[l][..., col[l]]
            col[l] += 1
            c = (ours * theirs).sum() / (theirs * theirs).sum()
            worst = max(worst, ((ours - c * theirs).abs().max() / ours.abs().max()).item())

    def ours_fn():
        with torch.no_grad():
            return tp(x)

    def peer_fn():
        with torch.no_grad():
            return peer(xe, xe)

    frags_g = [f.clone().requires_grad_(True) for f in frags]
    xe_g = xe.clone().requires_grad_(True)
    g_ours = [torch.randn(y_.shape, generator=g).to(device) for y_ in y.fragments]
    g_peer = torch.randn(ye.shape, generator=g).to(device)

    def ours_fb():
        out = tp(GeneralizedSignal(frags_g, check_values=False))
        return torch.autograd.grad(out.fragments, frags_g, g_ours)

    def peer_fb():
        return torch.autograd.grad(peer(xe_g, xe_g), xe_g, g_peer)

    extras = dict(triples=len(triples), type_out=list(tp.type_out), products=tp.n_products, nnz=tp.nnz,
                  flops_per_sample=tp.flops, threads=1)
    t, t_peer = harness.time(ours_fn), harness.time(peer_fn)
    fb, fb_peer = harness.time(ours_fb), harness.time(peer_fb)
    return [
        harness.record("channel-wise TP forward", case, t.median, peer=PEER, peer_s=t_peer.median,
                       max_rel_diff=worst, peak_mem_mb=harness.peak_memory_mb(ours_fn),
                       peer_mem_mb=harness.peak_memory_mb(peer_fn), **extras),
        harness.record("channel-wise TP fwd+bwd", case, fb.median, peer=PEER, peer_s=fb_peer.median,
                       peak_mem_mb=harness.peak_memory_mb(ours_fb), peer_mem_mb=harness.peak_memory_mb(peer_fb),
                       **extras),
    ]
