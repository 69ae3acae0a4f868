"""The pretext graph as a DALI ``@pipeline_def``: one graph, the device is a parameter.

One graph iteration renders a batch of plan *groups* (see :mod:`sslad.synth.plan`) exactly like
:mod:`sslad.synth.render`, with three outputs (good, cut-paste, scar). Only the whole-image
augmentation touches every pixel; the pastes work on patch-sized, ragged tensors — what DALI's
per-sample shapes are made for:

    A    = color_twist(slice(base, shift), jitter)                           uint8  -> good
    cut  = multi_paste(A, color_twist(slice(A, cut box), patch_jitter))      uint8  -> cut-paste
    P    = clamp(color_twist(slice(A, scar box), patch_jitter)) | colour     float, (h, w, 3)
    W    = warp_affine(cat(P, 1), window <- patch, size=window, fill 0)      premultiplied alpha
    scar = multi_paste(A, cast(slice(A, window) * (1 - W_a) + W_rgb))        uint8  -> scar
    masks: multi_paste(0, 1 in the cut box) and multi_paste(0, W_a >= 0.5)   uint8 0/1 (H, W, 1)

Irregular rows (``plan.variant == 1``) are then blended in their box, for both classes:

    soft  = clamp((warp_affine(grid, box <- grid) - t) * k + 0.5, 0, 1)     bilinear upsample
    C     = clamp(color_twist(slice(blend, pos) | slice(A, box), jitter))    blend (1) | alter (2)
    out   = multi_paste(out, cast(out_box * (1 - opacity * soft) + C * opacity * soft))
    mask  = multi_paste(mask, mask_box | (soft >= 0.5))

Crack rows (``plan.variant == 2``, class 2) then darken or brighten the scar output under the
maximum of their segments' warped box indicators, in the crack's window:

    a     = max_k warp_affine(slice(ones, segment k's h x w), window <- segment k)
    out   = multi_paste(out, cast(out_win * (1 - opacity a) + clamp(color_twist(out_win)) * opacity a))
    mask  = multi_paste(mask, mask_win | (a >= 0.5))

The graph has no conditionals, so every group runs every part and the plan's per-row flags
(packed by :func:`pack_params`) make all but one a no-op: an irregular or crack row's plain paste
is a 1x1 identity copy (cut-paste) or a zero-alpha warp (scar), and the other rows' blob and crack
have opacity 0 and a 1x1 window. A crack of fewer than ``CRACK_MAX`` segments repeats its first
(the maximum does not change).

Inputs (fed per batch through ``external_source``, so the core is reader-free and testable):
``base`` is the reflect-padded base image of each group (HWC uint8, on the graph's device) and
``blend`` the reflect-padded image a blend row takes its content from (the base image again for
other groups), and ``params`` the group packed by :func:`pack_params` (float32, always on the
CPU, since DALI takes per-sample arguments from the CPU).
"""

from __future__ import annotations

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath

from sslad.synth.geometry import crack_affines, crack_segments, grid_affines, scar_windows, window_affines
from sslad.synth.plan import CRACK_MAX, GRID, Plan, PretextClass

_FIELDS = [
    ("shift", 2), ("jitter", 4),
    ("cut_jitter", 4), ("cut_box", 4), ("cut_shapes", 4), ("cut_anchors", 4),
    ("scar_jitter", 4), ("scar_box", 4), ("scar_window", 4), ("scar_affine", 6), ("color", 3), ("fill", 1),
    ("scar_shapes", 4), ("scar_anchors", 4), ("cut_keep", 1), ("scar_keep", 1),
    *((f"{c}_irr_{name}", n) for c in ("cut", "scar") for name, n in (
        ("win", 4), ("shapes", 4), ("anchors", 4), ("grid", GRID * GRID), ("affine", 6), ("blob", 4),
        ("jitter", 4), ("pos", 2))),
    ("crack_win", 4), ("crack_shapes", 4), ("crack_anchors", 4), ("crack_jitter", 4), ("crack_blob", 2),
    *((f"crack_{name}{k}", n) for k in range(CRACK_MAX) for name, n in (("seg", 2), ("affine", 6))),
]
#: Layout of one packed group: name -> (start, stop).
PARAM_SLICES: dict[str, tuple[int, int]] = {}
_pos = 0
for _name, _n in _FIELDS:
    PARAM_SLICES[_name] = (_pos, _pos + _n)
    _pos += _n
NUM_PARAMS = _pos


