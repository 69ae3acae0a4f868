"""What do the passes that want no embedding save under ``--tile-pass maps-once``? ``--map-layers auto``'s choice
(:func:`~sslad.training.choose_map_layers`: a patch sample of the fit images for three stage sets, each set's
density scaled on the held-out images' maps, and the synthetic held-out set's maps) made on one finished run as
0.9.3 made it (every pass with the tile passes, whose embeddings nobody reads: ``infer_images`` forced to
``embed=True``) and as 0.9.4 makes it (the whole-image pass alone), alternating, ``--repeats`` times, in one
process; the choice and every stage set's synthetic pixel AUROC are checked to be the same.

Usage:
    python benchmarks/maps_once_auto.py NAME RUN_DIR [--images 128] [--repeats 2]

Records ``benchmarks/results/NAME.json``: the seconds of every repeat both ways, their medians' ratio, the choices.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from common import load_run, name_and_run, option, save_record

import sslad.models.embed as embed_mod
import sslad.training as training
from sslad.backends import make_renderer


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__, options=True)) is None:
        return 2
    name, run_dir = args
    n, repeats = int(option(argv, "--images", "128")), int(option(argv, "--repeats", "2"))
    model, scorer, ckpt, cfg, _, fit, holdout = load_run(run_dir)
    cfg = cfg.override(score={"tile_pass": "maps-once", "map_layers": "auto"})
    fit = fit.subset(list(range(min(n, len(fit)))))
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    synth = training.render_synthetic_holdout(holdout, renderer, cfg)
    precision = scorer.precision
    plain = embed_mod.infer_images

    def with_tile_passes(*a, **kw):  # 0.9.3: every pass ran maps-once's tile passes
        kw["embed"] = True
        return plain(*a, **kw)

    times: dict[str, list[float]] = {"tile passes (0.9.3)": [], "whole pass alone (0.9.4)": []}
    chosen = {}
    for _ in range(repeats):
        for mode in times:
            forced = mode.startswith("tile")
            embed_mod.infer_images = training.infer_images = with_tile_passes if forced else plain
            t0 = time.perf_counter()
            chosen[mode] = training.choose_map_layers(model, fit, holdout, cfg, synth, precision)
            times[mode].append(time.perf_counter() - t0)
            print(f"{mode}: {times[mode][-1]:.1f} s, {chosen[mode]}", flush=True)
    embed_mod.infer_images = training.infer_images = plain
    med = {k: statistics.median(v) for k, v in times.items()}
    a, b = med.values()
    same = len({repr(c) for c in chosen.values()}) == 1
    print(f"{name}: {a:.1f} s -> {b:.1f} s ({a / b:.2f}x), same choice and values: {same}")
    save_record(name, {"name": name, "run_dir": str(run_dir), "image_size": cfg.data.image_size,
                       "tile": cfg.score.tile, "tile_overlap": cfg.score.tile_overlap, "precision": precision,
                       "fit_images": len(fit), "held_out_images": len(holdout), "synthetic_images": len(synth.images),
                       "repeats": repeats, "epochs": ckpt["epoch"], "seed": cfg.train.seed, "seconds": times,
                       "median_s": med, "ratio": a / b, "chosen": {k: list(v) for k, v in chosen.items()},
                       "identical": same,
                       "command": " ".join(["python", "benchmarks/maps_once_auto.py", *argv])})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
