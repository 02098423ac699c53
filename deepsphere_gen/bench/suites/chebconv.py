"""ChebConv suite: our ChebConv against torch_geometric.nn.ChebConv, with a roofline.

Cases
-----
- ``fwd+bwd``: HEALPix nside 64 / 128 / 256, k = 20, batch 8, 16 -> 32 channels, K = 5,
  float32: forward, then gradients of <y, g> (fixed random g) w.r.t. the input, weights
  and bias.  Peer: PyG's ChebConv on the SAME graph, with the same weights.
- ``forward``: one full-sky nside 1024 map, k = 8, 1 -> 16 channels, K = 5, inference
  (``torch.no_grad``): time and peak memory, no peer (not in ``--quick``).

Peak memory (ours): one call after ``release_scratch()``, so the Chebyshev stack, the output
and the work buffers the layer otherwise keeps from call to call all count.

Peer configuration (its best documented one): ``normalization=None`` with our graph's
weights W as precomputed ``edge_index``/``edge_weight`` and our ``lambda_max``, so PyG
forms the same rescaled Laplacian 2 (D - W) / lmax - I.  Two ways of batching are timed
and the faster is the peer time: the disjoint union of the 8 graphs (how PyG users batch,
``x`` shaped (8 * pixels, 16)) and one graph with ``x`` shaped (8, pixels, 16) (PyG
propagates along ``node_dim=-2``).  Where the union would not fit in memory, it is run in
sub-batches whose times add up (recorded in ``peer_config``).  The peer's first call is its
warm-up (and gives the compared outputs and its peak memory); a peer call longer than
``LONG_CALL_S`` is timed by that first call alone (``peer_timed_calls`` = 0).

Roofline: bytes and flops that one forward(+backward) must move and do (see
:func:`chebconv_phases`), floor = sum over kernels of max(bytes / bandwidth, flops / GEMM
rate) with both rates measured in the same run (bandwidth: the better of copy and triad on
64 MiB arrays; GEMM rate: float32 square matmul, n = 1536); ``x_floor`` = measured / floor.
Clock: with one torch thread on the CPU, every time here (ours, the peer, and the bandwidth
and GEMM rate of the floor, re-measured by this suite) is the process's CPU time
(``time.process_time``: on a machine shared with other jobs it leaves out the time the
process waits for a core); otherwise the harness's wall clock.  ``clock`` and the rates used
(``bandwidth_gbs``, ``gemm_gflops``) are in each record.
``kernels``: which CPU kernels ran (``native``: the compiled ones,
:func:`deepsphere_gen.nn.native_kernels_available`; ``torch``: torch's sparse and dense products).
The forward case also records ``fresh_output_s``: allocating and first touching a buffer of
the output's size (the page faults an inference call would pay for a fresh output; the layer
recycles an output up to ``KEEP_BYTES`` or its Laplacian's size once the caller has dropped
the previous one, as the timed calls here do), measured in the same run.
"""
from __future__ import annotations

import time

import torch

from ..machine import roofline_floor
from ..peers import max_rel_diff
from deepsphere_gen._memory import available_memory
from deepsphere_gen.graph import build_graph
from deepsphere_gen.nn import native_kernels_available
from deepsphere_gen.nn.chebconv import ChebConv
from deepsphere_gen.sampling import HealpixSampling

NAME = "chebconv"

PEER = "torch_geometric.nn.ChebConv"

#: a peer call longer than this (seconds) is timed once: its first call (no warm-up)
LONG_CALL_S = 120.0
#: our timed calls stop after this many seconds (at least 3 calls)
OURS_BUDGET_S = 120.0
#: the peer's timed calls stop after this many seconds (at least 1 call)
PEER_BUDGET_S = 60.0


def cases(quick: bool) -> list[dict]:
    """nside 64 (quick), 128, 256 forward+backward, and the nside-1024 forward."""
    def fwdbwd(nside):
        return {"mode": "fwd+bwd", "nside": nside, "k": 20, "batch": 8, "c_in": 16, "c_out": 32, "K": 5}

    if quick:
        return [fwdbwd(64)]
    # the longest case (PyG at nside 256) last
    return [fwdbwd(64), fwdbwd(128),
            {"mode": "forward", "nside": 1024, "k": 8, "batch": 1, "c_in": 1, "c_out": 16, "K": 5},
            fwdbwd(256)]


def chebconv_phases(npix: int, nnz: int, batch: int, c_in: int, c_out: int, K: int, backward: bool,
                    elt: int = 4, idx: int = 8) -> list[tuple[float, float]]:
    """(bytes, flops) of each kernel one ChebConv call must run, at the minimum.

    With n = batch * c_in dense columns and a CSR matrix (``idx``-byte indices, ``elt``-byte
    values): each of the K-1 sparse products reads the matrix (nnz (idx + elt) + (npix+1)
    idx bytes), reads its dense input and writes its output (2 npix n elt), and for order
    >= 2 reads T_{k-2} (npix n elt), 2 nnz n flops.  The GEMM (batch npix, K c_in) x
    (K c_in, c_out) reads the Chebyshev stack, writes the output, 2 batch npix K c_in
    c_out flops.  Backward: the two GEMMs of the weight and stack gradients, then K-1
    transposed sparse products (L~ is symmetric) with the same traffic as forward.
    """
    n = batch * c_in
    mat = nnz * (idx + elt) + (npix + 1) * idx
    stack = K * npix * n * elt
    out = batch * npix * c_out * elt
    gemm_flops = 2.0 * batch * npix * K * c_in * c_out
    spmm = [(mat + (2 + (k >= 2)) * npix * n * elt, 2.0 * nnz * n) for k in range(1, K)]
    phases = spmm + [(stack + out, gemm_flops)]
    if backward:
        phases += [(stack + out + K * c_in * c_out * elt, gemm_flops),  # dW = T^T g
                   (out + stack, gemm_flops)]  # dT = g W^T
        phases += spmm
    return phases


def _peer_edges(graph, device):
    data = graph.to_pyg(dtype=torch.float32)
    return data.edge_index.to(device), data.edge_weight.to(device)


def _timing_harness(harness, device):
    """(harness that times this suite, clock name): see the module doc."""
    if device.type != "cpu" or torch.get_num_threads() != 1:
        return harness, "wall"
    harness.machine()  # the run's metadata keeps the harness's (wall-clock) rates too
    return harness.with_timer(time.process_time), "cpu (process_time), 1 thread"


def run(case: dict, device, harness) -> list[dict]:
    timed, clock = _timing_harness(harness, torch.device(device))
    return _run(case, device, timed, clock, timed.machine())


def _run(case: dict, device, harness, clock: str, machine: dict) -> list[dict]:
    nside, k, B, cin, cout, K = (case[x] for x in ("nside", "k", "batch", "c_in", "c_out", "K"))
    t0 = time.perf_counter()
    graph = build_graph(HealpixSampling(nside), k=k)
    graph_s = time.perf_counter() - t0
    if graph.laplacian_kind != "combinatorial":
        raise ValueError("this suite compares against PyG's normalization=None (combinatorial Laplacian)")
    torch.manual_seed(0)
    conv = ChebConv(cin, cout, K, graph).to(device)  # written from the graph: no float64 copy, no spectrum check
    with torch.no_grad():
        conv.bias.normal_()
    npix, nnz = graph.npix, int(conv.laplacian.values().numel())
    idx_bytes = conv.laplacian.col_indices().element_size()
    x = torch.randn(B, npix, cin, device=device)
    common = dict(npix=npix, nnz=nnz, graph_s=graph_s, graph_from_cache=graph.from_cache, clock=clock,
                  bandwidth_gbs=machine["bandwidth_gbs"], gemm_gflops=machine["gemm_gflops"],
                  lmax=graph.lmax, threads=torch.get_num_threads(),
                  kernels="native" if torch.device(device).type == "cpu" and native_kernels_available() else "torch")

    if case["mode"] == "forward":
        def ours():
            with torch.no_grad():
                return conv(x)

        t = harness.time(ours, budget_s=OURS_BUDGET_S, min_repeats=3)
        conv.release_scratch()  # its buffers are allocated within the measured call
        mem = harness.peak_memory_mb(ours)
        phases = chebconv_phases(npix, nnz, B, cin, cout, K, backward=False, idx=idx_bytes)
        floor = roofline_floor(phases, machine)
        fresh = harness.time(lambda: torch.empty(B, npix, cout, device=device).fill_(0), min_repeats=3).median
        return [harness.record(
            "chebconv forward", case, t.median, peak_mem_mb=mem, fresh_output_s=fresh,
            **common, floor_s=floor, x_floor=t.median / floor, roofline_fraction=floor / t.median,
            bytes=sum(b for b, _ in phases), flops=sum(f for _, f in phases),
            input_mb=x.numel() * x.element_size() / 2**20,
        )]

    g = torch.randn(B, npix, cout, device=device)
    xr = x.clone().requires_grad_(True)
    params = (conv.weight, conv.bias)

    def ours():
        y = conv(xr)
        return (y,) + torch.autograd.grad(y, (xr,) + params, g)

    ref = ours()
    t = harness.time(ours, budget_s=OURS_BUDGET_S, min_repeats=3)
    conv.release_scratch()  # its buffers are allocated within the measured call
    mem = harness.peak_memory_mb(ours)
    phases = chebconv_phases(npix, nnz, B, cin, cout, K, backward=True, idx=idx_bytes)
    floor = roofline_floor(phases, machine)

    peer_s, peer_cfg, diff, extras = _run_peer(conv, graph, x, g, ref, device, harness)
    return [harness.record(
        "chebconv fwd+bwd", case, t.median, peer=PEER if peer_s else None, peer_s=peer_s,
        max_rel_diff=diff, peak_mem_mb=mem,
        **common, floor_s=floor, x_floor=t.median / floor, roofline_fraction=floor / t.median,
        bytes=sum(b for b, _ in phases), flops=sum(f for _, f in phases),
        peer_config=peer_cfg, **extras,
    )]


