"""Re-score a finished run with every image-score mode and both threshold sources (no retraining).

Usage:
    python benchmarks/rescore.py NAME RUN_DIR

The network and its outputs stay fixed; only the scorer changes: ``image_score`` in
(embedding, map, both), and thresholds from the held-out good images (sslad's default) or from
the images the density was fitted on (the earlier behaviour, biased low). Writes
``benchmarks/results/NAME.json`` with image AUROC, per-type AUROC, false-positive rate and recall
for each combination, plus machine info.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from common import load_run, name_and_run, save_record

from sslad.config import IMAGE_SCORES
from sslad.models import infer_images
from sslad.scoring import Scorer, decision_metrics, image_metrics


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__)) is None:
        return 2
    name, run_dir = args
    model, _, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    sets = {"fit": fit, "holdout": holdout, "test": data.test}
    outs = {k: infer_images(model, s.images, progress=f"embed {k}") for k, s in sets.items()}
    rows = []
    size = cfg.data.image_size
    fixed = [m for m in IMAGE_SCORES if m != "auto"]
    for mode in fixed if model.cfg.seg_head else ("embedding",):
        for source in ("holdout", "fit"):
            sc = Scorer(replace(cfg.score, image_score=mode))
            hold = (outs["holdout"].embeddings, outs["holdout"].maps) if source == "holdout" else None
            sc.fit(outs["fit"].embeddings, outs["fit"].maps, size, holdout=hold)
            scores, _ = sc.score(outs["test"].embeddings, outs["test"].maps, size)
            m = image_metrics(data.test.types, scores)
            d = decision_metrics(data.test.types, scores, sc.threshold)
            rows.append({"image_score": mode, "threshold_from": source, "image_auroc": m["image_auroc"],
                         "per_type_auroc": m["per_type_auroc"], "threshold": sc.threshold,
                         "false_positive_rate": d["false_positive_rate"], "recall": d["recall"]})
            print(f"{mode:<10} {source:<8} AUROC {m['image_auroc']:.4f}  FPR {d['false_positive_rate']:.3f}  "
                  f"recall {d['recall']:.3f}")
    record = {"name": name, "run_dir": str(run_dir), "config": ckpt["config"], "rows": rows}
    save_record(name, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
