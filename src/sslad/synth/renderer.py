"""The renderer protocol and the reference torch renderer.

Every backend renders the same :class:`~sslad.synth.plan.Plan` into uint8 images on the device of
the padded base images. The choice between backends is made above this package and
``sslad.dali_pipes``, in :mod:`sslad.backends`; ``synth`` never imports DALI.
"""

from __future__ import annotations

from typing import Protocol

import torch

from sslad.config import RENDER_BATCH
from sslad.runtime import torch_threads
from sslad.synth.plan import Plan
from sslad.synth.torch_render import render

#: The most threads a CPU regeneration shares its chunks among (measured on 2 cores only; memory-bound ops).
MAX_CPU_WORKERS = 8


def cpu_render_threads() -> int:
    """Threads a CPU regeneration uses by default, torch's or DALI's: torch's intra-op thread count (the
    training's: a regeneration is a pause between its epochs), at most :data:`MAX_CPU_WORKERS`."""
    return min(torch.get_num_threads(), MAX_CPU_WORKERS)


class Renderer(Protocol):
    """Anything that turns a plan and the padded base images into (uint8 images (N, 3, S, S),
    uint8 0/1 masks (N, S, S)) on the device. ``into``: an earlier result no longer needed, which the renderer
    may render over instead of allocating (the torch renderer does when the shapes fit; DALI's ignores it)."""

    name: str

    def render(self, plan: Plan, padded: torch.Tensor,
               into: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchRenderer:
    """The reference renderer: batched torch ops on the base images' device (CPU or CUDA).

    On the CPU it renders in chunks of 16 groups, each with one intra-op thread, the chunks shared
    among ``cpu_workers`` threads (default: torch's intra-op thread count, the training's, at most
    :data:`MAX_CPU_WORKERS`). Its ops are small and memory-bound: measured at 256 px, a second
    intra-op thread bought no wall-clock speed but doubled the CPU time, and chunks of 256 groups
    spent ~15 % more on page faults of fresh buffers; two chunks at a time on two cores render a
    256-px regeneration 1.72x as fast as one (``benchmarks/render_workers.py``), to the same bytes.
    """

    name = "torch"

    def __init__(self, batch_size: int = RENDER_BATCH, cpu_threads: int = 1, cpu_chunk: int = 16,
                 cpu_workers: int | None = None):
        self.chunk = max(1, batch_size // 3)  # groups of 3 images per chunk
        self.cpu_threads = cpu_threads
        self.cpu_chunk = cpu_chunk  # small chunks keep the CPU's float temporaries cache-sized
        self.cpu_workers = cpu_workers

    def render(self, plan: Plan, padded: torch.Tensor,
               into: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if padded.device.type != "cpu":
            return render(plan, padded, chunk=self.chunk, into=into)
        workers = self.cpu_workers or cpu_render_threads()
        with torch_threads(self.cpu_threads):
            return render(plan, padded, chunk=min(self.chunk, self.cpu_chunk), workers=workers, into=into)
