"""Efficient generalized layer suite: time and memory of one layer vs L for full, MST, RMST.

One EfficientGeneralizedLayer (TP activation -> degree norm -> uniform -> channel-wise ->
cross-channel), K = 8 channels in and out, tau = 2, L_out = L, batch 8, float32:
forward + backward (gradients of <y, g> w.r.t. input and weights).  No peer.  Extras:
the mixing set's size and model cost (sum of (2l1+1)(2l2+1) over triples), the
activation's sparse work (products x[a] x[b] and non-zeros of its Clebsch-Gordan table,
per channel; ``flops_per_sample`` = K (products + non-zeros)), the float64 master
table's size, parameters, build time (tables) and forward-only time.

Bandlimits: full set up to L = 16 (its table grows as L^5: 12M non-zeros at L = 24),
MST up to 32 (O(L^4): 2.8M non-zeros at L = 32, ~45M at 64), RMST up to 64
(O(L^3 log L): 3.8M non-zeros at L = 64); quick runs stop at L = 16.

Threads: both sides run with ``torch.set_num_threads(1)`` (restored afterwards): the
kernels are small, and on a shared 2-core CPU multi-threaded calls of this size stall
for tens of ms on thread hand-offs, which would measure the machine's load rather than
the code.
"""
from __future__ import annotations

import time

import torch

from ..peers import one_torch_thread

from deepsphere_gen.nn import EfficientGeneralizedLayer, GeneralizedSignal

NAME = "efficient_layer"
MAX_L = {"full": 16, "mst": 32, "rmst": 64}


def cases(quick: bool) -> list[dict]:
    Ls = (8, 16) if quick else (8, 16, 32, 64)
    return [{"L": L, "mixing": m, "channels": 8, "tau": 2, "batch": 8}
            for L in Ls for m in ("full", "mst", "rmst") if L <= MAX_L[m]]


def run(case: dict, device, harness) -> list[dict]:
    with one_torch_thread():  # see module doc: small kernels, shared CPU
        return _run(case, device, harness)


def _run(case: dict, device, harness) -> list[dict]:
    L, K, tau, B = case["L"], case["channels"], case["tau"], case["batch"]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    layer = EfficientGeneralizedLayer(L, K, tau, channels_out=K, type_out=tau, mixing=case["mixing"]).to(device)
    build_s = time.perf_counter() - t0
    frags = [torch.randn(B, K, 2 * l + 1, tau, device=device, requires_grad=True) for l in range(L)]
    g = [torch.randn(B, K, 2 * l + 1, tau, device=device) for l in range(L)]
    params = list(layer.parameters())

    def fwd_bwd():
        y = layer(GeneralizedSignal(frags, check_values=False))
        return torch.autograd.grad(y.fragments, frags + params, g)

    def fwd():
        with torch.no_grad():
            return layer(GeneralizedSignal(frags, check_values=False))

    t = harness.time(fwd_bwd)
    t_fwd = harness.time(fwd)
    mem = harness.peak_memory_mb(fwd_bwd)
    act = layer.activation
    return [harness.record(
        f"efficient layer fwd+bwd ({case['mixing']})", case, t.median, peak_mem_mb=mem,
        forward_s=t_fwd.median, mixing_size=act.mixing.size, mixing_cost=act.mixing.cost,
        products=act.n_products, nnz=act.nnz, flops_per_sample=layer.flops,
        n_params=sum(p.numel() for p in params), build_s=build_s,
        cg_table_mb=act.table_nbytes / 2**20,
        type_out_max=max(act.type_out), threads=1,
    )]
