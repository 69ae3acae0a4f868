"""Feature: the torch renderer changes only the planned region, exactly and deterministically."""

from __future__ import annotations

import pytest
import torch

from helpers import base_images, box_coords, render_images
from sslad.synth import PretextClass, balanced_plan, reflect_pad, render
from sslad.synth.torch_render import color_twist, crop_batch

S = 48


def dest_region(plan, i: int, dilate: float = 1.0) -> torch.Tensor:
    """Boolean (S, S) of pixels whose centre lies within the rotated destination box (+ dilate px)."""
    _, _, h, w = plan.box[i].tolist()
    u, v = box_coords(plan, i, S)
    return (u <= w / 2 + dilate) & (v <= h / 2 + dilate)


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_pretext_changes_only_the_planned_region(scar):
    imgs = base_images()
    plan = balanced_plan(len(imgs), 3, S, seed=11, scar=scar)
    out = render_images(plan, reflect_pad(imgs, plan.pad))
    changed = 0
    for i in range(len(plan)):
        if plan.label[i] == PretextClass.GOOD:
            continue
        twin = out[i - int(plan.label[i])]  # the class-0 row of the same group
        assert plan.index[i] == plan.index[i - int(plan.label[i])]
        diff = (out[i].int() - twin.int()).abs().amax(0) > 0
        region = dest_region(plan, i)
        assert not (diff & ~region).any(), f"sample {i} (class {int(plan.label[i])}) changed outside its box"
        changed += int(diff.any())
    # A paste that changes nothing would be a silent no-op: nearly all must show.
    assert changed >= 0.9 * int((plan.label != PretextClass.GOOD).sum())


def test_group_rows_share_the_whole_image_augmentation():
    imgs = base_images()
    plan = balanced_plan(len(imgs), 2, S, seed=4, jitter=0.0)
    out = render_images(plan, reflect_pad(imgs, plan.pad))
    for g in range(plan.groups):
        a, b, c = out[3 * g:3 * g + 3]
        # Outside both pastes the three rows are identical pixels.
        outside = ~(dest_region(plan, 3 * g + 1) | dest_region(plan, 3 * g + 2))
        assert torch.equal(a[:, outside], b[:, outside]) and torch.equal(a[:, outside], c[:, outside])


def test_cutpaste_is_an_exact_copy_of_the_jittered_source():
    imgs = base_images(4)
    plan = balanced_plan(4, 2, S, seed=3)
    padded = reflect_pad(imgs, plan.pad)
    out = render_images(plan, padded)
    a = color_twist(crop_batch(padded, plan.index, plan.shift, S).float(), plan.jitter).round().clamp(0, 255)
    j = color_twist(a, plan.patch_jitter).round().clamp(0, 255)
    for i in ((plan.label == PretextClass.CUTPASTE) & (plan.variant == 0)).nonzero().flatten().tolist():
        y0, x0, h, w = (int(v) for v in plan.box[i].tolist())
        ty, tx = int(plan.center[i, 0] - h / 2), int(plan.center[i, 1] - w / 2)
        got = out[i, :, ty:ty + h, tx:tx + w].float()
        assert torch.equal(got, j[i, :, y0:y0 + h, x0:x0 + w]), i


def test_render_is_bitwise_deterministic():
    imgs = base_images()
    plan = balanced_plan(len(imgs), 2, S, seed=7)
    padded = reflect_pad(imgs, plan.pad)
    for a, b in zip(render(plan, padded), render(plan, padded), strict=True):  # images and masks
        assert torch.equal(a, b)
    # Chunking (of groups) does not change a single pixel.
    for a, b in zip(render(plan, padded, chunk=2), render(plan, padded, chunk=512), strict=True):
        assert torch.equal(a, b)


def test_chunks_shared_among_threads_render_the_same_bytes():
    """The CPU renderer shares a regeneration's chunks among threads: every family, the same bytes as one thread."""
    from sslad.synth.renderer import TorchRenderer

    imgs = base_images(n=12, size=64)
    plan = balanced_plan(len(imgs), 2, 64, seed=11, irregular=0.5, other_source=0.5, cracks=0.5)
    assert set(plan.variant.tolist()) == {0, 1, 2}
    padded = reflect_pad(imgs, plan.pad)
    one = render(plan, padded, chunk=3)
    for workers in (2, 3, 8):
        for a, b in zip(one, render(plan, padded, chunk=3, workers=workers), strict=True):
            assert torch.equal(a, b)
    for a, b in zip(render(plan, padded, chunk=16), TorchRenderer(cpu_workers=2).render(plan, padded), strict=True):
        assert torch.equal(a, b)  # the CPU renderer: chunks of 16 groups, here two of them


