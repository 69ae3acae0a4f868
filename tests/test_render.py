"""Feature: the torch renderer changes only the planned region, exactly and deterministically."""

from __future__ import annotations

import pytest
import torch

from helpers import box_coords
from sslad.synth import PretextClass, balanced_plan, reflect_pad, render
from sslad.synth.torch_render import color_twist, crop_batch

S = 48


def render_images(*args, **kw):
    """The images of ``render`` (which returns images and masks)."""
    return render(*args, **kw)[0]


def base_images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 255, S)
    grad = (0.5 * x[None, :, None] + 0.5 * x[None, None, :]).expand(3, S, S)
    noise = torch.randint(0, 60, (n, 3, S, S), generator=g).float()
    return (grad[None] * 0.7 + noise).clamp(0, 255).to(torch.uint8)


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
    for i in (plan.label == PretextClass.CUTPASTE).nonzero().flatten().tolist():
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
    imgs = torch.zeros(2, 3, S, S, dtype=torch.uint8)
    plan = balanced_plan(2, 1, S, seed=4, scar="line", jitter=0.0)
    out = render_images(plan, reflect_pad(imgs, plan.pad))
    for i in (plan.label == PretextClass.SCAR).nonzero().flatten().tolist():
        core = dest_region(plan, i, dilate=-0.75)
        if core.any():
            px = out[i][:, core].float().mean(1)
            assert torch.allclose(px, plan.color[i], atol=1.0)


@pytest.mark.parametrize("scar", ["patch", "line"])
def test_masks_mark_the_synthetic_anomalies(scar):
    """Class 0: empty; cut-paste: exactly the destination box; scar: the pasted region (alpha >= 0.5)."""
    imgs = base_images()
    plan = balanced_plan(len(imgs), 3, S, seed=12, scar=scar)
    out, masks = render(plan, reflect_pad(imgs, plan.pad))
    assert masks.dtype == torch.uint8 and masks.shape == (len(plan), S, S) and int(masks.max()) == 1
    for i in range(len(plan)):
        c = int(plan.label[i])
        if c == PretextClass.GOOD:
            assert not masks[i].any()
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
