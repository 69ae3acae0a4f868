"""How much of the image does a synthetic anomaly cover? The distribution of the rendered masks' area, as a share of
the image, for the irregular blobs and for every class-1/2 anomaly, at several ``--blob-area`` values: label-free,
no network.

Usage:
    python benchmarks/blob_cover.py NAME [--size 128] [--crop P] [--config configs/cpu.yaml] [--blob-sizes uniform|log]
        [--areas 0.15 0.3 0.6 1.0]

Renders six regenerations of 60 flat grey images (the recipe's synth section, torch renderer) per value and records
the mean, median, 90th percentile and maximum of the mask area (``soft >= 0.5``) over the image's. With ``--crop P``
the area is counted in the P-pixel windows a ``--crop P`` run trains on, as a share of the window. ``--blob-sizes``
overrides the recipe's law of blob box areas (uniform or log-uniform up to each value).
Records ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import sys

import torch
from common import flat_regenerations, option, save_record, synth_benchmark, trailing, training_windows


def summary(cover: torch.Tensor) -> dict[str, float]:
    return {"mean": float(cover.mean()), "median": float(cover.median()), "p90": float(cover.quantile(0.9)),
            "max": float(cover.max()), "samples": len(cover)}


def main(argv: list[str]) -> int:
    if (args := synth_benchmark(argv, __doc__)) is None:
        return 2
    name, size, crop, config, synth = args
    areas = [float(a) for a in trailing(argv, "--areas", ["0.15", "0.3", "0.6", "1.0"])]
    synth = dataclasses.replace(synth, blob_sizes=option(argv, "--blob-sizes", synth.blob_sizes))
    rows = {}
    for area in areas:
        blobs, anomalies = [], []
        for k, (plan, s) in enumerate(flat_regenerations(dataclasses.replace(synth, blob_area=area), size)):
            masks = s.masks.reshape(len(s.labels), size, size)
            cover = ((training_windows(masks, crop, k) if crop else masks).flatten(1) > 0).float().mean(1)
            blobs.append(cover[plan.variant == 1])
            anomalies.append(cover[s.labels > 0])
        rows[str(area)] = {"blobs": summary(torch.cat(blobs)), "anomalies": summary(torch.cat(anomalies))}
        print(f"blob area {area}: " + "; ".join(f"{k} " + " ".join(f"{m} {v:.3f}" for m, v in r.items()
                                                                    if m != "samples")
                                                for k, r in rows[str(area)].items()))
    save_record(name, {"name": name, "size": size, "crop": crop, "config": config, "blob_sizes": synth.blob_sizes,
                       "command": " ".join(
        ["python", "benchmarks/blob_cover.py", *argv]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
