"""Anomaly maps at image resolution: upsample the network's per-pixel probabilities, then smooth.

Smoothing follows anomalib's PatchCore (a Gaussian of sigma 4 px at 256 px), scaled with the image
side so a map means the same at any ``--image-size``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Gaussian sigma in pixels at 256 px; scaled linearly with the image side.
SIGMA_256 = 4.0


def map_sigma(size: int) -> float:
    return SIGMA_256 * size / 256.0


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """float (N, 1, H, W) -> (N, 1, H, W): a separable Gaussian of ``sigma`` px with reflect padding (borders
    are not darkened). Plain tensor ops (the export traces it)."""
    k = _gaussian_kernel(sigma).to(maps.device)
    r = (k.shape[0] - 1) // 2
    m = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def smooth_maps(probs: torch.Tensor, size: int) -> torch.Tensor:
    """float (N, 1, h, w) low-resolution maps -> float32 (N, S, S): bilinear upsampling, then
    :func:`gaussian_blur` of :func:`map_sigma` px. Plain tensor ops (the export uses it too)."""
    m = F.interpolate(probs.float(), size=(size, size), mode="bilinear", align_corners=False)
    return gaussian_blur(m, map_sigma(size))[:, 0]


def to_image_maps(probs: torch.Tensor, size: int, chunk: int = 64) -> torch.Tensor:
    """:func:`smooth_maps` in chunks of ``chunk`` images (bounded memory at large sizes)."""
    out = torch.empty((probs.shape[0], size, size), dtype=torch.float32)
    for i in range(0, probs.shape[0], chunk):
        out[i:i + chunk] = smooth_maps(probs[i:i + chunk], size)
    return out
