"""Embeddings of images with a trained network (eval mode, fixed batches: reproducible)."""

from __future__ import annotations

import torch

from sslad.models.net import PretextNet

EMBED_BATCH = 64


@torch.no_grad()
def embed_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None) -> torch.Tensor:
    """float32 (N, D) embeddings on the CPU of uint8 (N, 3, S, S) images (any device)."""
    from sslad.progress import bar

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    starts = range(0, images.shape[0], batch_size)
    for i in bar(starts, progress, unit="batch"):
        xb = images[i:i + batch_size].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            e = model.embed(xb)
        out.append(e.float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.embed_dim)
