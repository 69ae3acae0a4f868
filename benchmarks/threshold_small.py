"""How the stored threshold holds when few good images are held out: false-positive rate on test/good.

Usage:
    python benchmarks/threshold_small.py NAME RUN_DIR [--sizes 10,20,40] [--draws 200]

For each size n, ``--draws`` random subsets of n held-out images stand in for a small training set's
held-out split; each sets a threshold (the run's quantile) from (a) their scores alone, or (b) their
scores and those of their augmented good views (what sslad does below ``score.views_below`` images).
Reported: the mean and 90th percentile of the false-positive rate on the test split's good images,
and the mean recall on its defective ones. Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch
from common import save_record

from sslad.backends import make_renderer
from sslad.config import RunConfig
from sslad.data import load_dataset, split_train
from sslad.detector import Detector
from sslad.scoring.metrics import quantile_threshold
from sslad.synth.generator import PretextGenerator
from sslad.training import SYNTHETIC_HOLDOUT_K


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[:2]
    opts = dict(zip(argv[2::2], argv[3::2], strict=False))
    sizes = [int(v) for v in opts.get("--sizes", "10,20,40").split(",")]
    draws = int(opts.get("--draws", "200"))
    det = Detector.load(run_dir, "cpu")
    cfg = RunConfig.from_dict(det.info["config"])
    data = load_dataset(cfg.data.path, cfg.data.category, det.image_size)
    _, hold = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    gen = PretextGenerator(hold.images, make_renderer("torch", det.image_size, torch.device("cpu")),
                           dataclasses.replace(cfg.synth, variants=8), seed=cfg.train.seed)
    synth = gen.regenerate(SYNTHETIC_HOLDOUT_K)
    good_rows = synth.labels == 0
    views = det.score(synth.images[good_rows]).scores
    view_of = gen.plan(SYNTHETIC_HOLDOUT_K).index[good_rows.cpu()].numpy()
    real = det.score(hold.images).scores
    test = det.score(data.test.images).scores
    good = np.array([t == "good" for t in data.test.types])
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes + [len(real)]:
        res = {"alone": [], "with_views": []}
        for _ in range(draws if n < len(real) else 1):
            sel = rng.choice(len(real), n, replace=False)
            with_views = np.concatenate([real[sel], views[np.isin(view_of, sel)]])
            for rule, s in (("alone", real[sel]), ("with_views", with_views)):
                t = quantile_threshold(s, det.scorer.quantile)
                res[rule].append(((test[good] > t).mean(), (test[~good] > t).mean()))
        for rule, v in res.items():
            fpr = [a for a, _ in v]
            rows.append({"held_out": n, "rule": rule, "fpr_mean": float(np.mean(fpr)),
                         "fpr_p90": float(np.percentile(fpr, 90)), "recall_mean": float(np.mean([b for _, b in v]))})
            print(f"n={n:<4} {rule:<11} FPR {100 * rows[-1]['fpr_mean']:5.1f} % (90th pct "
                  f"{100 * rows[-1]['fpr_p90']:5.1f} %), recall {100 * rows[-1]['recall_mean']:5.1f} %")
    record = {"name": name, "run_dir": str(run_dir), "image_score": det.scorer.image_score, "draws": draws,
              "quantile": det.scorer.quantile, "rows": rows}
    save_record(name, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
