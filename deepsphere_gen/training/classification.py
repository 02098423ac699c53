"""The library's classification convention, channels-last: class scores on the LAST axis.

Outputs (B, classes) with integer targets (B,) (one class per sample), or per-pixel outputs
(B, npix, classes) with integer targets (B, npix) (segmentation, e.g. ``SphericalUNet``).
:func:`cross_entropy` is the default loss of :func:`~deepsphere_gen.training.fit` and
:func:`~deepsphere_gen.training.evaluate`; :func:`is_classification` decides whether accuracies
are computed, :func:`correct_samples` counts them.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["cross_entropy", "is_classification", "correct_samples"]


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits ``out`` (..., classes) against ``y``: integer classes of shape
    ``out.shape[:-1]``, or float class probabilities of ``out``'s shape.  (B, classes) is exactly
    ``torch.nn.functional.cross_entropy(out, y)``; (B, npix, classes) is torch's with the class axis
    moved to 1 (the mean over samples and pixels).  Other shapes: ValueError naming both."""
    if not (is_classification(out, y) or (out.dim() >= 2 and y.is_floating_point() and y.shape == out.shape)):
        raise ValueError(f"cross_entropy: outputs {tuple(out.shape)} do not fit {y.dtype} targets {tuple(y.shape)}: "
                         "classes go on the LAST axis (channels-last), outputs (batch, classes) or (batch, pixels, "
                         "classes) with integer targets (batch,) or (batch, pixels) (or float probabilities of the "
                         "outputs' shape); for another layout pass fit / evaluate a loss_fn")
    if out.dim() == 2:
        return nn.functional.cross_entropy(out, y)
    return nn.functional.cross_entropy(out.movedim(-1, 1), y.movedim(-1, 1) if y.is_floating_point() else y)


def is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether a batch is a classification: integer targets of shape ``out.shape[:-1]`` (outputs (B, classes)
    with targets (B,), or (B, npix, classes) with (B, npix)).  Only then are accuracies computed
    (:func:`~deepsphere_gen.training.evaluate`, :func:`~deepsphere_gen.training.fit`); else they are None."""
    return out.dim() >= 2 and not y.is_floating_point() and y.shape == out.shape[:-1]


def correct_samples(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Correctly classified samples of a classification batch, from its predicted classes ``pred``
    (``out.argmax(-1)``, of ``y``'s shape): a count for targets (B,); for (B, npix) each pixel counts 1/npix
    (the sum of the samples' pixel accuracies)."""
    return float((pred == y).sum()) / y.shape[1:].numel()
