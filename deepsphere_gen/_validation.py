"""Input checks shared by every layer: clear errors instead of silent NaNs."""
from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "UNSEEN",
    "check_finite",
    "check_pixels",
    "check_tensor",
    "check_channels",
    "check_dtype",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive_ints",
    "check_nested_order",
    "check_healpix_order",
]

#: healpy's sentinel for missing pixels.
UNSEEN = -1.6375e30


def check_finite(x, name="input") -> None:
    """Raise ValueError if ``x`` holds NaN, inf or healpy UNSEEN values (|value| > 1e29).

    ``x``: a tensor, or a sequence of tensors on one device (then ``name`` is one name per
    tensor, or one prefix: ``name[i]``); non-floating and empty tensors pass.  Maps with
    missing data must be declared as partial sky (mask) instead.

    Cost: one fused reduction per tensor and ONE host synchronisation in all (on a GPU the
    call waits for the device).  Check what a user hands in, once: layers take
    ``check_input=False`` where a model feeds them values it produced itself.
    """
    single = torch.is_tensor(x)
    if not single and not isinstance(x, (list, tuple)):
        return
    tensors = [x] if single else list(x)
    if single:
        names = [name]
    elif isinstance(name, str):
        names = [f"{name}[{i}]" for i in range(len(tensors))]
    else:
        names = list(name)
    todo = [(t, n) for t, n in zip(tensors, names) if torch.is_tensor(t) and t.is_floating_point() and t.numel()]
    if not todo:
        return
    # min and max in one pass (20x faster than an inf-norm on CPU): NaN propagates to both and
    # fails the comparison, inf and UNSEEN exceed the bound
    ok = [_within(torch.aminmax(t.detach())) for t, _ in todo]
    if bool(ok[0] if len(ok) == 1 else torch.stack(ok).all()):  # the one host sync
        return
    for t, n in todo:  # error path only: find and count
        bad = ~torch.isfinite(t) | (t.detach().abs() > 1e29)
        count = int(bad.sum())
        if count:
            raise ValueError(
                f"{n} has {count} NaN/inf/UNSEEN value(s); mask missing pixels (partial-sky "
                "sampling) instead of feeding them to the network"
            )


def _within(minmax, bound: float = 1e29) -> torch.Tensor:
    """min >= -bound and max <= bound, compared in float32 (in half precision 1e29 is inf)."""
    lo, hi = (v.float() for v in minmax)
    return (lo >= -bound) & (hi <= bound)


def check_tensor(x, name: str = "input") -> None:
    """Raise ValueError unless ``x`` is a torch tensor (a numpy map is named as such)."""
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}"
                         + (" (convert with torch.from_numpy)" if type(x).__module__ == "numpy" else ""))


def check_pixels(x: torch.Tensor, npix: int | None, name: str = "input", what: str = "") -> None:
    """Raise ValueError unless ``x`` is a tensor shaped (batch, npix, channels) (``npix`` None: any number of
    pixels); a channels-first (batch, channels, npix) tensor is named as such."""
    check_tensor(x, name)
    if x.dim() != 3:
        raise ValueError(f"{name} must be shaped (batch, pixels, channels), got shape {tuple(x.shape)}")
    if npix is not None and x.shape[1] != npix:
        extra = f" ({what})" if what else ""
        flipped = " (channels-first? the layout is (batch, pixels, channels))" if x.shape[2] == npix else ""
        raise ValueError(f"{name} has {x.shape[1]} pixels, expected {npix}{extra}{flipped}")


def check_channels(x: torch.Tensor, channels: int, name: str = "input") -> None:
    """Raise ValueError unless the last dimension of ``x`` is ``channels``."""
    if x.shape[-1] != channels:
        raise ValueError(f"{name} has {x.shape[-1]} channels, the layer expects {channels}")


