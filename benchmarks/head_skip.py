"""What does leaving the per-pixel head out of the passes that make no map save? One finished run's images embedded
as the scorer's fit embeds them (its tiles and ``--tile-pass``, the ``pooled+peak`` embedding, a patch sample, its
whole view, no map) and its held-out images scored with maps, the per-pixel head run in every pass (what 0.9.2 and
before did) and only where a map is asked for (0.9.3), alternating, ``--repeats`` times, in one process; the
embeddings and maps of both are checked to be identical.

Usage:
    python benchmarks/head_skip.py NAME RUN_DIR [--images 128] [--repeats 3] [--passes each maps-once]

Records ``benchmarks/results/NAME.json``: per tile pass and job (``fit``: the fit images' embedding pass; ``maps``:
the held-out images with maps), the seconds of every repeat with and without the head, and their ratio (the medians').
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from common import load_run, name_and_run, option, save_record, trailing

from sslad.models import PretextNet, infer_images
from sslad.models.embed import PatchSampler
from sslad.models.tiles import map_passes


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__, options=True)) is None:
        return 2
    name, run_dir = args
    n, repeats = int(option(argv, "--images", "128")), int(option(argv, "--repeats", "3"))
    passes = trailing(argv, "--passes", ["each", "maps-once"])
    model, scorer, ckpt, cfg, _, fit, holdout = load_run(run_dir)
    size, tile, overlap = cfg.data.image_size, scorer.tile, scorer.tile_overlap
    images, held = fit.images[:n], holdout.images

    def always_head(x: torch.Tensor, seg: bool = True):  # 0.9.2: the head ran whether a map was wanted or not
        return PretextNet.dense_outputs(model, x, True)

    rows = {}
    for tile_pass in passes:
        common = dict(tile=tile, embed_fn=scorer.embed_fn, whole=scorer.whole_view, precision=scorer.precision,
                      overlap=overlap, tile_pass=tile_pass)
        jobs = {
            "fit": lambda c=common, p=tile_pass: infer_images(
                model, images, maps=False, patch_sink=PatchSampler(len(images), seed=0, stages=scorer.map_layers,
                                                                   tiles=map_passes(size, tile, overlap, p)), **c),
            "maps": lambda c=common: infer_images(model, held, map_fn=scorer.map_fn, **c),
        }
        for job, run in jobs.items():
            times: dict[str, list[float]] = {"head": [], "no_head": []}
            outs = {}
            for _ in range(repeats):
                for mode in ("head", "no_head"):
                    if mode == "head":
                        model.dense_outputs = always_head
                    t0 = time.perf_counter()
                    outs[mode] = run()
                    times[mode].append(time.perf_counter() - t0)
                    model.__dict__.pop("dense_outputs", None)
            same = all(torch.equal(a, b) for a, b in zip(outs["head"], outs["no_head"], strict=True)
                       if a is not None)
            ratio = statistics.median(times["head"]) / statistics.median(times["no_head"])
            rows[f"{tile_pass} {job}"] = {"seconds_head": times["head"], "seconds_no_head": times["no_head"],
                                          "ratio": ratio, "identical_outputs": same}
            print(f"{name} {tile_pass} {job}: head {statistics.median(times['head']):.1f} s, without "
                  f"{statistics.median(times['no_head']):.1f} s, {ratio:.2f}x, identical {same}", flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "image_size": size, "tile": tile,
                       "tile_overlap": overlap, "whole_view": scorer.whole_view, "precision": scorer.precision,
                       "fit_images": len(images), "held_out_images": len(held), "repeats": repeats,
                       "epochs": ckpt["epoch"], "seed": cfg.train.seed,
                       "command": " ".join(["python", "benchmarks/head_skip.py", *argv]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
