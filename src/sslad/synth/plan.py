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

Irregular variants (``variant == 1``; a share ``irregular`` of the class-1 and class-2 rows):
instead of a box or a line, a soft blob. A small random grid (``grid``, ``grid_size`` cells a
side, a ring of zeros around random values) is upsampled bilinearly onto the destination
``box``, thresholded with a feathered edge, ``soft = clamp((noise - t) * k + 0.5, 0, 1)``, and
the ring makes it fade to 0 before the box border, so the blob stays local and irregular. Inside
it, with ``alpha = opacity * soft`` and ``out = round(A * (1 - alpha) + C * alpha)``:

* class 1 "blend": ``C`` is content of another training image (``blend_index``; or, for a share
  ``1 - other_source``, the same image at another place), taken from the reflect-padded image at
  ``blend_pos`` and colour jittered with ``patch_jitter`` (content *moved*, DRAEM/NSA style);
* class 2 "alter": ``C`` is the image's own content under a strong colour twist
  (``patch_jitter``, brightness and contrast outside the normal jitter range): content *altered*.

The mask of an irregular row is ``soft >= 0.5``. Its random numbers are drawn after all the
others, so with ``irregular = 0`` a plan's other fields are exactly the plain plan's.

Cracks (``variant == 2``; a share ``cracks`` of the class-2 rows that are *not* blobs, so a row
is never both and the blobs' choice is untouched): a thin meandering polyline like a crack in a
tile or a solar cell. ``crack_segments`` (3-6) segments of ``crack`` (``cy, cx, h, w, angle`` each,
a thin box whose long side ``h`` runs along the polyline, 1-4 px wide at 256 px, each turning up
to ``CRACK_TURN`` degrees from the previous one, ``CRACK_LENGTH`` of the side in all). Each
segment's alpha is the bilinearly warped box indicator, exactly as a line scar's; the crack's
alpha is the maximum over its segments, ``alpha = opacity * max_k a_k`` (opacity in ``blob[2]``),
and inside ``box`` (the window that holds every segment) the image is darkened or brightened,
``out = round(A * (1 - alpha) + clamp(twist(A, patch_jitter)) * alpha)``: the local texture stays,
which is what real cracks look like, and grey images stay grey. The mask is ``max_k a_k >= 0.5``.
Its numbers are drawn after the blobs' (all of them, whatever the shares), so ``cracks = 0``
leaves every plan byte-identical.

Border anomalies (a share ``border`` of the class-1 and class-2 rows, any variant): the anomaly is
moved, unchanged, until it touches one side of the image (top, bottom, left or right, uniform). A
position drawn uniformly inside the image covers the border pixels rarely (a pixel of the outer
rows is covered by a box only when the box starts there: at 128 px about 1/30 as often as a
centre pixel, and never by a blob, whose ring of zeros keeps it off its box's border), so a
per-pixel head learns that anomalies never sit at a border, and misses real ones there (a defect
cut by the frame, a tile's edge). A moved blob's grid continues to the border on that side: its
ring there copies the first inner row or column, whose largest cell is set to 1. Drawn after
everything else (all the numbers whatever the share), so ``border = 0`` leaves every plan
byte-identical; the positions are ones a plain plan can draw, so every renderer draws them as is.

Same plan in, same pixels out (up to interpolation): each backend only renders.
Colour maths follow DALI's ``color_twist`` (a linear map in YIQ space), so the torch renderer
and the DALI graph agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import IntEnum

import torch

from sslad.config import BLOB_SIZES, SCARS, SynthConfig
from sslad.synth.geometry import rotated_half_extent


class PretextClass(IntEnum):
    """The 3-way pretext labels (the order of the rows of every plan group)."""

    GOOD = 0
    CUTPASTE = 1
    SCAR = 2


CLASS_NAMES = tuple(c.name.lower() for c in PretextClass)

#: Sizes of the CutPaste-Scar patch at 256 px, scaled linearly with the image side.
SCAR_WIDTH_256 = (2.0, 16.0)
SCAR_LENGTH_256 = (10.0, 25.0)
#: CutPaste patch: area ratio and aspect-ratio range (paper values).
CUTPASTE_AREA = (0.02, 0.15)
CUTPASTE_ASPECT = (0.3, 3.3)
#: Line scar ("line" style): thickness at 256 px and length as a fraction of the side.
LINE_WIDTH_256 = (2.0, 6.0)
LINE_LENGTH = (0.1, 0.4)
#: Irregular blobs: the stored grid side (fixed shape; a row uses its top-left ``grid_size`` cells,
#: a ring of zeros around (grid_size - 2)^2 random values), the threshold, edge sharpness and opacity.
GRID = 8
GRID_SIZE = (5, 8)
BLOB_THRESHOLD = (0.3, 0.6)
#: Edge sharpness per pixel of grid cell: k = BLOB_SHARPNESS * (box side / cells), so the feather
#: (0 < soft < 1) is about as wide in pixels whatever the box and grid size.
BLOB_SHARPNESS = 4.0
BLOB_OPACITY = (0.5, 1.0)
#: The strong colour twist of "alter" rows: brightness darkens or brightens, contrast either way.
ALTER_DARK = (0.5, 0.8)
ALTER_BRIGHT = (1.2, 1.6)
ALTER_CONTRAST = (0.6, 1.5)
#: Cracks: segments per crack (the ``crack`` tensor holds CRACK_MAX), width of a segment at 256 px
#: (scaled with the side, at least 1 px), total length as a fraction of the side, the largest turn
#: between segments (degrees), the share drawn dark, the brightness factors and the opacity.
CRACK_SEGMENTS = (3, 6)
CRACK_MAX = CRACK_SEGMENTS[1]
CRACK_WIDTH_256 = (1.0, 4.0)
CRACK_LENGTH = (0.1, 0.4)
CRACK_TURN = 40.0
CRACK_DARK_SHARE = 0.7
CRACK_DARK = (0.3, 0.7)
CRACK_BRIGHT = (1.3, 1.8)
CRACK_OPACITY = (0.7, 1.0)


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
        variant: int64 (N,), 1 for the irregular variants (class 1 blend, class 2 alter), 2 for
            cracks (class 2), else 0. For those rows ``box`` is the destination box of the blob or
            the window holding the crack (``center`` its centre, ``angle`` 0) and ``patch_jitter``
            the colour of the blended or altered content.
        grid: float32 (N, GRID, GRID), the blob's low-resolution noise (zeros for other rows).
        grid_size: int64 (N,), cells a side of ``grid`` in use (0 for other rows).
        blob: float32 (N, 3), (threshold, sharpness, opacity) of the soft mask; (0, 0, opacity) for cracks.
        blend_index: int64 (N,), the image a blend row takes its content from (``index`` elsewhere).
        blend_pos: int64 (N, 2), (y, x) of that content's top-left in the reflect-padded image.
        crack: float32 (N, CRACK_MAX, 5), a crack's segments (cy, cx, h, w, angle°), each a thin box
            (long side h) rotated about its centre like a line scar; zeros past ``crack_segments``.
        crack_segments: int64 (N,), segments in use (0 for other rows).
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
    variant: torch.Tensor
    grid: torch.Tensor
    grid_size: torch.Tensor
    blob: torch.Tensor
    blend_index: torch.Tensor
    blend_pos: torch.Tensor
    crack: torch.Tensor
    crack_segments: torch.Tensor
    image_size: int = 0
    pad: int = 0

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def groups(self) -> int:
        return len(self) // 3

    def rows(self, index) -> Plan:
        """A plan of the selected rows (a slice or an index tensor); the only row selector.

        Groups ``a:b`` are ``rows(slice(3 * a, 3 * b))``; the rows of one class ``c`` (one per
        group, so also the per-group values shared by all three rows) are ``rows(slice(c, None, 3))``.
        """
        return Plan(**{k: v[index] for k, v in self.tensors().items()}, image_size=self.image_size, pad=self.pad)

    def of_class(self, c: PretextClass) -> Plan:
        """The rows of class ``c``, one per group (class GOOD: the values every row of a group shares)."""
        return self.rows(slice(int(c), None, 3))

    def validate(self) -> Plan:
        """Check the group structure every renderer relies on; raise ValueError if broken."""
        n = len(self)
        if n % 3:
            raise ValueError(f"a plan holds whole groups of 3 rows, not {n} rows")
        lab = self.label.view(-1, 3)
        if not torch.equal(lab, torch.tensor([int(c) for c in PretextClass]).expand_as(lab)):
            raise ValueError("each plan group must hold classes 0, 1, 2 in that order")
        for name in ("index", "shift", "jitter"):
            t = getattr(self, name).view(n // 3, 3, -1)
            if not torch.equal(t, t[:, :1].expand_as(t)):
                raise ValueError(f"rows of a group must share {name}")
        cp = self.label == PretextClass.CUTPASTE
        tl = self.center[cp] - self.box[cp, 2:] / 2
        if bool((self.angle[cp] != 0).any()) or not torch.equal(tl, tl.round()):
            raise ValueError("cut-paste rows must be unrotated and land on whole pixels")
        if bool((self.box[self.label == PretextClass.GOOD] != 0).any()):
            raise ValueError("class-0 rows paste nothing (empty box)")
        irr = self.variant == 1
        if bool(((self.variant != 0) & (self.label == PretextClass.GOOD)).any()) or bool((self.variant > 2).any()) \
                or bool((self.variant < 0).any()):
            raise ValueError("variant is 0, 1 or 2, and 0 for class-0 rows")
        if bool((self.angle[irr] != 0).any()) or bool(((self.grid_size[irr] < 3) | (self.grid_size[irr] > GRID)).any()):
            raise ValueError(f"irregular rows are unrotated, with grid sizes in [3, {GRID}]")
        crack, n = self.variant == 2, self.crack_segments
        if bool((crack & (self.label != PretextClass.SCAR)).any()) or bool((self.angle[crack] != 0).any()) \
                or bool(((n[crack] < 1) | (n[crack] > CRACK_MAX)).any()) or bool(n[~crack].any()):
            raise ValueError(f"cracks are unrotated class-2 rows of 1 to {CRACK_MAX} segments")
        return self

    def irregular(self) -> torch.Tensor:
        """bool (N,): the rows rendered as irregular blobs."""
        return self.variant == 1

    def cracks(self) -> torch.Tensor:
        """bool (N,): the rows rendered as cracks."""
        return self.variant == 2

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("image_size", "pad")}

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
                "variant": int(self.variant[i]),
                "grid": _grid_rows(self.grid[i], int(self.grid_size[i])),
                "blob": [round(float(v), 6) for v in self.blob[i]],
                "blend_index": int(self.blend_index[i]), "blend_pos": [int(v) for v in self.blend_pos[i]],
                "crack": [[round(float(v), 4) for v in seg] for seg in self.crack[i, :int(self.crack_segments[i])]],
            })
        return {"image_size": self.image_size, "pad": self.pad, "samples": rows}

    @classmethod
    def from_json(cls, obj: dict) -> Plan:
        rows = obj["samples"]
        def col(key, dtype):
            return torch.tensor([r[key] for r in rows], dtype=dtype)
        grid = torch.zeros(len(rows), GRID, GRID)
        for i, r in enumerate(rows):
            if r["grid"]:
                k = len(r["grid"])
                grid[i, :k, :k] = torch.tensor(r["grid"], dtype=torch.float32)
        crack = torch.zeros(len(rows), CRACK_MAX, 5)
        for i, r in enumerate(rows):  # plan.json files written before cracks have none
            if r.get("crack"):
                crack[i, :len(r["crack"])] = torch.tensor(r["crack"], dtype=torch.float32)
        return cls(
            label=col("label", torch.int64), index=col("index", torch.int64), shift=col("shift", torch.int64),
            jitter=col("jitter", torch.float32), patch_jitter=col("patch_jitter", torch.float32),
            box=col("box", torch.float32), center=col("center", torch.float32), angle=col("angle", torch.float32),
            color=col("color", torch.float32), fill=col("fill", torch.float32),
            variant=col("variant", torch.int64), grid=grid,
            grid_size=torch.tensor([len(r["grid"]) for r in rows], dtype=torch.int64),
            blob=col("blob", torch.float32), blend_index=col("blend_index", torch.int64),
            blend_pos=col("blend_pos", torch.int64), crack=crack,
            crack_segments=torch.tensor([len(r.get("crack", [])) for r in rows], dtype=torch.int64),
            image_size=int(obj["image_size"]), pad=int(obj["pad"]),
        )


def _grid_rows(grid: torch.Tensor, size: int) -> list[list[float]]:
    """The used ``size`` x ``size`` cells of a grid (multiples of 1/256: exact in JSON)."""
    return [[float(v) for v in row[:size]] for row in grid[:size]]


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


def sample_plan(
    indices: torch.Tensor,
    image_size: int,
    generator: torch.Generator,
    scar: str = SynthConfig.scar,
    jitter: float = SynthConfig.jitter,
    translate: float = SynthConfig.translate,
    gray: bool = False,
    irregular: float = SynthConfig.irregular,
    other_source: float = SynthConfig.other_source,
    num_images: int | None = None,
    cracks: float = SynthConfig.cracks,
    border: float = SynthConfig.border,
    blob_area: float = SynthConfig.blob_area,
    blob_sizes: str = SynthConfig.blob_sizes,
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
        gray: keep grey images grey (for grayscale data, where a coloured line would be
            recognisable by its colour alone): line colours are grey levels, and the jitter's
            saturation and hue are left out (1 and 0), as they mean nothing for grey pixels and
            YIQ's rounded coefficients would tint them slightly. The random stream is the same
            either way, so every other parameter is unchanged.
        irregular: share of the class-1 and class-2 rows drawn as irregular blobs (blend, alter).
        other_source: share of the blend rows whose content comes from another image.
        num_images: training images a blend may take content from (default: ``max(indices) + 1``).
        cracks: share of the class-2 rows that are not blobs drawn as cracks (thin meandering lines).
        border: share of the class-1 and class-2 rows moved to touch a side of the image.
        blob_area: the largest share of the image a blob's box covers (its area is uniform from 2 % up to it;
            the cut-paste box's own 15 % by default). The same random numbers whatever its value.
        blob_sizes: how the blob box's area spreads between 2 % and ``blob_area``: ``"uniform"``, or ``"log"``
            (log-uniform: as many blobs in each doubling of area, so most stay small and a tail is large). The
            same random number, mapped differently: no other parameter changes.
    """
    if scar not in SCARS:
        raise ValueError(f"unknown scar style {scar!r}")
    if blob_sizes not in BLOB_SIZES:
        raise ValueError(f"unknown blob size law {blob_sizes!r}")
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
    hh, hw = rotated_half_extent(sc_h, sc_w, sc_angle)
    sc_cy = hh + torch.rand(groups, generator=g) * (S - 2 * hh).clamp(min=0)
    sc_cx = hw + torch.rand(groups, generator=g) * (S - 2 * hw).clamp(min=0)
    sc_jit = _jitter(g, groups, jitter)
    color = torch.rand(groups, 3, generator=g) * 255.0
    if gray:
        color = color[:, :1].expand(groups, 3)
        for j in (whole, cp_jit, sc_jit):
            j[:, 2:] = torch.tensor([1.0, 0.0])
    fill = torch.full((groups,), 1.0 if scar == "line" else 0.0)

    zero4 = torch.zeros(groups, 4)

    def rows(a, b, c):  # interleave per-class tensors into rows g*3 + class
        return torch.stack([a, b, c], dim=1).reshape(groups * 3, *a.shape[1:])

    zeros = torch.zeros(groups)
    index = indices.to(torch.int64).cpu()
    plan = Plan(
        label=torch.tensor([int(c) for c in PretextClass]).repeat(groups),
        index=index.repeat_interleave(3),
        shift=shift.repeat_interleave(3, dim=0),
        jitter=whole.repeat_interleave(3, dim=0),
        patch_jitter=rows(torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(groups, 4), cp_jit, sc_jit),
        box=rows(zero4, torch.stack([cp_y0, cp_x0, cp_h, cp_w], 1), torch.stack([sc_y0, sc_x0, sc_h, sc_w], 1)),
        center=rows(torch.zeros(groups, 2), torch.stack([cp_ty + cp_h / 2, cp_tx + cp_w / 2], 1),
                    torch.stack([sc_cy, sc_cx], 1)),
        angle=rows(zeros, zeros, sc_angle),
        color=rows(torch.zeros(groups, 3), torch.zeros(groups, 3), color),
        fill=rows(zeros, zeros, fill),
        variant=torch.zeros(groups * 3, dtype=torch.int64),
        grid=torch.zeros(groups * 3, GRID, GRID),
        grid_size=torch.zeros(groups * 3, dtype=torch.int64),
        blob=torch.zeros(groups * 3, 3),
        blend_index=index.repeat_interleave(3),
        blend_pos=torch.zeros(groups * 3, 2, dtype=torch.int64),
        crack=torch.zeros(groups * 3, CRACK_MAX, 5),
        crack_segments=torch.zeros(groups * 3, dtype=torch.int64),
        image_size=image_size, pad=pad,
    )
    # Every draw below comes after all the plain plan's draws: they never change its other fields.
    images = int(num_images) if num_images is not None else int(index.max()) + 1 if groups else 1
    _irregular_rows(plan, g, irregular, other_source, images, jitter, gray, blob_area, blob_sizes)
    _crack_rows(plan, g, cracks)  # after the blobs' draws: cracks never change a blob
    _border_rows(plan, g, border)  # last: moves the finished anomalies
    return plan


def _irregular_rows(plan: Plan, g: torch.Generator, share: float, other_source: float, num_images: int,
                    jitter: float, gray: bool, blob_area: float = SynthConfig.blob_area,
                    blob_sizes: str = SynthConfig.blob_sizes) -> None:
    """Draw the irregular blobs and turn a share of the class-1/2 rows of ``plan`` into them (in place).

    Every number is drawn whatever the shares, in a fixed order, so two plans that differ only in
    the shares have the same blobs; rows not chosen keep their plain (box or line) parameters.
    """
    groups = plan.groups
    S = float(plan.image_size)
    base = plan.of_class(PretextClass.GOOD).index
    for c in (PretextClass.CUTPASTE, PretextClass.SCAR):
        chosen = torch.rand(groups, generator=g) < share
        # The destination box: cut-paste's sizes (area 2-15 %, or up to ``blob_area``, uniform or log-uniform: one
        # draw either way; any aspect), at least 6 px a side.
        if blob_sizes == "log":
            area = _u(g, groups, math.log(CUTPASTE_AREA[0]), math.log(blob_area)).exp() * S * S
        else:
            area = _u(g, groups, CUTPASTE_AREA[0], blob_area) * S * S
        aspect = _u(g, groups, math.log(CUTPASTE_ASPECT[0]), math.log(CUTPASTE_ASPECT[1])).exp()
        w = (area * aspect).sqrt().round().clamp(6, S - 1)
        h = (area / aspect).sqrt().round().clamp(6, S - 1)
        y0 = (torch.rand(groups, generator=g) * (S - h + 1)).floor()
        x0 = (torch.rand(groups, generator=g) * (S - w + 1)).floor()
        # The noise: a ring of zeros around random multiples of 1/256, the largest set to 1 (a
        # non-empty blob); at most one cell per two pixels of the box, so a peak is never missed.
        size = torch.randint(GRID_SIZE[0], GRID_SIZE[1] + 1, (groups,), generator=g)
        size = torch.minimum(size, (torch.minimum(h, w) / 2).floor().to(torch.int64) + 1).clamp(min=3)
        cells = torch.randint(0, 257, (groups, GRID, GRID), generator=g).float() / 256
        k = torch.arange(GRID)
        inner = (k[None, :] >= 1) & (k[None, :] <= size[:, None] - 2)  # (G, GRID)
        cells = cells * (inner[:, :, None] & inner[:, None, :])
        peak = cells.flatten(1).argmax(1)
        cells.view(groups, -1)[torch.arange(groups), peak] = 1.0
        blob = torch.stack([_u(g, groups, *BLOB_THRESHOLD), BLOB_SHARPNESS * (h * w).sqrt() / (size - 1),
                            _u(g, groups, *BLOB_OPACITY)], 1)
        if c == PretextClass.CUTPASTE:  # blend: another image's (or this one's) content, normally jittered
            colour = _jitter(g, groups, jitter)
            other = (torch.rand(groups, generator=g) < other_source) & (num_images >= 2)
            step = (torch.rand(groups, generator=g) * (num_images - 1)).floor().to(torch.int64) + 1
            source = torch.where(other, (base + step) % max(num_images, 1), base)
            side = S + 2 * plan.pad
            pos = torch.stack([(torch.rand(groups, generator=g) * (side - h + 1)).floor(),
                               (torch.rand(groups, generator=g) * (side - w + 1)).floor()], 1).to(torch.int64)
        else:  # alter: the image's own content under a strong colour twist
            colour = _jitter(g, groups, jitter)
            dark = torch.rand(groups, generator=g) < 0.5
            colour[:, 0] = torch.where(dark, _u(g, groups, *ALTER_DARK), _u(g, groups, *ALTER_BRIGHT))
            colour[:, 1] = _u(g, groups, *ALTER_CONTRAST)
            source, pos = base, torch.zeros(groups, 2, dtype=torch.int64)
        if gray:
            colour[:, 2:] = torch.tensor([1.0, 0.0])
        rows = (torch.arange(groups) * 3 + int(c))[chosen]
        plan.variant[rows] = 1
        plan.box[rows] = torch.stack([y0, x0, h, w], 1)[chosen]
        plan.center[rows] = torch.stack([y0 + h / 2, x0 + w / 2], 1)[chosen]
        plan.angle[rows] = 0.0
        plan.patch_jitter[rows] = colour[chosen]
        plan.color[rows] = 0.0
        plan.fill[rows] = 0.0
        plan.grid[rows] = cells[chosen]
        plan.grid_size[rows] = size[chosen]
        plan.blob[rows] = blob[chosen]
        plan.blend_index[rows] = source[chosen]
        plan.blend_pos[rows] = pos[chosen]


def _crack_rows(plan: Plan, g: torch.Generator, share: float) -> None:
    """Draw a crack per group and turn a share of the plain class-2 rows of ``plan`` into them (in place).

    Every number is drawn whatever the share, so plans that differ only in shares have the same
    cracks. A polyline starts at 0, heads in a uniform direction and turns by up to ``CRACK_TURN``
    degrees per segment; each segment's box is its length plus its width long (the overlap closes
    the joints) and is rotated so that its long side runs from one point to the next. The whole
    crack is then moved to a uniform place where its window (every segment's rotated box + 1 px
    of bilinear fringe) lies inside the image; the window becomes the row's ``box``.
    """
    groups = plan.groups
    S = float(plan.image_size)
    K = CRACK_MAX
    chosen = torch.rand(groups, generator=g) < share
    count = torch.randint(CRACK_SEGMENTS[0], CRACK_SEGMENTS[1] + 1, (groups,), generator=g)
    used = torch.arange(K)[None, :] < count[:, None]  # (G, K)
    total = _u(g, groups, *CRACK_LENGTH) * S
    parts = (0.5 + torch.rand(groups, K, generator=g)) * used  # lengths vary 1:3 between segments
    length = (total[:, None] * parts / parts.sum(1, keepdim=True)).round().clamp(min=2)
    width = ((CRACK_WIDTH_256[0] + (CRACK_WIDTH_256[1] - CRACK_WIDTH_256[0]) * torch.rand(groups, K, generator=g))
             * (S / 256.0)).round().clamp(min=1)
    start = torch.rand(groups, generator=g) * 360.0
    turn = (torch.rand(groups, K, generator=g) * 2 - 1) * CRACK_TURN
    turn[:, 0] = 0.0
    angle = start[:, None] + turn.cumsum(1)  # direction (dx, dy) = (sin, cos): a box's long side at that angle
    rad = angle * (math.pi / 180.0)
    step_y, step_x = length * rad.cos(), length * rad.sin()
    end_y, end_x = step_y.cumsum(1), step_x.cumsum(1)
    cy, cx = end_y - step_y / 2, end_x - step_x / 2  # segment midpoints, the polyline starting at (0, 0)
    h = length + width
    angle = (angle + 180.0) % 360.0 - 180.0
    hh, hw = rotated_half_extent(h, width, angle)
    big = torch.tensor(float("inf"))
    lo_y = torch.where(used, cy - hh - 1, big).amin(1)
    lo_x = torch.where(used, cx - hw - 1, big).amin(1)
    hi_y = torch.where(used, cy + hh + 1, -big).amax(1)
    hi_x = torch.where(used, cx + hw + 1, -big).amax(1)
    oy = -lo_y + torch.rand(groups, generator=g) * (S - (hi_y - lo_y)).clamp(min=0)
    ox = -lo_x + torch.rand(groups, generator=g) * (S - (hi_x - lo_x)).clamp(min=0)
    cy, cx = cy + oy[:, None], cx + ox[:, None]
    top, left = (lo_y + oy).floor().clamp(0, S), (lo_x + ox).floor().clamp(0, S)
    bottom, right = (hi_y + oy).ceil().clamp(0, S), (hi_x + ox).ceil().clamp(0, S)
    dark = torch.rand(groups, generator=g) < CRACK_DARK_SHARE
    bright = torch.where(dark, _u(g, groups, *CRACK_DARK), _u(g, groups, *CRACK_BRIGHT))
    opacity = _u(g, groups, *CRACK_OPACITY)
    segs = torch.stack([cy, cx, h, width, angle], 2) * used[:, :, None]

    chosen = chosen & (plan.of_class(PretextClass.SCAR).variant == 0)  # blobs keep their rows
    rows = (torch.arange(groups) * 3 + int(PretextClass.SCAR))[chosen]
    box = torch.stack([top, left, bottom - top, right - left], 1)[chosen]
    plan.variant[rows] = 2
    plan.box[rows] = box
    plan.center[rows] = box[:, :2] + box[:, 2:] / 2
    plan.angle[rows] = 0.0
    one = torch.ones_like(bright)
    plan.patch_jitter[rows] = torch.stack([bright, one, one, torch.zeros_like(bright)], 1)[chosen]
    plan.color[rows] = 0.0
    plan.fill[rows] = 0.0
    plan.blob[rows] = torch.stack([torch.zeros_like(opacity), torch.zeros_like(opacity), opacity], 1)[chosen]
    plan.crack[rows] = segs[chosen]
    plan.crack_segments[rows] = count[chosen]


def _border_rows(plan: Plan, g: torch.Generator, share: float) -> None:
    """Move a share of the class-1 and class-2 anomalies of ``plan`` to touch a side of the image (in place).

    Each anomaly's footprint (a cut-paste's destination box, a scar's rotated bounding box, a blob's box, a
    crack's window) is shifted along one axis until it meets side 0 top, 1 bottom, 2 left or 3 right. Every number
    is drawn whatever the share. Boxes keep whole-pixel positions (a cut-paste still lands on whole pixels).
    """
    groups = plan.groups
    S = float(plan.image_size)
    for c in (PretextClass.CUTPASTE, PretextClass.SCAR):
        chosen = torch.rand(groups, generator=g) < share
        side = torch.randint(0, 4, (groups,), generator=g)[chosen]
        rows = (torch.arange(groups) * 3 + int(c))[chosen]
        if not len(rows):
            continue
        variant, box, centre = plan.variant[rows], plan.box[rows], plan.center[rows]
        if c == PretextClass.SCAR:
            half = torch.stack(rotated_half_extent(box[:, 2], box[:, 3], plan.angle[rows]), 1)
        else:
            half = box[:, 2:] / 2
        placed = variant != 0  # blobs and cracks: the box is the footprint itself
        half = torch.where(placed[:, None], box[:, 2:] / 2, half)
        lo, hi = centre - half, centre + half  # (y, x) of the footprint's first and last edge
        axis = (side >= 2).long()  # 0: move along y, 1: along x
        to_lo = side % 2 == 0
        move = torch.where(to_lo, -lo.gather(1, axis[:, None])[:, 0], S - hi.gather(1, axis[:, None])[:, 0])
        shift = torch.zeros(len(rows), 2)
        shift[torch.arange(len(rows)), axis] = move
        plan.center[rows] = centre + shift
        plan.box[rows, :2] = torch.where(placed[:, None], box[:, :2] + shift, box[:, :2])
        crack = variant == 2
        if crack.any():
            used = (torch.arange(CRACK_MAX)[None, :] < plan.crack_segments[rows][crack][:, None]).float()
            segs = plan.crack[rows[crack]]
            segs[:, :, :2] += shift[crack][:, None, :] * used[:, :, None]
            plan.crack[rows[crack]] = segs
        blob = variant == 1
        if blob.any():  # the grid continues to the border: its ring on that side copies the first inner line
            r = rows[blob]
            grid, size = plan.grid[r], plan.grid_size[r]
            ring = torch.where(to_lo[blob], 0, size - 1)
            inner = torch.where(to_lo[blob], 1, size - 2)
            for i in range(len(r)):
                cells = grid[i] if axis[blob][i] == 0 else grid[i].T  # a view: rows are the lines to edit
                n = int(size[i])
                line = cells[int(inner[i]), 1:n - 1]
                line[int(line.argmax())] = 1.0
                cells[int(ring[i]), 1:n - 1] = line
            plan.grid[r] = grid


def balanced_plan(
    num_images: int, variants: int, image_size: int, seed: int, scar: str = SynthConfig.scar,
    jitter: float = SynthConfig.jitter, translate: float = SynthConfig.translate, gray: bool = False,
    irregular: float = SynthConfig.irregular, other_source: float = SynthConfig.other_source,
    cracks: float = SynthConfig.cracks, border: float = SynthConfig.border,
    blob_area: float = SynthConfig.blob_area, blob_sizes: str = SynthConfig.blob_sizes,
) -> Plan:
    """One regeneration: ``variants`` groups (good, cut-paste, scar) per training image, seeded.

    Ordered variant-major, then image, then class. Training shuffles.
    """
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.arange(num_images).repeat(variants)
    return sample_plan(idx, image_size, g, scar=scar, jitter=jitter, translate=translate, gray=gray,
                       irregular=irregular, other_source=other_source, num_images=num_images, cracks=cracks,
                       border=border, blob_area=blob_area, blob_sizes=blob_sizes)