def check_dtype(dtype: torch.dtype, expected: torch.dtype, name: str = "input", owner: str = "the layer's",
                supported: tuple[torch.dtype, ...] | None = None) -> None:
    """Raise ValueError unless ``dtype`` (of an input) is ``expected`` (a layer's parameters or
    tables): a clear message instead of torch's "expected m1 and m2 to have the same dtype".
    ``supported``: the dtypes the layer can be built in; an input dtype outside them is told to
    cast the input only (building the module in it would fail)."""
    if dtype != expected and supported is not None and dtype not in supported:
        raise ValueError(f"{name} dtype {dtype} differs from {owner} {expected}; cast the input (x.to({expected})): "
                         f"the layer computes in {' or '.join(map(str, supported))} only")
    if dtype != expected:
        raise ValueError(
            f"{name} dtype {dtype} differs from {owner} {expected}; cast the input (x.to({expected})) or build the "
            f"module with dtype={dtype}" + (f" (module.to({dtype}) works too, but a graph layer's Laplacian then keeps "
                                            f"its values rounded to {expected})" if dtype.itemsize > expected.itemsize
                                           else f" or cast it (module.to({dtype}))")
        )


def is_bool(value) -> bool:
    """True for a Python, numpy or torch bool (scalar or 0-d array): what integer settings refuse,
    though ``int(True) == True``."""
    return isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) in (np.bool_, torch.bool)


def as_integer(value) -> int | None:
    """``value`` as int if it is an integer (an int, a numpy integer or an integral float), else None (a
    bool (Python, numpy or torch), a string, None, NaN, inf or a non-integral float): the test of every
    integer setting, for checks whose range or message the ``check_*_int`` helpers do not cover."""
    if is_bool(value):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n == value else None


def _check_int(value, name: str, minimum: int, words: str, optional: bool) -> int | None:
    """``value`` as int, or ValueError "``name`` must be ``words``[ or None], got ..." unless it is an
    integer >= ``minimum`` (an int, a numpy integer or an integral float; not a bool (Python, numpy or torch), a string, NaN
    or inf); ``optional``: None passes (returned as None) and the message says "or None"."""
    if optional and value is None:
        return None
    words = f"{words} or None" if optional else words
    n = as_integer(value)
    if n is None or n < minimum:
        raise ValueError(f"{name} must be {words}, got {value!r}")
    return n


def check_positive_int(value, name: str, optional: bool = False) -> int | None:
    """``value`` as int if it is an integer >= 1, else ValueError naming ``name`` (see :func:`_check_int`)."""
    return _check_int(value, name, 1, "a positive integer", optional)


def check_nonnegative_int(value, name: str, optional: bool = False) -> int | None:
    """``value`` as int if it is an integer >= 0, else ValueError naming ``name`` (see :func:`_check_int`)."""
    return _check_int(value, name, 0, "a non-negative integer", optional)


def check_positive_ints(name: str, values, allow_empty: bool = False) -> tuple[int, ...]:
    """``values`` as a tuple of ints, or ValueError unless it is a non-empty sequence of integers >= 1
    (``allow_empty``: an empty sequence passes too, e.g. the hidden sizes of an MLP)."""
    message = (f"{name} must be a {'' if allow_empty else 'non-empty '}sequence of positive integers"
               f"{' (or empty)' if allow_empty else ''}, got {values!r}")
    try:
        values = tuple(values)
        if not values:
            if allow_empty:
                return ()
            raise ValueError(message)
        return tuple(check_positive_int(v, name) for v in values)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def check_nested_order(order: str) -> None:
    """ValueError unless ``order`` is "NESTED" (any case): the pixel order every graph model
    and pooling layer assumes (children of a pixel are consecutive)."""
    if str(order).upper() != "NESTED":
        raise ValueError(
            f"maps must be in HEALPix NESTED order (got order={order!r}); convert a RING map with "
            "healpy.reorder(m, r2n=True) and declare order='NESTED'"
        )


def check_healpix_order(order, name: str = "order", allow_any: bool = False) -> str:
    """``order`` upper-cased if it is a HEALPix pixel ordering, "NESTED" or "RING" in any case ("ANY" too
    where ``allow_any``: either ordering accepted), else ValueError "``name`` must be 'NESTED' or 'RING'
    ..., got ``order``" (the value as given).  No other normalisation: a caller reading a file header
    strips the spaces itself."""
    upper = str(order).upper()
    if upper not in ("NESTED", "RING") and not (allow_any and upper == "ANY"):
        words = "'NESTED', 'RING' or 'ANY'" if allow_any else "'NESTED' or 'RING'"
        raise ValueError(f"{name} must be {words} (case-insensitive), got {order!r}")
    return upper
