"""Batched torch renderer of a pretext plan (CPU or CUDA): the reference backend.

Each step is one batched tensor op over the groups of a chunk (on the CPU, the whole-image pass A
goes in cache-sized steps of groups), and the pastes read and write only their patch and
destination windows, cut through ``unfold`` views. The maths mirror the DALI graph
(``sslad.dali_pipes``) step for step:

    A   = round(clamp(twist(crop(padded[index], shift), jitter)))     # once per group -> class 0
    cut = A with round(clamp(twist(A[box], patch_jitter))) copied at the destination (class 1)
    P   = clamp(twist(A[box], patch_jitter)), or the line colour      # scar patch, zero-padded
    W   = warp([P, 1], window <- patch affine)                         # bilinear, premultiplied
    scar = A with round(A_win * (1 - W_alpha) + W_rgb) in its window   # class 2

Irregular rows (``plan.variant == 1``) skip those pastes and are blended instead, in their box:

    soft = clamp((bilinear(grid) - t) * k + 0.5, 0, 1),  alpha = opacity * soft
    C    = clamp(twist(padded[blend_index] at blend_pos, patch_jitter))  (class 1, blend)
         | clamp(twist(A[box], patch_jitter))                            (class 2, alter)
    out  = A with round(A_box * (1 - alpha) + C * alpha) in the box

Crack rows (``plan.variant == 2``, class 2) warp each segment's box indicator into the crack's
window like a line scar's alpha, and darken or brighten the image under their maximum:

    a    = max_k warp([1 in segment box k], window <- segment k)           bilinear, zero outside
    out  = A with round(A_win * (1 - opacity a) + clamp(twist(A_win, patch_jitter)) * opacity a)

Each sample also gets its ground-truth mask (uint8 0/1): empty for class 0, the destination box
for cut-paste, ``W_alpha >= 0.5`` for the scar, ``soft >= 0.5`` for an irregular row, ``a >= 0.5``
for a crack: what a per-pixel head learns to find.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslad.synth.geometry import (
    color_matrices,
    crack_affines,
    crack_segments,
    grid_affines,
    scar_windows,
    window_affines,
)
from sslad.synth.plan import Plan, PretextClass

#: Float bytes the CPU path works on at a time where an image's passes can be split (about a core's L2 cache).
CPU_CACHE_BYTES = 2 << 20


def reflect_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> uint8 (N, 3, S+2p, S+2p), reflected borders (done once per dataset)."""
    if pad == 0:
        return images
    if pad >= images.shape[-1]:
        raise ValueError(f"translation padding {pad} must be smaller than the image side {images.shape[-1]}")
    return F.pad(images.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)


def window_index(shape: torch.Size, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                 h: int, w: int) -> torch.Tensor:
    """Flat indices (N, C, h, w) into a contiguous (B, C, H, W) tensor of per-sample windows.

    Window ``i`` is ``[which[i], :, top[i]:top[i]+h, left[i]:left[i]+w]``; indices past the border
    are clamped (callers mask those pixels out). What :func:`gather_windows` and :func:`put_windows`
    fall back to when a window crosses the border.
    """
    _, c, hh, ww = shape
    dev = which.device
    rows = (top.to(dev)[:, None] + torch.arange(h, device=dev)).clamp_(0, hh - 1)
    cols = (left.to(dev)[:, None] + torch.arange(w, device=dev)).clamp_(0, ww - 1)
    plane = rows[:, :, None] * ww + cols[:, None, :]  # (N, h, w)
    chan = (which[:, None] * c + torch.arange(c, device=dev)) * (hh * ww)  # (N, C)
    return chan[:, :, None, None] + plane[:, None]


