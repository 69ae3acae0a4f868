"""Do the trained network's BatchNorm statistics cost it on real images? Re-estimate them on the good fit images.

Usage:
    python benchmarks/bn_recalibrate.py NAME RUN_DIR

Training leaves BatchNorm running statistics averaged over the pretext batches (a third of them synthetic, all
translated); the scorer then sees plain good images. Here every BatchNorm layer of the finished network forgets its
running statistics and re-estimates them (a cumulative average, no gradient, no weight changes) from the fit images
alone, then the scorer is fitted and the test split scored exactly as at the end of ``sslad train`` (like
``refit_scorer.py``). Writes ``benchmarks/results/NAME.json`` with the run's metrics before and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from common import load_run, name_and_run, save_record

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.training import fit_scorer


@torch.no_grad()
def recalibrate(model: torch.nn.Module, images: torch.Tensor, batch: int = 64) -> None:
    """Every BatchNorm's running mean and variance re-estimated on ``images`` (uint8, N x 3 x H x W)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    for i in range(0, len(images), batch):
        model(images[i:i + batch])
    model.eval()


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__)) is None:
        return 2
    name, run_dir = args
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    before = json.loads((Path(run_dir) / "metrics.json").read_text())
    recalibrate(model, fit.images)
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    scorer = fit_scorer(model, fit, holdout, cfg, renderer)
    extra = {"image_score_chosen": scorer.image_score, "synthetic_auroc": scorer.synthetic_auroc,
             "run_dir": str(run_dir), "epochs": ckpt["epoch"], "bn": "re-estimated on the fit images"}
    metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), data.test, Path(run_dir) / "bn-refit", extra)
    keys = ("image_auroc", "pixel_auroc", "aupro", "false_positive_rate")
    save_record(name, {"name": name, "run_dir": str(run_dir), "metrics": metrics,
                       "before": {k: before.get(k) for k in keys}})
    print(f"{name}: image AUROC {before['image_auroc']:.4f} -> {metrics['image_auroc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
