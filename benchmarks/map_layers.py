"""Which trunk stages should the patch density's maps be made of? Each ``--map-layers`` choice on one finished run,
judged by the test labels and by two label-free yardsticks.

Usage:
    python benchmarks/map_layers.py NAME RUN_DIR [--layers 2,3 3,4 2,3,4]

For every choice the run's scorer is fitted anew exactly as ``sslad train`` fits it (``fit_scorer``, the run's
``score.map``, ``score.map_layers`` overridden) and maps are made of three sets: the real test split (pixel AUROC,
AUPRO, per type: what a user with masks would see), the run's synthetic held-out set (its pretext anomalies
rendered onto the held-out good images, masks from the plans: ``synthetic``) and *probes* on those held-out good
views: blur, noise and shifted content inside a soft irregular blob, families no plan renders and the network
never trained on (``benchmarks/probe_yardstick.py``; the mask: where the blob is at least half way up). The
yardsticks need no test label: if they rank the choices as the real split does, a user can choose with them.
Records ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from common import load_run, name_and_run, save_record, trailing
from probe_yardstick import FAMILIES, probe

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.scoring import pixel_metrics
from sslad.training import fit_scorer, render_synthetic_holdout

PRETEXT_TYPES = ("good", "cutpaste", "scar")


def yardsticks(holdout, cfg) -> dict[str, tuple[torch.Tensor, list[str], np.ndarray]]:
    """name -> (uint8 images, types, bool masks (N, S, S)): the synthetic held-out set and the probes."""
    size = cfg.data.image_size
    synth = render_synthetic_holdout(holdout, make_renderer("torch", size, torch.device("cpu")), cfg)
    sets = {"synthetic": (synth.images, [PRETEXT_TYPES[int(k)] for k in synth.labels], synth.masks.numpy() > 0)}
    good = synth.images[synth.labels == 0]
    g = torch.Generator().manual_seed(cfg.train.seed + 7)  # probe_yardstick's seed
    made = [(f, *probe(im, f, g)) for i, im in enumerate(good) for f in [FAMILIES[i % len(FAMILIES)]]]
    images = torch.cat([good, torch.stack([m[1] for m in made])])
    masks = np.concatenate([np.zeros((len(good), size, size), bool), torch.stack([m[2] for m in made]).numpy()])
    sets["probes"] = (images, ["good"] * len(good) + [m[0] for m in made], masks)
    return sets


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__, options=True)) is None:
        return 2
    name, run_dir = args
    choices = trailing(argv, "--layers", ["2,3", "3,4", "2,3,4"])
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    size = cfg.data.image_size
    sets = {"real": (data.test.images, list(data.test.types), data.test.masks.numpy() > 0), **yardsticks(holdout, cfg)}
    rows = {}
    for layers in choices:
        t0 = time.perf_counter()
        c = cfg.override(score={"map_layers": layers})
        scorer = fit_scorer(model, fit, holdout, c)
        row = {}
        for key, (images, types, masks) in sets.items():
            out = infer_images(model, images, tile=scorer.tile, map_fn=scorer.map_fn, precision=scorer.precision)
            pix = pixel_metrics(types, scorer.maps(out.maps, size).numpy(), masks)
            row[key] = {k: pix[k] for k in ("pixel_auroc", "aupro", "per_type_pixel_auroc")}
        row["seconds"] = time.perf_counter() - t0
        rows[layers] = row
        print(f"{name} map_layers {layers}: " + "  ".join(
            f"{k} {100 * r['pixel_auroc']:.1f}/{100 * r['aupro']:.1f}" for k, r in row.items() if k != "seconds")
            + f"  ({row['seconds']:.0f} s)", flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "map": cfg.score.map, "epochs": ckpt["epoch"],
                       "seed": cfg.train.seed, "command": " ".join(["python", "benchmarks/map_layers.py", *argv]),
                       "set_sizes": {k: len(v[0]) for k, v in sets.items()}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
