"""Generalized signals: the data type every harmonic layer consumes and produces.

A generalized signal of bandlimit L (Cobb et al. 2021) is a list over degrees
l = 0..L-1 of real fragment tensors shaped ``(batch, channels, 2l+1, tau_l)``; the
2l+1 axis is the order m = -l..l (index m + l, real orthonormal harmonics, project
convention) and ``tau = (tau_0, ..., tau_{L-1})`` is the signal's *type* (columns per
channel).  A rotation R acts on the left of every fragment: f^l -> D^l(R) f^l.

A signal on the sphere has tau_l = 1; a signal on SO(3) has tau_l = 2l+1.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .._validation import check_dtype, check_finite
from ..harmonic import wigner_D_blocks

__all__ = ["GeneralizedSignal", "normalize_type"]


def normalize_type(tau: int | Sequence[int], L: int, name: str = "type") -> tuple[int, ...]:
    """Expand an int to (tau,)*L and check a sequence has length L and positive entries."""
    if isinstance(tau, int):
        tau = (tau,) * L
    tau = tuple(int(t) for t in tau)
    if len(tau) != L:
        raise ValueError(f"{name} has {len(tau)} entries, expected one per degree (L = {L})")
    if any(t < 1 for t in tau):
        raise ValueError(f"{name} must have tau_l >= 1 for every degree, got {tau}")
    return tau


class GeneralizedSignal:
    """A list ``.fragments`` over degrees: ``signal.fragments[l]`` shaped (batch, channels,
    2l+1, tau_l), l = 0..L-1 (the signal itself is not indexable).

    Construction validates the layout (dimensions, 2l+1 axis, common batch, channels,
    dtype and device) and, unless ``check_values=False``, that all values are finite (one
    host synchronisation for all fragments).  This value check is the one a harmonic-side
    input gets: layers taking a GeneralizedSignal only check its layout, and layers build
    their outputs with ``check_values=False``.
    """

    __slots__ = ("fragments",)

    def __init__(self, fragments: Sequence[torch.Tensor], check_values: bool = True):
        fragments = list(fragments)
        if not fragments:
            raise ValueError("a generalized signal needs at least one fragment (degree 0)")
        first = fragments[0]
        for l, f in enumerate(fragments):
            if not torch.is_tensor(f) or f.dim() != 4:
                shape = tuple(f.shape) if torch.is_tensor(f) else type(f).__name__
                raise ValueError(f"fragment l={l} must be a 4-d tensor (batch, channels, 2l+1, tau_l), got {shape}")
            if f.shape[2] != 2 * l + 1:
                raise ValueError(f"fragment l={l} has {f.shape[2]} orders on axis 2, expected 2l+1 = {2 * l + 1}")
            if f.shape[:2] != first.shape[:2]:
                raise ValueError(
                    f"fragment l={l} has (batch, channels) = {tuple(f.shape[:2])}, fragment 0 has {tuple(first.shape[:2])}"
                )
            if f.dtype != first.dtype or f.device != first.device:
                raise ValueError(f"fragment l={l} is {f.dtype} on {f.device}, fragment 0 is {first.dtype} on {first.device}")
            if not f.is_floating_point():
                raise ValueError(f"fragment l={l} must be a real floating-point tensor, got {f.dtype}")
        if check_values:  # all fragments in one reduction: one host synchronisation
            check_finite(fragments, [f"fragment l={l}" for l in range(len(fragments))])
        self.fragments = fragments

    # ---- description -------------------------------------------------------------
    @property
    def L(self) -> int:
        return len(self.fragments)

    @property
    def type(self) -> tuple[int, ...]:
        return tuple(int(f.shape[3]) for f in self.fragments)

    @property
    def batch(self) -> int:
        return int(self.fragments[0].shape[0])

    @property
    def channels(self) -> int:
        return int(self.fragments[0].shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.fragments[0].dtype

    @property
    def device(self) -> torch.device:
        return self.fragments[0].device

    def __repr__(self) -> str:
        return (
            f"GeneralizedSignal(L={self.L}, batch={self.batch}, channels={self.channels}, "
            f"type={self.type}, dtype={self.dtype}, device={self.device})"
        )

    def check(self, L: int | None = None, channels: int | None = None, type: Sequence[int] | None = None,
              name: str = "input", dtype: torch.dtype | None = None) -> "GeneralizedSignal":
        """Raise ValueError if the signal does not have the declared L, channels, type or dtype
        (``dtype``: the layer's parameters' dtype; None: any)."""
        if L is not None and self.L != L:
            raise ValueError(f"{name} has bandlimit L={self.L}, the layer expects L={L}")
        if channels is not None and self.channels != channels:
            raise ValueError(f"{name} has {self.channels} channels, the layer expects {channels}")
        if type is not None and self.type != tuple(type):
            raise ValueError(f"{name} has type {self.type}, the layer expects {tuple(type)}")
        if dtype is not None:
            check_dtype(self.dtype, dtype, name)
        return self

    # ---- operations --------------------------------------------------------------
    def map(self, fn) -> "GeneralizedSignal":
        """Apply ``fn(l, fragment)`` to every fragment (no value checks)."""
        return GeneralizedSignal([fn(l, f) for l, f in enumerate(self.fragments)], check_values=False)

    def to(self, *args, **kwargs) -> "GeneralizedSignal":
        """Move / cast every fragment like ``Tensor.to``."""
        return self.map(lambda l, f: f.to(*args, **kwargs))

    def rotate(self, angles) -> "GeneralizedSignal":
        """Rotate by one ZYZ Euler-angle triple (alpha, beta, gamma): f^l -> D^l(R) f^l.

        The real Wigner-D matrices are built and applied in float64, the result cast back.
        """
        D = wigner_D_blocks(self.L, angles, dtype=torch.float64, device=self.device)
        if D[0].dim() != 2:
            raise ValueError("rotate takes one rotation: angles shaped (3,)")
        return self.map(lambda l, f: torch.einsum("mn,bknt->bkmt", D[l], f.to(torch.float64)).to(f.dtype))

    def degree_norms(self, eps: float = 0.0) -> list[torch.Tensor]:
        """Rotation-invariant norms over the 2l+1 axis: list of (batch, channels, tau_l)."""
        return [torch.sqrt((f * f).sum(dim=2) + eps) for f in self.fragments]

    def norm(self) -> torch.Tensor:
        """Total 2-norm per batch element, shape (batch,)."""
        return torch.sqrt(sum((f * f).sum(dim=(1, 2, 3)) for f in self.fragments))

    # ---- flat conversions --------------------------------------------------------
    def to_flat(self) -> torch.Tensor:
        """Concatenate fragments into (batch, channels, sum_l (2l+1) tau_l), l-major then m then tau."""
        return torch.cat([f.flatten(2) for f in self.fragments], dim=2)

    @classmethod
    def from_flat(cls, flat: torch.Tensor, type: Sequence[int]) -> "GeneralizedSignal":
        """Inverse of :meth:`to_flat` for the given type."""
        type = tuple(int(t) for t in type)
        sizes = [(2 * l + 1) * t for l, t in enumerate(type)]
        if flat.dim() != 3 or flat.shape[2] != sum(sizes):
            raise ValueError(
                f"flat tensor must be (batch, channels, {sum(sizes)}) for type {type}, got {tuple(flat.shape)}"
            )
        parts = torch.split(flat, sizes, dim=2)
        return cls([p.reshape(flat.shape[0], flat.shape[1], 2 * l + 1, t) for l, (p, t) in enumerate(zip(parts, type))])

    @classmethod
    def from_coefficients(cls, coeffs: torch.Tensor, L: int | None = None) -> "GeneralizedSignal":
        """Coefficients (batch, L*L, C) (flat index l*l+l+m) -> signal with 1 channel, tau_l = C."""
        if coeffs.dim() != 3:
            raise ValueError(f"coefficients must be (batch, L*L, channels), got shape {tuple(coeffs.shape)}")
        n = coeffs.shape[1]
        L = int(round(n**0.5)) if L is None else L
        if L * L != n:
            raise ValueError(f"coefficients have {n} rows, expected L*L" + (f" = {L * L}" if L else ""))
        return cls([coeffs[:, l * l : (l + 1) * (l + 1), :].unsqueeze(1) for l in range(L)])

    def to_coefficients(self) -> torch.Tensor:
        """Signal of a uniform type tau -> coefficients (batch, L*L, channels * tau), flat index l*l+l+m,
        column k * tau + t for channel k, column t: a signal on the sphere (tau = 1) gives (batch, L*L,
        channels), the layout of MapToSignal's input and SignalToMap's output; for one channel the inverse
        of :meth:`from_coefficients`."""
        if len(set(self.type)) != 1:
            raise ValueError(f"to_coefficients needs a uniform type (same tau for every degree), got {self!r}")
        B, K, tau = self.batch, self.channels, self.type[0]
        return torch.cat([f.permute(0, 2, 1, 3).reshape(B, 2 * l + 1, K * tau) for l, f in enumerate(self.fragments)],
                         dim=1)
