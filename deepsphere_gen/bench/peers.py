"""What the suites share to compare with a peer: one torch thread for a block, optional peers imported
without failing the run, the relative difference of outputs."""
from __future__ import annotations

import importlib
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread():
    """Run the block with one torch CPU thread, restoring the caller's count after it
    (suites of small kernels, whose per-core speed is what they compare)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def optional_peer(module: str):
    """Import an optional benchmark peer: ``(module, None)``, or ``(None, reason)`` when it is
    not installed (or fails to import).  Suites then record ``peer_unavailable=reason`` with
    their own figures instead of failing the case (``pip install -e ".[bench]"`` installs
    every peer)."""
    try:
        return importlib.import_module(module), None
    except Exception as exc:  # ImportError, or a broken install of the peer
        return None, f"{module}: {type(exc).__name__}: {exc}"


def max_rel_diff(ours, peer) -> float:
    """max |ours - peer| / max |peer| over tensors (or matching sequences of tensors).

    Normalised by the peer's largest magnitude (not element-wise, which blows up near
    zeros); for a sequence (e.g. output and gradients), the worst of the pairs.
    """
    if torch.is_tensor(ours):
        ours, peer = [ours], [peer]
    if len(ours) != len(peer):
        raise ValueError(f"cannot compare {len(ours)} outputs with {len(peer)}")
    worst = 0.0
    for a, b in zip(ours, peer):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"shape mismatch: ours {tuple(a.shape)} vs peer {tuple(b.shape)}")
        a, b = a.detach().double(), b.detach().to(a.device).double()
        scale = float(b.abs().max()) if b.numel() else 0.0
        diff = float((a - b).abs().max()) if b.numel() else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst
