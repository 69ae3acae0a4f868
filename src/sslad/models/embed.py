"""Inference: embeddings and per-pixel maps of images with a trained network (eval mode, fixed batches)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from sslad.models.net import PatchLevels, PretextNet
from sslad.models.tiles import extract_tiles, forward_tiled, resize_images

EMBED_BATCH = 64


def tiled_batch(batch_size: int, tile: int, size: int) -> int:
    """Images per forward pass when each is cut into tiles: about as many pixels as ``batch_size`` whole images."""
    return max(1, batch_size * tile ** 2 // size ** 2)


class Outputs(NamedTuple):
    """float32 on the CPU: embeddings (N, D) (or (N, T, D), one per tile) and per-pixel anomaly values
    (N, 1, h, w): the per-pixel head's probabilities or a patch density's distances (or what another ``map_fn``
    makes, e.g. both of them as (N, 2, h, w)); or None; and the whole images' embeddings (N, D) at a smaller side
    (``infer_images(whole=...)``), or None."""

    embeddings: torch.Tensor
    maps: torch.Tensor | None
    whole: torch.Tensor | None = None


#: The density's embeddings (N, D') from the pooled embeddings (N, D) and the trunk's maps (:class:`PatchLevels`).
EmbedFn = Callable[[torch.Tensor, PatchLevels], torch.Tensor]

#: Per-location anomaly values from the per-pixel probabilities ((N, 1, h, w) or None) and the trunk's maps
#: (:class:`PatchLevels`): (N, 1, h'', w'') (a fitted patch density, alone or combined with the probabilities).
MapFn = Callable[[torch.Tensor | None, PatchLevels], torch.Tensor]


def scoring_autocast(device: torch.device, precision: str | None) -> torch.autocast:
    """The autocast context a scoring pass runs its network under: bf16 for ``precision`` ``"bf16"``, none for
    ``"fp32"``; ``None`` (a scorer fitted before 0.7.10, which stored no precision) is what those runs were scored
    with: bf16 on CUDA, fp32 on the CPU."""
    bf16 = precision == "bf16" or (precision is None and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def forward_maps(model: PretextNet, x: torch.Tensor, map_fn: MapFn | None = None,
                 embed_fn: EmbedFn | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings, per-pixel anomaly maps (N, 1, h, w) or None) of one batch: the pooled embeddings (with
    ``embed_fn``: what it makes of them and the trunk's maps) and the sigmoid of the network's per-pixel
    logits (with ``map_fn``: what it makes of them and the trunk's maps)."""
    if map_fn is None and embed_fn is None:
        _, e, seg = model(x)
        return e, None if seg is None else torch.sigmoid(seg.float())
    e, seg, patches = model.dense_outputs(x)
    probs = None if seg is None else torch.sigmoid(seg.float())
    return (e if embed_fn is None else embed_fn(e, patches)), (probs if map_fn is None else map_fn(probs, patches))


