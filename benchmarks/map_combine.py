"""The per-pixel head's map and the patch density's, alone and averaged, on a finished run's test split.

Usage:
    python benchmarks/map_combine.py NAME RUN_DIR

Each map source gets its scorer fitted exactly as ``sslad train`` fits it (``fit_scorer`` with ``score.map``
seg or density); each map is put on its own held-out scale, ``(m - lo) / (hi - lo)`` with the scorer's
``map_range`` (lo: the held-out images' median pixel, hi: twice the 99 % map threshold's distance above it,
so no test label is used), and the two scaled maps are averaged. Pixel AUROC, AUPRO and per-type pixel
AUROC of the three in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import torch
from common import load_run, name_and_run, save_record

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.scoring import pixel_metrics
from sslad.training import fit_scorer


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__)) is None:
        return 2
    name, run_dir = args
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    size = cfg.data.image_size
    renderer = make_renderer("torch", size, torch.device("cpu"))
    scaled, rows = {}, {}
    for source in ("seg", "density"):
        c = cfg.override(score={"map": source})
        scorer = fit_scorer(model, fit, holdout, c, renderer)
        out = infer_images(model, data.test.images, tile=scorer.tile, map_fn=scorer.map_fn)
        maps = scorer.maps(out.maps, size)
        lo, hi = scorer.map_range
        scaled[source] = (maps - lo) / max(hi - lo, 1e-12)
    scaled["mean"] = (scaled["seg"] + scaled["density"]) / 2
    masks = data.test.masks.numpy()
    for k, m in scaled.items():
        pix = pixel_metrics(data.test.types, m.numpy(), masks)
        rows[k] = {"pixel_auroc": pix["pixel_auroc"], "aupro": pix["aupro"],
                   "per_type_pixel_auroc": pix["per_type_pixel_auroc"]}
        print(f"{name} {k}: pixel AUROC {pix['pixel_auroc']:.4f}, AUPRO {pix['aupro']:.4f}")
    save_record(name, {"name": name, "run_dir": str(run_dir), "epochs": ckpt["epoch"], "maps": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
