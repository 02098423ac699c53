"""The one definition of equivariance error, used by tests, the CLI and benchmarks.

For an operator A, a rotation R and an input f::

    err(A, R, f) = ||A(R f) - R A(f)|| / ||R A(f)||

with the 2-norm over all outputs of one input (every pixel, channel or harmonic
fragment), averaged over random rotations and random inputs.  The plain ratio is what
Cobb et al.'s table and the data behind DeepSphere's figure report; DeepSphere's text
uses its square, recorded as ``mean_sq``.

A rotation-INVARIANT output (a classifier's logits; R acts as the identity on it) is
measured against its spread over the batch of inputs instead (``relative_to="spread"``)::

    err(A, R, f_i) = ||A(R f_i) - A(f_i)|| / s,   s^2 = sum_j ||A(f_j) - mean_j' A(f_j')||^2 / (B - 1)

(s^2: the sample variance of the output over the B >= 2 inputs, summed over its entries).
Divided by ||A(f)||, the input-independent part of the output (a head's bias, any constant
offset) would set the figure's size -- a large bias makes any classifier look invariant and a
constant one scores 0 -- while s ignores it: adding a constant to the output changes
nothing, and a constant output is an error.  0 is exact invariance; ~sqrt(2) is a rotation
that changes the output as much as drawing a new input would.  The figure depends on the
inputs' distribution (:func:`map_equivariance_error`: white band-limited maps), so compare
models on the same inputs.

Inputs and outputs may be tensors shaped (batch, ...), or lists / tuples / dicts of
such tensors, or objects with a ``fragments`` attribute holding such a list (harmonic
generalized signals); the first dimension is always the batch.

Test helpers (as e3nn's ``assert_equivariant``):

* :func:`assert_equivariant` -- any operator, any input and rotation action; with a
  GeneralizedSignal input the action defaults to ``signal.rotate`` and ``rotations=3``
  draws three random rotations.
* :func:`assert_map_equivariant` -- a layer on pixel maps, sampling in -> sampling out:
  random band-limited input maps, the input rotated exactly (in harmonic space), the
  output rotated by :class:`~deepsphere_gen.harmonic.MapRotator`; with ``invariant=True``
  the output is compared unrotated, relative to its spread over the inputs (a classifier's logits:
  its invariance error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from .harmonic import MapRotator, random_rotations, rotate_coefficients, synthesis

__all__ = [
    "EquivarianceResult",
    "equivariance_error",
    "assert_equivariant",
    "assert_map_equivariant",
    "map_equivariance_error",
    "flatten_batch",
]


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


@dataclass(repr=False)
class EquivarianceResult:
    """Relative errors, one per (rotation, input); prints its count and summary
    (``EquivarianceResult(n=8, mean=1.2e-15, mean_sq=1.6e-30, max=2.3e-15)``)."""

    errors: torch.Tensor  # (n_rotations, batch) float64

    def __repr__(self) -> str:
        n = int(self.errors.numel())
        if not n:
            return "EquivarianceResult(n=0)"
        return f"EquivarianceResult(n={n}, mean={self.mean:.2g}, mean_sq={self.mean_sq:.2g}, max={self.max:.2g})"

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
    *,
    relative_to: str = "output",
) -> EquivarianceResult:
    """Relative equivariance error of ``op`` on the batch ``x`` for each rotation.

    ``rotate_input(x, R)`` / ``rotate_output(y, R)`` apply rotation ``R`` (whatever
    object the callables understand, e.g. ZYZ Euler angles) to an input / output;
    ``rotate_output`` defaults to ``rotate_input`` (same space in and out).
    Returns the errors ||op(R x) - R op(x)|| / d per rotation and input, where d is
    ``relative_to="output"``: ||R op(x)|| of that input (equivariant layers: the published
    figures' ratio); ``"spread"``: the spread s of op(x) over the batch (sample standard
    deviation, module docstring; for a rotation-invariant output such as logits, which a
    constant offset cannot shrink; needs a batch of >= 2 inputs).
    An output holding NaN or inf is a ValueError naming the operator's output (not its input);
    so is a zero output (``"output"``) or one that is the same for every input (``"spread"``).
    """
    if relative_to not in ("output", "spread"):
        raise ValueError(f"relative_to must be 'output' or 'spread', got {relative_to!r}")
    rotate_output = rotate_output or rotate_input
    y = op(x)
    _check_output(y, "op(x)")
    spread = _spread(flatten_batch(y)) if relative_to == "spread" else None
    rows = []
    for R in rotations:
        expected = flatten_batch(rotate_output(y, R)).to(torch.float64)
        got = flatten_batch(_check_output(op(rotate_input(x, R)), "op(R x)")).to(torch.float64)
        if got.shape != expected.shape:
            raise ValueError(f"op(R x) has shape {tuple(got.shape)} but R op(x) has {tuple(expected.shape)}")
        num = torch.linalg.vector_norm(got - expected, dim=1)
        if spread is not None:
            rows.append(num / spread)
            continue
        den = torch.linalg.vector_norm(expected, dim=1)
        if bool((den == 0).any()):
            raise ValueError("the operator's output is zero for some input: the relative error is undefined")
        rows.append(num / den)
    if not rows:
        raise ValueError("no rotations given")
    return EquivarianceResult(torch.stack(rows).cpu())


def _spread(y: torch.Tensor) -> torch.Tensor:
    """Sample standard deviation (float64) of the rows of ``y`` (batch, n) over the batch, summed over
    the n entries: sqrt(sum_i ||y_i - mean y||^2 / (batch - 1)); ValueError for one input, or an output
    that varies over the inputs by no more than its dtype's rounding (a constant: the ratio would be 0/0,
    or a ratio of rounding errors)."""
    if y.shape[0] < 2:
        raise ValueError(f"the spread of the output over the inputs needs a batch of >= 2 inputs, got {y.shape[0]}")
    eps = torch.finfo(y.dtype).eps if y.is_floating_point() else 0.0
    y = y.to(torch.float64)
    s = y.var(dim=0, correction=1).sum().sqrt()
    if not bool(s > eps * y.shape[1] ** 0.5 * y.abs().max()):
        raise ValueError(f"the operator's output is the same for all {y.shape[0]} inputs (its spread over them is "
                         f"{float(s):.1e}, at most rounding): its invariance relative to that spread is undefined")
    return s


def _check_output(y, name: str):
    """``y`` unchanged, or ValueError if it holds NaN or inf (before any rotation of it, whose
    own input check would blame the operator's input)."""
    flat = flatten_batch(y)
    if flat.is_floating_point() or flat.is_complex():
        bad = int((~torch.isfinite(flat)).sum())
        if bad:
            raise ValueError(f"{name}, the operator's output, is not finite: {bad} NaN/inf value(s) of {flat.numel()}")
    return y


def _rotations(rotations, seed) -> Iterable[Any]:
    """An int n: n random rotations (ZYZ angles, seeded); anything else as given."""
    if isinstance(rotations, int) and not isinstance(rotations, bool):
        return list(random_rotations(rotations, seed=seed))
    return rotations


def _default_tol(x) -> float:
    return 1e-12 if flatten_batch(x).dtype == torch.float64 else 5e-7


def _assert_below(res: EquivarianceResult, tol: float) -> EquivarianceResult:
    assert res.mean <= tol, f"mean equivariance error {res.mean:.3e} > {tol:.1e} (max {res.max:.3e})"
    return res


def assert_equivariant(
    op: Callable[[Any], Any],
    x: Any,
    rotations: Iterable[Any] | int = 3,
    rotate_input: Callable[[Any, Any], Any] | None = None,
    rotate_output: Callable[[Any, Any], Any] | None = None,
    tol: float | None = None,
    seed: int = 0,
    relative_to: str = "output",
) -> EquivarianceResult:
    """Assert that the mean equivariance error of ``op`` on ``x`` is below ``tol``.

    ``rotations``: an iterable of rotations that ``rotate_input`` / ``rotate_output``
    understand, or an int n for n random rotations (ZYZ Euler angles, uniform on SO(3),
    seeded by ``seed``).  ``rotate_input`` defaults to ``x.rotate`` (GeneralizedSignal,
    SO(3) signals), ``rotate_output`` to ``rotate_input`` (same action on the output; for
    a signal output without an explicit action, ``y.rotate``).  Default ``tol``: 1e-12 for
    float64 inputs, 5e-7 otherwise (Cobb et al.'s float32 figure).  ``relative_to``: as
    :func:`equivariance_error` (``"spread"`` for a rotation-invariant output, ``rotate_output``
    the identity).  Returns the result for further checks.
    """
    if rotate_input is None:
        if not hasattr(x, "rotate"):
            raise TypeError(f"give rotate_input: an input of type {type(x).__name__} has no rotate() method")
        rotate_input = _rotate_method
        rotate_output = rotate_output or _rotate_method
    res = equivariance_error(op, x, _rotations(rotations, seed), rotate_input, rotate_output, relative_to=relative_to)
    return _assert_below(res, _default_tol(x) if tol is None else tol)


def _rotate_method(v, R):
    return v.rotate(R)


def map_equivariance_error(
    layer: Callable[[torch.Tensor], Any],
    sampling_in,
    sampling_out=None,
    *,
    L: int,
    L_out: int | None = None,
    rotations: Iterable[Any] | int = 3,
    batch: int | None = None,
    channels: int = 1,
    iterations: int = 10,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    invariant: bool = False,
) -> EquivarianceResult:
    """Equivariance error of a layer on pixel maps, ``sampling_in`` -> ``sampling_out``.

    Inputs: ``batch`` (default 2; 8 with ``invariant=True``) random maps (batch, sampling_in.npix,
    channels) band-limited below ``L`` (white real coefficients, seeded, synthesised in ``dtype``; default: the dtype of the
    layer's floating parameters, else of its floating buffers, else torch.float64 (a function,
    a module without either or with several dtypes): give it for a function wrapping a float32
    layer).  ``R x`` is exact (the coefficients are
    rotated, then synthesised).  ``R layer(x)``: an output with a ``rotate`` method (a
    GeneralizedSignal) is rotated exactly by it; an output map goes through
    :class:`~deepsphere_gen.harmonic.MapRotator` on ``sampling_out`` (default ``sampling_in``)
    at ``L_out`` (default ``L``) with ``iterations`` Jacobi steps, so the figure includes the
    transform's floor on HEALPix (measure it with the identity layer) and any output power at
    l >= L_out.  ``invariant=True``: the output is meant to be rotation-INVARIANT (a
    classifier's logits, a global pooling) and is compared unrotated, relative to its spread
    over the batch of inputs, err = ||layer(R x) - layer(x)|| / s (``relative_to="spread"`` of
    :func:`equivariance_error`: a constant offset of the output, e.g. a head's bias, changes
    nothing; a constant output is an error; s comes from the ``batch`` inputs, so give >= 8 for
    a steady figure; any output shape; ``sampling_out``, ``L_out`` and ``iterations`` are
    unused).  ``rotations``: as :func:`assert_equivariant`.
    """
    if batch is None:
        batch = 8 if invariant else 2
    if invariant:
        rotate_out = _unrotated
    else:
        s_out = sampling_in if sampling_out is None else sampling_out
        rotate_map = MapRotator(s_out, L if L_out is None else L_out, iterations=iterations)

        def rotate_out(y, R):
            if hasattr(y, "rotate"):
                return y.rotate(R)
            if torch.is_tensor(y) and (y.dim() != 3 or y.shape[1] != s_out.npix):
                raise ValueError(f"the layer's output has shape {tuple(y.shape)}, not maps (batch, {s_out.npix}, "
                                 f"channels) on {s_out!r}; for a rotation-invariant output (a classifier's logits) "
                                 "pass invariant=True")
            return rotate_map(y, R)

    own = _module_dtype(layer)
    dtype = (own or torch.float64) if dtype is None else dtype

    def op(c):
        x = synthesis(c, sampling_in, L)
        try:
            return layer(x)
        except (ValueError, RuntimeError, TypeError, NotImplementedError) as exc:
            if own is None or own == dtype or not _runs_in(layer, x.to(own)):
                raise  # not (only) the dtype: the layer's own message
            raise ValueError(f"the layer computes in {own} but this helper's inputs are {dtype} (its dtype= "
                             f"argument): pass dtype={own} or leave it out (the layer raised "
                             f"{type(exc).__name__} on the {dtype} maps)") from exc

    gen = torch.Generator().manual_seed(int(seed))
    coeffs = torch.randn(batch, L * L, channels, generator=gen, dtype=torch.float64).to(dtype)
    return equivariance_error(op, coeffs, _rotations(rotations, seed), rotate_coefficients, rotate_out,
                              relative_to="spread" if invariant else "output")


def _unrotated(y, R):
    """The output action of an invariant layer: none."""
    return y


def _module_dtype(layer) -> torch.dtype | None:
    """The one dtype of a module's floating parameters, else of its floating buffers (an SHT's
    anchor); None for a function, or a module without either or with several dtypes."""
    if not isinstance(layer, torch.nn.Module):
        return None
    for tensors in (layer.parameters(), layer.buffers()):
        dtypes = {t.dtype for t in tensors if t.is_floating_point()}
        if dtypes:
            return dtypes.pop() if len(dtypes) == 1 else None
    return None


def _runs_in(layer, x: torch.Tensor) -> bool:
    """Whether ``layer(x)`` returns (error path only: was the input's dtype the layer's problem?)."""
    try:
        layer(x)
    except Exception:
        return False
    return True


def assert_map_equivariant(layer: Callable[[torch.Tensor], Any], sampling_in, sampling_out=None, *, L: int,
                           tol: float, **kwargs) -> EquivarianceResult:
    """Assert that :func:`map_equivariance_error` (same arguments, ``invariant=True`` for a
    rotation-invariant output) has a mean below ``tol``.

    No default tolerance: a graph layer's error depends on the graph, the degree range and
    the transform floor of the samplings (see ``deepsphere-gen equivariance``); an exact
    harmonic layer on Gauss-Legendre / equiangular grids reaches ~1e-13 in float64.
    """
    return _assert_below(map_equivariance_error(layer, sampling_in, sampling_out, L=L, **kwargs), tol)
