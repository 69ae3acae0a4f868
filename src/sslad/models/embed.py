"""Inference: embeddings and per-pixel maps of images with a trained network (eval mode, fixed batches)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from sslad.models.net import PatchLevels, PretextNet
from sslad.models.tiles import (
    OVERLAP,
    WindowLevels,
    crop_windows,
    forward_tiled,
    map_passes,
    resize_images,
)

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
                 embed_fn: EmbedFn | None = None, patch_sink: Callable[[PatchLevels], None] | None = None,
                 maps: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings, per-pixel anomaly maps (N, 1, h, w) or None) of one batch: the pooled embeddings (with
    ``embed_fn``: what it makes of them and the trunk's maps) and the sigmoid of the network's per-pixel
    logits (with ``map_fn``: what it makes of them and the trunk's maps); ``patch_sink`` is handed the trunk's
    maps too. Without ``maps`` no map is made (None) and the per-pixel head is not run."""
    if map_fn is None and embed_fn is None and patch_sink is None:
        if not maps:
            return model.embed(x), None
        _, e, seg = model(x)
        return e, None if seg is None else torch.sigmoid(seg.float())
    e, seg, patches = model.dense_outputs(x, seg=maps)
    if patch_sink is not None:
        patch_sink(patches)
    e = e if embed_fn is None else embed_fn(e, patches)
    if not maps:
        return e, None
    probs = None if seg is None else torch.sigmoid(seg.float())
    return e, (probs if map_fn is None else map_fn(probs, patches))


