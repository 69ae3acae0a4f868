"""One network scored in several views (decode size, tile), joined: does scoring the same run at 256 and 384 px,
or whole at 128 px and in tiles at 256, keep what each view sees (on magnetic_tile: `uneven` and `break` at the
coarse view, thin cracks at the fine one)?

Usage:
    python benchmarks/multi_scale.py NAME RUN_DIR VIEW [VIEW ...]     VIEW: SIZE or SIZE:TILE (0: whole images)

For each view the run's scorer is re-fitted on its own fit images decoded at that side (the run's embedding,
maps and image score ``embedding``; the run's tile unless the view names one, none when it is not smaller than
the side), then the held-out good images and the test split are scored. Joined image scores: each view's score
standardised on the held-out good images (mean and standard deviation of the log score: the Gaussian's squared
distances are heavy-tailed), summed (``zsum``) or their maximum taken (``zmax``). Joined maps: each view's maps
on its held-out scale (the scorer's own ``map: both`` rule: median pixel, 99th percentile of the maxima), resized
to the largest view's side and averaged (``zsum``), evaluated against that view's masks. No test label chooses
anything. Records every view's and join's image AUROC per type, false-positive rate at the held-out 99th
percentile, pixel AUROC and AUPRO.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch
import torch.nn.functional as F
from common import load_run, save_record

from sslad.detector import Detector
from sslad.scoring.metrics import decision_metrics, image_metrics, pixel_metrics, quantile_threshold
from sslad.training import fit_scorer


def parse_view(text: str) -> tuple[int, int | None]:
    size, _, tile = text.partition(":")
    return int(size), (int(tile) if tile else None)


def score_view(run_dir: str, size: int, tile: int | None) -> dict:
    """The run re-fitted at ``size`` (and ``tile``): held-out and test scores, maps on the held-out scale."""
    model, _, _, cfg, data, fit, holdout = load_run(run_dir, size)
    tile = cfg.score.tile if tile is None else tile
    tile = tile if 0 < tile < size else 0
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, image_score="embedding", tile=tile))
    det = Detector(model, fit_scorer(model, fit, holdout, cfg), size)
    hold = det.score(holdout.images, progress=f"held-out @{size}:{tile}")
    test = det.score(data.test.images, progress=f"test @{size}:{tile}")
    out = {"size": size, "tile": tile, "hold": np.asarray(hold.scores, np.float64),
           "test": np.asarray(test.scores, np.float64), "types": list(data.test.types), "maps": None,
           "masks": data.test.masks}
    if test.maps is not None:
        lo, top = det.scorer._map_scale(hold.maps)
        out["maps"] = (test.maps - lo) / (top - lo)
    return out


def standardise(hold: np.ndarray, x: np.ndarray) -> np.ndarray:
    lh, lx = np.log(np.maximum(hold, 1e-6)), np.log(np.maximum(x, 1e-6))
    return (lx - lh.mean()) / max(lh.std(), 1e-9)


def summary(types: list[str], hold: np.ndarray, test: np.ndarray, maps: torch.Tensor | None,
            masks: torch.Tensor | None) -> dict:
    metrics = image_metrics(types, test)
    metrics.update(decision_metrics(types, test, quantile_threshold(hold, 0.99)))
    if maps is not None and masks is not None:
        metrics.update(pixel_metrics(types, maps.numpy(), masks.numpy()))
    return metrics


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir, views = argv[0], argv[1], [parse_view(v) for v in argv[2:]]
    results = [score_view(run_dir, size, tile) for size, tile in views]
    types = results[0]["types"]
    keys = [f"{r['size']}:{r['tile']}" for r in results]
    rows = {k: summary(types, r["hold"], r["test"], r["maps"], r["masks"]) for k, r in zip(keys, results, strict=True)}
    zh = np.stack([standardise(r["hold"], r["hold"]) for r in results])
    zt = np.stack([standardise(r["hold"], r["test"]) for r in results])
    big = max(results, key=lambda r: r["size"])
    joined = None
    if all(r["maps"] is not None for r in results):
        side = big["maps"].shape[-2:]
        joined = sum(F.interpolate(r["maps"][:, None], size=side, mode="bilinear", align_corners=False)[:, 0]
                     for r in results) / len(results)
    rows["zsum"] = summary(types, zh.sum(0), zt.sum(0), joined, big["masks"])
    rows["zmax"] = summary(types, zh.max(0), zt.max(0), None, None)
    for key, m in rows.items():
        per = " ".join(f"{t} {v:.3f}" for t, v in m["per_type_auroc"].items())
        pix = f"  pixel {m['pixel_auroc']:.4f} AUPRO {m['aupro']:.4f}" if m.get("pixel_auroc") is not None else ""
        print(f"{key:>7}: image AUROC {m['image_auroc']:.4f}  FPR {m['false_positive_rate']:.3f}  {per}{pix}")
    scores = {k: {"holdout": r["hold"].tolist(), "test": r["test"].tolist()}
              for k, r in zip(keys, results, strict=True)}
    save_record(name, {"name": name, "run_dir": run_dir, "views": keys,
                       "command": " ".join(sys.argv), "rows": rows, "test_types": types, "scores": scores})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
