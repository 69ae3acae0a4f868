"""Colour matrices and scar geometry shared by every renderer (torch and DALI) and the plan sampler.

Colour maths are DALI's ``color_twist`` (a linear map in YIQ space); geometry uses DALI's
pixel-centre convention (centres at ``i + 0.5``, ``warp_affine`` with ``inverse_map=True``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from sslad.synth.plan import Plan


def rotated_half_extent(h: torch.Tensor, w: torch.Tensor,
                         angle_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half height/width of the axis-aligned bounding box of an (h, w) box rotated by angle."""
    a = angle_deg * (math.pi / 180.0)
    c, s = a.cos().abs(), a.sin().abs()
    return (h * c + w * s) / 2, (h * s + w * c) / 2



_RGB2YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]], dtype=torch.float64
)
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)  # DALI 2.x uses the exact inverse (identity stays identity)


def color_matrices(jitter: torch.Tensor, half_range: float = 128.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 3) matrices and (N, 3) offsets of DALI's ``color_twist`` for (b, c, s, hue°) rows.

    out = M @ rgb + offset, with M = b*c * YIQ2RGB @ Hue(h) @ Sat(s) @ RGB2YIQ and
    offset = (half - half*c) * b.
    """
    j = jitter.to(torch.float64)
    b, c, s, hue = j[:, 0], j[:, 1], j[:, 2], j[:, 3] * (math.pi / 180.0)
    n = j.shape[0]
    core = torch.zeros(n, 3, 3, dtype=torch.float64)
    core[:, 0, 0] = 1.0
    core[:, 1, 1] = hue.cos() * s
    core[:, 2, 2] = hue.cos() * s
    core[:, 1, 2] = hue.sin() * s
    core[:, 2, 1] = -hue.sin() * s
    m = (b * c)[:, None, None] * (_YIQ2RGB @ core @ _RGB2YIQ)
    off = ((half_range - half_range * c) * b)[:, None].expand(n, 3)
    return m.to(torch.float32), off.to(torch.float32).contiguous()


def scar_windows(plan: Plan) -> torch.Tensor:
    """int64 (N, 4) destination windows (y, x, h, w) that hold every pixel a rotated paste can touch.

    The rotated box's bounding box, grown by one pixel for the bilinear fringe, clipped to the image.
    """
    S = plan.image_size
    y0, x0, h, w = plan.box.unbind(1)
    hh, hw = rotated_half_extent(h, w, plan.angle)
    cy, cx = plan.center.unbind(1)
    top = (cy - hh - 1).floor().clamp(0, S)
    left = (cx - hw - 1).floor().clamp(0, S)
    bottom = (cy + hh + 1).ceil().clamp(0, S)
    right = (cx + hw + 1).ceil().clamp(0, S)
    return torch.stack([top, left, (bottom - top).clamp(min=1), (right - left).clamp(min=1)], 1).to(torch.int64)


def window_affines(plan: Plan, windows: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) maps from window pixel coordinates (x, y) to *patch* coordinates (x, y).

    Patch coordinates are relative to the source box's top-left corner; both use pixel centres
    at ``i + 0.5`` (DALI's ``warp_affine`` convention with ``inverse_map=True``).
    """
    return box_window_affines(plan.box, plan.center, plan.angle, windows)


def box_window_affines(box: torch.Tensor, center: torch.Tensor, angle: torch.Tensor,
                       windows: torch.Tensor) -> torch.Tensor:
    """:func:`window_affines` of (M, 4) boxes landing at (M, 2) centres, rotated by (M,) angles."""
    m = box_affines(box, center, angle)
    wy, wx = windows[:, 0].to(torch.float32), windows[:, 1].to(torch.float32)
    t = m[:, :, 2] + m[:, :, 0] * wx[:, None] + m[:, :, 1] * wy[:, None]
    t = t - torch.stack([box[:, 1], box[:, 0]], 1)
    return torch.cat([m[:, :, :2], t[:, :, None]], dim=2)


def inverse_affines(plan: Plan) -> torch.Tensor:
    """(N, 2, 3) maps from destination pixel coordinates (x, y) to source coordinates (x, y).

    Coordinates are continuous with pixel centres at ``i + 0.5`` (DALI's ``warp_affine``
    convention with ``inverse_map=True``). The box rotates about its own centre.
    """
    return box_affines(plan.box, plan.center, plan.angle)


def box_affines(box: torch.Tensor, center: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """:func:`inverse_affines` of (M, 4) boxes landing at (M, 2) centres, rotated by (M,) angles."""
    y0, x0, h, w = box.unbind(1)
    scy, scx = y0 + h / 2, x0 + w / 2
    cy, cx = center.unbind(1)
    a = angle * (math.pi / 180.0)
    cos, sin = a.cos(), a.sin()
    # src = R(-a) (dst - c) + sc, in (x, y); R(a) rotates counter-clockwise on screen (y down).
    m = torch.zeros(len(box), 2, 3)
    m[:, 0, 0] = cos
    m[:, 0, 1] = -sin
    m[:, 1, 0] = sin
    m[:, 1, 1] = cos
    m[:, 0, 2] = scx - (cos * cx - sin * cy)
    m[:, 1, 2] = scy - (sin * cx + cos * cy)
    return m


def crack_segments(plan: Plan) -> torch.Tensor:
    """float32 (N, K, 5) segments (cy, cx, h, w, angle) of each row, unused ones a copy of segment 0.

    A crack's alpha is the maximum over its segments, so a repeated segment changes nothing and
    every row can warp the same number of segments (the DALI graph has one fixed set of ops).
    """
    seg = plan.crack
    used = torch.arange(seg.shape[1])[None, :] < plan.crack_segments[:, None]
    return torch.where(used[:, :, None], seg, seg[:, :1])


def crack_affines(plan: Plan, windows: torch.Tensor) -> torch.Tensor:
    """(N, K, 2, 3) maps from window pixel coordinates (x, y) to each segment's box coordinates (x, y).

    A segment is a box of ``h`` x ``w`` pixels at (0, 0) landing at (cy, cx), rotated by its angle,
    like a line scar; the maps read :func:`crack_segments` (unused segments repeat segment 0).
    """
    seg = crack_segments(plan)
    n, k = seg.shape[:2]
    flat = seg.reshape(n * k, 5)
    box = torch.cat([torch.zeros(n * k, 2), flat[:, 2:4]], 1)
    win = windows.repeat_interleave(k, dim=0)
    return box_window_affines(box, flat[:, :2], flat[:, 4], win).reshape(n, k, 2, 3)


def grid_affines(plan: Plan) -> torch.Tensor:
    """(N, 2, 3) maps from blob-box pixel coordinates (x, y) to coordinates in the blob's noise grid.

    Pixel centres are at ``i + 0.5`` on both sides; the box's ``w`` pixels span grid x from 0.5
    to ``grid_size - 0.5`` (the centres of its first and last cells), so bilinear sampling stays
    between cell centres and never reads past the grid: no border mode can make backends differ.
    """
    n = (plan.grid_size.to(torch.float32) - 1).clamp(min=0)
    h, w = plan.box[:, 2].clamp(min=1), plan.box[:, 3].clamp(min=1)
    m = torch.zeros(len(plan), 2, 3)
    m[:, 0, 0] = n / w
    m[:, 1, 1] = n / h
    m[:, :, 2] = 0.5
    return m
