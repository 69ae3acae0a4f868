"""The generative dataset: regenerate the synthetic pretext set every N epochs, on the device.

Regeneration ``k`` uses seed ``seed + k`` for every backend, so a run regenerates the same
data whatever renders it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

import torch

from sslad.config import SynthConfig
from sslad.synth.plan import Plan, balanced_plan, pad_for
from sslad.synth.renderer import Renderer
from sslad.synth.torch_render import reflect_pad


class Synthetic(NamedTuple):
    """One regeneration, on the device: uint8 images (N, 3, S, S), int64 labels (N,), uint8 0/1 masks
    (N, S, S) of the synthetic anomalies, and the seconds it took."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    seconds: float


def is_grayscale(images: torch.Tensor) -> bool:
    """True when every image has three equal channels (grayscale data stored as RGB)."""
    return bool(images.shape[0] > 0 and (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())


class PretextGenerator:
    """Holds the padded base images on the device and materialises regenerations.

    Args:
        images: uint8 (N, 3, S, S) good training images, on the training device.
        renderer: the backend.
        synth: the synth config (variants, scar style, jitter, translation, colour space:
            ``auto`` becomes ``gray`` for grayscale images, ``rgb`` otherwise; see ``self.color``).
        seed: base seed; regeneration k uses ``seed + k``.
        shard: (rank, world): render only groups ``rank::world`` of each plan (DDP).
    """

    def __init__(self, images: torch.Tensor, renderer: Renderer, synth: SynthConfig | None = None, *,
                 seed: int = 0, shard: tuple[int, int] = (0, 1)):
        synth = synth or SynthConfig()
        if synth.color == "auto":
            synth = replace(synth, color="gray" if is_grayscale(images) else "rgb")
        self.color = synth.color
        self.size = int(images.shape[-1])
        self.num_images = int(images.shape[0])
        self.synth = synth
        self.padded = reflect_pad(images, pad_for(self.size, synth.translate))
        self.renderer = renderer
        self.seed = seed
        self.shard = shard

    def plan(self, k: int) -> Plan:
        s = self.synth
        plan = balanced_plan(self.num_images, s.variants, self.size, self.seed + k, scar=s.scar,
                             jitter=s.jitter, translate=s.translate, gray=s.color == "gray",
                             irregular=s.irregular, other_source=s.other_source, cracks=s.cracks,
                             border=s.border, blob_area=s.blob_area, blob_sizes=s.blob_sizes)
        rank, world = self.shard
        if world > 1:  # each rank renders whole groups rank, rank + world, ...
            keep = (torch.arange(rank, plan.groups, world)[:, None] * 3 + torch.arange(3)).flatten()
            plan = plan.rows(keep)
        return plan

    def regenerate(self, k: int, reuse: Synthetic | None = None) -> Synthetic:
        """Regeneration k (plan seed ``seed + k``), rendered on the device; ``reuse``: an earlier regeneration no
        longer needed, whose tensors the renderer may render over (no fresh memory to fault in, half the peak)."""
        t0 = time.perf_counter()
        plan = self.plan(k)
        x, masks = self.renderer.render(plan, self.padded, None if reuse is None else (reuse.images, reuse.masks))
        y = plan.label.to(x.device)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        return Synthetic(x, y, masks, time.perf_counter() - t0)