def test_a_failing_chunk_fails_the_threaded_render(monkeypatch):
    """An error in one worker's chunk is raised by render itself, not lost with its thread."""
    import sslad.synth.torch_render as tr

    imgs = base_images(n=8, size=32)
    plan = balanced_plan(len(imgs), 1, 32, seed=2)
    padded = reflect_pad(imgs, plan.pad)
    real = tr.render_groups

    def flaky(sub, *args):
        if sub.groups == 2:  # the last chunk (8 groups in chunks of 3: 3, 3, 2)
            raise RuntimeError("chunk failed")
        return real(sub, *args)

    monkeypatch.setattr(tr, "render_groups", flaky)
    with pytest.raises(RuntimeError, match="chunk failed"):
        tr.render(plan, padded, chunk=3, workers=2)


def test_render_rejects_a_plan_that_breaks_groups():
    imgs = base_images(2)
    plan = balanced_plan(2, 1, S, seed=1)
    with pytest.raises(ValueError, match="whole groups"):
        render(plan.rows(slice(0, 4)), reflect_pad(imgs, plan.pad))
    bad = balanced_plan(2, 1, S, seed=1)
    bad.angle[1] = 10.0
    with pytest.raises(ValueError, match="cut-paste"):
        render(bad, reflect_pad(imgs, plan.pad))


def test_whole_image_translation_is_a_crop_of_the_reflected_image():
    imgs = base_images(2)
    plan = balanced_plan(2, 1, S, seed=1, jitter=0.0)
    padded = reflect_pad(imgs, plan.pad)
    out = render_images(plan, padded)
    for i in (plan.label == PretextClass.GOOD).nonzero().flatten().tolist():
        dy, dx = plan.shift[i].tolist()
        assert torch.equal(out[i], padded[plan.index[i], :, dy:dy + S, dx:dx + S])


def test_scar_line_uses_its_colour():
    """Inside a line (0.75 px from its edges) every pixel is the line's colour.

    At 256 px lines are 2-6 px wide, so every line has such a core (at 48 px they round to one
    pixel and have none: the check would assert nothing).
    """
    size = 256
    imgs = torch.zeros(3, 3, size, size, dtype=torch.uint8)
    plan = balanced_plan(3, 2, size, seed=4, scar="line", jitter=0.0, irregular=0.0)
    out = render_images(plan, reflect_pad(imgs, plan.pad))
    rows = (plan.label == PretextClass.SCAR).nonzero().flatten().tolist()
    for i in rows:
        _, _, h, w = plan.box[i].tolist()
        u, v = box_coords(plan, i, size)
        core = (u <= w / 2 - 0.75) & (v <= h / 2 - 0.75)
        assert int(core.sum()) >= h / 2, f"line {i} has no core to check"
        assert (out[i][:, core].float() - plan.color[i][:, None]).abs().max() <= 0.5, i


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_masks_mark_the_synthetic_anomalies(scar):
    """Class 0: empty; cut-paste: exactly the destination box; scar: the pasted region (alpha >= 0.5)."""
    imgs = base_images()
    plan = balanced_plan(len(imgs), 3, S, seed=12, scar=scar)
    assert 0 < int(plan.variant.sum()) < int((plan.label != PretextClass.GOOD).sum())  # both kinds of rows
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    assert masks.dtype == torch.uint8 and masks.shape == (len(plan), S, S) and int(masks.max()) == 1
    for i in range(len(plan)):
        c = int(plan.label[i])
        if c == PretextClass.GOOD:
            assert not masks[i].any()
        elif plan.variant[i] != 0:  # an irregular blob or a crack: inside its box, never empty
            m = masks[i].bool()
            assert not (m & ~dest_region(plan, i, dilate=0.0)).any() and m.any(), i
        elif c == PretextClass.CUTPASTE:
            _, _, h, w = (int(v) for v in plan.box[i].tolist())
            ty, tx = int(plan.center[i, 0] - h / 2), int(plan.center[i, 1] - w / 2)
            box = torch.zeros(S, S, dtype=torch.uint8)
            box[ty:ty + h, tx:tx + w] = 1
            assert torch.equal(masks[i], box), i
        else:
            m = masks[i].bool()
            assert not (m & ~dest_region(plan, i)).any(), i  # inside the rotated box (+1 px)
            assert m.sum() >= 0.5 * dest_region(plan, i, dilate=-0.5).sum(), i  # and covers its core


def test_grayscale_plans_draw_grey_lines_on_grey_images():
    """A grayscale dataset yields grayscale pretext samples (no colour shortcut)."""
    grey = base_images()[:, :1].expand(-1, 3, S, S).contiguous()
    plan = balanced_plan(len(grey), 2, S, seed=3, scar="line", gray=True)
    out = render_images(plan, reflect_pad(grey, plan.pad))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    colour = balanced_plan(len(grey), 2, S, seed=3, scar="line", gray=False)
    assert not torch.equal(colour.color, plan.color) and torch.equal(colour.box, plan.box)  # same stream
    assert (render_images(colour, reflect_pad(grey, plan.pad))[:, 0] != out[:, 0]).any()


# --- Irregular variants (soft blobs: class-1 blend, class-2 alter) ---------------------------------

#: sha256 (first 16 hex digits) of the plain plan fields and of the torch rendering (images, then
#: masks) of ``balanced_plan(6, 2, 48, seed=31, scar=..., irregular=0)`` on ``base_images()``,
#: recorded with the renderer before the irregular variants existed.
OLD_FIELDS = ("label", "index", "shift", "jitter", "patch_jitter", "box", "center", "angle", "color", "fill")
GOLDEN = {"patch": ("d9fdb05b545c52df", "1fd5b12fa749f8d5"), "line": ("33e811c6fa12e2cb", "a4f08df89619a5c1")}


def digest(*arrays: torch.Tensor) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        h.update(a.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_share_zero_keeps_the_plain_plans_and_pixels(scar):
    """irregular=0, cracks=0: the plan and every rendered pixel are those of the renderer before the variants."""
    imgs = base_images()
    plan = balanced_plan(len(imgs), 2, S, seed=31, scar=scar, irregular=0.0, cracks=0.0)
    assert not plan.variant.any() and not plan.grid.any() and torch.equal(plan.blend_index, plan.index)
    assert not plan.crack.any() and not plan.crack_segments.any()
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    assert (digest(*(getattr(plan, k) for k in OLD_FIELDS)), digest(out, masks)) == GOLDEN[scar]
    # A share only turns rows into blobs; every other row keeps all its plain values.
    mixed = balanced_plan(len(imgs), 2, S, seed=31, scar=scar, irregular=0.5, other_source=1.0)
    plain = mixed.variant == 0
    assert 0 < int((~plain).sum())
    for k in OLD_FIELDS:
        assert torch.equal(getattr(mixed, k)[plain], getattr(plan, k)[plain]), k


def reference_soft(plan, i: int) -> torch.Tensor:
    """Row ``i``'s soft mask (S, S), float64, straight from its definition (no grid_sample, no affine).

    Box pixel (r, c) reads the grid at cell coordinates y = (r + 0.5) (n - 1) / h, x = (c + 0.5) (n - 1) / w
    (0 and n - 1: the centres of the first and last cells), bilinearly; soft = clamp((v - t) k + 0.5, 0, 1).
    """
    y0, x0, h, w = (int(v) for v in plan.box[i].tolist())
    n = int(plan.grid_size[i])
    grid = plan.grid[i].double()
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) * (n - 1) / h
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * (n - 1) / w
    y_lo, x_lo = ys.floor().long().clamp(max=n - 2), xs.floor().long().clamp(max=n - 2)
    fy, fx = (ys - y_lo)[:, None], (xs - x_lo)[None, :]
    g00, g01 = grid[y_lo][:, x_lo], grid[y_lo][:, x_lo + 1]
    g10, g11 = grid[y_lo + 1][:, x_lo], grid[y_lo + 1][:, x_lo + 1]
    v = (1 - fy) * ((1 - fx) * g00 + fx * g01) + fy * ((1 - fx) * g10 + fx * g11)
    t, k, _ = plan.blob[i].double().tolist()
    soft = torch.zeros(S, S, dtype=torch.float64)
    soft[y0:y0 + h, x0:x0 + w] = ((v - t) * k + 0.5).clamp(0, 1)
    return soft


