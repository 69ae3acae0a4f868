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
    crack = p.variant == 2  # cracks keep their opacity in blob[2]
    assert not p.blob[~irr & ~crack].any() and not p.grid[~irr].any() and not p.grid_size[~irr].any()
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


@pytest.mark.parametrize("key, value", [(k, v) for k in ("irregular", "other_source", "cracks", "border")
                                        for v in (-0.1, 1.5)] + [("blob_area", 0.01), ("blob_area", 1.5)])
def test_config_rejects_synth_values_out_of_range(key, value):
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


# --- Cracks (class-2 variant 2: thin meandering polylines) ------------------------------------------


def test_crack_rows_ranges():
    """Shares (only among the non-blob scars), segment counts, widths, lengths, turns, joints, window, colour."""
    size = 256
    p = balanced_plan(40, 10, size, seed=5, irregular=0.3, cracks=0.5)
    p.validate()
    crack = p.variant == 2
    scar = p.label == PretextClass.SCAR
    assert not crack[~scar].any()
    share = float(crack[scar & (p.variant != 1)].float().mean())
    assert abs(share - 0.5) < 0.06, share
    assert abs(float((p.variant[scar] == 1).float().mean()) - 0.3) < 0.06  # the blobs' share is untouched
    n = p.crack_segments[crack]
    assert int(n.min()) == P.CRACK_SEGMENTS[0] and int(n.max()) == P.CRACK_SEGMENTS[1]
    assert not p.crack_segments[~crack].any() and not p.crack[~crack].any()
    k = size / 256
    for i in crack.nonzero().flatten().tolist():
        m = int(p.crack_segments[i])
        cy, cx, h, w, ang = p.crack[i, :m].double().unbind(1)
        assert not p.crack[i, m:].any()
        assert w.min() >= 1 and w.max() <= round(P.CRACK_WIDTH_256[1] * k)
        length = h - w  # each box is its segment's length plus its width (overlapping joints)
        assert length.min() >= 2
        total = float(length.sum())
        assert P.CRACK_LENGTH[0] * size - m <= total <= P.CRACK_LENGTH[1] * size + m, (i, total)
        turn = (ang[1:] - ang[:-1] + 180) % 360 - 180
        assert turn.abs().max() <= P.CRACK_TURN + 1e-3, i
        # Joints: each segment ends where the next starts.
        rad = ang * math.pi / 180
        dy, dx = rad.cos() * length / 2, rad.sin() * length / 2
        assert torch.allclose(cy[:-1] + dy[:-1], cy[1:] - dy[1:], atol=1e-3)
        assert torch.allclose(cx[:-1] + dx[:-1], cx[1:] - dx[1:], atol=1e-3)
        # The window (the row's box) is inside the image and holds every rotated segment box.
        y0, x0, bh, bw = p.box[i].tolist()
        assert y0 >= 0 and x0 >= 0 and y0 + bh <= size and x0 + bw <= size
        hh = (h * rad.cos().abs() + w * rad.sin().abs()) / 2
        hw = (h * rad.sin().abs() + w * rad.cos().abs()) / 2
        assert (cy - hh).min() >= y0 and (cy + hh).max() <= y0 + bh and (cx - hw).min() >= x0
        assert (cx + hw).max() <= x0 + bw
    assert int(p.crack[crack][:, :, 3].max()) == round(P.CRACK_WIDTH_256[1] * k)  # the width range is used
    assert torch.all(p.angle[crack] == 0) and torch.all(p.fill[crack] == 0) and not p.color[crack].any()
    b = p.patch_jitter[crack, 0]
    dark = b < 1
    assert b[dark].min() >= P.CRACK_DARK[0] and b[dark].max() <= P.CRACK_DARK[1]
    assert b[~dark].min() >= P.CRACK_BRIGHT[0] and b[~dark].max() <= P.CRACK_BRIGHT[1]
    assert 0.5 < float(dark.float().mean()) < 0.9  # mostly dark, like real cracks
    assert torch.equal(p.patch_jitter[crack, 1:], torch.tensor([1.0, 1.0, 0.0]).expand(int(crack.sum()), 3))
    opacity = p.blob[crack, 2]
    assert opacity.min() >= P.CRACK_OPACITY[0] and opacity.max() <= P.CRACK_OPACITY[1]
    assert not p.blob[crack, :2].any()


