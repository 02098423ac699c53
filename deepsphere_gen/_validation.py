"""Input checks shared by every layer: clear errors instead of silent NaNs."""
from __future__ import annotations

import torch

__all__ = ["UNSEEN", "check_finite", "check_pixels", "check_channels", "check_positive_int"]

#: healpy's sentinel for missing pixels.
UNSEEN = -1.6375e30


def check_finite(x: torch.Tensor, name: str = "input") -> None:
    """Raise ValueError if ``x`` holds NaN, inf or healpy UNSEEN values.

    Maps with missing data must be declared as partial sky (mask) instead.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        return
    bad = ~torch.isfinite(x) | (x.abs() > 1e29)
    if bool(bad.any()):
        n = int(bad.sum())
        raise ValueError(
            f"{name} has {n} NaN/inf/UNSEEN value(s); mask missing pixels (partial-sky "
            "sampling) instead of feeding them to the network"
        )


def check_pixels(x: torch.Tensor, npix: int, name: str = "input", what: str = "") -> None:
    """Raise ValueError unless ``x`` is shaped (batch, npix, channels)."""
    if x.dim() != 3:
        raise ValueError(f"{name} must be shaped (batch, pixels, channels), got shape {tuple(x.shape)}")
    if x.shape[1] != npix:
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name} has {x.shape[1]} pixels, expected {npix}{extra}")


def check_channels(x: torch.Tensor, channels: int, name: str = "input") -> None:
    """Raise ValueError unless the last dimension of ``x`` is ``channels``."""
    if x.shape[-1] != channels:
        raise ValueError(f"{name} has {x.shape[-1]} channels, the layer expects {channels}")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as int, or raise ValueError unless it is an integer >= 1."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if n != value or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n
