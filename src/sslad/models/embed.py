"""Inference: embeddings and per-pixel maps of images with a trained network (eval mode, fixed batches)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from sslad.models.net import PretextNet
from sslad.models.tiles import forward_tiled

EMBED_BATCH = 64


class Outputs(NamedTuple):
    """float32 on the CPU: embeddings (N, D) (or (N, T, D), one per tile) and per-pixel anomaly probabilities
    (N, 1, h, w) or None."""

    embeddings: torch.Tensor
    maps: torch.Tensor | None


@torch.no_grad()
def infer_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None, maps: bool = True, tile: int = 0) -> Outputs:
    """Run uint8 (N, 3, S, S) images (any device) through the network in batches.

    With ``tile`` (0 < tile < S) each image is scored in overlapping tiles (:mod:`sslad.models.tiles`):
    embeddings (N, T, D), one per tile, and maps stitched at the image's resolution.
    fp32 on the CPU (scores reproduce exactly across runs and exports); bf16 autocast on CUDA.
    """
    from sslad.progress import bar

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    want_maps = maps and model.cfg.seg_head
    tiled = 0 < tile < images.shape[-1]
    if tiled:  # about as many pixels per batch as whole images
        batch_size = max(1, batch_size * tile ** 2 // images.shape[-1] ** 2)
    embs, probs = [], []
    for i in bar(range(0, images.shape[0], batch_size), progress, unit="batch"):
        xb = images[i:i + batch_size].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            if tiled:
                e, p = forward_tiled(model, xb, tile)
                if want_maps:
                    probs.append(p.cpu())
            elif want_maps:
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