def test_cracks_change_only_their_rows():
    """Crack draws come after every other: a share only turns plain scars into cracks, nothing else moves."""
    for irregular in (0.0, 0.5):
        base = balanced_plan(30, 2, S, seed=8, irregular=irregular, cracks=0.0)
        mixed = balanced_plan(30, 2, S, seed=8, irregular=irregular, cracks=0.6)
        crack = mixed.variant == 2
        assert crack.any() and not base.crack.any()
        assert torch.equal(base.variant[crack], torch.zeros(int(crack.sum()), dtype=torch.int64))  # plain scars
        for k, v in base.tensors().items():
            assert torch.equal(getattr(mixed, k)[~crack], v[~crack]), k


def test_crack_plan_json_round_trip():
    a = balanced_plan(6, 3, S, seed=2, cracks=1.0)
    assert a.cracks().any()
    obj = a.to_json()
    row = next(r for r in obj["samples"] if r["variant"] == 2)
    assert 3 <= len(row["crack"]) <= 6 and len(row["crack"][0]) == 5
    b = type(a).from_json(obj).validate()
    assert torch.equal(a.crack_segments, b.crack_segments) and torch.equal(a.variant, b.variant)
    assert torch.allclose(a.crack, b.crack, atol=1e-4)
    for r in obj["samples"]:  # plan.json files written before cracks load as plans without any
        del r["crack"]
    old = type(a).from_json(obj)
    assert not old.crack.any() and not old.crack_segments.any()


def test_plan_validate_rejects_cracks_outside_class_2():
    p = balanced_plan(3, 1, S, seed=1, cracks=1.0)
    p.variant[1] = 2
    with pytest.raises(ValueError, match="cracks"):
        p.validate()


def test_border_moves_only_the_footprints_of_its_rows():
    """Border draws come last: a share moves some anomalies (their position fields, a blob's grid ring), nothing else;
    share 0 is the plan without the option."""
    moved_fields = {"center", "box", "crack", "grid"}
    for irregular, cracks in ((0.0, 0.0), (0.5, 0.5)):
        base = balanced_plan(40, 2, S, seed=8, irregular=irregular, cracks=cracks)
        assert all(torch.equal(v, getattr(balanced_plan(40, 2, S, seed=8, irregular=irregular, cracks=cracks,
                                                         border=0.0), k)) for k, v in base.tensors().items())
        moved = balanced_plan(40, 2, S, seed=8, irregular=irregular, cracks=cracks, border=0.5).validate()
        changed = (moved.center != base.center).any(1)
        assert 0.3 < float(changed[base.label != 0].float().mean()) < 0.7 and not changed[base.label == 0].any()
        for k, v in base.tensors().items():
            same = v[~changed] if k in moved_fields else v
            assert torch.equal(getattr(moved, k)[~changed] if k in moved_fields else getattr(moved, k), same), k
        cp = changed & (base.label == PretextClass.CUTPASTE) & (base.variant == 0)
        assert torch.equal(moved.box[cp], base.box[cp])  # a cut-paste's source box stays where it was cut


def _only_blob_boxes_differ(a, b, blob):
    """Plans ``a`` and ``b`` are equal but for the blob rows' boxes and what follows from a box."""
    for k, v in a.tensors().items():
        rows = ~blob if k in {"box", "center", "blob", "grid", "grid_size", "blend_pos"} else slice(None)
        assert torch.equal(getattr(b, k)[rows], v[rows]), k


def _blob_areas(p, blob):
    return p.box[blob, 2] * p.box[blob, 3] / S**2


