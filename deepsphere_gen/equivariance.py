"""The one definition of equivariance error, used by tests, the CLI and benchmarks.

For an operator A, a rotation R and an input f::

    err(A, R, f) = ||A(R f) - R A(f)|| / ||R A(f)||

with the 2-norm over all outputs of one input (every pixel, channel or harmonic
fragment), averaged over random rotations and random inputs.  The plain ratio is what
Cobb et al.'s table and the data behind DeepSphere's figure report; DeepSphere's text
uses its square, recorded as ``mean_sq``.

Inputs and outputs may be tensors shaped (batch, ...), or lists / tuples / dicts of
such tensors, or objects with a ``fragments`` attribute holding such a list (harmonic
generalized signals); the first dimension is always the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

__all__ = ["EquivarianceResult", "equivariance_error", "assert_equivariant", "flatten_batch"]


def flatten_batch(y: Any) -> torch.Tensor:
    """Flatten a tensor / list / dict / generalized signal into (batch, n) (one row per input)."""
    if hasattr(y, "fragments"):
        y = y.fragments
    if torch.is_tensor(y):
        return y.reshape(y.shape[0], -1)
    if isinstance(y, dict):
        y = [y[k] for k in sorted(y)]
    if isinstance(y, (list, tuple)):
        parts = [flatten_batch(v) for v in y]
        return torch.cat(parts, dim=1)
    raise TypeError(f"cannot measure equivariance of an output of type {type(y).__name__}")


@dataclass
class EquivarianceResult:
    """Relative errors, one per (rotation, input)."""

    errors: torch.Tensor = field(repr=False)  # (n_rotations, batch) float64

    @property
    def mean(self) -> float:
        return float(self.errors.mean())

    @property
    def mean_sq(self) -> float:
        """Mean of the squared ratio (DeepSphere's text)."""
        return float((self.errors**2).mean())

    @property
    def max(self) -> float:
        return float(self.errors.max())

    def as_dict(self) -> dict:
        return {"mean": self.mean, "mean_sq": self.mean_sq, "max": self.max, "n": int(self.errors.numel())}


@torch.no_grad()
def equivariance_error(
    op: Callable[[Any], Any],
    x: Any,
    rotations: Iterable[Any],
    rotate_input: Callable[[Any, Any], Any],
    rotate_output: Callable[[Any, Any], Any] | None = None,
) -> EquivarianceResult:
    """Relative equivariance error of ``op`` on the batch ``x`` for each rotation.

    ``rotate_input(x, R)`` / ``rotate_output(y, R)`` apply rotation ``R`` (whatever
    object the callables understand, e.g. ZYZ Euler angles) to an input / output;
    ``rotate_output`` defaults to ``rotate_input`` (same space in and out).
    Returns the errors ||op(R x) - R op(x)|| / ||R op(x)|| per rotation and input.
    """
    rotate_output = rotate_output or rotate_input
    y = op(x)
    rows = []
    for R in rotations:
        expected = flatten_batch(rotate_output(y, R)).to(torch.float64)
        got = flatten_batch(op(rotate_input(x, R))).to(torch.float64)
        if got.shape != expected.shape:
            raise ValueError(f"op(R x) has shape {tuple(got.shape)} but R op(x) has {tuple(expected.shape)}")
        num = torch.linalg.vector_norm(got - expected, dim=1)
        den = torch.linalg.vector_norm(expected, dim=1)
        if bool((den == 0).any()):
            raise ValueError("the operator's output is zero for some input: the relative error is undefined")
        rows.append(num / den)
    if not rows:
        raise ValueError("no rotations given")
    return EquivarianceResult(torch.stack(rows).cpu())


def assert_equivariant(
    op: Callable[[Any], Any],
    x: Any,
    rotations: Iterable[Any],
    rotate_input: Callable[[Any, Any], Any],
    rotate_output: Callable[[Any, Any], Any] | None = None,
    tol: float | None = None,
) -> EquivarianceResult:
    """Assert that the mean equivariance error is below ``tol``.

    Default ``tol``: 1e-12 for float64 inputs, 5e-7 otherwise (Cobb et al.'s float32
    figure).  Returns the result for further checks.
    """
    res = equivariance_error(op, x, rotations, rotate_input, rotate_output)
    if tol is None:
        first = flatten_batch(x)
        tol = 1e-12 if first.dtype == torch.float64 else 5e-7
    assert res.mean <= tol, f"mean equivariance error {res.mean:.3e} > {tol:.1e} (max {res.max:.3e})"
    return res
