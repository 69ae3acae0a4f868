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

from sslad.synth.torch_render import window_views


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
    u = torch.rand(masks.shape[0], 2, generator=generator)
    rows, cols = masks.amax(2) > 0, masks.amax(1) > 0  # reduced straight from the masks, no bool copy of the set
    return torch.stack([_span(rows, crop, u[:, 0]), _span(cols, crop, u[:, 1])], dim=1)


def take_crops(images: torch.Tensor, masks: torch.Tensor, offsets: torch.Tensor, crop: int,
               index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows at (B, 2) ``offsets`` of (N, C, S, S) images and (N, S, S) masks: (B, C, P, P), (B, P, P).

    ``index`` (B,) says which images (default: the first B in order). The renderer's
    :func:`~sslad.synth.torch_render.window_views` makes every window a view, so the batch is cut straight out of
    the whole set with B indices per axis: only the windows are copied, not B whole S-pixel images first nor a
    per-pixel index (15x the gather-then-crop it replaced at 384 px, 8x at 256: ``benchmarks/crop_gather.py``).
    """
    dev = images.device
    b = torch.arange(len(offsets), device=dev) if index is None else index.to(dev)
    y, x = offsets[:, 0].to(dev), offsets[:, 1].to(dev)
    return (window_views(images, crop, crop)[b, :, y, x].contiguous(),
            window_views(masks[:, None], crop, crop)[b, 0, y, x].contiguous())