@pytest.mark.parametrize("seed", [0, 1])
def test_irregular_masks_mark_the_pixels_that_change(seed):
    """The mask is soft >= 0.5 of the plan's blob (recomputed here from its definition); only pixels with
    soft > 0 change, and mask pixels (alpha >= opacity / 2 >= 0.25) do change.

    Pixels of the feathered edge (0 < soft < 0.5) change too, by less than half the blend: about
    6-12 % of the changed pixels, up to a few pixels from the mask where the noise is flat.
    """
    imgs = base_images()
    plan = balanced_plan(len(imgs), 3, S, seed=seed, irregular=1.0)
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    marked = changed = 0
    for i in (plan.variant == 1).nonzero().flatten().tolist():
        twin = out[i - int(plan.label[i])]
        diff = (out[i].int() - twin.int()).abs().amax(0) > 0
        m = masks[i].bool()
        soft = reference_soft(plan, i)
        clear = (soft - 0.5).abs() > 1e-5  # float32 vs float64 may differ on an exact tie only
        assert torch.equal(m[clear], (soft >= 0.5)[clear]), f"row {i}: mask is not soft >= 0.5"
        assert not (diff & (soft <= 0)).any(), f"row {i}: changed a pixel outside the blob"
        assert not (m & ~dest_region(plan, i, dilate=0.0)).any(), f"row {i}: mask outside its box"
        marked += int(m.sum())
        changed += int((diff & m).sum())
    assert marked > 0 and changed >= 0.9 * marked


def flat_images(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8)[:, None, None, None].expand(-1, 3, S, S).contiguous()


def test_blend_rows_take_the_content_of_the_other_image():
    """Flat images of distinct grey levels: a blend moves each mask pixel from the base's level towards
    exactly the source image's level (jitter 0), never past it."""
    levels = [30, 90, 150, 210]
    imgs = flat_images(levels)
    plan = balanced_plan(len(imgs), 4, S, seed=2, jitter=0.0, irregular=1.0, other_source=1.0)
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    rows = ((plan.label == PretextClass.CUTPASTE) & (plan.variant == 1)).nonzero().flatten().tolist()
    assert rows and all(int(plan.blend_index[i]) != int(plan.index[i]) for i in rows)
    for i in rows:
        a, b = levels[int(plan.index[i])], levels[int(plan.blend_index[i])]
        px = out[i][:, masks[i].bool()].int()
        lo, hi = min(a, b), max(a, b)
        assert px.numel() and (px >= lo).all() and (px <= hi).all(), i
        opacity = float(plan.blob[i, 2])
        # The mask's core (soft = 1) is blended with the full opacity.
        assert abs(int(px.max() if b > a else px.min()) - round(a + (b - a) * opacity)) <= 1, i
    # other_source=0: the same image, taken at another place.
    same = balanced_plan(len(imgs), 4, S, seed=2, jitter=0.0, irregular=1.0, other_source=0.0)
    assert torch.equal(same.blend_index, same.index)


def test_alter_rows_darken_or_brighten_their_blob():
    """A flat mid-grey image: an alter row moves its mask pixels by the plan's strong brightness factor."""
    imgs = flat_images([128, 128])
    plan = balanced_plan(len(imgs), 6, S, seed=3, jitter=0.0, irregular=1.0)
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    rows = ((plan.label == PretextClass.SCAR) & (plan.variant == 1)).nonzero().flatten().tolist()
    darker = brighter = 0
    for i in rows:
        b = float(plan.patch_jitter[i, 0])
        px = out[i][:, masks[i].bool()].int()
        target = 128 * b  # color_twist of a flat 128: contrast pivots on 128
        assert px.numel() and (((px - 128) * (1 if b > 1 else -1)) > 0).all(), i
        assert abs(int(px.max() if b > 1 else px.min()) - round(128 + (target - 128) * float(plan.blob[i, 2]))) <= 1
        darker, brighter = darker + (b < 1), brighter + (b > 1)
    assert darker and brighter


# --- Cracks (class-2 variant 2: thin meandering polylines) ------------------------------------------


