"""Feature: the plan sampler's ranges and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from sslad.synth import PretextClass, balanced_plan, inverse_affines, pad_for, sample_plan
from sslad.synth import plan as P
from sslad.synth.geometry import color_matrices, scar_windows, window_affines
from sslad.synth.plan import CUTPASTE_AREA, CUTPASTE_ASPECT

S = 64
N = 3000


@pytest.fixture(scope="module", params=["patch", "line"])
def plan(request):
    return balanced_plan(N // 3, 1, S, seed=123, scar=request.param), request.param


def test_labels_balanced_and_indices_cover_images(plan):
    p, _ = plan
    assert len(p) == N
    assert torch.bincount(p.label).tolist() == [N // 3] * 3
    assert set(p.index.tolist()) == set(range(N // 3))


def test_cutpaste_area_and_aspect_ranges(plan):
    p, _ = plan
    cp = p.label == PretextClass.CUTPASTE
    h, w = p.box[cp, 2], p.box[cp, 3]
    area = h * w / (S * S)
    # Sides are rounded to whole pixels: allow one pixel of slack on each side.
    lo = ((math.sqrt(CUTPASTE_AREA[0]) * S - 1) / S) ** 2 * 0.9
    assert area.min() >= lo and area.max() <= CUTPASTE_AREA[1] * 1.15
    assert area.min() < 0.04 and area.max() > 0.12  # the range is really used
    ar = w / h
    assert ar.min() >= CUTPASTE_ASPECT[0] * 0.8 and ar.max() <= CUTPASTE_ASPECT[1] * 1.25
    assert torch.all(p.angle[cp] == 0)


def test_boxes_inside_image(plan):
    p, _ = plan
    y0, x0, h, w = p.box.unbind(1)
    assert torch.all(y0 >= 0) and torch.all(x0 >= 0)
    assert torch.all(y0 + h <= S) and torch.all(x0 + w <= S)
    # Box corners of integer size and position (exact copies for cut-paste).
    assert torch.equal(p.box, p.box.round())


def test_destination_inside_image(plan):
    p, _ = plan
    sel = p.label != PretextClass.GOOD
    y0, x0, h, w = p.box[sel].unbind(1)
    a = p.angle[sel] * math.pi / 180
    hh = (h * a.cos().abs() + w * a.sin().abs()) / 2
    hw = (h * a.sin().abs() + w * a.cos().abs()) / 2
    cy, cx = p.center[sel].unbind(1)
    eps = 1e-3
    assert torch.all(cy - hh >= -eps) and torch.all(cy + hh <= S + eps)
    assert torch.all(cx - hw >= -eps) and torch.all(cx + hw <= S + eps)


def test_scar_ranges(plan):
    p, style = plan
    sc = (p.label == PretextClass.SCAR) & (p.variant == 0)
    h, w, ang = p.box[sc, 2], p.box[sc, 3], p.angle[sc]
    k = S / 256
    if style == "patch":
        assert w.min() >= 1 and w.max() <= round(16 * k)
        assert h.min() >= 2 and h.max() <= round(25 * k)
        assert ang.min() >= -45 and ang.max() <= 45 and ang.min() < -40 and ang.max() > 40
        assert torch.all(p.fill[sc] == 0)
    else:
        assert w.max() <= round(6 * k) and h.max() <= round(0.4 * S) and h.min() >= round(0.1 * S)
        assert torch.all(p.fill[sc] == 1)
        assert p.color[sc].min() >= 0 and p.color[sc].max() <= 255


def test_good_samples_have_no_paste(plan):
    p, _ = plan
    g = p.label == PretextClass.GOOD
    assert torch.all(p.box[g] == 0)
    assert torch.all(p.fill[g] == 0)


def test_jitter_and_shift_ranges(plan):
    p, _ = plan
    for j in (p.jitter, p.patch_jitter[(p.label != PretextClass.GOOD) & (p.variant == 0)]):
        assert j[:, :3].min() >= 0.9 and j[:, :3].max() <= 1.1
        assert j[:, 3].abs().max() <= 36.0
    pad = pad_for(S, 0.0625)
    assert p.shift.min() >= 0 and p.shift.max() <= 2 * pad
    assert p.shift.max() == 2 * pad  # the full range is reachable


def test_plan_is_deterministic_per_seed():
    a = balanced_plan(10, 2, S, seed=5)
    b = balanced_plan(10, 2, S, seed=5)
    c = balanced_plan(10, 2, S, seed=6)
    for k, v in a.tensors().items():
        assert torch.equal(v, b.tensors()[k]), k
    assert not torch.equal(a.box, c.box)


def test_plan_json_round_trip():
    a = balanced_plan(4, 2, S, seed=1)
    assert a.variant.any()
    b = type(a).from_json(a.to_json())
    assert torch.equal(a.label, b.label) and torch.equal(a.shift, b.shift)
    assert torch.allclose(a.box, b.box) and torch.allclose(a.angle, b.angle, atol=1e-5)
    for k in ("variant", "grid", "grid_size", "blend_index", "blend_pos"):  # the grid is exact (1/256 steps)
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert torch.allclose(a.blob, b.blob, atol=1e-5)


def test_irregular_rows_ranges():
    """Shares, blob boxes (cut-paste's sizes, inside the image), grids (zero ring, peak 1), blob and colour ranges."""
    images = 50
    p = balanced_plan(images, 20, S, seed=7, irregular=0.4, other_source=0.7)
    p.validate()
    irr = p.variant == 1
    assert not irr[p.label == PretextClass.GOOD].any()
    for c in (PretextClass.CUTPASTE, PretextClass.SCAR):
        share = float(irr[p.label == c].float().mean())
        assert abs(share - 0.4) < 0.05, (c, share)
    y0, x0, h, w = p.box[irr].unbind(1)
    assert y0.min() >= 0 and x0.min() >= 0 and (y0 + h).max() <= S and (x0 + w).max() <= S
    assert h.min() >= 6 and w.min() >= 6 and torch.equal(p.box[irr], p.box[irr].round())
    area = h * w / (S * S)
    assert area.max() <= CUTPASTE_AREA[1] * 1.15 and area.min() < 0.04
    assert torch.all(p.angle[irr] == 0) and torch.all(p.fill[irr] == 0)
    n = p.grid_size[irr]
    assert n.min() >= 3 and n.max() <= P.GRID_SIZE[1] and int(n.max()) == P.GRID_SIZE[1]
    k = torch.arange(P.GRID)
    for grid, size in zip(p.grid[irr], n.tolist(), strict=True):
        inner = (k >= 1) & (k <= size - 2)
        assert not grid[~(inner[:, None] & inner[None, :])].any()  # the zero ring (and unused cells)
        assert float(grid.max()) == 1.0 and torch.equal(grid * 256, (grid * 256).round())
    t, sharp, opacity = p.blob[irr].unbind(1)
    assert t.min() >= P.BLOB_THRESHOLD[0] and t.max() <= P.BLOB_THRESHOLD[1] and sharp.min() > 0
    assert opacity.min() >= P.BLOB_OPACITY[0] and opacity.max() <= P.BLOB_OPACITY[1]
    assert not p.blob[~irr].any() and not p.grid[~irr].any() and not p.grid_size[~irr].any()
    # Blend rows: another image for about other_source of them, inside the padded image.
    blend = irr & (p.label == PretextClass.CUTPASTE)
    other = p.blend_index[blend] != p.index[blend]
    assert abs(float(other.float().mean()) - 0.7) < 0.08
    assert p.blend_index.min() >= 0 and p.blend_index.max() < images
    side = S + 2 * p.pad
    assert p.blend_pos[blend].min() >= 0 and (p.blend_pos[blend] + p.box[blend, 2:].long()).max() <= side
    assert torch.equal(p.blend_index[~blend], p.index[~blend])
    # Alter rows: brightness outside the normal jitter, both ways; contrast in its range.
    b = p.patch_jitter[irr & (p.label == PretextClass.SCAR), 0]
    dark, bright = b < 1, b > 1
    assert dark.any() and bright.any()
    assert b[dark].min() >= P.ALTER_DARK[0] and b[dark].max() <= P.ALTER_DARK[1]
    assert b[bright].min() >= P.ALTER_BRIGHT[0] and b[bright].max() <= P.ALTER_BRIGHT[1]
    con = p.patch_jitter[irr & (p.label == PretextClass.SCAR), 1]
    assert con.min() >= P.ALTER_CONTRAST[0] and con.max() <= P.ALTER_CONTRAST[1]


def test_one_image_blends_with_itself():
    p = balanced_plan(1, 30, S, seed=3, irregular=1.0, other_source=1.0)
    assert torch.equal(p.blend_index, p.index)


@pytest.mark.parametrize("key", ["irregular", "other_source"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_config_rejects_shares_outside_0_1(key, value):
    from sslad.config import RunConfig, SynthConfig
    from sslad.errors import SsladError

    RunConfig(synth=SynthConfig(**{key: 1.0})).validate()
    with pytest.raises(SsladError, match=key.replace("_", "-")):
        RunConfig(synth=SynthConfig(**{key: value})).validate()


def test_inverse_affine_maps_centre_to_source_centre():
    p = balanced_plan(20, 1, S, seed=2)
    m = inverse_affines(p)
    y0, x0, h, w = p.box.unbind(1)
    cy, cx = p.center.unbind(1)
    sx = m[:, 0, 0] * cx + m[:, 0, 1] * cy + m[:, 0, 2]
    sy = m[:, 1, 0] * cx + m[:, 1, 1] * cy + m[:, 1, 2]
    assert torch.allclose(sx, x0 + w / 2, atol=1e-4) and torch.allclose(sy, y0 + h / 2, atol=1e-4)


def test_color_matrix_identity_and_brightness():
    m, off = color_matrices(torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.1, 1.0, 1.0, 0.0]]))
    assert torch.allclose(m[0], torch.eye(3), atol=1e-5) and torch.all(off[0] == 0)
    assert torch.allclose(m[1], 1.1 * torch.eye(3), atol=1e-5)


