"""The one place that chooses a pretext renderer, above ``sslad.synth`` and ``sslad.dali_pipes``.

``synth`` holds the plan, the renderer protocol and the torch reference renderer; ``dali_pipes``
the DALI graph, which renders the same plans. Only this module names both, and it imports DALI
lazily, only for ``--backend dali``, so ``sslad --help`` and the torch backend never load it.
"""

from __future__ import annotations

import torch

from sslad.config import BACKENDS, GPU_RENDER_PIXELS, RENDER_BATCH
from sslad.errors import SsladError
from sslad.synth import balanced_plan, reflect_pad, render
from sslad.synth.renderer import Renderer, TorchRenderer

#: Share of pixels (and of mask pixels) a renderer may differ from the torch reference by more than two
#: grey levels in :func:`check_renderer`: room for interpolation at rotated edges, none for a broken graph
#: (on the first GPU run, DALI 2.4's multi_paste misread 5 % of the pixels, 1.5 % of the mask pixels of a plan).
CHECK_TOLERANCE = 0.002


def render_batch(image_size: int, device: torch.device | str) -> int:
    """Images per renderer call: ``RENDER_BATCH`` on the CPU; on CUDA as many as ``GPU_RENDER_PIXELS`` allows
    (a GPU renders small batches far below its speed, and a regeneration is a pause in training)."""
    if torch.device(device).type != "cuda":
        return RENDER_BATCH
    return max(RENDER_BATCH, GPU_RENDER_PIXELS // (int(image_size) ** 2))


def make_renderer(backend: str, image_size: int, device: torch.device,
                  batch_size: int | None = None) -> Renderer:
    """``torch`` or ``dali`` (GPU operators when ``device`` is CUDA, DALI's CPU operators otherwise);
    ``batch_size`` images per call, by default :func:`render_batch`."""
    batch_size = batch_size or render_batch(image_size, device)
    if backend == "torch":
        return TorchRenderer(batch_size)
    if backend == "dali":
        try:
            from sslad.dali_pipes import DaliRenderer
        except ImportError as exc:
            raise SsladError(
                "--backend dali needs NVIDIA DALI: pip install 'sslad[dali]' "
                "(nvidia-dali-cuda120==2.4.0), or use --backend torch"
            ) from exc
        renderer = DaliRenderer(image_size, device, batch_size=batch_size)
        if torch.device(device).type == "cuda":  # the GPU operators are checked where they run, once
            check_renderer(renderer, image_size, device)
        return renderer
    raise SsladError(f"unknown backend {backend!r} ({'|'.join(BACKENDS)})")


def check_renderer(renderer: Renderer, image_size: int, device: torch.device | str, groups: int = 4) -> None:
    """Render a small fixed plan (every family on) with ``renderer`` and with the torch reference on the CPU;
    one clear error where they disagree, before a training run learns from wrong pretext data."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 200, image_size)
    base = (ramp[None, None, :, None] * 0.5 + ramp[None, None, None, :] * 0.5
            + torch.randint(0, 50, (groups, 3, image_size, image_size), generator=g)).clamp(0, 255).to(torch.uint8)
    plan = balanced_plan(groups, 1, image_size, seed=0, irregular=0.5, cracks=0.5, border=0.5, blob_area=0.6)
    padded = reflect_pad(base, plan.pad)
    ref, ref_masks = render(plan, padded)
    got, got_masks = renderer.render(plan, padded.to(device))
    pixels = float(((got.cpu().int() - ref.int()).abs() > 2).float().mean())
    masks = float((got_masks.cpu() != ref_masks).float().mean())
    if pixels > CHECK_TOLERANCE or masks > CHECK_TOLERANCE:
        name = getattr(renderer, "name", type(renderer).__name__)
        raise SsladError(
            f"the {name} renderer draws the pretext plan differently from the torch reference on {device} "
            f"({pixels:.1%} of the pixels, {masks:.1%} of the mask pixels); use --backend torch"
        )


__all__ = ["CHECK_TOLERANCE", "check_renderer", "make_renderer", "render_batch"]