def pack_params(plan: Plan) -> np.ndarray:
    """(G, NUM_PARAMS) float32: one row per group, every number the graph needs."""
    plan.validate()
    S = float(plan.image_size)
    shared = plan.of_class(PretextClass.GOOD)
    cut_irr, scar_irr = plan.of_class(PretextClass.CUTPASTE), plan.of_class(PretextClass.SCAR)
    cut, scar = _plain_part(cut_irr), _plain_part(scar_irr)
    g = plan.groups
    full = torch.tensor([S, S]).expand(g, 2)
    zero2 = torch.zeros(g, 2)
    cut_tl = (cut.center - cut.box[:, 2:] / 2).round()
    win = scar_windows(scar)
    cols = {
        "shift": shared.shift, "jitter": shared.jitter,
        "cut_jitter": cut.patch_jitter, "cut_box": cut.box,
        "cut_shapes": torch.cat([full, cut.box[:, 2:]], 1), "cut_anchors": torch.cat([zero2, cut_tl], 1),
        "scar_jitter": scar.patch_jitter, "scar_box": scar.box, "scar_window": win,
        "scar_affine": window_affines(scar, win).reshape(g, 6), "color": scar.color, "fill": scar.fill[:, None],
        "scar_shapes": torch.cat([full, win[:, 2:]], 1), "scar_anchors": torch.cat([zero2, win[:, :2]], 1),
        "cut_keep": (cut_irr.variant == 0).float()[:, None], "scar_keep": (scar_irr.variant == 0).float()[:, None],
    }
    for c, rows in (("cut", cut_irr), ("scar", scar_irr)):
        irr = rows.irregular()
        v = irr.float()[:, None]
        blob_box = torch.where(irr[:, None], rows.box, torch.tensor([0.0, 0.0, 1.0, 1.0]))
        blend = rows.blend_pos.float() if c == "cut" else blob_box[:, :2]  # where the content comes from
        cols.update({
            f"{c}_irr_win": blob_box,
            f"{c}_irr_shapes": torch.cat([full, blob_box[:, 2:]], 1),
            f"{c}_irr_anchors": torch.cat([zero2, blob_box[:, :2]], 1),
            f"{c}_irr_grid": rows.grid.reshape(g, -1),
            f"{c}_irr_affine": grid_affines(rows).reshape(g, 6),
            f"{c}_irr_blob": torch.cat([rows.blob[:, :2], rows.blob[:, 2:3] * v, v], 1),
            f"{c}_irr_jitter": torch.where(irr[:, None], rows.patch_jitter, torch.tensor([1.0, 1.0, 1.0, 0.0])),
            f"{c}_irr_pos": torch.where(irr[:, None], blend, 0.0),
        })
    cols.update(_crack_part(scar_irr))
    out = torch.cat([cols[name].to(torch.float32) for name, _ in _FIELDS], dim=1)
    return out.contiguous().numpy()


