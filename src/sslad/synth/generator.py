"""The generative dataset: regenerate the synthetic pretext set every N epochs, on the device.

Regeneration ``k`` uses seed ``seed + k`` for every backend, so a run (or a resumed run)
regenerates the same data whatever renders it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Protocol

import torch

from sslad.errors import SsladError
from sslad.synth.plan import Plan, balanced_plan, pad_for
from sslad.synth.render import reflect_pad, render


class Renderer(Protocol):
    """Anything that turns a plan and the padded base images into uint8 images on the device."""

    name: str

    def render(self, plan: Plan, padded: torch.Tensor) -> torch.Tensor: ...


@contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op threads (``None``: leave them)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchRenderer:
    """The reference renderer: batched torch ops on the base images' device (CPU or CUDA).

    On the CPU it renders with one intra-op thread and in chunks of 16 groups: its ops are
    memory-bound; measured at 256 px, a second thread bought no wall-clock speed but doubled
    the CPU time, and chunks of 256 groups spent ~15 % more on page faults of fresh buffers.
    """

    name = "torch"

    def __init__(self, batch_size: int = 768, cpu_threads: int = 1, cpu_chunk: int = 16):
        self.chunk = max(1, batch_size // 3)  # groups of 3 images per chunk
        self.cpu_threads = cpu_threads
        self.cpu_chunk = cpu_chunk  # small chunks keep the CPU's float temporaries cache-sized

    def render(self, plan: Plan, padded: torch.Tensor) -> torch.Tensor:
        if padded.device.type != "cpu":
            return render(plan, padded, chunk=self.chunk)
        with torch_threads(self.cpu_threads):
            return render(plan, padded, chunk=min(self.chunk, self.cpu_chunk))


class DaliBackend:
    """The DALI graph; GPU operators when the data lives on CUDA, CPU operators otherwise."""

    def __init__(self, image_size: int, device: torch.device, batch_size: int = 256, seed: int = 0):
        try:
            from sslad.dali_pipes import DaliRenderer
        except ImportError as exc:
            raise SsladError(
                "--backend dali needs NVIDIA DALI: pip install 'sslad[dali]' "
                "(nvidia-dali-cuda120==2.4.0), or use --backend torch"
            ) from exc
        gpu = device.type == "cuda"
        self.name = "dali-gpu" if gpu else "dali-cpu"
        self._r = DaliRenderer(image_size, "gpu" if gpu else "cpu", batch_size=batch_size,
                               device_id=(device.index or 0) if gpu else 0, seed=seed)

    def render(self, plan: Plan, padded: torch.Tensor) -> torch.Tensor:
        # DALI has its own worker threads; torch's side (gathers, copies out) needs one.
        with torch_threads(1 if padded.device.type == "cpu" else None):
            return self._r.render(plan, padded)


def make_renderer(backend: str, image_size: int, device: torch.device, batch_size: int = 256) -> Renderer:
    """``torch`` or ``dali``; DALI is imported only here, only when asked for."""
    if backend == "torch":
        return TorchRenderer(batch_size)
    if backend == "dali":
        return DaliBackend(image_size, device, batch_size=batch_size)
    raise SsladError(f"unknown backend {backend!r} (torch|dali)")


class PretextGenerator:
    """Holds the padded base images on the device and materialises regenerations.

    Args:
        images: uint8 (N, 3, S, S) good training images, on the training device.
        renderer: the backend.
        variants, scar, jitter, translate: the synth config.
        seed: base seed; regeneration k uses ``seed + k``.
        shard: (rank, world): render only groups ``rank::world`` of each plan (DDP).
    """

    def __init__(self, images: torch.Tensor, renderer: Renderer, *, variants: int = 1, scar: str = "line",
                 jitter: float = 0.1, translate: float = 0.0625, seed: int = 0, shard: tuple[int, int] = (0, 1)):
        self.size = int(images.shape[-1])
        self.num_images = int(images.shape[0])
        self.pad = pad_for(self.size, translate)
        self.padded = reflect_pad(images, self.pad)
        self.renderer = renderer
        self.variants, self.scar, self.jitter, self.translate = variants, scar, jitter, translate
        self.seed = seed
        self.shard = shard

    def plan(self, k: int) -> Plan:
        plan = balanced_plan(self.num_images, self.variants, self.size, self.seed + k, scar=self.scar,
                             jitter=self.jitter, translate=self.translate)
        rank, world = self.shard
        if world > 1:  # each rank renders whole groups rank, rank + world, ...
            keep = (torch.arange(rank, plan.groups, world)[:, None] * 3 + torch.arange(3)).flatten()
            plan = plan.rows(keep)
        return plan

    def regenerate(self, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Regeneration k: (uint8 images, int64 labels, both on the device; seconds taken)."""
        t0 = time.perf_counter()
        plan = self.plan(k)
        x = self.renderer.render(plan, self.padded)
        y = plan.label.to(x.device)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        return x, y, time.perf_counter() - t0
