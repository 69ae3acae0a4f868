"""Do a run's maps see defects at the border of the image? Pixel AUROC of the defect pixels near a side against
those away from every side, for each map source; the good images' maps by distance to the side.

Usage:
    python benchmarks/border_maps.py NAME RUN_DIR [--maps seg density both]

For each source the run's scorer is fitted anew as ``sslad train`` fits it (``score.map`` overridden), its maps
made of the real test split, and two AUROCs computed against every pixel of the good test images: the defect
pixels within S/8 of a side (``outer``) and the rest (``inner``). A head that learnt that anomalies never sit at
a border ranks its outer defect pixels much lower. ``good_profile``: the good maps' mean in bands of distance to
the nearest side, less their overall mean, in their standard deviations (a source whose good maps rise towards
the sides makes false alarms there). These need the test masks (a diagnosis, not a choice); ``synthetic``
needs none: the pixel AUROC on the run's synthetic held-out set rendered with ``--border`` 0 and 0.5 (whatever
the run trained with), the label-free way to compare networks trained with and without it. Records
``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import numpy as np
from border_coverage import bands, side_distance
from common import fitted_maps, map_benchmark, save_record, test_masks, yardstick_auroc, yardsticks

from sslad.scoring import pixel_metrics
from sslad.scoring.metrics import auroc

YARDSTICK_BORDERS = (0.0, 0.5)


def main(argv: list[str]) -> int:
    if (args := map_benchmark(argv, __doc__)) is None:
        return 2
    name, run_dir, (model, _, ckpt, cfg, data, fit, holdout), sources = args
    size = cfg.data.image_size
    types, masks = test_masks(data, size)
    edge = side_distance(size).numpy()
    outer = edge < size // 8
    good = types == "good"
    rendered = yardsticks(holdout, cfg, "border", YARDSTICK_BORDERS)
    rows = {}
    for source in sources:
        scorer, maps = fitted_maps(model, fit, holdout, cfg, source, data.test.images)
        neg = maps[good].ravel()
        row = {"pixel_auroc": pixel_metrics(list(types), maps, masks)["pixel_auroc"]}
        for band, sel in (("outer", outer), ("inner", ~outer)):
            pos = maps[~good][masks[~good] & sel[None]]
            row[band] = {"auroc": auroc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]),
                         "defect_pixels": len(pos)}
        g = maps[good]
        row["good_profile"] = {k: float((g[:, (edge >= lo) & (edge < hi)].mean() - g.mean()) / g.std())
                               for k, lo, hi in bands(size)}
        row["synthetic"] = {str(b): yardstick_auroc(model, scorer, synth, size) for b, synth in rendered.items()}
        rows[source] = row
        print(f"{name} {source}: pixel AUROC {100 * row['pixel_auroc']:.1f}; defect pixels within {size // 8} px of "
              f"a side {100 * row['outer']['auroc']:.1f}, inside {100 * row['inner']['auroc']:.1f}; good maps by "
              "distance " + " ".join(f"{v:+.2f}" for v in row["good_profile"].values()) + "; synthetic held-out "
              + " ".join(f"(border {b}) {100 * v:.1f}" for b, v in row["synthetic"].items()), flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "seed": cfg.train.seed, "border": cfg.synth.border,
                       "command": " ".join(["python", "benchmarks/border_maps.py", *argv]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
