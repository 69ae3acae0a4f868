"""How far from its first weights should the trained network sit? Score weight interpolations between the two.

Usage:
    python benchmarks/interpolate_init.py NAME RUN_DIR ALPHA [ALPHA ...]

For each ALPHA the network's every parameter and BatchNorm statistic becomes ``first + ALPHA * (trained - first)``,
where ``first`` is the run's own first weights (``initial_network``: the same seed, ``--weights`` included): 0 is
the untrained network of ``--baseline``/``--epochs 0``, 1 the trained one. Each is scored exactly as at the end of
``sslad train`` (``fit_scorer`` -> ``evaluate_set``, into ``RUN_DIR/interp-ALPHA/``), the synthetic yardstick
(``synthetic_auroc``) beside the real AUROC, so that one can see whether a label-free signal follows the real one
along the line. Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.training import fit_scorer, initial_network


def interpolate(first: dict, trained: dict, alpha: float) -> dict:
    """``first + alpha * (trained - first)`` for every floating tensor; integer buffers (counters) from ``trained``."""
    return {k: first[k] + alpha * (v - first[k]) if v.is_floating_point() else v for k, v in trained.items()}


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir, alphas = argv[0], argv[1], [float(a) for a in argv[2:]]
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    first = initial_network(cfg, cfg.train.seed)[0].state_dict()
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    rows = {}
    for alpha in alphas:
        model.load_state_dict(interpolate(first, trained, alpha))
        model.eval()
        scorer = fit_scorer(model, fit, holdout, cfg, renderer)
        extra = {"image_score_chosen": scorer.image_score, "synthetic_auroc": scorer.synthetic_auroc, "alpha": alpha}
        metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), data.test,
                               Path(run_dir) / f"interp-{alpha:g}", extra)
        rows[f"{alpha:g}"] = metrics
        print(f"alpha {alpha:g}: image AUROC {metrics['image_auroc']:.4f}, synthetic {scorer.synthetic_auroc}",
              flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "alphas": alphas, "by_alpha": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
