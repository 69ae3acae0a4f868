"""The pretext *plan*: every random choice of a synthetic batch, sampled once, rendered by any backend.

A plan is a sequence of *groups*, one per base image draw, of three rows: class 0 (good),
1 (cut-paste) and 2 (scar). The rows of a group share

1. the whole-image augmentation: an integer translation, read as a crop of the reflect-padded
   base image, and a colour jitter (brightness, contrast, saturation, hue). Sharing it makes the
   class-0 row the exact *twin* of the other two (as in the 3-way CutPaste recipe, where one
   augmented image yields all three samples) and means the augmentation is computed once per
   group, not once per sample.

Classes 1 and 2 add one *paste* each: a source box of the augmented image is colour jittered
(or, for a line scar, filled with one colour), moved by an affine map (rotation about its
centre + translation) and composited over the image with premultiplied alpha, the alpha being
the bilinearly warped box indicator. Cut-paste boxes are unrotated and land on whole pixels, so
they are exact copies; scars are rotated and interpolated.

Same plan in, same pixels out (up to interpolation): each backend only renders.
Colour maths follow DALI's ``color_twist`` (a linear map in YIQ space), so the torch renderer
and the DALI graph agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

GOOD, CUTPASTE, SCAR = 0, 1, 2
CLASS_NAMES = ("good", "cutpaste", "scar")

#: Sizes of the CutPaste-Scar patch at 256 px, scaled linearly with the image side.
SCAR_WIDTH_256 = (2.0, 16.0)
SCAR_LENGTH_256 = (10.0, 25.0)
#: CutPaste patch: area ratio and aspect-ratio range (paper values).
CUTPASTE_AREA = (0.02, 0.15)
CUTPASTE_ASPECT = (0.3, 3.3)
#: Line scar ("line" style): thickness at 256 px and length as a fraction of the side.
LINE_WIDTH_256 = (2.0, 6.0)
LINE_LENGTH = (0.1, 0.4)


@dataclass
class Plan:
    """Per-sample parameters of a synthetic batch (all tensors on the CPU, first dim N).

    Attributes:
        label: int64, 0 good / 1 cut-paste / 2 scar.
        index: int64, which training image is the base.
        shift: int64 (N, 2), (dy, dx) crop offset into the reflect-padded image, in [0, 2*pad].
        jitter: float32 (N, 4), whole-image (brightness, contrast, saturation, hue in degrees).
        patch_jitter: float32 (N, 4), the same for the pasted patch.
        box: float32 (N, 4), source box (y0, x0, h, w) in pixels of the augmented image;
            h = w = 0 for class 0.
        center: float32 (N, 2), (cy, cx) where the box centre lands.
        angle: float32 (N,), rotation of the pasted box about its centre, in degrees.
        color: float32 (N, 3), fill colour (0..255) for line scars.
        fill: float32 (N,), 1 where the box is filled with ``color`` instead of the patch.
    """

    label: torch.Tensor
    index: torch.Tensor
    shift: torch.Tensor
    jitter: torch.Tensor
    patch_jitter: torch.Tensor
    box: torch.Tensor
    center: torch.Tensor
    angle: torch.Tensor
    color: torch.Tensor
    fill: torch.Tensor
    image_size: int = 0
    pad: int = 0

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def groups(self) -> int:
        return len(self) // 3

    def group_slice(self, start: int, stop: int) -> Plan:
        """Groups ``start:stop`` (rows ``3*start:3*stop``)."""
        return self.slice(3 * start, 3 * stop)

    def rows(self, index) -> Plan:
        """A plan of the selected rows (a slice or an index tensor)."""
        return Plan(**{k: v[index] for k, v in self.tensors().items()}, image_size=self.image_size, pad=self.pad)

    def slice_class(self, label: int) -> Plan:
        """The rows of one class (one per group)."""
        return self.rows(slice(label, None, 3))

    def validate(self) -> Plan:
        """Check the group structure every renderer relies on; raise ValueError if broken."""
        n = len(self)
        if n % 3:
            raise ValueError(f"a plan holds whole groups of 3 rows, not {n} rows")
        lab = self.label.view(-1, 3)
        if not torch.equal(lab, torch.tensor([GOOD, CUTPASTE, SCAR]).expand_as(lab)):
            raise ValueError("each plan group must hold classes 0, 1, 2 in that order")
        for name in ("index", "shift", "jitter"):
            t = getattr(self, name).view(n // 3, 3, -1)
            if not torch.equal(t, t[:, :1].expand_as(t)):
                raise ValueError(f"rows of a group must share {name}")
        cp = self.label == CUTPASTE
        tl = self.center[cp] - self.box[cp, 2:] / 2
        if bool((self.angle[cp] != 0).any()) or not torch.equal(tl, tl.round()):
            raise ValueError("cut-paste rows must be unrotated and land on whole pixels")
        if bool((self.box[self.label == GOOD] != 0).any()):
            raise ValueError("class-0 rows paste nothing (empty box)")
        return self

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("image_size", "pad")}

    def slice(self, start: int, stop: int) -> Plan:
        return self.rows(slice(start, stop))

    def to_json(self) -> dict:
        """A readable, complete description (for ``plan.json``)."""
        rows = []
        for i in range(len(self)):
            rows.append({
                "label": int(self.label[i]), "class": CLASS_NAMES[int(self.label[i])],
                "index": int(self.index[i]), "shift": [int(v) for v in self.shift[i]],
                "jitter": [round(float(v), 6) for v in self.jitter[i]],
                "patch_jitter": [round(float(v), 6) for v in self.patch_jitter[i]],
                "box": [round(float(v), 4) for v in self.box[i]],
                "center": [round(float(v), 4) for v in self.center[i]],
                "angle": round(float(self.angle[i]), 6),
                "color": [round(float(v), 4) for v in self.color[i]],
                "fill": int(self.fill[i]),
            })
        return {"image_size": self.image_size, "pad": self.pad, "samples": rows}

    @classmethod
    def from_json(cls, obj: dict) -> Plan:
        rows = obj["samples"]
        def col(key, dtype):
            return torch.tensor([r[key] for r in rows], dtype=dtype)
        return cls(
            label=col("label", torch.int64), index=col("index", torch.int64), shift=col("shift", torch.int64),
            jitter=col("jitter", torch.float32), patch_jitter=col("patch_jitter", torch.float32),
            box=col("box", torch.float32), center=col("center", torch.float32), angle=col("angle", torch.float32),
            color=col("color", torch.float32), fill=col("fill", torch.float32),
            image_size=int(obj["image_size"]), pad=int(obj["pad"]),
        )


def pad_for(image_size: int, translate: float) -> int:
    """Reflect padding (pixels per side) that gives a translation of up to ``translate * side``."""
    return int(round(image_size * translate))


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _jitter(g: torch.Generator, n: int, strength: float) -> torch.Tensor:
    """(brightness, contrast, saturation, hue°) factors as torchvision's ColorJitter(s, s, s, s) draws them."""
    s = strength
    return torch.stack([
        _u(g, n, 1 - s, 1 + s), _u(g, n, 1 - s, 1 + s), _u(g, n, 1 - s, 1 + s), _u(g, n, -s, s) * 360.0,
    ], dim=1)


