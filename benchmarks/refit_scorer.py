"""Re-fit a finished run's scorer with this code (the network untouched) and evaluate it: what the run would
report had it been trained with this version's scoring (the auto image-score rule, the thresholds).

Usage:
    python benchmarks/refit_scorer.py NAME RUN_DIR

Runs exactly the end of ``sslad train`` (``fit_scorer`` -> ``evaluate_set``) on the run's saved network, into
``RUN_DIR/refit/``, and records its ``metrics.json`` in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.training import fit_scorer


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv
    model, old, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    scorer = fit_scorer(model, fit, holdout, cfg, renderer)
    extra = {"image_score_chosen": scorer.image_score, "synthetic_auroc": scorer.synthetic_auroc,
             "image_score_chosen_before": old.image_score, "run_dir": str(run_dir), "epochs": ckpt["epoch"]}
    metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), data.test, Path(run_dir) / "refit", extra)
    save_record(name, {"name": name, "run_dir": str(run_dir), "metrics": metrics})
    print(f"{name}: {scorer.image_score} image AUROC {metrics['image_auroc']:.4f} (was {old.image_score})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
