"""Patch-level training: random crops of the synthetic set that keep each sample's anomaly in view.

A run decoded at S can train on crops of P < S (``--crop P``): each step costs what a P-pixel step
costs, while the network learns from S-pixel detail, and scoring runs on the whole S image (the
network is fully convolutional), so small defects on large images keep their pixels. A crop must
not cut the anomaly away, or its class label would lie: the window holds the whole mask where it
fits, else it is centred on it; a good sample's window is anywhere. The windows are drawn once per
regeneration from a seeded generator, so a resumed run takes the same crops.
"""

from __future__ import annotations

import torch


def _span(present: torch.Tensor, crop: int, u: torch.Tensor) -> torch.Tensor:
    """Window starts along one axis for (N, S) ``present`` flags (where the mask has pixels) and (N,) uniforms."""
    n, s = present.shape
    free = s - crop
    idx = torch.arange(s, device=present.device)
    first = torch.where(present, idx, s).amin(1)
    last = torch.where(present, idx, -1).amax(1)
    lo = (last - crop + 1).clamp(0, free)  # the window must reach the mask's last pixel ...
    hi = first.clamp(0, free)  # ... and start at or before its first
    centre = ((first + last) // 2 - crop // 2).clamp(0, free)
    too_big = lo > hi
    lo, hi = torch.where(too_big, centre, lo), torch.where(too_big, centre, hi)
    empty = ~present.any(1)
    lo, hi = torch.where(empty, 0, lo), torch.where(empty, free, hi)
    return lo + (u.to(present.device) * (hi - lo + 1)).floor().long().clamp(max=hi - lo)


def crop_offsets(masks: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """int64 (N, 2) top-left (y, x) of ``crop`` x ``crop`` windows of the (N, S, S) masks (see the module)."""
    if not 0 < crop <= masks.shape[-1]:
        raise ValueError(f"crop {crop} must lie in (0, {masks.shape[-1]}]")
    m = masks.bool()
    u = torch.rand(masks.shape[0], 2, generator=generator)
    return torch.stack([_span(m.any(2), crop, u[:, 0]), _span(m.any(1), crop, u[:, 1])], dim=1)


def take_crops(images: torch.Tensor, masks: torch.Tensor, offsets: torch.Tensor,
               crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of (B, C, S, S) images and (B, S, S) masks at (B, 2) ``offsets``: (B, C, P, P), (B, P, P)."""
    dev = images.device
    r = torch.arange(crop, device=dev)
    rows = (offsets[:, 0].to(dev)[:, None] + r)[:, :, None]  # (B, P, 1)
    cols = (offsets[:, 1].to(dev)[:, None] + r)[:, None, :]  # (B, 1, P)
    b = torch.arange(images.shape[0], device=dev)[:, None, None]
    return images.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2).contiguous(), masks[b, rows, cols]
