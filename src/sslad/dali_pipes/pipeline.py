"""The pretext graph as a DALI ``@pipeline_def``: one graph, the device is a parameter.

The graph renders a :class:`sslad.synth.Plan` exactly like :mod:`sslad.synth.render`:

    A = color_twist(slice(base, shift), jitter)                 -> uint8 (round + saturate)
    J = clamp(color_twist(A, patch_jitter), 0, 255)             -> float
    I = erase(zeros, box, fill_value=1)                         -> the source box indicator
    W = warp_affine(cat(J, I), inverse_affine, linear)          -> patch and its mask
    C = lerp(W[..., :3], color, fill)                           -> line scars are one colour
    out = transpose(cast(A * (1 - W[..., 3]) + C * W[..., 3], uint8), CHW)

Inputs (fed per batch through ``external_source``, so the core is reader-free and testable):
``base`` is the reflect-padded base image of each sample (HWC uint8, on the graph's device)
and ``params`` the plan row packed by :func:`pack_params` (float32, always on the CPU, since
DALI takes per-sample arguments from the CPU).
"""

from __future__ import annotations

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath

from sslad.synth.plan import Plan, inverse_affines

#: Layout of one packed plan row: name -> (start, stop).
PARAM_SLICES = {
    "shift": (0, 2), "jitter": (2, 6), "patch_jitter": (6, 10), "box": (10, 14),
    "matrix": (14, 20), "color": (20, 23), "fill": (23, 24),
}
NUM_PARAMS = 24


def pack_params(plan: Plan) -> np.ndarray:
    """(N, 24) float32 rows: shift, jitter, patch jitter, box, inverse affine, colour, fill."""
    cols = [
        plan.shift.to(torch.float32), plan.jitter, plan.patch_jitter, plan.box,
        inverse_affines(plan).reshape(-1, 6), plan.color, plan.fill[:, None],
    ]
    return torch.cat([c.to(torch.float32) for c in cols], dim=1).contiguous().numpy()


@pipeline_def(enable_conditionals=False)
def pretext_pipeline(image_size: int, device: str = "cpu"):
    """Render packed plan rows; ``device`` is ``"cpu"`` (DALI CPU operators) or ``"gpu"``."""
    size = int(image_size)
    base = fn.external_source(name="base", device=device, layout="HWC", dtype=types.UINT8)
    params = fn.external_source(name="params", device="cpu", dtype=types.FLOAT)

    def p(name):
        a, b = PARAM_SLICES[name]
        return params[a:b]

    def here(node):  # per-sample tensors used in arithmetic live on the graph's device
        return node.gpu() if device == "gpu" else node

    shift = fn.cast(p("shift"), dtype=types.INT32)
    crop = fn.slice(base, start=shift, end=shift + size, axis_names="HW")
    jit, pj = p("jitter"), p("patch_jitter")
    a8 = fn.color_twist(crop, brightness=jit[0], contrast=jit[1], saturation=jit[2], hue=jit[3])
    j = fn.color_twist(a8, brightness=pj[0], contrast=pj[1], saturation=pj[2], hue=pj[3],
                       dtype=types.FLOAT)
    j = dmath.clamp(j, 0.0, 255.0)
    box = p("box")
    zeros = fn.constant(fdata=0.0, shape=[size, size, 1], dtype=types.FLOAT, layout="HWC", device=device)
    indicator = fn.erase(zeros, anchor=box[0:2], shape=box[2:4], axis_names="HW", fill_value=1.0)
    warped = fn.warp_affine(
        fn.cat(j, indicator, axis=2), matrix=fn.reshape(p("matrix"), shape=[2, 3]), size=[float(size), float(size)],
        fill_value=0.0, interp_type=types.INTERP_LINEAR, inverse_map=True, dtype=types.FLOAT,
    )
    content, mask = warped[:, :, 0:3], warped[:, :, 3:4]
    fill = here(p("fill"))
    content = content * (1.0 - fill) + here(p("color")) * fill
    a = fn.cast(a8, dtype=types.FLOAT)
    out = fn.cast(a * (1.0 - mask) + content * mask, dtype=types.UINT8)
    return fn.transpose(out, perm=[2, 0, 1], output_layout="CHW")