@torch.no_grad()
def infer_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None, maps: bool = True, tile: int = 0,
                 map_fn: MapFn | None = None, embed_fn: EmbedFn | None = None, whole: int = 0,
                 precision: str | None = None) -> Outputs:
    """Run uint8 (N, 3, S, S) images (any device) through the network in batches.

    With ``tile`` (0 < tile < S) each image is scored in overlapping tiles (:mod:`sslad.models.tiles`):
    embeddings (N, T, D), one per tile, and maps stitched at the image's resolution. With ``map_fn`` the
    maps are ``map_fn`` of the trunk's maps (a patch density), not the per-pixel head's; with ``embed_fn``
    the embeddings are ``embed_fn`` of the pooled embeddings and the trunk's maps. With ``whole`` (a side),
    the images resized to it are embedded too, whole (:attr:`Outputs.whole`).
    ``precision`` (``"fp32"`` or ``"bf16"``, the scorer's: :func:`scoring_autocast`) is what the network computes in;
    the outputs are float32 either way. bf16 halves the scoring time on a CPU with native bf16 at the same AUROCs
    (docs/results.md, *bf16 scoring on the CPU*); fp32 scores reproduce the exported ONNX graph's exactly.
    """
    from sslad.progress import bar

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    want_maps = maps and (model.cfg.seg_head or map_fn is not None)
    tiled = 0 < tile < images.shape[-1]
    if tiled:
        batch_size = tiled_batch(batch_size, tile, images.shape[-1])

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # maps=False: no map made or stitched
        e, p = forward_maps(model, x, map_fn if want_maps else None, embed_fn)
        return e, p if want_maps else None

    embs, probs = [], []
    for i in bar(range(0, images.shape[0], batch_size), progress, unit="batch"):
        xb = images[i:i + batch_size].to(dev, non_blocking=True)
        with scoring_autocast(dev, precision):
            if tiled or want_maps or embed_fn is not None:
                e, p = forward_tiled(forward, xb, tile) if tiled else forward(xb)
                if want_maps:
                    probs.append(p.float().cpu())
            else:
                e = model.embed(xb)
        embs.append(e.float().cpu())
    model.train(was_training)
    emb = torch.cat(embs) if embs else torch.empty(0, model.embed_dim)
    whole_emb = None
    if whole:
        whole_emb = infer_images(model, resize_images(images, whole), batch_size, progress and f"{progress} (whole)",
                                 maps=False, embed_fn=embed_fn, precision=precision).embeddings
    return Outputs(emb, torch.cat(probs) if probs else None, whole_emb)


@torch.no_grad()
def sample_patches(model: PretextNet, images: torch.Tensor, total: int = 200_000, seed: int = 0,
                   batch_size: int = EMBED_BATCH, tile: int = 0, precision: str = "fp32",
                   stages: tuple[int, ...] | list[tuple[int, ...]] = (2, 3)) -> torch.Tensor | list[torch.Tensor]:
    """float32 (M, C) patch descriptors of the trunk's ``stages`` (:meth:`PatchLevels.descriptors`) of the images
    (of their tiles with ``tile``), about ``total`` locations drawn evenly from every image (or tile) with a
    seeded generator: what a patch density is fitted on (computed in ``precision``, as :func:`infer_images`).
    With a list of stage sets, one pass gives a list of samples, each the one that set alone would give."""
    sets = stages if isinstance(stages, list) else [stages]
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    gens = [torch.Generator().manual_seed(seed) for _ in sets]
    tiled = 0 < tile < images.shape[-1]
    if tiled:  # about as many pixels per forward pass as whole images (25 tiles an image at 384 of 128 px)
        batch_size = tiled_batch(batch_size, tile, images.shape[-1])
    per = max(1, -(-total // len(images)))
    out: list[list[torch.Tensor]] = [[] for _ in sets]
    for i in range(0, images.shape[0], batch_size):
        xb = images[i:i + batch_size].to(dev)
        x = extract_tiles(xb, tile) if tiled else xb
        with scoring_autocast(dev, precision):
            levels = model.dense_outputs(x)[2]
        for s, g, kept in zip(sets, gens, out, strict=True):
            z = levels.descriptors(s).float().flatten(2).transpose(1, 2).cpu()  # (n, h*w, C)
            k = min(z.shape[1], max(1, per * len(xb) // len(x)))
            idx = torch.rand(z.shape[:2], generator=g).argsort(1)[:, :k]
            kept.append(torch.gather(z, 1, idx[..., None].expand(-1, -1, z.shape[2])).flatten(0, 1))
    model.train(was_training)
    samples = [torch.cat(kept) for kept in out]
    return samples if isinstance(stages, list) else samples[0]


def embed_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None) -> torch.Tensor:
    """float32 (N, D) embeddings on the CPU of uint8 (N, 3, S, S) images (any device)."""
    return infer_images(model, images, batch_size, progress, maps=False).embeddings