def reference_crack_alpha(plan, i: int, size: int) -> torch.Tensor:
    """Row ``i``'s crack alpha (size, size), float64, from its definition: the maximum over its segments of
    the bilinear sample of a segment's h x w box indicator (zero outside) at each pixel centre, mapped into
    the segment's frame by the inverse rotation about its centre. Separable in that frame:
    f_n(t) = clamp(min(t + 1/2, n + 1/2 - t), 0, 1) along each side."""
    import math

    ys = torch.arange(size, dtype=torch.float64) + 0.5
    gy, gx = torch.meshgrid(ys, ys, indexing="ij")
    alpha = torch.zeros(size, size, dtype=torch.float64)
    for cy, cx, h, w, ang in plan.crack[i, :int(plan.crack_segments[i])].double().tolist():
        a = math.radians(ang)
        dx, dy = gx - cx, gy - cy
        sx = math.cos(a) * dx - math.sin(a) * dy + w / 2  # src = R(-a) (dst - c) + box centre
        sy = math.sin(a) * dx + math.cos(a) * dy + h / 2
        fx = torch.minimum(sx + 0.5, w + 0.5 - sx).clamp(0, 1)
        fy = torch.minimum(sy + 0.5, h + 0.5 - sy).clamp(0, 1)
        alpha = torch.maximum(alpha, fx * fy)
    return alpha


