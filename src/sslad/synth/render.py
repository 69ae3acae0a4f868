"""Batched torch renderer of a pretext plan (CPU or CUDA): the reference backend.

No per-image Python loop: each step is one batched tensor op over a chunk of the plan.
The maths mirror the DALI graph (``sslad.dali_pipes``) step for step:

    A = round(clamp(twist(crop(padded[index], shift), jitter)))     # whole-image augmentation
    J = clamp(twist(A, patch_jitter))                               # jittered patch source
    W = warp([J, box indicator], inverse_affine)                    # bilinear, zero outside
    C = lerp(W_rgb, color, fill)                                    # line scar: one colour
    out = round(A * (1 - W_mask) + C * W_mask)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslad.synth.plan import Plan, color_matrices, inverse_affines


def reflect_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> uint8 (N, 3, S+2p, S+2p), reflected borders (done once per dataset)."""
    if pad == 0:
        return images
    if pad >= images.shape[-1]:
        raise ValueError(f"translation padding {pad} must be smaller than the image side {images.shape[-1]}")
    return F.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)


def crop_batch(padded: torch.Tensor, index: torch.Tensor, shift: torch.Tensor, size: int) -> torch.Tensor:
    """Per-sample integer crops ``padded[index[i], :, dy:dy+S, dx:dx+S]`` as one gather (uint8)."""
    dev = padded.device
    ar = torch.arange(size, device=dev)
    rows = (shift[:, 0].to(dev)[:, None] + ar)[:, None, :, None]  # (N,1,S,1)
    cols = (shift[:, 1].to(dev)[:, None] + ar)[:, None, None, :]  # (N,1,1,S)
    idx = index.to(dev)[:, None, None, None]
    ch = torch.arange(padded.shape[1], device=dev)[None, :, None, None]
    return padded[idx, ch, rows, cols]


def color_twist(x: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """DALI-equivalent ``color_twist`` of float (N, 3, H, W) images with values in 0..255 (no clamp)."""
    m, off = color_matrices(jitter.cpu())
    m, off = m.to(x.device), off.to(x.device)
    return torch.einsum("nij,njhw->nihw", m, x) + off[:, :, None, None]


def box_indicator(box: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """float (N, 1, S, S): 1 inside the integer box (y0, x0, h, w), 0 elsewhere."""
    box = box.to(device)
    ar = torch.arange(size, device=device, dtype=torch.float32)
    y0, x0, h, w = box.unbind(1)
    iy = (ar[None] >= y0[:, None]) & (ar[None] < (y0 + h)[:, None])
    ix = (ar[None] >= x0[:, None]) & (ar[None] < (x0 + w)[:, None])
    return (iy[:, :, None] & ix[:, None, :]).to(torch.float32)[:, None]


def warp(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Bilinear warp with (N, 2, 3) destination->source maps in pixel-centre coordinates."""
    n, _, h, w = x.shape
    dev = x.device
    inv = inv.to(dev)
    ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sx = inv[:, 0, 0, None, None] * gx + inv[:, 0, 1, None, None] * gy + inv[:, 0, 2, None, None]
    sy = inv[:, 1, 0, None, None] * gx + inv[:, 1, 1, None, None] * gy + inv[:, 1, 2, None, None]
    grid = torch.stack([sx * (2.0 / w) - 1.0, sy * (2.0 / h) - 1.0], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def render_chunk(plan: Plan, padded: torch.Tensor) -> torch.Tensor:
    """Render every row of ``plan`` from the padded base images; returns uint8 (N, 3, S, S)."""
    size = plan.image_size
    dev = padded.device
    base = crop_batch(padded, plan.index, plan.shift, size).float()
    a = color_twist(base, plan.jitter).round_().clamp_(0, 255)
    paste = plan.box[:, 2] > 0
    if not bool(paste.any()):
        return a.to(torch.uint8)
    j = color_twist(a, plan.patch_jitter).clamp_(0, 255)
    src = torch.cat([j, box_indicator(plan.box, size, dev)], dim=1)
    w = warp(src, inverse_affines(plan))
    content, mask = w[:, :3], w[:, 3:4]
    fill = plan.fill.to(dev)[:, None, None, None]
    color = plan.color.to(dev)[:, :, None, None]
    content = content * (1 - fill) + color * fill
    out = a * (1 - mask) + content * mask
    return out.round_().clamp_(0, 255).to(torch.uint8)


def render(plan: Plan, padded: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Render a whole plan in chunks (bounds the float temporaries); uint8 (N, 3, S, S) on padded's device."""
    out = torch.empty((len(plan), 3, plan.image_size, plan.image_size), dtype=torch.uint8, device=padded.device)
    for start in range(0, len(plan), chunk):
        stop = min(start + chunk, len(plan))
        out[start:stop] = render_chunk(plan.slice(start, stop), padded)
    return out
