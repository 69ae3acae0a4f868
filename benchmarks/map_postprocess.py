"""Where a run's pixel AUROC is lost, and what two post-processings of its maps would move (an analysis: neither is
in the product). Per run: the share of the test split's defective pixels each defect type holds, the pixel AUROC per
type and the AUPRO of the run's maps as scored; then the maps smoothed further (a Gaussian of +S px at the model's
side), and the maps offset by the image score (map + L x the maps' held-out spread x the image's standardised log
score, both statistics from the run's held-out good images: no test label chooses them).

Usage: python benchmarks/map_postprocess.py NAME RUN_DIR [RUN_DIR ...]
Writes benchmarks/results/NAME.json (per run and variant: pixel AUROC, per type, AUPRO; machine info).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import load_run, save_record

from sslad.detector import Detector
from sslad.scoring.maps import gaussian_blur
from sslad.scoring.metrics import pixel_metrics

EXTRA_SIGMAS = (4, 8, 16)
OFFSETS = (0.1, 0.25, 0.5)


def blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(maps[:, None], sigma)[:, 0]


def row(types, maps: torch.Tensor, masks: np.ndarray) -> dict:
    m = pixel_metrics(types, maps.numpy(), masks)
    return {"pixel_auroc": round(m["pixel_auroc"], 5), "aupro": round(m["aupro"], 5),
            "per_type_pixel_auroc": {k: round(v, 5) for k, v in sorted(m["per_type_pixel_auroc"].items())}}


def analyse(run_dir: str) -> dict:
    _, _, _, _, data, _, holdout = load_run(run_dir)
    det = Detector.load(run_dir, "cpu")
    test, held = det.score(data.test.images, progress="score test"), det.score(holdout.images, progress="held-out")
    masks, types = (data.test.masks.numpy() > 0), data.test.types
    kinds = np.array(types)
    share = {t: round(float(masks[kinds == t].sum() / masks.sum()), 4) for t in sorted(set(types)) if t != "good"}
    log_held = np.log(np.maximum(held.scores, 1e-12))
    z = (np.log(np.maximum(test.scores, 1e-12)) - log_held.mean()) / log_held.std()
    spread = float(held.maps.std())
    rows = {"as scored": row(types, test.maps, masks)}
    rows.update({f"smoothed +{s} px": row(types, blur(test.maps, s), masks) for s in EXTRA_SIGMAS})
    zt = torch.tensor(z, dtype=torch.float32)[:, None, None]
    rows.update({f"offset {lam}": row(types, test.maps + lam * spread * zt, masks) for lam in OFFSETS})
    for k, v in rows.items():
        print(f"{run_dir} {k:16s} pixel {100 * v['pixel_auroc']:.1f} AUPRO {100 * v['aupro']:.1f} " +
              " ".join(f"{t} {100 * a:.1f}" for t, a in v["per_type_pixel_auroc"].items()), flush=True)
    return {"run": run_dir, "defective_pixel_share": share, "variants": rows}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, runs = argv[0], argv[1:]
    save_record(name, {"name": name, "command": "python benchmarks/map_postprocess.py " + " ".join(argv),
                       "runs": [analyse(r) for r in runs]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