def textured(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Grey stripe textures (values ~70-190), where darkening and brightening both show."""
    import numpy as np

    from helpers import texture

    rng = np.random.default_rng(seed)
    return torch.stack([torch.from_numpy(texture(rng, size)).permute(2, 0, 1) for _ in range(n)]).contiguous()


@pytest.mark.parametrize("size", [48, 256])
def test_crack_masks_mark_the_pixels_that_change(size):
    """The mask is (max over segments of the warped box) >= 0.5, recomputed here from the definition;
    changed pixels lie in the mask dilated by 1 px, mask pixels change (darker or brighter as planned),
    and grey images stay grey."""
    imgs = textured(4, size)
    plan = balanced_plan(len(imgs), 3, size, seed=4, jitter=0.0, irregular=0.5, cracks=1.0)
    rows = plan.cracks().nonzero().flatten().tolist()
    assert len(rows) >= 3
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    for i in rows:
        twin = out[i - 2]
        delta = out[i].int() - twin.int()
        diff = delta.abs().amax(0) > 0
        m = masks[i].bool()
        ref = reference_crack_alpha(plan, i, size)
        clear = (ref - 0.5).abs() > 1e-4  # float32 vs float64 may differ on a near tie only
        assert torch.equal(m[clear], (ref >= 0.5)[clear]), f"row {i}: mask is not alpha >= 0.5"
        assert m.any() and not (diff & (ref <= 0)).any(), f"row {i}: changed a pixel outside the crack"
        near = torch.nn.functional.max_pool2d(m[None, None].float(), 3, 1, 1)[0, 0].bool()
        assert not (diff & ~near).any(), f"row {i}: changed a pixel more than 1 px from the mask"
        assert diff[m].all(), f"row {i}: a mask pixel did not change"
        sign = 1 if float(plan.patch_jitter[i, 0]) > 1 else -1
        assert ((delta[:, m] * sign) > 0).all(), f"row {i}: not {'brighter' if sign > 0 else 'darker'}"
        assert torch.equal(out[i, 0], out[i, 1]) and torch.equal(out[i, 1], out[i, 2]), f"row {i}: not grey"
    if size == 256:  # thin lines: 1-4 px wide, so the mask is about length x width
        widths = plan.crack[plan.cracks()][:, :, 3]
        assert int(widths.max()) >= 3


def test_renderers_take_large_batches_on_cuda_and_small_ones_on_the_cpu():
    from sslad.backends import make_renderer, render_batch
    from sslad.config import GPU_RENDER_PIXELS, RENDER_BATCH

    assert render_batch(256, "cpu") == RENDER_BATCH
    assert render_batch(256, "cuda") == GPU_RENDER_PIXELS // 256**2 > RENDER_BATCH  # a pixel budget on the GPU
    assert render_batch(512, "cuda") == render_batch(256, "cuda") // 4
    assert render_batch(4096, "cuda") == RENDER_BATCH  # never below the CPU's batch
    assert make_renderer("torch", 256, torch.device("cuda")).chunk == render_batch(256, "cuda") // 3
    assert make_renderer("torch", 256, torch.device("cpu")).chunk == RENDER_BATCH // 3
    assert make_renderer("torch", 256, torch.device("cuda"), batch_size=96).chunk == 32  # an explicit batch wins


def test_rendering_over_an_old_result_gives_the_same_bytes(monkeypatch):
    """``into``: an earlier result is rendered over (the same tensors back, the same bytes as fresh memory, masks
    of the old anomalies gone); one of another shape is left alone. The CPU's cache-sized augmentation steps
    (CPU_CACHE_BYTES) give the same bytes as one batch."""
    import sslad.synth.torch_render as tr

    imgs = base_images(n=6, size=40)
    padded = reflect_pad(imgs, balanced_plan(6, 1, 40, seed=0).pad)
    plans = [balanced_plan(6, 1, 40, seed=s, irregular=0.5, cracks=0.5) for s in (3, 4)]
    old = render(plans[0], padded, chunk=4)
    fresh = render(plans[1], padded, chunk=4)
    again = render(plans[1], padded, chunk=4, into=old)
    assert again[0] is old[0] and again[1] is old[1]
    for a, b in zip(fresh, again, strict=True):
        assert torch.equal(a, b)
    small = (old[0][:3], old[1][:3])
    assert render(plans[1], padded, chunk=4, into=small)[0] is not small[0]
    monkeypatch.setattr(tr, "CPU_CACHE_BYTES", 1)  # one group per augmentation step
    for a, b in zip(fresh, render(plans[1], padded, chunk=4), strict=True):
        assert torch.equal(a, b)


def test_windows_across_the_border_read_and_write_clamped_pixels():
    """gather_windows / put_windows: inside the image through views, across its border through clamped flat
    indices, both the pixels ``window_index`` names."""
    from sslad.synth.torch_render import gather_windows, put_windows, window_index

    x = torch.arange(2 * 3 * 9 * 9, dtype=torch.int32).reshape(2, 3, 9, 9)
    which = torch.tensor([1, 0])
    for top, left in ((torch.tensor([0, 5]), torch.tensor([2, 4])), (torch.tensor([-1, 7]), torch.tensor([6, 0]))):
        want = x.take(window_index(x.shape, which, top, left, 4, 5))
        assert torch.equal(gather_windows(x, which, top, left, 4, 5), want)
        y = torch.zeros_like(x)
        put_windows(y, which, top, left, want)
        assert torch.equal(y.take(window_index(x.shape, which, top, left, 4, 5)), want)
        assert int((y != 0).sum()) == len(torch.unique(window_index(x.shape, which, top, left, 4, 5)))


@pytest.mark.parametrize("size", [48, 128])
def test_border_anomalies_reach_the_border(size):
    """share 1: every rendered mask comes within 2 px of a side (cracks keep their 1-px fringe inside the window;
    a blob's grid continues to the border), where without the option most stay away from every side."""
    imgs = base_images(n=12, size=size)

    def gaps(border):
        plan = balanced_plan(len(imgs), 3, size, seed=5, irregular=0.5, cracks=0.5, border=border)
        _, masks = render(plan, reflect_pad(imgs, plan.pad))
        m = masks.reshape(len(plan), size, size)[plan.label != 0] > 0
        rows, cols = m.any(2), m.any(1)
        assert rows.any(1).all()  # every anomaly marks something
        idx = torch.arange(size)
        first = lambda a: torch.where(a, idx, size).amin(1)  # noqa: E731
        last = lambda a: torch.where(a, idx, -1).amax(1)  # noqa: E731
        return torch.stack([first(rows), first(cols), size - 1 - last(rows), size - 1 - last(cols)], 1).amin(1)

    assert int(gaps(1.0).max()) <= 2
    assert float((gaps(0.0) <= 2).float().mean()) < 0.5


def test_blob_area_renders_larger_anomalies():
    """The rendered blob masks grow with --blob-area: at the default none covers 10 % of the image, at 0.6 some
    cover more than 15 %, and every blob still marks something inside the image."""
    imgs = base_images(n=20, size=64)

    def cover(area):
        plan = balanced_plan(len(imgs), 2, 64, seed=5, irregular=1.0, cracks=0.0, blob_area=area)
        _, masks = render(plan, reflect_pad(imgs, plan.pad))
        m = masks.reshape(len(plan), -1)[plan.variant == 1] > 0.5
        return m.float().mean(1)

    small, big = cover(0.15), cover(0.6)
    assert float(small.max()) < 0.1 and float(big.max()) > 0.15 and bool((big > 0).all())
    assert float(big.mean()) > 2 * float(small.mean())