def _inside(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> bool:
    """Whether every (h, w) window at (top, left) lies inside the (..., H, W) tensor ``x``."""
    return not len(top) or (int(top.min()) >= 0 and int(left.min()) >= 0 and int(top.max()) + h <= x.shape[-2]
                            and int(left.max()) + w <= x.shape[-1])


def window_views(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Every (h, w) window of (B, C, H, W) ``x`` as one view (B, C, H-h+1, W-w+1, h, w), no copy: indexed with
    (which, :, top, left), it cuts N windows with N indices per axis, copying only the windows."""
    return x.unfold(2, h, 1).unfold(3, w, 1)


def gather_windows(images: torch.Tensor, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                   h: int, w: int) -> torch.Tensor:
    """Per-sample windows ``images[which[i], :, top:top+h, left:left+w]``: (N, C, h, w).

    Cut from :func:`window_views`, with no per-pixel index to build (``benchmarks/render_ab.py`` measures the
    renderer against an earlier one); a window that crosses the border reads clamped pixels (:func:`window_index`).
    """
    dev = images.device
    which, top, left = which.to(dev), top.to(dev), left.to(dev)
    if _inside(images, top, left, h, w):
        return window_views(images, h, w)[which, :, top, left]
    return images.take(window_index(images.shape, which, top, left, h, w))


def put_windows(x: torch.Tensor, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                values: torch.Tensor) -> None:
    """Write (N, C, h, w) ``values`` into the windows ``x[which[i], :, top:top+h, left:left+w]`` of contiguous
    (B, C, H, W) ``x``, through the same views as :func:`gather_windows` (windows of distinct ``which`` share no
    pixel, so each is written once; past the border, clamped indices)."""
    dev = x.device
    which, top, left = which.to(dev), top.to(dev), left.to(dev)
    h, w = values.shape[-2:]
    if _inside(x, top, left, h, w):
        window_views(x, h, w)[which, :, top, left] = values
    else:
        x.view(-1).index_copy_(0, window_index(x.shape, which, top, left, h, w).flatten(), values.flatten())


def crop_batch(padded: torch.Tensor, index: torch.Tensor, shift: torch.Tensor, size: int) -> torch.Tensor:
    """Per-sample integer crops ``padded[index[i], :, dy:dy+S, dx:dx+S]`` (uint8, one copy; the shifts keep
    every crop inside the padded image)."""
    dev = padded.device
    shift = shift.to(dev)
    return window_views(padded, size, size)[index.to(dev), :, shift[:, 0], shift[:, 1]]


def color_twist(x: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """DALI-equivalent ``color_twist`` of float (N, 3, H, W) images with values in 0..255 (no clamp)."""
    m, off = color_matrices(jitter.cpu())
    m, off = m.to(x.device), off.to(x.device)
    n, c, h, w = x.shape
    return torch.bmm(m, x.reshape(n, c, h * w)).add_(off[:, :, None]).reshape(n, c, h, w)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest and saturate, like DALI's float -> uint8 conversion (in place on ``x``)."""
    return x.round_().clamp_(0, 255).to(torch.uint8)


def augment(plan: Plan, padded: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """Whole-image augmentation A of every group, written to all three classes of uint8 ``into`` (G, 3, 3, S, S);
    returns A, the view ``into[:, 0]``.

    On the CPU as many groups at a time as keep the float temporaries in a core's cache (:data:`CPU_CACHE_BYTES`),
    elsewhere all at once: the same bytes.
    """
    shared, s = plan.of_class(PretextClass.GOOD), plan.image_size
    step = max(1, CPU_CACHE_BYTES // (12 * s * s)) if into.device.type == "cpu" else plan.groups
    for g0 in range(0, plan.groups, step):
        g = slice(g0, g0 + step)
        base = crop_batch(padded, shared.index[g], shared.shift[g], plan.image_size).float()
        into[g, 0] = to_uint8(color_twist(base, shared.jitter[g]))
        into[g, 1:] = into[g, :1]  # every class starts from A
    return into[:, 0]


def _patches(a: torch.Tensor, g: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Source boxes of groups ``g``'s augmented images, zero-padded to a common size.

    Returns (float patches (G, 3, hmax, wmax), float validity (G, 1, hmax, wmax)).
    """
    dev = a.device
    y0, x0, h, w = box.to(torch.int64).unbind(1)
    hmax, wmax = max(1, int(h.max())), max(1, int(w.max()))
    patch = gather_windows(a, g, y0, x0, hmax, wmax).float()
    valid = ((torch.arange(hmax, device=dev)[None, :, None] < h.to(dev)[:, None, None])
             & (torch.arange(wmax, device=dev)[None, None, :] < w.to(dev)[:, None, None]))
    return patch, valid[:, None].float()


def _ragged_boxes(h: torch.Tensor, w: torch.Tensor, dev) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pixel of every (h, w) box, flattened: (sample, row, column) index vectors of length sum(h*w)."""
    h, w = h.to(dev), w.to(dev)
    counts = h * w
    n = torch.repeat_interleave(torch.arange(len(h), device=dev), counts)
    start = torch.cumsum(counts, 0) - counts
    r = torch.arange(int(counts.sum()), device=dev) - start[n]
    wn = w[n]
    return n, r // wn, r % wn


def composite(out: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
              blended: torch.Tensor, inside: torch.Tensor) -> None:
    """Write float ``blended`` (rounded and saturated) and the bool mask ``inside``, both (N, C, h, w), into the
    per-row windows at ``(top, left)`` of ``out[rows]`` and ``masks[rows]``."""
    put_windows(out, rows, top, left, to_uint8(blended))
    put_windows(masks[:, None], rows, top, left, inside.to(torch.uint8))


def paste_cut(out: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor, a: torch.Tensor, g: torch.Tensor,
              plan: Plan) -> None:
    """Class 1: exact jittered copies, written into ``out[rows]`` (which already hold ``a``); box masks.

    Works on the boxes' pixels only (a ragged, flattened batch), so its cost is the patch area.
    """
    dev = a.device
    s = plan.image_size
    box = plan.box.to(torch.int64).to(dev)
    n, i, j = _ragged_boxes(box[:, 2], box[:, 3], dev)
    plane = s * s
    chan = torch.arange(3, device=dev)[:, None] * plane
    src = a.take(g.to(dev)[n] * 3 * plane + (box[n, 0] + i) * s + box[n, 1] + j + chan).float()  # (3, K)
    m, off = color_matrices(plan.patch_jitter.cpu())
    m, off = m.to(dev), off.to(dev)
    val = to_uint8(torch.einsum("kij,jk->ik", m[n], src).add_(off[n].T))
    top = (plan.center[:, 0] - plan.box[:, 2] / 2).round().to(torch.int64).to(dev)
    left = (plan.center[:, 1] - plan.box[:, 3] / 2).round().to(torch.int64).to(dev)
    pix = (top[n] + i) * s + left[n] + j
    dst = rows.to(dev)[n] * 3 * plane + pix + chan
    out.view(-1).index_copy_(0, dst.flatten(), val.flatten())
    masks.view(-1)[rows.to(dev)[n] * plane + pix] = 1


def paste_scar(out: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor, a: torch.Tensor, g: torch.Tensor,
               plan: Plan) -> None:
    """Class 2: rotated, interpolated pastes into ``out[rows]`` (which already hold ``a``); alpha >= 0.5 masks."""
    dev = a.device
    S = plan.image_size
    patch, valid = _patches(a, g, plan.box)
    patch = color_twist(patch, plan.patch_jitter).clamp_(0, 255)
    fill = plan.fill.to(dev)[:, None, None, None]
    content = patch * (1 - fill) + plan.color.to(dev)[:, :, None, None] * fill
    src = torch.cat([content * valid, valid], dim=1)
    win = scar_windows(plan)
    wh, ww = int(win[:, 2].max()), int(win[:, 3].max())
    # One window size for the batch: grow each window, keeping it inside the image.
    grown = win.clone()
    grown[:, 0] = win[:, 0].clamp(max=S - wh)
    grown[:, 1] = win[:, 1].clamp(max=S - ww)
    grown[:, 2], grown[:, 3] = wh, ww
    aff = window_affines(plan, grown).to(dev)
    ys = torch.arange(wh, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(ww, device=dev, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px = aff[:, 0, 0, None, None] * gx + aff[:, 0, 1, None, None] * gy + aff[:, 0, 2, None, None]
    py = aff[:, 1, 0, None, None] * gx + aff[:, 1, 1, None, None] * gy + aff[:, 1, 2, None, None]
    hmax, wmax = src.shape[-2:]
    grid = torch.stack([px * (2.0 / wmax) - 1.0, py * (2.0 / hmax) - 1.0], dim=-1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    a_win = gather_windows(a, g, grown[:, 0], grown[:, 1], wh, ww).float()
    composite(out, masks, rows, grown[:, 0], grown[:, 1], a_win * (1 - warped[:, 3:4]) + warped[:, :3],
              warped[:, 3:4] >= 0.5)


def blob_alpha(plan: Plan, top: torch.Tensor, left: torch.Tensor, h: int, w: int,
               dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft masks of irregular rows on (h, w) windows at (top, left): (alpha, soft), float (N, 1, h, w).

    The grid is upsampled with ``grid_sample`` (bilinear, ``align_corners=False``) through
    :func:`~sslad.synth.geometry.grid_affines`, evaluated exactly as DALI's ``warp_affine`` evaluates
    it (pixel centres ``i + 0.5`` of the box); window pixels outside the box get 0.
    """
    box = plan.box.to(dev)
    aff = grid_affines(plan).to(dev)
    oy, ox = box[:, 0] - top.to(dev), box[:, 1] - left.to(dev)  # the box inside the window
    ys = torch.arange(h, device=dev, dtype=torch.float32)[None] - oy[:, None] + 0.5  # (N, h), box coordinates
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None] - ox[:, None] + 0.5
    px = (aff[:, 0, 0, None] * xs + aff[:, 0, 2, None])[:, None, :].expand(-1, h, -1)
    py = (aff[:, 1, 1, None] * ys + aff[:, 1, 2, None])[:, :, None].expand(-1, -1, w)
    g = plan.grid.shape[-1]
    grid = torch.stack([px * (2.0 / g) - 1.0, py * (2.0 / g) - 1.0], dim=-1)
    noise = F.grid_sample(plan.grid.to(dev)[:, None], grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    inside = (((ys > 0) & (ys < box[:, 2, None]))[:, :, None] & ((xs > 0) & (xs < box[:, 3, None]))[:, None, :])
    blob = plan.blob.to(dev)
    soft = noise.sub_(blob[:, 0, None, None, None]).mul_(blob[:, 1, None, None, None]).add_(0.5).clamp_(0, 1)
    soft.mul_(inside[:, None].float())
    return soft * blob[:, 2, None, None, None], soft


def paste_irregular(out: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor, a: torch.Tensor, g: torch.Tensor,
                    plan: Plan, padded: torch.Tensor) -> None:
    """Irregular rows of one class: blend (class 1) or alter (class 2) inside a soft blob; ``soft >= 0.5`` masks.

    ``out[rows]`` hold ``a`` (no other paste touched them). Windows share one size, grown from
    each box and kept inside the image, so every written pixel is written once.
    """
    dev = a.device
    S = plan.image_size
    box = plan.box.to(torch.int64)
    wh, ww = int(box[:, 2].max()), int(box[:, 3].max())
    top, left = box[:, 0].clamp(max=S - wh), box[:, 1].clamp(max=S - ww)
    alpha, soft = blob_alpha(plan, top, left, wh, ww, dev)
    under = gather_windows(a, g, top, left, wh, ww).float()
    if bool((plan.label == PretextClass.CUTPASTE).all()):  # blend: content of the planned image and place
        pos = plan.blend_pos.to(torch.int64)
        src = gather_windows(padded, plan.blend_index, pos[:, 0] - (box[:, 0] - top), pos[:, 1] - (box[:, 1] - left),
                             wh, ww).float()
    else:  # alter: the image's own content
        src = under
    content = color_twist(src, plan.patch_jitter).clamp_(0, 255).mul_(alpha)  # under (1 - alpha) + content alpha,
    composite(out, masks, rows, top, left, under.mul_(1 - alpha).add_(content), soft >= 0.5)  # in place


def crack_alpha(plan: Plan, top: torch.Tensor, left: torch.Tensor, h: int, w: int,
                dev: torch.device) -> torch.Tensor:
    """Crack alphas on (h, w) windows at (top, left): float (N, 1, h, w), the maximum over the segments.

    Each segment's alpha is its box indicator warped with ``grid_sample`` (bilinear, zero outside),
    as :func:`paste_scar` warps a line's: what DALI's ``warp_affine`` of a box of ones gives.
    """
    seg = crack_segments(plan)
    n, k = seg.shape[:2]
    aff = crack_affines(plan, torch.stack([top, left], 1).cpu()).reshape(n * k, 2, 3).to(dev)
    sh, sw = seg[:, :, 2].reshape(-1).to(torch.int64), seg[:, :, 3].reshape(-1).to(torch.int64)
    hmax, wmax = max(1, int(sh.max())), max(1, int(sw.max()))
    valid = ((torch.arange(hmax)[None, :, None] < sh[:, None, None])
             & (torch.arange(wmax)[None, None, :] < sw[:, None, None]))[:, None].float().to(dev)
    ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px = aff[:, 0, 0, None, None] * gx + aff[:, 0, 1, None, None] * gy + aff[:, 0, 2, None, None]
    py = aff[:, 1, 0, None, None] * gx + aff[:, 1, 1, None, None] * gy + aff[:, 1, 2, None, None]
    grid = torch.stack([px * (2.0 / wmax) - 1.0, py * (2.0 / hmax) - 1.0], dim=-1)
    warped = F.grid_sample(valid, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.view(n, k, h, w).amax(1, keepdim=True)


def paste_crack(out: torch.Tensor, masks: torch.Tensor, rows: torch.Tensor, a: torch.Tensor, g: torch.Tensor,
                plan: Plan) -> None:
    """Crack rows: the image darkened or brightened under the crack's alpha; ``a >= 0.5`` masks.

    ``out[rows]`` hold ``a``. Windows share one size, grown from each crack's ``box`` (which holds
    every segment with its fringe) and kept inside the image, so every written pixel is written once.
    """
    dev = a.device
    S = plan.image_size
    box = plan.box.to(torch.int64)
    wh, ww = int(box[:, 2].max()), int(box[:, 3].max())
    top, left = box[:, 0].clamp(max=S - wh), box[:, 1].clamp(max=S - ww)
    comp = crack_alpha(plan, top, left, wh, ww, dev)
    alpha = comp * plan.blob[:, 2].to(dev)[:, None, None, None]
    under = gather_windows(a, g, top, left, wh, ww).float()
    content = color_twist(under, plan.patch_jitter).clamp_(0, 255)
    composite(out, masks, rows, top, left, under * (1 - alpha) + content * alpha, comp >= 0.5)


def render_groups(plan: Plan, padded: torch.Tensor, out: torch.Tensor, masks: torch.Tensor) -> None:
    """Render whole groups of ``plan`` into contiguous uint8 ``out`` (N, 3, S, S) and zeroed ``masks`` (N, S, S)."""
    a = augment(plan, padded, out.view(plan.groups, 3, 3, *out.shape[-2:]))
    groups = torch.arange(plan.groups, device=a.device)  # a paste reads its groups' rows of ``a`` (no copy)

    def irregular(out, masks, rows, a, g, sub):
        paste_irregular(out, masks, rows, a, g, sub, padded)

    for c, paste in ((PretextClass.CUTPASTE, paste_cut), (PretextClass.SCAR, paste_scar)):
        sub = plan.of_class(c)
        variant = sub.variant.to(a.device)
        if not bool(variant.any()):
            paste(out, masks, groups * 3 + int(c), a, groups, sub)
            continue
        for v, kind in ((0, paste), (1, irregular), (2, paste_crack)):  # each paste sees only its own rows
            keep = (variant == v).nonzero().flatten()
            if len(keep):
                kind(out, masks, keep * 3 + int(c), a, keep, sub.rows(keep.cpu()))


def _reusable(into: tuple[torch.Tensor, torch.Tensor], n: int, s: int, device: torch.device) -> bool:
    """Whether (images, masks) ``into`` can hold a rendering of n samples of side s on ``device``: contiguous uint8
    (n, 3, s, s) and (n, s, s) there."""
    images, masks = into
    return (images.shape == (n, 3, s, s) and masks.shape == (n, s, s) and images.dtype == masks.dtype == torch.uint8
            and images.device == masks.device == device and images.is_contiguous() and masks.is_contiguous())


def render(plan: Plan, padded: torch.Tensor, chunk: int = 256, workers: int = 1,
           into: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a whole plan (``chunk`` groups at a time) on ``padded``'s device; with ``workers`` > 1 the chunks
    are shared among that many threads (torch releases the GIL inside its ops). Each chunk writes its own rows,
    so the result is the same bytes whatever the number of workers.

    Returns (uint8 images (N, 3, S, S), uint8 0/1 masks (N, S, S)): new tensors, or the pair ``into`` (an earlier
    result no longer needed) rendered over when it has those shapes, which spares the page faults of fresh memory.
    """
    plan.validate()
    s = plan.image_size
    out, masks = into if into is not None and _reusable(into, len(plan), s, padded.device) else (None, None)
    if out is None:
        out = torch.empty((len(plan), 3, s, s), dtype=torch.uint8, device=padded.device)
        masks = torch.zeros((len(plan), s, s), dtype=torch.uint8, device=padded.device)
    else:
        masks.zero_()

    def one(g0: int) -> None:
        rows = slice(3 * g0, 3 * min(g0 + chunk, plan.groups))
        render_groups(plan.rows(rows), padded, out[rows], masks[rows])  # contiguous slices

    starts = range(0, plan.groups, chunk)
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(starts))) as pool:
            list(pool.map(one, starts))  # list(): re-raises a worker's exception here
    else:
        for g0 in starts:
            one(g0)
    return out, masks
