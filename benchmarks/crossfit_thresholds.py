"""Can the training images, scored cross-fitted, stand in for held-out images when thresholds are set?

Usage:
    python benchmarks/crossfit_thresholds.py NAME RUN_DIR [RUN_DIR ...] [--folds 5]

A small training set holds out few good images (10 of 60, 20 of 200), and the predictive threshold at 0.99 lies
far above them (docs/results.md, *Predictive thresholds*). The fit images are many more; scored by the run's
own scorer they are in-sample (the density was fitted on them). Cross-fitting removes the density's share of
that bias: the fit images are split into ``--folds`` folds, each fold scored by a scorer fitted (as training
fits one, thresholds and scales from the same held-out images) on the other folds. What it cannot remove is
the network's: the pretext training saw every fit image. The record says how far the cross-fitted scores sit
below the held-out ones (their AUROC against each other: 0.5 when exchangeable, the condition the predictive
rule needs) and what thresholds set on held-out, held-out + cross-fitted and cross-fitted scores keep on
test/good and find among the defects, at 0.99 and 0.95. Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
from common import load_run, save_record

QUANTILES = (0.99, 0.95)


def summary(x: np.ndarray) -> dict:
    return {"n": len(x), "median": float(np.median(x)), "q90": float(np.quantile(x, 0.9)), "max": float(x.max())}


def crossfit(run_dir: str, folds: int) -> dict:
    from sslad.detector import Detector
    from sslad.scoring.metrics import auroc, predictive_threshold
    from sslad.training import fit_scorer

    model, scorer, ckpt, cfg, data, fit, hold = load_run(run_dir)
    size = cfg.data.image_size
    det = Detector(model, scorer, size)
    held = det.score(hold.images, progress="score held-out").scores
    test = det.score(data.test.images, progress="score test").scores
    good, bad = test[data.test.labels == 0], test[data.test.labels == 1]
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, image_score=scorer.image_score,
                                                             map_layers=",".join(map(str, scorer.map_layers))))
    order = np.random.default_rng(0).permutation(len(fit))
    crossed = np.empty(len(fit))
    for j in range(folds):
        out, rest = order[j::folds], np.setdiff1d(order, order[j::folds])
        fold_det = Detector(model, fit_scorer(model, fit.subset(rest), hold, cfg), size)
        crossed[out] = fold_det.score(fit.subset(out).images, progress=f"fold {j + 1}/{folds}").scores

    def vs_held(x: np.ndarray) -> float:  # 0.5: exchangeable with the held-out scores
        return auroc(np.r_[np.zeros(len(x)), np.ones(len(held))], np.r_[x, held])

    rec = {"run": run_dir, "folds": folds, "scores": {"held_out": summary(held), "crossfit": summary(crossed),
                                                      "test_good": summary(good)},
           "auroc_held_out_over_crossfit": vs_held(crossed), "auroc_held_out_over_test_good": vs_held(good)}
    for q in QUANTILES:
        for name, cal in (("held_out", held), ("held_out+crossfit", np.r_[held, crossed]), ("crossfit", crossed)):
            t = predictive_threshold(cal, q)
            rec[f"q{q}:{name}"] = {"threshold": float(t), "false_positive_rate": float(100 * (good > t).mean()),
                                   "recall": float(100 * (bad > t).mean())}
    print(run_dir, {k: v for k, v in rec.items() if k.startswith("auroc") or k.startswith("q")})
    return rec


def main(argv: list[str]) -> int:
    args, folds = list(argv), 5
    if "--folds" in args:
        i = args.index("--folds")
        folds, args = int(args[i + 1]), args[:i] + args[i + 2:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    save_record(args[0], {"benchmark": "crossfit_thresholds", "folds": folds,
                          "runs": [crossfit(r, folds) for r in args[1:]]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