def _rotated_half_extent(h: torch.Tensor, w: torch.Tensor,
                         angle_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half height/width of the axis-aligned bounding box of an (h, w) box rotated by angle."""
    a = angle_deg * (math.pi / 180.0)
    c, s = a.cos().abs(), a.sin().abs()
    return (h * c + w * s) / 2, (h * s + w * c) / 2


def sample_plan(
    indices: torch.Tensor,
    image_size: int,
    generator: torch.Generator,
    scar: str = "patch",
    jitter: float = 0.1,
    translate: float = 0.0625,
) -> Plan:
    """Sample the parameters of ``len(indices)`` groups (3 rows each: good, cut-paste, scar).

    Args:
        indices: int64 (G,) base training image of each group.
        image_size: side S of the (square) images.
        generator: seeded CPU generator; the plan is a pure function of its state.
        scar: ``"patch"`` (CutPaste-Scar: a thin rotated patch of the same image) or ``"line"``
            (a thin line of one random colour).
        jitter: colour-jitter strength for the whole image and for the patch.
        translate: whole-image translation, as a fraction of the side.
    """
    if scar not in ("line", "patch"):
        raise ValueError(f"unknown scar style {scar!r}")
    g = generator
    groups = int(indices.shape[0])
    S = float(image_size)
    pad = pad_for(image_size, translate)

    # Shared per group: the whole-image augmentation.
    shift = torch.randint(0, 2 * pad + 1, (groups, 2), generator=g)
    whole = _jitter(g, groups, jitter)

    # Cut-paste: area ratio U(0.02, 0.15), log-uniform aspect; integer boxes inside the image.
    area = _u(g, groups, *CUTPASTE_AREA) * S * S
    aspect = _u(g, groups, math.log(CUTPASTE_ASPECT[0]), math.log(CUTPASTE_ASPECT[1])).exp()
    cp_w = (area * aspect).sqrt().round().clamp(1, S - 1)
    cp_h = (area / aspect).sqrt().round().clamp(1, S - 1)
    cp_y0 = (torch.rand(groups, generator=g) * (S - cp_h + 1)).floor()
    cp_x0 = (torch.rand(groups, generator=g) * (S - cp_w + 1)).floor()
    cp_ty = (torch.rand(groups, generator=g) * (S - cp_h + 1)).floor()
    cp_tx = (torch.rand(groups, generator=g) * (S - cp_w + 1)).floor()
    cp_jit = _jitter(g, groups, jitter)

    # Scar: a thin box, long side along y before rotation.
    k = S / 256.0
    if scar == "patch":
        sc_w = (_u(g, groups, *SCAR_WIDTH_256) * k).round().clamp(min=1)
        sc_h = (_u(g, groups, *SCAR_LENGTH_256) * k).round().clamp(min=2)
        sc_angle = _u(g, groups, -45.0, 45.0)
        sc_y0 = (torch.rand(groups, generator=g) * (S - sc_h + 1)).floor()
        sc_x0 = (torch.rand(groups, generator=g) * (S - sc_w + 1)).floor()
    else:
        sc_w = (_u(g, groups, *LINE_WIDTH_256) * k).round().clamp(min=1)
        sc_h = (_u(g, groups, *LINE_LENGTH) * S).round().clamp(min=2)
        sc_angle = _u(g, groups, -90.0, 90.0)
        # A line takes no pixels from the image; its box only shapes the alpha. Centre it.
        sc_y0, sc_x0 = ((S - sc_h) / 2).floor(), ((S - sc_w) / 2).floor()
    hh, hw = _rotated_half_extent(sc_h, sc_w, sc_angle)
    sc_cy = hh + torch.rand(groups, generator=g) * (S - 2 * hh).clamp(min=0)
    sc_cx = hw + torch.rand(groups, generator=g) * (S - 2 * hw).clamp(min=0)
    sc_jit = _jitter(g, groups, jitter)
    color = torch.rand(groups, 3, generator=g) * 255.0
    fill = torch.full((groups,), 1.0 if scar == "line" else 0.0)

    zero4 = torch.zeros(groups, 4)

    def rows(a, b, c):  # interleave per-class tensors into rows g*3 + class
        return torch.stack([a, b, c], dim=1).reshape(groups * 3, *a.shape[1:])

    zeros = torch.zeros(groups)
    return Plan(
        label=torch.tensor([GOOD, CUTPASTE, SCAR]).repeat(groups),
        index=indices.to(torch.int64).cpu().repeat_interleave(3),
        shift=shift.repeat_interleave(3, dim=0),
        jitter=whole.repeat_interleave(3, dim=0),
        patch_jitter=rows(torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(groups, 4), cp_jit, sc_jit),
        box=rows(zero4, torch.stack([cp_y0, cp_x0, cp_h, cp_w], 1), torch.stack([sc_y0, sc_x0, sc_h, sc_w], 1)),
        center=rows(torch.zeros(groups, 2), torch.stack([cp_ty + cp_h / 2, cp_tx + cp_w / 2], 1),
                    torch.stack([sc_cy, sc_cx], 1)),
        angle=rows(zeros, zeros, sc_angle),
        color=rows(torch.zeros(groups, 3), torch.zeros(groups, 3), color),
        fill=rows(zeros, zeros, fill),
        image_size=image_size, pad=pad,
    )


def balanced_plan(
    num_images: int, variants: int, image_size: int, seed: int, scar: str = "patch",
    jitter: float = 0.1, translate: float = 0.0625,
) -> Plan:
    """One regeneration: ``variants`` groups (good, cut-paste, scar) per training image, seeded.

    Ordered variant-major, then image, then class. Training shuffles.
    """
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.arange(num_images).repeat(variants)
    return sample_plan(idx, image_size, g, scar=scar, jitter=jitter, translate=translate)


# --- colour and geometry, shared by every renderer ------------------------------------------

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
    hh, hw = _rotated_half_extent(h, w, plan.angle)
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
    m = inverse_affines(plan)
    wy, wx = windows[:, 0].to(torch.float32), windows[:, 1].to(torch.float32)
    t = m[:, :, 2] + m[:, :, 0] * wx[:, None] + m[:, :, 1] * wy[:, None]
    t = t - torch.stack([plan.box[:, 1], plan.box[:, 0]], 1)
    return torch.cat([m[:, :, :2], t[:, :, None]], dim=2)


def inverse_affines(plan: Plan) -> torch.Tensor:
    """(N, 2, 3) maps from destination pixel coordinates (x, y) to source coordinates (x, y).

    Coordinates are continuous with pixel centres at ``i + 0.5`` (DALI's ``warp_affine``
    convention with ``inverse_map=True``). The box rotates about its own centre.
    """
    y0, x0, h, w = plan.box.unbind(1)
    scy, scx = y0 + h / 2, x0 + w / 2
    cy, cx = plan.center.unbind(1)
    a = plan.angle * (math.pi / 180.0)
    cos, sin = a.cos(), a.sin()
    # src = R(-a) (dst - c) + sc, in (x, y); R(a) rotates counter-clockwise on screen (y down).
    m = torch.zeros(len(plan), 2, 3)
    m[:, 0, 0] = cos
    m[:, 0, 1] = -sin
    m[:, 1, 0] = sin
    m[:, 1, 1] = cos
    m[:, 0, 2] = scx - (cos * cx - sin * cy)
    m[:, 1, 2] = scy - (sin * cx + cos * cy)
    return m
