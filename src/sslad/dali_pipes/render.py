"""Run the DALI pretext graph over a whole plan and hand the result to torch.

On the GPU the base images never leave the device: torch gathers each batch's base images on
the GPU, DALI reads them through ``external_source`` (CUDA array interface), and the output
comes back through DLPack into the preallocated dataset tensor (one device-to-device copy,
needed because DALI reuses its output buffers).
"""

from __future__ import annotations

import torch

from sslad.dali_pipes.pipeline import pack_params, pretext_pipeline
from sslad.synth.plan import Plan


class DaliRenderer:
    """Builds the graph once per (image size, device, batch size) and renders plans with it.

    Args:
        image_size: side of the output images.
        device: ``"cpu"`` for DALI's CPU operators (no GPU needed) or ``"gpu"``.
        batch_size: samples per DALI iteration.
        device_id: CUDA device for ``"gpu"``.
        num_threads: DALI CPU worker threads.
    """

    def __init__(self, image_size: int, device: str = "cpu", batch_size: int = 256,
                 device_id: int = 0, num_threads: int = 2, seed: int = 0):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"DALI device must be 'cpu' or 'gpu', not {device!r}")
        self.image_size = int(image_size)
        self.device = device
        self.batch_size = int(batch_size)
        self.pipe = pretext_pipeline(
            image_size=self.image_size, device=device, batch_size=self.batch_size,
            num_threads=num_threads, device_id=device_id if device == "gpu" else None,
            seed=seed, prefetch_queue_depth=1, exec_async=False, exec_pipelined=False,
        )
        self.pipe.build()

    def render(self, plan: Plan, padded: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Render ``plan`` from reflect-padded uint8 (N, 3, Sp, Sp) images; uint8 (len(plan), 3, S, S).

        The result lives on ``padded``'s device (CUDA for the GPU graph, CPU otherwise).
        """
        if plan.image_size != self.image_size:
            raise ValueError(f"plan is for {plan.image_size} px, the graph for {self.image_size} px")
        gpu = self.device == "gpu"
        if gpu and padded.device.type != "cuda":
            padded = padded.cuda()
        n, s = len(plan), self.image_size
        if out is None:
            out = torch.empty((n, 3, s, s), dtype=torch.uint8, device=padded.device)
        params = pack_params(plan)
        index = plan.index.to(padded.device)
        stream = torch.cuda.current_stream() if gpu else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            base = padded[index[start:stop]].permute(0, 2, 3, 1).contiguous()
            self.pipe.feed_input("base", base if gpu else base.numpy(), layout="HWC")
            self.pipe.feed_input("params", params[start:stop])
            (tl,) = self.pipe.run() if not gpu else self.pipe.run(cuda_stream=stream)
            res = torch.from_dlpack(tl.as_tensor())
            out[start:stop].copy_(res)
        return out