def _crack_part(rows: Plan) -> dict[str, torch.Tensor]:
    """The crack columns of the class-2 rows: a 1x1 window with opacity 0 for rows that are not cracks."""
    g = len(rows)
    crack = rows.cracks()
    v = crack.float()[:, None]
    win = torch.where(crack[:, None], rows.box, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    seg = crack_segments(rows)
    size = torch.where(crack[:, None, None], seg[:, :, 2:4], 1.0)  # (G, K, 2): each segment's h x w box
    aff = crack_affines(rows, win)
    cols = {
        "crack_win": win, "crack_shapes": torch.cat([torch.full((g, 2), float(rows.image_size)), win[:, 2:]], 1),
        "crack_anchors": torch.cat([torch.zeros(g, 2), win[:, :2]], 1),
        "crack_jitter": torch.where(crack[:, None], rows.patch_jitter, torch.tensor([1.0, 1.0, 1.0, 0.0])),
        "crack_blob": torch.cat([rows.blob[:, 2:3] * v, v], 1),
    }
    for k in range(CRACK_MAX):
        cols[f"crack_seg{k}"] = size[:, k]
        cols[f"crack_affine{k}"] = aff[:, k].reshape(g, 6)
    return cols


def _plain_part(rows: Plan) -> Plan:
    """The rows of one class with each irregular or crack row's plain paste made a 1x1 no-op at the corner.

    Cut-paste copies pixel (0, 0) onto itself with the identity twist (exact for uint8); the scar
    warps its 1x1 patch with alpha multiplied by ``scar_keep`` = 0, so it changes no pixel.
    """
    irr = rows.variant != 0
    if not bool(irr.any()):
        return rows
    out = rows.rows(slice(None))
    out.box = torch.where(irr[:, None], torch.tensor([0.0, 0.0, 1.0, 1.0]), rows.box)
    out.center = torch.where(irr[:, None], torch.tensor([0.5, 0.5]), rows.center)
    out.angle = torch.where(irr, 0.0, rows.angle)
    out.patch_jitter = torch.where(irr[:, None], torch.tensor([1.0, 1.0, 1.0, 0.0]), rows.patch_jitter)
    return out


@pipeline_def(enable_conditionals=False)
def pretext_pipeline(image_size: int, device: str = "cpu"):
    """Render packed groups; ``device`` is ``"cpu"`` (DALI CPU operators) or ``"gpu"``.

    Returns three HWC uint8 batches, good, cut-paste and scar, one sample per group each, then
    the cut-paste and scar masks (HW1 uint8 0/1; the good sample's mask is empty).
    """
    size = int(image_size)
    base = fn.external_source(name="base", device=device, layout="HWC", dtype=types.UINT8)
    blend = fn.external_source(name="blend", device=device, layout="HWC", dtype=types.UINT8)
    params = fn.external_source(name="params", device="cpu", dtype=types.FLOAT)

    def p(name):
        a, b = PARAM_SLICES[name]
        return params[a:b]

    def ip(name, shape=None):
        node = fn.cast(p(name), dtype=types.INT32)
        return fn.reshape(node, shape=shape) if shape else node

    def here(node):  # per-sample tensors used in arithmetic live on the graph's device
        return node.gpu() if device == "gpu" else node

    def twist(img, name, dtype=types.UINT8):
        j = p(name)
        return fn.color_twist(img, brightness=j[0], contrast=j[1], saturation=j[2], hue=j[3], dtype=dtype)

    # Whole-image augmentation, once per group: the good sample.
    shift = ip("shift")
    a = twist(fn.slice(base, start=shift, end=shift + size, axis_names="HW"), "jitter")

    def paste(canvas, piece, shapes, anchors):
        """``piece`` (h x w, top-left of its tensor) pasted into ``canvas`` at ``anchors[1]``.

        The piece is padded to the canvas's S x S first: DALI 2.4's GPU multi_paste reads every input with
        the output's row stride (measured on an H200: row r of an h x w piece came from offset r * S), so a
        smaller piece gave wrong pixels and, at larger sizes, an illegal memory access. Padding changes
        nothing on the CPU operators, which read each input with its own stride.
        """
        piece = fn.pad(piece, axis_names="HW", shape=[size, size])
        return fn.multi_paste(canvas, piece, shapes=shapes, out_anchors=anchors, output_size=[size, size])

    def plane(value):  # a constant (S, S, 1) uint8 plane on the graph's device
        return fn.constant(idata=value, shape=[size, size, 1], dtype=types.UINT8, layout="HWC", device=device)

    # Cut-paste: an exact copy of the jittered box; its mask is the box.
    box = ip("cut_box")
    patch = twist(fn.slice(a, start=box[0:2], shape=box[2:4], axis_names="HW"), "cut_jitter")
    shapes, anchors = ip("cut_shapes", [2, 2]), ip("cut_anchors", [2, 2])
    cut = paste(a, patch, shapes, anchors)
    ones = fn.cast(fn.slice(plane(1), start=[0, 0], shape=box[2:4], axis_names="HW") * here(p("cut_keep")),
                   dtype=types.UINT8)
    cut_mask = paste(plane(0), ones, shapes, anchors)

    # Scar: jittered patch (or one colour), warped into its window with premultiplied alpha.
    box = ip("scar_box")
    patch = dmath.clamp(twist(fn.slice(a, start=box[0:2], shape=box[2:4], axis_names="HW"), "scar_jitter",
                              types.FLOAT), 0.0, 255.0)
    fill, keep = here(p("fill")), here(p("scar_keep"))
    patch = (patch * (1.0 - fill) + here(p("color")) * fill) * keep
    alpha = fn.slice(fn.constant(fdata=1.0, shape=[size, size, 1], dtype=types.FLOAT, layout="HWC", device=device),
                     start=[0, 0], shape=box[2:4], axis_names="HW") * keep
    win = ip("scar_window")
    warped = fn.warp_affine(fn.cat(patch, alpha, axis=2), matrix=fn.reshape(p("scar_affine"), shape=[2, 3]),
                            size=fn.cast(win[2:4], dtype=types.FLOAT), fill_value=0.0,
                            interp_type=types.INTERP_LINEAR, inverse_map=True, dtype=types.FLOAT)
    under = fn.cast(fn.slice(a, start=win[0:2], shape=win[2:4], axis_names="HW"), dtype=types.FLOAT)
    blended = fn.cast(under * (1.0 - warped[:, :, 3:4]) + warped[:, :, 0:3], dtype=types.UINT8)
    shapes, anchors = ip("scar_shapes", [2, 2]), ip("scar_anchors", [2, 2])
    scar = paste(a, blended, shapes, anchors)
    inside = fn.cast(warped[:, :, 3:4] >= 0.5, dtype=types.UINT8)
    scar_mask = paste(plane(0), inside, shapes, anchors)

    def irregular(img, mask, source, c):
        """Blend a soft blob of ``source``'s twisted content into ``img`` (no-op for plain rows)."""
        win, pos, blob = ip(f"{c}_irr_win"), ip(f"{c}_irr_pos"), here(p(f"{c}_irr_blob"))
        grid = here(fn.reshape(p(f"{c}_irr_grid"), shape=[GRID, GRID, 1], layout="HWC"))
        noise = fn.warp_affine(grid, matrix=fn.reshape(p(f"{c}_irr_affine"), shape=[2, 3]),
                               size=fn.cast(win[2:4], dtype=types.FLOAT), fill_value=0.0,
                               interp_type=types.INTERP_LINEAR, inverse_map=True, dtype=types.FLOAT)
        soft = dmath.clamp((noise - blob[0:1]) * blob[1:2] + 0.5, 0.0, 1.0)
        alpha = soft * blob[2:3]
        content = dmath.clamp(twist(fn.slice(source, start=pos, shape=win[2:4], axis_names="HW"), f"{c}_irr_jitter",
                                    types.FLOAT), 0.0, 255.0)
        under = fn.cast(fn.slice(img, start=win[0:2], shape=win[2:4], axis_names="HW"), dtype=types.FLOAT)
        res = fn.cast(under * (1.0 - alpha) + content * alpha, dtype=types.UINT8)
        shapes, anchors = ip(f"{c}_irr_shapes", [2, 2]), ip(f"{c}_irr_anchors", [2, 2])
        img = paste(img, res, shapes, anchors)
        marked = fn.cast(soft * blob[3:4] >= 0.5, dtype=types.UINT8) | fn.slice(
            mask, start=win[0:2], shape=win[2:4], axis_names="HW")
        mask = paste(mask, marked, shapes, anchors)
        return img, mask

    cut, cut_mask = irregular(cut, cut_mask, blend, "cut")
    scar, scar_mask = irregular(scar, scar_mask, a, "scar")

    # Cracks: the image darkened or brightened under the maximum of the segments' warped boxes.
    win, blob = ip("crack_win"), here(p("crack_blob"))
    ones = fn.constant(fdata=1.0, shape=[size, size, 1], dtype=types.FLOAT, layout="HWC", device=device)
    comp = None
    for k in range(CRACK_MAX):
        seg = fn.slice(ones, start=[0, 0], shape=ip(f"crack_seg{k}"), axis_names="HW")
        warped = fn.warp_affine(seg, matrix=fn.reshape(p(f"crack_affine{k}"), shape=[2, 3]),
                                size=fn.cast(win[2:4], dtype=types.FLOAT), fill_value=0.0,
                                interp_type=types.INTERP_LINEAR, inverse_map=True, dtype=types.FLOAT)
        comp = warped if comp is None else dmath.max(comp, warped)
    alpha = comp * blob[0:1]
    under = fn.cast(fn.slice(scar, start=win[0:2], shape=win[2:4], axis_names="HW"), dtype=types.FLOAT)
    content = dmath.clamp(twist(fn.slice(scar, start=win[0:2], shape=win[2:4], axis_names="HW"), "crack_jitter",
                                types.FLOAT), 0.0, 255.0)
    res = fn.cast(under * (1.0 - alpha) + content * alpha, dtype=types.UINT8)
    shapes, anchors = ip("crack_shapes", [2, 2]), ip("crack_anchors", [2, 2])
    scar = paste(scar, res, shapes, anchors)
    marked = fn.cast(comp * blob[1:2] >= 0.5, dtype=types.UINT8) | fn.slice(
        scar_mask, start=win[0:2], shape=win[2:4], axis_names="HW")
    scar_mask = paste(scar_mask, marked, shapes, anchors)
    return a, cut, scar, cut_mask, scar_mask
