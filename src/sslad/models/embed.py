"""Inference: embeddings and per-pixel maps of images with a trained network (eval mode, fixed batches)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from sslad.models.net import PretextNet

EMBED_BATCH = 64


class Outputs(NamedTuple):
    """float32 on the CPU: embeddings (N, D) and per-pixel anomaly probabilities (N, 1, H/4, W/4) or None."""

    embeddings: torch.Tensor
    maps: torch.Tensor | None


@torch.no_grad()
def infer_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None, maps: bool = True) -> Outputs:
    """Run uint8 (N, 3, S, S) images (any device) through the network in batches.

    fp32 on the CPU (scores reproduce exactly across runs and exports); bf16 autocast on CUDA.
    """
    from sslad.progress import bar

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    want_maps = maps and model.cfg.seg_head
    embs, probs = [], []
    for i in bar(range(0, images.shape[0], batch_size), progress, unit="batch"):
        xb = images[i:i + batch_size].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            if want_maps:
                _, e, seg = model(xb)
                probs.append(torch.sigmoid(seg.float()).cpu())
            else:
                e = model.embed(xb)
        embs.append(e.float().cpu())
    model.train(was_training)
    emb = torch.cat(embs) if embs else torch.empty(0, model.embed_dim)
    return Outputs(emb, torch.cat(probs) if probs else None)


def embed_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None) -> torch.Tensor:
    """float32 (N, D) embeddings on the CPU of uint8 (N, 3, S, S) images (any device)."""
    return infer_images(model, images, batch_size, progress, maps=False).embeddings
