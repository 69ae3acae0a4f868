"""Which trunk layers should the image embedding pool? Measured on a finished run, with and without test labels.

Usage:
    python benchmarks/embed_layers.py NAME RUN_DIR [--untrained] [--image-size S]

The run's trunk (or, with ``--untrained``, the same architecture freshly initialised with the run's seed)
pools every layer's map (global average; ``max`` rows: global max) of the fit, held-out and test images.
Each combination of layers is one embedding: every layer's pooled vector L2-normalised, concatenated, and
scored by the density sslad uses (Ledoit-Wolf Gaussian, Mahalanobis distance). Reported per combination:
the image AUROC on the test split (labels) and on pretext anomalies rendered onto the held-out good images
with the run's own synthetic held-out seed (no labels: what ``--image-score auto`` judges by), in
``benchmarks/results/NAME.json``. With ``--image-size S`` every image (and the synthetic set) is decoded at
``S`` instead of the run's side: the fully convolutional trunk scored at a finer scale than it was trained at.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.models import PretextNet
from sslad.scoring.density import GaussianDensity
from sslad.scoring.metrics import auroc, image_metrics
from sslad.training import render_synthetic_holdout

#: Layer k average-pooled, -k max-pooled; "pd": the global maximum of the patch descriptors (layer2 + layer3 at
#: layer2's grid, 3x3-averaged: what the patch density scores), "pd3": of their layer3 channels; "pdtop": the mean
#: of each channel's largest 2 % of locations (at least 2), "pdstd": each channel's standard deviation over the
#: locations.
COMBOS = {"l4": [4], "l3": [3], "l34": [3, 4], "l234": [2, 3, 4], "l1234": [1, 2, 3, 4],
          "l3max": [-3], "l4+l3max": [4, -3], "l34max": [-3, -4], "l4+pdmax": [4, "pd"], "l4+pd3max": [4, "pd3"],
          "l4+pdtop": [4, "pdtop"], "l4+pdstd": [4, "pdstd"], "l4+pdmax+pdstd": [4, "pd", "pdstd"]}


@torch.no_grad()
def pooled(model: PretextNet, images: torch.Tensor, batch: int = 64) -> dict:
    """{k: (N, C_k)} per layer k of 1..4 (average-pooled), -k (max-pooled), "pd", "pd3", "pdtop" and "pdstd",
    float32."""
    out: dict = {}
    for i in range(0, len(images), batch):
        _, feats = model.features(images[i:i + batch])
        for k in range(1, 5):
            out.setdefault(k, []).append(feats[k].float().mean((2, 3)))
            out.setdefault(-k, []).append(feats[k].float().amax((2, 3)))
        dense = model.dense_outputs(images[i:i + batch])[2].float().flatten(2)
        pd = dense.amax(2)
        out.setdefault("pd", []).append(pd)
        out.setdefault("pd3", []).append(pd[:, feats[2].shape[1]:])
        top = max(2, round(0.02 * dense.shape[2]))
        out.setdefault("pdtop", []).append(dense.topk(top, dim=2).values.mean(2))
        out.setdefault("pdstd", []).append(dense.std(2))
    return {k: torch.cat(v) for k, v in out.items()}


def combo(p: dict[int, torch.Tensor], layers: list[int]) -> torch.Tensor:
    return torch.cat([F.normalize(p[k].double(), dim=1) for k in layers], 1) / math.sqrt(len(layers))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[0], argv[1]
    size = int(argv[argv.index("--image-size") + 1]) if "--image-size" in argv else None
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir, size)
    if "--untrained" in argv:
        torch.manual_seed(cfg.train.seed)
        model = PretextNet(model.cfg)
    model.eval()
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    synth = render_synthetic_holdout(holdout, renderer, cfg)  # the run's own synthetic held-out set
    anomalous = (synth.labels > 0).cpu().numpy()
    sets = {k: pooled(model, v) for k, v in (("fit", fit.images), ("test", data.test.images),
                                              ("synthetic", synth.images))}
    rows = {}
    for key, layers in COMBOS.items():
        dens = GaussianDensity().fit(combo(sets["fit"], layers))
        real = image_metrics(data.test.types, dens.score(combo(sets["test"], layers)).numpy())
        syn = auroc(anomalous, dens.score(combo(sets["synthetic"], layers)).numpy())
        rows[key] = {"layers": layers, "image_auroc": real["image_auroc"], "synthetic_auroc": syn,
                     "per_type_auroc": real["per_type_auroc"]}
        print(f"{key:>10}: real {100 * real['image_auroc']:.1f}  synthetic {100 * syn:.1f}  "
              + " ".join(f"{t} {100 * v:.1f}" for t, v in real["per_type_auroc"].items()))
    best_syn = max(rows, key=lambda k: rows[k]["synthetic_auroc"])
    save_record(name, {"name": name, "run_dir": str(run_dir), "untrained": "--untrained" in argv,
                       "image_size": cfg.data.image_size,
                       "rows": rows, "synthetic_pick": best_syn,
                       "real_rank": sorted(rows, key=lambda k: -rows[k]["image_auroc"]),
                       "synthetic_rank": sorted(rows, key=lambda k: -rows[k]["synthetic_auroc"]),
                       "anomalous_share": float(np.mean(anomalous))})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
