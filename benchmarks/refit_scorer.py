"""Re-fit a finished run's scorer with this code (the network untouched) and evaluate it: what the run would
report had it been trained with this version's scoring (the auto image-score rule, the thresholds).

Usage:
    python benchmarks/refit_scorer.py NAME RUN_DIR [score.KEY=VALUE ...]   (e.g. score.tile=128)

Runs exactly the end of ``sslad train`` (``fit_scorer`` -> ``evaluate_set``) on the run's saved network, into
``RUN_DIR/refit/`` (``RUN_DIR/refit-KEY-VALUE`` with overrides), and records its ``metrics.json`` in
``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.config import RunConfig
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.training import fit_scorer, scorer_choices


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all(a.startswith("score.") and "=" in a for a in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir, overrides = argv[0], argv[1], dict(a[len("score."):].split("=", 1) for a in argv[2:])
    model, old, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    raw = cfg.to_dict()  # the overrides parsed as the config file's values are (``map_weight=auto``, ``tile=128``)
    cfg = RunConfig.from_dict({**raw, "score": {**raw["score"], **overrides}}).validate()
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    scorer = fit_scorer(model, fit, holdout, cfg, renderer)
    extra = {**scorer_choices(scorer), "image_score_chosen_before": old.image_score, "run_dir": str(run_dir),
             "epochs": ckpt["epoch"], "score_overrides": overrides}
    folder = "-".join(["refit", *(f"{k}-{v}" for k, v in overrides.items())])
    metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), data.test, Path(run_dir) / folder, extra)
    save_record(name, {"name": name, "run_dir": str(run_dir), "score_overrides": overrides, "metrics": metrics})
    print(f"{name}: {scorer.image_score} image AUROC {metrics['image_auroc']:.4f} (was {old.image_score})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
