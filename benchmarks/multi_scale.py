"""One network, its image scores at several decode sizes, joined: does scoring the same run at 256 and 384 px keep
what each size sees (on magnetic_tile: `uneven` at 256, thin cracks at 384)?

Usage:
    python benchmarks/multi_scale.py NAME RUN_DIR SIZE [SIZE ...]

For each size the run's scorer is re-fitted on its own fit images decoded at that side (the run's tiles, its
embedding; the maps left to the head, ``map=seg``, since only image scores are compared), then the held-out good
images and the test split are scored. Joined scores: each size's score standardised on the held-out good images
(mean and standard deviation of the log score: the Gaussian's squared distances are heavy-tailed) and the
standardised scores summed (``zsum``) or their maximum taken (``zmax``); no test label chooses anything. Records
the per-type image AUROC of every size and join, and the false-positive rate at the held-out 99th percentile.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
from common import load_run, save_record

from sslad.detector import Detector
from sslad.scoring.metrics import decision_metrics, image_metrics, quantile_threshold
from sslad.training import fit_scorer


def scores_at(run_dir: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(held-out good scores, test scores, test types) with the run re-fitted at ``size``."""
    model, _, _, cfg, data, fit, holdout = load_run(run_dir, size)
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, map="seg", image_score="embedding"))
    scorer = fit_scorer(model, fit, holdout, cfg)
    det = Detector(model, scorer, size)
    hold = det.score(holdout.images, progress=f"held-out @{size}").scores
    test = det.score(data.test.images, progress=f"test @{size}").scores
    return np.asarray(hold, np.float64), np.asarray(test, np.float64), list(data.test.types)


def standardise(hold: np.ndarray, x: np.ndarray) -> np.ndarray:
    lh, lx = np.log(np.maximum(hold, 1e-6)), np.log(np.maximum(x, 1e-6))
    return (lx - lh.mean()) / max(lh.std(), 1e-9)


def summary(types: list[str], hold: np.ndarray, test: np.ndarray) -> dict:
    metrics = image_metrics(types, test)
    metrics.update(decision_metrics(types, test, quantile_threshold(hold, 0.99)))
    return metrics


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir, sizes = argv[0], argv[1], [int(s) for s in argv[2:]]
    per_size, rows = {}, {}
    for size in sizes:
        hold, test, types = scores_at(run_dir, size)
        per_size[size] = (hold, test)
        rows[str(size)] = summary(types, hold, test)
    zh = np.stack([standardise(h, h) for h, _ in per_size.values()])
    zt = np.stack([standardise(h, t) for h, t in per_size.values()])
    rows["zsum"] = summary(types, zh.sum(0), zt.sum(0))
    rows["zmax"] = summary(types, zh.max(0), zt.max(0))
    for key, m in rows.items():
        per = " ".join(f"{t} {v:.3f}" for t, v in m["per_type_auroc"].items())
        print(f"{key:>5}: image AUROC {m['image_auroc']:.4f}  FPR {m['false_positive_rate']:.3f}  {per}")
    save_record(name, {"name": name, "run_dir": run_dir, "sizes": sizes, "command": " ".join(sys.argv),
                       "rows": rows, "scores": {str(s): {"holdout": h.tolist(), "test": t.tolist()}
                                                for s, (h, t) in per_size.items()}, "test_types": types})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