def test_sample_plan_rejects_unknown_scar():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError):
        sample_plan(torch.zeros(3, dtype=torch.long), S, g, scar="zigzag")


def test_groups_share_image_and_augmentation(plan):
    p, _ = plan
    p.validate()
    for name in ("index", "shift", "jitter"):
        t = getattr(p, name).view(p.groups, 3, -1)
        assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 0], t[:, 2])
    assert not torch.equal(p.box[1::3], p.box[2::3])


def test_scar_windows_hold_the_rotated_box_and_stay_inside():
    p = balanced_plan(200, 1, S, seed=9)
    sc = p.of_class(PretextClass.SCAR)
    win = scar_windows(sc)
    assert win[:, :2].min() >= 0 and (win[:, 0] + win[:, 2]).max() <= S and (win[:, 1] + win[:, 3]).max() <= S
    # The box centre maps into the window, and the window affine maps it back to the patch centre.
    cy, cx = sc.center.unbind(1)
    assert torch.all(cy >= win[:, 0]) and torch.all(cy <= win[:, 0] + win[:, 2])
    aff = window_affines(sc, win)
    lx, ly = cx - win[:, 1], cy - win[:, 0]
    px = aff[:, 0, 0] * lx + aff[:, 0, 1] * ly + aff[:, 0, 2]
    py = aff[:, 1, 0] * lx + aff[:, 1, 1] * ly + aff[:, 1, 2]
    assert torch.allclose(px, sc.box[:, 3] / 2, atol=1e-3) and torch.allclose(py, sc.box[:, 2] / 2, atol=1e-3)
