"""The pretext *plan*: every random choice of a synthetic batch, sampled once, rendered by any backend.

A plan row describes one synthetic sample:

1. whole-image augmentation (all classes): an integer translation, read as a crop of the
   reflect-padded base image, and a colour jitter (brightness, contrast, saturation, hue);
2. the pretext operation, as one *paste*: a source box of the augmented image is colour
   jittered, moved by an affine map (rotation about its centre + translation) and composited
   through the warped box indicator; a line scar is the same paste filled with one colour.
   Class 0 has an empty box, so nothing is pasted.

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

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("image_size", "pad")}

    def slice(self, start: int, stop: int) -> Plan:
        return Plan(**{k: v[start:stop] for k, v in self.tensors().items()},
                    image_size=self.image_size, pad=self.pad)

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


def _rotated_half_extent(h: torch.Tensor, w: torch.Tensor, angle_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half height/width of the axis-aligned bounding box of an (h, w) box rotated by angle."""
    a = angle_deg * (math.pi / 180.0)
    c, s = a.cos().abs(), a.sin().abs()
    return (h * c + w * s) / 2, (h * s + w * c) / 2


def sample_plan(
    labels: torch.Tensor,
    indices: torch.Tensor,
    image_size: int,
    generator: torch.Generator,
    scar: str = "patch",
    jitter: float = 0.1,
    translate: float = 0.0625,
) -> Plan:
    """Sample the parameters of a synthetic batch.

    Args:
        labels: int64 (N,) class of each sample (0 good, 1 cut-paste, 2 scar).
        indices: int64 (N,) base training image of each sample.
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
    n = int(labels.shape[0])
    S = float(image_size)
    pad = pad_for(image_size, translate)
    labels = labels.to(torch.int64).cpu()
    indices = indices.to(torch.int64).cpu()

    shift = torch.randint(0, 2 * pad + 1, (n, 2), generator=g)
    whole = _jitter(g, n, jitter)
    patch = _jitter(g, n, jitter)

    # Cut-paste: area ratio U(0.02, 0.15), log-uniform aspect; integer box inside the image.
    area = _u(g, n, *CUTPASTE_AREA) * S * S
    log_ar = _u(g, n, math.log(CUTPASTE_ASPECT[0]), math.log(CUTPASTE_ASPECT[1]))
    aspect = log_ar.exp()
    cp_w = (area * aspect).sqrt().round().clamp(1, S - 1)
    cp_h = (area / aspect).sqrt().round().clamp(1, S - 1)

    # Scar box: a thin rectangle, long side along y before rotation.
    k = S / 256.0
    if scar == "patch":
        sc_w = (_u(g, n, *SCAR_WIDTH_256) * k).round().clamp(min=1)
        sc_h = (_u(g, n, *SCAR_LENGTH_256) * k).round().clamp(min=2)
        sc_angle = _u(g, n, -45.0, 45.0)
    else:
        sc_w = (_u(g, n, *LINE_WIDTH_256) * k).round().clamp(min=1)
        sc_h = (_u(g, n, *LINE_LENGTH) * S).round().clamp(min=2)
        sc_angle = _u(g, n, -90.0, 90.0)

    is_cp = labels == CUTPASTE
    is_sc = labels == SCAR
    h = torch.where(is_cp, cp_h, torch.where(is_sc, sc_h, torch.zeros(n)))
    w = torch.where(is_cp, cp_w, torch.where(is_sc, sc_w, torch.zeros(n)))
    angle = torch.where(is_sc, sc_angle, torch.zeros(n))

    # Source box: integer top-left, fully inside. Line scars take no pixels from the source,
    # but their box indicator must lie inside too: centre it.
    y0 = (torch.rand(n, generator=g) * (S - h + 1)).floor()
    x0 = (torch.rand(n, generator=g) * (S - w + 1)).floor()
    if scar == "line":
        y0 = torch.where(is_sc, ((S - h) / 2).floor(), y0)
        x0 = torch.where(is_sc, ((S - w) / 2).floor(), x0)

    # Destination: the rotated box lies inside the image. Cut-paste keeps an integer offset so
    # that it is an exact pixel copy (no interpolation).
    hh, hw = _rotated_half_extent(h, w, angle)
    ry, rx = torch.rand(n, generator=g), torch.rand(n, generator=g)
    straight = angle == 0
    # Unrotated: integer top-left in [0, S - h] (integer offset). Rotated: continuous placement.
    cy = torch.where(straight, (ry * (S - h + 1)).floor() + h / 2, hh + ry * (S - 2 * hh).clamp(min=0))
    cx = torch.where(straight, (rx * (S - w + 1)).floor() + w / 2, hw + rx * (S - 2 * hw).clamp(min=0))

    color = torch.rand(n, 3, generator=g) * 255.0
    fill = (is_sc & (scar == "line")).to(torch.float32)

    zero = labels == GOOD
    box = torch.stack([y0, x0, h, w], dim=1)
    box[zero] = 0.0
    center = torch.stack([cy, cx], dim=1)
    center[zero] = 0.0
    patch[zero] = torch.tensor([1.0, 1.0, 1.0, 0.0])
    return Plan(
        label=labels, index=indices, shift=shift, jitter=whole, patch_jitter=patch,
        box=box, center=center, angle=angle, color=color, fill=fill, image_size=image_size, pad=pad,
    )


def balanced_plan(
    num_images: int, variants: int, image_size: int, seed: int, scar: str = "patch",
    jitter: float = 0.1, translate: float = 0.0625,
) -> Plan:
    """One regeneration: ``variants`` samples per class per training image, fully seeded.

    Ordered image-major: for each variant, for each image, classes 0, 1, 2. Training shuffles.
    """
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.arange(num_images).repeat_interleave(3).repeat(variants)
    lab = torch.tensor([GOOD, CUTPASTE, SCAR]).repeat(num_images * variants)
    return sample_plan(lab, idx, image_size, g, scar=scar, jitter=jitter, translate=translate)


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