def _run_peer(conv, graph, x, g, ref, device, harness):
    """Time PyG's ChebConv in its two batchings; return (best time, config, max_rel_diff, extras)."""
    from torch_geometric.nn import ChebConv as PygChebConv  # deferred: seconds to import, only the peer needs it

    B, npix, cin = x.shape
    K, cout = conv.K, conv.out_channels
    pyg = PygChebConv(cin, cout, K, normalization=None).to(device)
    with torch.no_grad():
        for kk, lin in enumerate(pyg.lins):
            lin.weight.copy_(conv.weight[kk].T)
        pyg.bias.copy_(conv.bias)
    ei, ew = _peer_edges(graph, device)
    lam = torch.tensor(graph.lmax, dtype=torch.float32, device=device)
    E = ei.shape[1] + npix  # get_laplacian appends the diagonal
    # transient per propagate: gathered x_j and weighted messages, (E, c_in) float32 each,
    # plus the union's edge index (2 E int64) and normalised weights.
    per_graph_mb = (2 * E * cin * 4 + E * (16 + 8)) / 2**20
    free = available_memory()  # None off Linux: assume 2.5 GiB free
    budget_mb = 0.4 * (free if free is not None else 2.5 * 2**30) / 2**20
    chunk = int(max(1, min(B, budget_mb // max(per_graph_mb, 1e-9))))

    def union_step(xs, gs):
        b = xs.shape[0]
        ei_b = torch.cat([ei + i * npix for i in range(b)], 1) if b > 1 else ei
        xf = xs.reshape(b * npix, cin).requires_grad_(True)
        y = pyg(xf, ei_b, ew.repeat(b), lambda_max=lam)
        grads = torch.autograd.grad(y, (xf,) + tuple(l.weight for l in pyg.lins) + (pyg.bias,),
                                    gs.reshape(b * npix, cout))
        return y.view(b, npix, cout), grads

    def union():
        outs = [union_step(x[i:i + chunk], g[i:i + chunk]) for i in range(0, B, chunk)]
        y = torch.cat([o[0] for o in outs])
        gx = torch.cat([o[1][0].view(-1, npix, cin) for o in outs])
        gw = torch.stack([sum(o[1][1 + kk] for o in outs).T for kk in range(K)])
        gb = sum(o[1][-1] for o in outs)
        return y, gx, gw, gb

    def batched():
        xb = x.clone().requires_grad_(True)
        y = pyg(xb, ei, ew, lambda_max=lam)
        grads = torch.autograd.grad(y, (xb,) + tuple(l.weight for l in pyg.lins) + (pyg.bias,), g)
        gw = torch.stack([gr.T for gr in grads[1:1 + K]])
        return y, grads[0], gw, grads[-1]

    # --quick: only the one-graph batching (the faster of the two where both were measured)
    labels = [lab for lab, ok in (("union", not harness.quick), ("batched", chunk >= B)) if ok] or ["union"]
    fns = {"union": union, "batched": batched}
    times, diffs, mems, calls = {}, {}, {}, {}
    for label in labels:
        out, first_s, mems[label] = harness.measure(fns[label])  # warm-up; its outputs are compared
        diffs[label] = (max_rel_diff(list(ref), list(out)), max_rel_diff(ref[0], out[0]))
        del out
        if first_s > LONG_CALL_S:  # minutes per call: the first call is the timing
            times[label], calls[label] = first_s, 0
            continue
        # up to ``repeats`` calls, stopping after PEER_BUDGET_S (one call in --quick)
        t = harness.time(fns[label], warmup=0, budget_s=0.0 if harness.quick else PEER_BUDGET_S)
        times[label], calls[label] = t.median, len(t.times)
    best = min(times, key=times.get)
    sub = f", run in sub-batches of {chunk} graphs (memory)" if chunk < B else ""
    configs = {
        "union": f"disjoint union of {B} graphs, x ({B}*pixels, {cin}){sub}",
        "batched": f"one graph, x ({B}, pixels, {cin}) along node_dim=-2",
    }
    cfg = (f"normalization=None, edge_index/edge_weight = our W precomputed, lambda_max = our lmax; "
           f"best batching: {configs[best]}")
    extras = {
        "peer_union_s": times.get("union"),
        "peer_batched_s": times.get("batched"),
        "max_rel_diff_output": diffs[best][1],
        "max_rel_diff_union": diffs["union"][0] if "union" in diffs else None,
        "peer_peak_mem_mb": mems[best],
        "peer_chunk": chunk,
        "peer_timed_calls": calls[best],
    }
    return times[best], cfg, diffs[best][0], extras
