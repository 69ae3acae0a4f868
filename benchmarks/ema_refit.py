"""Score a finished run's weight averages (``RUN_DIR/ema_<decay>.pt``) exactly as ``sslad train`` ends
(fit_scorer -> evaluate_set), one record per decay. The product keeps no averages: the files come from a training
with the experimental patch stored in the ``training_patch`` of
``results/magnetic_tile_cpu_tiles_long_segw16_blob10log_ema_epyc_s0_session54.json`` (docs/results.md, *Weight
averaging*).

Usage: python benchmarks/ema_refit.py NAME RUN_DIR DECAY [DECAY ...]   -> benchmarks/results/NAME_ema<DECAY>.json
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
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[0], Path(argv[1])
    model, _, _, cfg, data, fit, holdout = load_run(str(run_dir))
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    for decay in argv[2:]:
        model.load_state_dict(torch.load(run_dir / f"ema_{decay}.pt", weights_only=True))
        scorer = fit_scorer(model, fit, holdout, cfg, renderer)
        extra = {"image_score_chosen": scorer.image_score, "synthetic_auroc": scorer.synthetic_auroc,
                 "run_dir": str(run_dir), "ema_decay": float(decay)}
        metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), data.test, run_dir / f"ema-{decay}",
                               extra)
        save_record(f"{name}_ema{decay}", {"name": f"{name}_ema{decay}", "run_dir": str(run_dir),
                                           "ema_decay": float(decay), "metrics": metrics})
        print(f"ema {decay}: image {metrics['image_auroc']:.4f} pixel {metrics.get('pixel_auroc')} "
              f"aupro {metrics.get('aupro')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
