"""Does a yardstick of anomalies the network never trained on rank the image-score modes as the real test does?

Usage:
    python benchmarks/probe_yardstick.py NAME RUN_DIR

The run's own synthetic held-out set (what ``--image-score auto`` judges by) holds pretext anomalies: the
per-pixel head and the classifier were trained on exactly those, so it favours them (README, *The image
score*). Here the held-out good views of that set are altered by *probe* families that no plan renders:
``blur`` (content smoothed inside an irregular soft blob), ``noise`` (grain added inside one) and ``shift``
(content displaced by a few pixels inside one), each at a random opacity. For every image-score mode
(embedding, map, both) of the run's fitted scorer, recorded in ``benchmarks/results/NAME.json``: its AUROC
on the probes (each family and all), on the pretext yardstick, and on the real test split (labels).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.scoring.metrics import auroc
from sslad.synth.probes import FAMILIES, PROBE_SEED_OFFSET, probe
from sslad.training import render_synthetic_holdout


def mode_scores(model, scorer, images: torch.Tensor, size: int) -> dict[str, np.ndarray]:
    out = infer_images(model, images, map_fn=scorer.map_fn, embed_fn=scorer.embed_fn, tile=scorer.tile)
    return scorer.mode_scores(out.embeddings, out.maps, size)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    model.eval()
    size = cfg.data.image_size
    renderer = make_renderer("torch", size, torch.device("cpu"))
    synth = render_synthetic_holdout(holdout, renderer, cfg)
    good = synth.images[synth.labels == 0]
    g = torch.Generator().manual_seed(cfg.train.seed + PROBE_SEED_OFFSET)
    probes = {f: torch.stack([probe(im, f, g)[0] for im in good]) for f in FAMILIES}
    good_s = mode_scores(model, scorer, good, size)
    rows: dict = {}
    for f, imgs in probes.items():
        s = mode_scores(model, scorer, imgs, size)
        rows[f] = {m: auroc(np.r_[np.zeros(len(good)), np.ones(len(imgs))], np.r_[good_s[m], s[m]]) for m in s}
    n = len(good)
    rows["probes"] = {m: float(np.mean([rows[f][m] for f in FAMILIES])) for m in good_s}
    pre = mode_scores(model, scorer, synth.images, size)
    rows["pretext"] = {m: auroc((synth.labels > 0).numpy(), pre[m]) for m in pre}
    test = mode_scores(model, scorer, data.test.images, size)
    bad = np.array([t != "good" for t in data.test.types])
    rows["real"] = {m: auroc(bad, test[m]) for m in test}
    for k, r in rows.items():
        print(f"{k:>8}: " + "  ".join(f"{m} {100 * v:.1f}" for m, v in r.items()))
    pick = {k: max(r, key=r.get) for k, r in rows.items()}
    save_record(name, {"name": name, "run_dir": str(run_dir), "good_views": n, "rows": rows, "best_mode": pick})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
