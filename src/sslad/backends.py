"""The one place that chooses a pretext renderer, above ``sslad.synth`` and ``sslad.dali_pipes``.

``synth`` holds the plan, the renderer protocol and the torch reference renderer; ``dali_pipes``
the DALI graph, which renders the same plans. Only this module names both, and it imports DALI
lazily, only for ``--backend dali``, so ``sslad --help`` and the torch backend never load it.
"""

from __future__ import annotations

import torch

from sslad.config import BACKENDS, RENDER_BATCH
from sslad.errors import SsladError
from sslad.synth.renderer import Renderer, TorchRenderer


def make_renderer(backend: str, image_size: int, device: torch.device,
                  batch_size: int = RENDER_BATCH) -> Renderer:
    """``torch`` or ``dali`` (GPU operators when ``device`` is CUDA, DALI's CPU operators otherwise)."""
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
        return DaliRenderer(image_size, device, batch_size=batch_size)
    raise SsladError(f"unknown backend {backend!r} ({'|'.join(BACKENDS)})")


__all__ = ["make_renderer"]
