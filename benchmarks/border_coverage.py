"""How often is each pixel of a regeneration anomalous? The share of synthetic anomalies covering each pixel, by
distance to the nearest side, for several ``--border`` shares: label-free, no network.

Usage:
    python benchmarks/border_coverage.py NAME [--size 128] [--crop P] [--config configs/cpu.yaml] [--shares 0 0.25 0.5]

Renders six regenerations of 60 flat grey images (the recipe's synth section, torch renderer) per share and
records, for bands of pixels by their distance d to the nearest side (0-3, 4-7, 8-15, 16-31, 32+ px), the mean
share of the class-1/2 samples whose mask covers them. With ``--crop P`` the count is made in the P-pixel windows a
``--crop P`` run trains on (``crop_offsets``: each window holds its sample's whole mask where it fits, drawn
uniformly among those that do), distances to the window's sides. Records ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import sys

import torch
from common import flat_regenerations, save_record, synth_benchmark, trailing, training_windows

BANDS = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 10**6))


def bands(side: int) -> list[tuple[str, int, int]]:
    """(label, lo, hi) of the :data:`BANDS` a ``side``-pixel image has pixels in (distances lo <= d < hi)."""
    return [(f"{lo}-{min(hi, side // 2) - 1}", lo, hi) for lo, hi in BANDS if lo < side // 2]


def side_distance(size: int) -> torch.Tensor:
    """int64 (S, S): each pixel's distance in pixels to the nearest side of the image."""
    idx = torch.arange(size)
    near = torch.minimum(idx, size - 1 - idx)
    return torch.minimum(near[:, None], near[None, :])


def coverage(synth, size: int, crop: int = 0, regenerations: int = 6, images: int = 60) -> torch.Tensor:
    """float (S, S), or (P, P) in the training's crop windows: the share of the anomalous samples whose mask covers
    each pixel."""
    side = crop or size
    hits, n = torch.zeros(side, side), 0
    for k, (_, s) in enumerate(flat_regenerations(synth, size, regenerations, images)):
        masks = s.masks.reshape(len(s.labels), size, size)[s.labels > 0]
        if crop:
            masks = training_windows(masks, crop, k)
        m = masks > 0
        hits += m.float().sum(0)
        n += len(m)
    return hits / n


def main(argv: list[str]) -> int:
    if (args := synth_benchmark(argv, __doc__)) is None:
        return 2
    name, size, crop, config, synth = args
    shares = [float(s) for s in trailing(argv, "--shares", ["0", "0.25", "0.5"])]
    side = crop or size
    edge = side_distance(side)
    rows = {}
    for share in shares:
        cov = coverage(dataclasses.replace(synth, border=share), size, crop)
        band = {k: float(cov[(edge >= lo) & (edge < hi)].mean()) for k, lo, hi in bands(side)}
        rows[str(share)] = {"bands": band, "mean": float(cov.mean())}
        print(f"border {share}: " + "  ".join(f"d {k}: {v:.4f}" for k, v in band.items()) + f"  mean {cov.mean():.4f}")
    save_record(name, {"name": name, "size": size, "crop": crop, "config": config, "command": " ".join(
        ["python", "benchmarks/border_coverage.py", *argv]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