def forward_windows(model: PretextNet, x: torch.Tensor, tile: int, overlap: float = OVERLAP,
                    map_fn: MapFn | None = None, embed_fn: EmbedFn | None = None,
                    patch_sink: Callable[[PatchLevels], None] | None = None, maps: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tiles' embeddings (N, T, D) and the images' maps from ONE pass over the whole (N, 3, S, S) images: each
    tile's pooled embedding is layer4 averaged over its window, its patch descriptors those of its window
    (:class:`WindowLevels`); the maps (with ``map_fn``: of the whole images' trunk maps) at the network's
    resolution, no stitching (without ``maps``: None, the per-pixel head not run). About ``(S / P)^2`` tiles' work
    instead of :func:`~sslad.models.tiles.tile_count`'s."""
    n, size = x.shape[0], int(x.shape[-1])
    _, seg, levels = model.dense_outputs(x, seg=maps)
    if patch_sink is not None:
        patch_sink(levels)
    pooled = crop_windows(levels.maps[-1], size, tile, overlap).float().mean((2, 3))
    e = pooled if embed_fn is None else embed_fn(pooled, WindowLevels(levels, size, tile, overlap))
    e = e.reshape(n, -1, e.shape[-1])
    if not maps:
        return e, None
    probs = None if seg is None else torch.sigmoid(seg.float())
    return e, (probs if map_fn is None else map_fn(probs, levels))


def forward_scored(model: PretextNet, x: torch.Tensor, tile: int = 0, overlap: float = OVERLAP,
                   tile_pass: str = "each", map_fn: MapFn | None = None, embed_fn: EmbedFn | None = None,
                   patch_sink: Callable[[PatchLevels], None] | None = None,
                   maps: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch as a scorer sees it: :func:`forward_maps` of the whole images (``tile`` 0 or at least their side),
    of each tile with its maps stitched (``tile_pass="each"``), :func:`forward_windows` (``"once"``), or each tile's
    embedding from its own pass and the maps (and ``patch_sink``'s trunk maps) from one pass over the whole images
    (``"maps-once"``: "each"'s embeddings, "once"'s maps); without ``maps``, no map is made or stitched (None) and
    the per-pixel head is not run."""
    map_fn = map_fn if maps else None
    if not 0 < tile < int(x.shape[-1]):
        return forward_maps(model, x, map_fn, embed_fn, patch_sink, maps)
    if tile_pass == "once":
        return forward_windows(model, x, tile, overlap, map_fn, embed_fn, patch_sink, maps)
    if tile_pass == "maps-once":
        e, _ = forward_tiled(lambda t: forward_maps(model, t, None, embed_fn, maps=False), x, tile, overlap)
        if not maps and patch_sink is None:
            return e, None
        return e, forward_maps(model, x, map_fn, None, patch_sink, maps)[1]
    return forward_tiled(lambda t: forward_maps(model, t, map_fn, embed_fn, patch_sink, maps), x, tile, overlap)


@torch.no_grad()
def infer_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None, maps: bool = True, tile: int = 0,
                 map_fn: MapFn | None = None, embed_fn: EmbedFn | None = None, whole: int = 0,
                 precision: str | None = None, patch_sink: Callable[[PatchLevels], None] | None = None,
                 overlap: float = OVERLAP, tile_pass: str = "each", embed: bool = True) -> Outputs:
    """Run uint8 (N, 3, S, S) images (any device) through the network in batches.

    With ``tile`` (0 < tile < S) each image is scored in tiles whose neighbours share at least ``overlap`` of a tile
    (:mod:`sslad.models.tiles`): embeddings (N, T, D), one per tile, and maps stitched at the image's resolution
    (``tile_pass="each"``: a network pass per tile), or the tiles' embeddings pooled from their windows of one pass
    over the whole image and its maps (``"once"``: :func:`forward_windows`), or the tiles' embeddings from a pass
    each and the maps from one over the whole image (``"maps-once"``). With ``map_fn`` the maps are ``map_fn``
    of the trunk's maps (a patch density), not the per-pixel head's; with ``embed_fn`` the embeddings are
    ``embed_fn`` of the pooled embeddings and the trunk's maps. With ``whole`` (a side), the images resized to it
    are embedded too, whole (:attr:`Outputs.whole`).
    ``precision`` (``"fp32"`` or ``"bf16"``, the scorer's: :func:`scoring_autocast`) is what the network computes in;
    the outputs are float32 either way. bf16 halves the scoring time on a CPU with native bf16 at the same AUROCs
    (docs/results.md, *bf16 scoring on the CPU*); fp32 scores reproduce the exported ONNX graph's exactly.
    ``patch_sink`` (a :class:`PatchSampler`) is handed the trunk's maps of every batch (of its tiles): a patch
    density's sample drawn in the same pass (the whole view's images are not handed over).
    Without ``embed`` only the maps (and ``patch_sink``'s sample) are wanted: :attr:`Outputs.embeddings` is empty
    (N, 0), no ``embed_fn`` or ``whole`` pass runs, and ``"maps-once"`` runs no tile pass, its maps and sample being
    those of its one whole pass (``"once"``'s, to the bit).
    """
    from sslad.progress import bar

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    want_maps = maps and (model.cfg.seg_head or map_fn is not None)
    tiled = 0 < tile < images.shape[-1]
    if tiled:
        batch_size = tiled_batch(batch_size, tile, images.shape[-1])
    if not embed:
        embed_fn, whole = None, 0
        tile_pass = "once" if tile_pass == "maps-once" else tile_pass  # the whole pass alone makes its maps

    embs, probs = [], []
    for i in bar(range(0, images.shape[0], batch_size), progress, unit="batch"):
        xb = images[i:i + batch_size].to(dev, non_blocking=True)
        with scoring_autocast(dev, precision):
            if tiled or want_maps or embed_fn is not None or patch_sink is not None:
                e, p = forward_scored(model, xb, tile, overlap, tile_pass, map_fn, embed_fn, patch_sink, want_maps)
                if want_maps:
                    probs.append(p.float().cpu())
            else:
                e = model.embed(xb)
        if embed:
            embs.append(e.float().cpu())
    model.train(was_training)
    if not embed:
        emb = torch.empty(images.shape[0], 0)
    else:
        emb = torch.cat(embs) if embs else torch.empty(0, model.embed_dim)
    whole_emb = None
    if whole:
        whole_emb = infer_images(model, resize_images(images, whole), batch_size, progress and f"{progress} (whole)",
                                 maps=False, embed_fn=embed_fn, precision=precision).embeddings
    return Outputs(emb, torch.cat(probs) if probs else None, whole_emb)


class PatchSampler:
    """Draws about ``total`` patch descriptors of the trunk's ``stages`` (:meth:`PatchLevels.descriptors`) evenly
    from ``n_images`` images (from each of their ``tiles`` tiles), batch after batch, with a seeded generator per
    stage set: what a patch density is fitted on. Fed by :func:`infer_images` (``patch_sink``): for the sample
    alone (:func:`sample_patches`), or while it embeds the same images, so one pass over them gives both."""

    def __init__(self, n_images: int, total: int = 200_000, seed: int = 0, tiles: int = 1,
                 stages: tuple[int, ...] | list[tuple[int, ...]] = (2, 3)):
        self.one = not isinstance(stages, list)
        self.sets = [stages] if self.one else stages
        self.gens = [torch.Generator().manual_seed(seed) for _ in self.sets]
        self.per_tile = max(1, -(-total // max(n_images, 1)) // tiles)  # per image, spread over its tiles
        self.kept: list[list[torch.Tensor]] = [[] for _ in self.sets]

    def __call__(self, levels: PatchLevels) -> None:
        for s, g, kept in zip(self.sets, self.gens, self.kept, strict=True):
            z = levels.descriptors(s).float().flatten(2).transpose(1, 2).cpu()  # (n, h*w, C)
            k = min(z.shape[1], self.per_tile)
            idx = torch.rand(z.shape[:2], generator=g).argsort(1)[:, :k]
            kept.append(torch.gather(z, 1, idx[..., None].expand(-1, -1, z.shape[2])).flatten(0, 1))

    def samples(self) -> torch.Tensor | list[torch.Tensor]:
        """float32 (M, C) per stage set (one tensor when one set was asked for)."""
        out = [torch.cat(kept) for kept in self.kept]
        return out[0] if self.one else out


def sample_patches(model: PretextNet, images: torch.Tensor, total: int = 200_000, seed: int = 0,
                   batch_size: int = EMBED_BATCH, tile: int = 0, precision: str = "fp32",
                   stages: tuple[int, ...] | list[tuple[int, ...]] = (2, 3),
                   overlap: float = OVERLAP, tile_pass: str = "each") -> torch.Tensor | list[torch.Tensor]:
    """float32 (M, C) patch descriptors of the trunk's ``stages`` of the images (of their tiles with ``tile``),
    about ``total`` locations drawn evenly from every image (or tile) by a :class:`PatchSampler` fed by
    :func:`infer_images` (its batches, tiles and ``precision``). With a list of stage sets, one pass gives a list of
    samples, each the one that set alone would give."""
    sampler = PatchSampler(len(images), total, seed, map_passes(images.shape[-1], tile, overlap, tile_pass), stages)
    infer_images(model, images, batch_size, maps=False, tile=tile, precision=precision, patch_sink=sampler,
                 overlap=overlap, tile_pass=tile_pass, embed=False)
    return sampler.samples()


def embed_images(model: PretextNet, images: torch.Tensor, batch_size: int = EMBED_BATCH,
                 progress: str | None = None) -> torch.Tensor:
    """float32 (N, D) embeddings on the CPU of uint8 (N, 3, S, S) images (any device)."""
    return infer_images(model, images, batch_size, progress, maps=False).embeddings
