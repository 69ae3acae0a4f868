"""Feature: the plan sampler's ranges and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from sslad.synth import PretextClass, balanced_plan, inverse_affines, pad_for, sample_plan
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
    sc = p.label == PretextClass.SCAR
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
    for j in (p.jitter, p.patch_jitter[p.label != PretextClass.GOOD]):
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
    a = balanced_plan(4, 1, S, seed=1)
    b = type(a).from_json(a.to_json())
    assert torch.equal(a.label, b.label) and torch.equal(a.shift, b.shift)
    assert torch.allclose(a.box, b.box) and torch.allclose(a.angle, b.angle, atol=1e-5)


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
