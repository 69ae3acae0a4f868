"""Run the DALI pretext graph over a whole plan and hand the result to torch.

On the GPU the base images never leave the device: torch gathers each batch's base images on
the GPU, DALI reads them through ``external_source`` (CUDA array interface), and each output
comes back through DLPack and is written into the preallocated dataset tensor (one
device-to-device copy, needed anyway because DALI reuses its output buffers).
"""

from __future__ import annotations

import os

import torch

from sslad.config import RENDER_BATCH
from sslad.dali_pipes.pipeline import pack_params, pretext_pipeline
from sslad.runtime import torch_threads
from sslad.synth.plan import Plan, PretextClass
from sslad.synth.renderer import cpu_render_threads


class DaliRenderer:
    """The DALI backend: builds the graph once per (image size, device, batch size), renders plans.

    Args:
        image_size: side of the output images.
        device: where the base images live; CUDA runs DALI's GPU operators on that GPU, the CPU
            runs DALI's CPU operators (no GPU needed).
        batch_size: output images per DALI iteration (rounded down to whole groups of 3).
        num_threads: DALI worker threads; default ``$SSLAD_DALI_THREADS``, else on the CPU torch's
            intra-op thread count (``cpu_render_threads``, as the torch renderer) and 1 for the GPU
            graph. A regeneration is a pause between epochs, so on the CPU it takes the cores the
            training uses: two threads render a 256-px regeneration 1.5x as fast as one on two Xeon
            cores, to the same bytes (``benchmarks/render_workers.py --backend dali``).
    """

    def __init__(self, image_size: int, device: torch.device | str = "cpu", batch_size: int = RENDER_BATCH,
                 num_threads: int | None = None):
        device = torch.device(device)
        gpu = device.type == "cuda"
        self.name = "dali-gpu" if gpu else "dali-cpu"
        self.image_size = int(image_size)
        self.device = "gpu" if gpu else "cpu"
        self.groups_per_batch = max(1, int(batch_size) // 3)
        threads = num_threads or int(os.environ.get("SSLAD_DALI_THREADS", "0")) or (
            1 if gpu else cpu_render_threads())
        self.pipe = pretext_pipeline(
            image_size=self.image_size, device=self.device, batch_size=self.groups_per_batch,
            num_threads=threads, device_id=(device.index or 0) if gpu else None,
            prefetch_queue_depth=1, exec_async=False, exec_pipelined=False,
        )
        self.pipe.build()

    def _hwc(self, padded: torch.Tensor) -> torch.Tensor:
        """The padded dataset in HWC layout, converted once and reused across regenerations."""
        key = (padded.data_ptr(), tuple(padded.shape), padded.device)
        if getattr(self, "_hwc_key", None) != key:
            self._hwc_cache = padded.permute(0, 2, 3, 1).contiguous()
            self._hwc_key = key
        return self._hwc_cache

    def render(self, plan: Plan, padded: torch.Tensor,
               into: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Render ``plan`` from reflect-padded uint8 (N, 3, Sp, Sp) images.

        Returns (uint8 images (len(plan), 3, S, S), uint8 0/1 masks (len(plan), S, S)) on
        ``padded``'s device (CUDA for the GPU graph, CPU otherwise); the images are in
        channels-last memory (DALI's HWC), which is also what the network prefers on CUDA.
        New tensors always (``into``, the protocol's offer of old ones, is not taken).
        """
        # DALI has its own worker threads; torch's side (gathers, copies out) needs one on the CPU.
        with torch_threads(None if self.device == "gpu" else 1):
            return self._render(plan, padded)

    def _render(self, plan: Plan, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if plan.image_size != self.image_size:
            raise ValueError(f"plan is for {plan.image_size} px, the graph for {self.image_size} px")
        gpu = self.device == "gpu"
        if gpu and padded.device.type != "cuda":
            padded = padded.cuda()
        s = self.image_size
        out = torch.empty((len(plan), s, s, 3), dtype=torch.uint8, device=padded.device).permute(0, 3, 1, 2)
        hwc = self._hwc(padded)
        params = pack_params(plan)
        index = plan.of_class(PretextClass.GOOD).index.to(padded.device)
        blend = plan.of_class(PretextClass.CUTPASTE).blend_index.to(padded.device)  # the base where unused
        view = out.permute(0, 2, 3, 1).view(plan.groups, 3, s, s, 3)  # (group, class, H, W, C)
        masks = torch.zeros((len(plan), s, s), dtype=torch.uint8, device=padded.device)
        mview = masks.view(plan.groups, 3, s, s, 1)  # class 0 stays empty
        # torch's stream as a raw handle: DALI reads the GPU inputs on it. run() returns host-synchronous outputs
        # (stream-bound ones need DALI's dynamic executor; its keyword arguments would be pipeline inputs).
        stream = torch.cuda.current_stream().cuda_stream if gpu else None
        for g0 in range(0, plan.groups, self.groups_per_batch):
            g1 = min(g0 + self.groups_per_batch, plan.groups)
            base = hwc.index_select(0, index[g0:g1])
            self.pipe.feed_input("base", base if gpu else base.numpy(), layout="HWC", cuda_stream=stream)
            other = hwc.index_select(0, blend[g0:g1])
            self.pipe.feed_input("blend", other if gpu else other.numpy(), layout="HWC", cuda_stream=stream)
            self.pipe.feed_input("params", params[g0:g1])
            outs = self.pipe.run()
            for c, tl in enumerate(outs[:3]):
                view[g0:g1, c].copy_(torch.from_dlpack(tl.as_tensor()))
            for c, tl in enumerate(outs[3:], start=1):
                mview[g0:g1, c].copy_(torch.from_dlpack(tl.as_tensor()))
        return out, masks
