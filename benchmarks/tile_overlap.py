"""How much work does tiled scoring need? One finished tiled run (``--tile``) re-fitted and scored at each
``--tile-overlap`` and ``--tile-pass``: network passes per image, the scorer's fit and the test split's scoring
time, the test figures and a label-free yardstick beside them.

Usage:
    python benchmarks/tile_overlap.py NAME RUN_DIR [--overlaps 0.5 0.25 0] [--passes each once maps-once]

For every setting the run's scorer is fitted anew exactly as ``sslad train`` fits it (``fit_scorer``) and the test
split is scored as ``sslad train`` scores it (``evaluate_set``, into ``RUN_DIR/PASS-O/``); rows are keyed ``"PASS
OVERLAP"`` (``"each 0.5"``). Overlaps whose tile grid is one already measured at this image size are skipped (at 256
px of 128-px tiles a quarter tile gives the half tile's 3 x 3). The yardstick needs no test label: the run's
synthetic held-out set (its pretext anomalies on the held-out good images, masks from their plans) mapped at that
overlap (pixel AUROC, AUPRO) and each image-score mode's AUROC on it. The overlaps run one after the other in one
process: their times are comparable as ratios on a machine whose load does not change meanwhile. ``once`` makes one
pass over the whole image whatever the overlap (its windows are cut from that pass); ``maps-once`` a pass per tile
for the image scores and one over the whole image for the maps. Records
``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from common import load_run, name_and_run, save_record, trailing

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.models import infer_images
from sslad.models.tiles import network_passes, tile_count, tile_grid
from sslad.scoring import pixel_metrics
from sslad.training import fit_scorer, render_synthetic_holdout

PRETEXT_TYPES = ("good", "cutpaste", "scar")
KEEP = ("image_auroc", "per_type_auroc", "pixel_auroc", "per_type_pixel_auroc", "aupro", "threshold",
        "false_positive_rate", "recall", "image_score_chosen")


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__, options=True)) is None:
        return 2
    name, run_dir = args
    overlaps = [float(o) for o in trailing(argv, "--overlaps", ["0.5", "0.25", "0"])]
    passes = trailing(argv, "--passes", ["each"])
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    size, tile = cfg.data.image_size, cfg.score.tile
    if not 0 < tile < size:
        print(f"{run_dir} is not scored in tiles (score.tile {tile} at {size} px)", file=sys.stderr)
        return 2
    renderer = make_renderer("torch", size, torch.device("cpu"))
    synth = render_synthetic_holdout(holdout, renderer, cfg)
    synth_types = [PRETEXT_TYPES[int(k)] for k in synth.labels]
    rows, grids = {}, []
    for tile_pass, overlap in ((p, o) for p in passes for o in overlaps):
        key = f"{tile_pass} {overlap:g}"
        grid = (tile_pass, tile_grid(size, tile, overlap))
        if grid in grids:
            print(f"{name} {key}: the grid of {list(rows)[grids.index(grid)]}, skipped", flush=True)
            continue
        grids.append(grid)
        c = cfg.override(score={"tile_overlap": overlap, "tile_pass": tile_pass})
        t0 = time.perf_counter()
        scorer = fit_scorer(model, fit, holdout, c, renderer)
        t1 = time.perf_counter()
        metrics = evaluate_set(Detector(model, scorer, size), data.test, Path(run_dir) / f"{tile_pass}-{overlap:g}", {})
        t2 = time.perf_counter()
        out = infer_images(model, synth.images, tile=tile, map_fn=scorer.map_fn, precision=scorer.precision,
                           overlap=overlap, tile_pass=tile_pass)
        pix = pixel_metrics(synth_types, scorer.maps(out.maps, size).numpy(), synth.masks.numpy() > 0)
        rows[key] = {
            "tile_pass": tile_pass, "overlap": overlap, "tiles_per_image": tile_count(size, tile, overlap),
            "network_passes_per_image": network_passes(size, tile, overlap, tile_pass),
            "whole_view": cfg.score.whole_view,
            "fit_seconds": t1 - t0, "test_seconds": t2 - t1,
            "synthetic_pixel_auroc": pix["pixel_auroc"], "synthetic_aupro": pix["aupro"],
            **{k: metrics.get(k) for k in KEEP}, "synthetic_auroc": scorer.synthetic_auroc}
        r = rows[key]
        print(f"{name} {key}: {r['tiles_per_image']} tiles, fit {r['fit_seconds']:.0f} s, test "
              f"{r['test_seconds']:.0f} s; image {100 * r['image_auroc']:.1f} pixel {100 * r['pixel_auroc']:.1f} "
              f"AUPRO {100 * r['aupro']:.1f} FPR {100 * r['false_positive_rate']:.1f} %; synthetic pixel "
              f"{100 * r['synthetic_pixel_auroc']:.1f} AUPRO {100 * r['synthetic_aupro']:.1f}", flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "image_size": size, "tile": tile,
                       "epochs": ckpt["epoch"], "seed": cfg.train.seed,
                       "inference_precision": cfg.score.inference_precision,
                       "command": " ".join(["python", "benchmarks/tile_overlap.py", *argv]),
                       "test_images": len(data.test), "synthetic_images": len(synth.images), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
