"""Planar CNN on flat images: the non-spherical baseline of the spherical-digits benchmark.

For the rotated test sets the planar model sees the spherical maps carried back to the
tangent-plane grid (``deepsphere_gen.datasets.BackProjection``), so a digit rotated
away from the tangent point mostly leaves its view: the NR/R collapse of Cohen et al.
2018 (planar CNN: 99.32 NR/NR, 11.36 NR/R on MNIST).
"""
from __future__ import annotations

import torch
from torch import nn

from .._validation import check_finite, check_positive_int, check_positive_ints

__all__ = ["PlanarCNN"]


class PlanarCNN(nn.Module):
    """Blocks of (3x3 conv 'same', ReLU, 2x2 max-pool), then a linear classifier.

    Parameters
    ----------
    image_size : int or (H, W) of the input images.
    in_channels : image channels.
    channels : output channels of each conv block; each halves H and W (floor),
        so ``len(channels) <= log2(min(H, W))``.
    n_classes : logits out.
    kernel_size : odd conv kernel size.

    forward: images (batch, H, W) or (batch, in_channels, H, W) -> logits (batch, n_classes).
    """

    def __init__(self, image_size=28, in_channels: int = 1, channels=(16, 32), n_classes: int = 10, kernel_size: int = 3):
        super().__init__()
        try:
            size = tuple(image_size)
        except TypeError:  # one side
            size = (image_size, image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be a positive integer or (H, W), got {image_size!r}")
        H, W = (check_positive_int(v, "image_size") for v in size)
        in_channels, n_classes = check_positive_int(in_channels, "in_channels"), check_positive_int(n_classes, "n_classes")
        channels = check_positive_ints("channels", channels)
        kernel_size = check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if min(H, W) >> len(channels) < 1:
            raise ValueError(f"{len(channels)} pooling blocks need images of at least {2 ** len(channels)} pixels a side, got {(H, W)}")
        self.image_size, self.in_channels = (H, W), in_channels
        layers, c_in = [], in_channels
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        n_flat = c_in * (H >> len(channels)) * (W >> len(channels))
        self.classifier = nn.Linear(n_flat, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and self.in_channels == 1:
            x = x[:, None]
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ValueError(
                f"images must be shaped (batch, {self.in_channels}, {self.image_size[0]}, {self.image_size[1]})"
                f"{' or (batch, H, W)' if self.in_channels == 1 else ''}, got {tuple(x.shape)}"
            )
        check_finite(x, "images")
        return self.classifier(self.features(x).flatten(1))
