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


def to_image_maps(probs: torch.Tensor, size: int, chunk: int = 64) -> torch.Tensor:
    """float (N, 1, h, w) low-resolution maps -> float32 (N, S, S) maps: bilinear upsampling, then a
    separable Gaussian (reflect padding, so borders are not darkened)."""
    k = _gaussian_kernel(map_sigma(size))
    r = (len(k) - 1) // 2
    out = torch.empty((probs.shape[0], size, size), dtype=torch.float32)
    for i in range(0, probs.shape[0], chunk):
        m = F.interpolate(probs[i:i + chunk].float(), size=(size, size), mode="bilinear", align_corners=False)
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        m = F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        out[i:i + chunk] = m[:, 0]
    return out