def test_blob_area_sizes_only_the_blob_boxes():
    """--blob-area draws the same numbers: at its default the plan is unchanged; larger, only the blob rows' boxes
    (and what follows from a box: centre, edge sharpness, grid side, where a blend reads) change, areas up to the
    limit and beyond 15 %."""
    base = balanced_plan(60, 2, S, seed=4, irregular=0.5, cracks=0.5)
    same = balanced_plan(60, 2, S, seed=4, irregular=0.5, cracks=0.5, blob_area=0.15)
    assert all(torch.equal(v, getattr(same, k)) for k, v in base.tensors().items())
    big = balanced_plan(60, 2, S, seed=4, irregular=0.5, cracks=0.5, blob_area=0.6).validate()
    blob = base.variant == 1
    assert torch.equal(big.variant, base.variant)
    _only_blob_boxes_differ(base, big, blob)
    a_base, a_big = _blob_areas(base, blob), _blob_areas(big, blob)
    assert float(a_base.max()) <= 0.16 and 0.3 < float(a_big.max()) <= 0.6
    assert (a_big >= a_base - 0.01).all()  # the same draw, scaled: never smaller (but for rounding)
    assert torch.equal(big.blob[blob, 2], base.blob[blob, 2])  # the same opacity


def test_blob_sizes_log_keeps_small_blobs_with_a_large_tail():
    """--blob-sizes log maps the same draw log-uniformly: only the blob rows' boxes (and what follows from a box)
    change; no blob is larger than the uniform law's on the same draw; most stay under the uniform law's median, a
    tail still passes 30 %, and the smallest box is the uniform law's (2 %)."""
    uni = balanced_plan(200, 2, S, seed=4, irregular=0.5, cracks=0.5, blob_area=0.6)
    log = balanced_plan(200, 2, S, seed=4, irregular=0.5, cracks=0.5, blob_area=0.6, blob_sizes="log").validate()
    blob = uni.variant == 1
    _only_blob_boxes_differ(uni, log, blob)
    a_uni, a_log = _blob_areas(uni, blob), _blob_areas(log, blob)
    assert (a_log <= a_uni + 0.01).all()  # log-uniform lies below uniform on the same draw (but for rounding)
    assert float((a_log < float(a_uni.median())).float().mean()) > 0.7
    assert 0.3 < float(a_log.max()) <= 0.62 and float(a_log.min()) < 0.03  # (rounded sides)
    assert torch.equal(log.blob[blob, 2], uni.blob[blob, 2])  # the same opacity
    with pytest.raises(ValueError, match="blob size law"):
        balanced_plan(2, 1, S, seed=0, blob_sizes="normal")


def test_border_rows_touch_a_side():
    """share 1: every anomaly's footprint meets a side of the image; its size and shape are unchanged."""
    p = balanced_plan(50, 2, S, seed=3, irregular=0.5, cracks=0.5, border=1.0).validate()
    base = balanced_plan(50, 2, S, seed=3, irregular=0.5, cracks=0.5)
    an = p.label != PretextClass.GOOD
    placed = an & (p.variant != 0)
    top, left, h, w = p.box[placed].unbind(1)
    gap = torch.stack([top, left, S - (top + h), S - (left + w)], 1).amin(1)
    assert torch.equal(gap, torch.zeros_like(gap)) and torch.equal(p.box[placed, 2:], base.box[placed, 2:])
    cp = an & (p.variant == 0) & (p.label == PretextClass.CUTPASTE)
    lo = p.center[cp] - p.box[cp, 2:] / 2
    gap = torch.cat([lo, S - (lo + p.box[cp, 2:])], 1).amin(1)
    assert torch.equal(gap, torch.zeros_like(gap))
    assert torch.equal(p.crack[..., 2:], base.crack[..., 2:])  # segments moved, not reshaped
    assert (p.grid[placed & (p.variant == 1)] >= base.grid[placed & (p.variant == 1)]).all()  # a ring filled in
