"""Tiled inference: an image scored as overlapping square tiles, their maps stitched back without seams.

A network trained on ``P``-pixel crops of ``S``-pixel images (``--crop P``) saw ``P``-pixel fields of view;
scoring the ``S`` image in ``P`` tiles gives each tile its own embedding (a small defect moves one tile's
embedding, not a ``(P/S)^2`` share of the image's) and bounds memory on large images. Tiles start on a
regular grid with at least ``overlap`` of a tile shared by neighbours (half a tile unless said:
``--tile-overlap``), the last one flush with the far edge, so every pixel is covered; overlapping maps are
blended with a tent window (highest in a tile's centre, never zero), and the blend is normalised by the
summed weights, so a constant map stays constant and no seam appears.

Plain tensor ops over offsets fixed by ``(S, P, overlap)``: the exported model tiles the same way. The same
holds for :func:`resize_images`, which makes the coarser whole-image view scored beside the tiles (``--whole-view``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

#: The least share of a tile its neighbours overlap by, unless said (``score.tile_overlap``).
OVERLAP = 0.5


def tile_offsets(size: int, tile: int, overlap: float = OVERLAP) -> list[int]:
    """Start positions along one side: ``0 .. size - tile``, at most ``tile - ceil(overlap * tile)`` apart (``[0]``
    for one tile): neighbours share at least ``overlap`` of a tile (more where the side asks for it)."""
    if tile <= 0 or tile > size:
        raise ValueError(f"tile {tile} must lie in [1, {size}]")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile overlap {overlap} must lie in [0, 1)")
    if tile == size:
        return [0]
    step = max(1, tile - math.ceil(overlap * tile))  # tile // 2 at the default overlap
    n = math.ceil((size - tile) / step) + 1  # steps of at most ``step`` stay so when rounded
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def tile_grid(size: int, tile: int, overlap: float = OVERLAP) -> list[tuple[int, int]]:
    """(y, x) starts of the tiles covering a ``size`` x ``size`` image, row-major."""
    offs = tile_offsets(size, tile, overlap)
    return [(y, x) for y in offs for x in offs]


def tile_count(size: int, tile: int, overlap: float = OVERLAP) -> int:
    """Tiles a ``size``-pixel image is cut into (:func:`tile_grid`); 1 when it is not tiled (``tile`` 0 or >= size)."""
    return len(tile_grid(size, tile, overlap)) if 0 < tile < size else 1


def map_passes(size: int, tile: int, overlap: float = OVERLAP, tile_pass: str = "each") -> int:
    """Network passes per image whose trunk maps make its maps (and a patch density's sample): one per tile
    (``tile_pass="each"``), or one over the whole image (``"once"``, ``"maps-once"``, or not tiled)."""
    return tile_count(size, tile, overlap) if tile_pass == "each" else 1


def network_passes(size: int, tile: int, overlap: float = OVERLAP, tile_pass: str = "each") -> int:
    """Network passes per image in all: :func:`map_passes`, and with ``"maps-once"`` a pass per tile besides for
    the tiles' embeddings."""
    embedding_passes = tile_count(size, tile, overlap) if tile_pass == "maps-once" and 0 < tile < size else 0
    return map_passes(size, tile, overlap, tile_pass) + embedding_passes


def extract_tiles(images: torch.Tensor, tile: int, overlap: float = OVERLAP) -> torch.Tensor:
    """(N, C, S, S) -> (N * T, C, P, P), tiles of image 0 first, each image's in :func:`tile_grid` order."""
    n, c, size = images.shape[0], images.shape[1], int(images.shape[-1])  # int: a traced shape is a tensor
    tiles = [images[:, :, y:y + tile, x:x + tile] for y, x in tile_grid(size, tile, overlap)]
    return torch.stack(tiles, dim=1).reshape(n * len(tiles), c, tile, tile)


def blend_window(tile: int, device: torch.device | None = None) -> torch.Tensor:
    """float32 (P, P): a separable tent, 1 at the centre, ``1 / (P + 1)``-ish at the rim (never 0)."""
    i = torch.arange(tile, dtype=torch.float32, device=device)
    ramp = (torch.minimum(i + 1, tile - i) / ((tile + 1) / 2)).clamp(max=1.0)
    return ramp[:, None] * ramp[None, :]


def stitch(tile_maps: torch.Tensor, size: int, tile: int, overlap: float = OVERLAP) -> torch.Tensor:
    """(N * T, C, h, w) per-tile maps at any resolution -> (N, C, S, S): each resized to the tile's ``P x P``,
    weighted by :func:`blend_window`, summed where tiles overlap and divided by the summed weights."""
    grid = tile_grid(size, tile, overlap)
    maps = tile_maps.float()
    if maps.shape[-2:] != (tile, tile):
        maps = F.interpolate(maps, size=(tile, tile), mode="bilinear", align_corners=False)
    maps = maps.reshape(-1, len(grid), maps.shape[1], tile, tile)
    w = blend_window(tile, maps.device)
    out, weight = 0, 0
    for t, (y, x) in enumerate(grid):  # padding, not slice assignment: the same ops trace to ONNX
        pad = (x, size - tile - x, y, size - tile - y)
        out = out + F.pad(maps[:, t] * w, pad)
        weight = weight + F.pad(w, pad)
    return out / weight


def forward_tiled(forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]], images: torch.Tensor,
                  tile: int, overlap: float = OVERLAP) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``forward`` (images -> (embeddings (M, D), per-pixel maps (M, C, h, w) or None)) on the ``tile`` tiles
    of (N, 3, S, S) images: (embeddings (N, T, D), maps stitched to (N, C, S, S), or None)."""
    n, size = images.shape[0], int(images.shape[-1])  # the tile grid is fixed by the side, also when traced
    emb, maps = forward(extract_tiles(images, tile, overlap))
    return emb.reshape(n, -1, emb.shape[-1]), None if maps is None else stitch(maps, size, tile, overlap)


def crop_windows(maps: torch.Tensor, size: int, tile: int, overlap: float = OVERLAP) -> torch.Tensor:
    """(N, C, h, w) maps of whole ``size``-pixel images -> (N * T, C, p, p): each tile's window of them (``p`` the
    tile's side on the maps' grid), image 0's windows first, in :func:`tile_grid` order (as :func:`extract_tiles`)."""
    n, c, h = maps.shape[0], maps.shape[1], int(maps.shape[-1])
    stride = size / h
    p = max(1, round(tile / stride))
    cells = [(min(int(y // stride), h - p), min(int(x // stride), h - p)) for y, x in tile_grid(size, tile, overlap)]
    wins = [maps[:, :, y:y + p, x:x + p] for y, x in cells]
    return torch.stack(wins, dim=1).reshape(n * len(wins), c, p, p)


class WindowLevels:
    """The trunk maps of whole images (a ``PatchLevels``) seen through the tile windows: :meth:`descriptors` of
    any stages made once on the whole images (each location with its real neighbours, no tile border), then cut
    into each tile's window, (N * T, C, p, p), as the tiles' own passes would hand them over."""

    def __init__(self, levels, size: int, tile: int, overlap: float = OVERLAP):
        self.levels, self.size, self.tile, self.overlap = levels, size, tile, overlap

    def descriptors(self, stages: tuple[int, ...]) -> torch.Tensor:
        return crop_windows(self.levels.descriptors(stages), self.size, self.tile, self.overlap)


def resize_images(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, side, side): bilinear with antialiasing, rounded (an image decoded at that
    side, near enough); the images themselves when they have that side already. Plain tensor ops (exported)."""
    if tuple(images.shape[-2:]) == (side, side):
        return images
    out = F.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


__all__ = ["OVERLAP", "WindowLevels", "blend_window", "crop_windows", "extract_tiles", "forward_tiled", "map_passes",
           "network_passes", "resize_images", "stitch", "tile_count", "tile_grid", "tile_offsets"]
