"""Where a run's pixel AUROC is lost, and what three post-processings of its maps would move (an analysis: none is
in the product). Per run: the share of the test split's defective pixels each defect type holds, the pixel AUROC per
type and the AUPRO of the run's maps as scored; then the maps smoothed further (a Gaussian of +S px at the model's
side), the maps offset by the image score (map + L x the maps' held-out spread x the image's standardised log
score, both statistics from the run's held-out good images: no test label chooses them), and the maps centred on
their own level (map - C x the map's own median: what is left is where in the image, not whether). Each variant is
also judged without labels, on the run's synthetic held-out set (``synthetic``: its pixel AUROC).

Usage: python benchmarks/map_postprocess.py NAME RUN_DIR [RUN_DIR ...]
Writes benchmarks/results/NAME.json (per run and variant: pixel AUROC, per type, AUPRO; machine info).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import load_run, per_run_benchmark, pixel_row

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.scoring.maps import gaussian_blur
from sslad.scoring.metrics import auroc
from sslad.training import render_synthetic_holdout

EXTRA_SIGMAS = (4, 8, 16)
OFFSETS = (0.1, 0.25, 0.5, 1.0, 2.0)
CENTRES = (0.5, 1.0)


def blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(maps[:, None], sigma)[:, 0]


def variants(scored, log_held: np.ndarray, spread: float) -> dict[str, torch.Tensor]:
    """Each post-processing of ``scored``'s maps (a Detector's result), its statistics from the held-out images."""
    z = (np.log(np.maximum(scored.scores, 1e-12)) - log_held.mean()) / log_held.std()
    zt = torch.tensor(z, dtype=torch.float32)[:, None, None]
    level = scored.maps.flatten(1).median(1).values[:, None, None]
    out = {"as scored": scored.maps}
    out.update({f"smoothed +{s} px": blur(scored.maps, s) for s in EXTRA_SIGMAS})
    out.update({f"offset {lam}": scored.maps + lam * spread * zt for lam in OFFSETS})
    out.update({f"centred {c}": scored.maps - c * level for c in CENTRES})
    return out


def analyse(run_dir: str) -> dict:
    _, _, _, cfg, data, _, holdout = load_run(run_dir)
    det = Detector.load(run_dir, "cpu")
    test, held = det.score(data.test.images, progress="score test"), det.score(holdout.images, progress="held-out")
    synth = render_synthetic_holdout(holdout, make_renderer("torch", cfg.data.image_size, "cpu"), cfg)
    synthetic = det.score(synth.images, progress="synthetic held-out")
    masks, types = (data.test.masks.numpy() > 0), data.test.types
    kinds = np.array(types)
    share = {t: round(float(masks[kinds == t].sum() / masks.sum()), 4) for t in sorted(set(types)) if t != "good"}
    log_held = np.log(np.maximum(held.scores, 1e-12))
    spread = float(held.maps.std())
    truth = synth.masks.numpy().ravel() > 0
    made = variants(synthetic, log_held, spread)
    rows = {k: {**pixel_row(types, v, masks), "synthetic": round(auroc(truth, made[k].numpy().ravel()), 5)}
            for k, v in variants(test, log_held, spread).items()}
    for k, v in rows.items():
        print(f"{run_dir} {k:16s} pixel {100 * v['pixel_auroc']:.1f} AUPRO {100 * v['aupro']:.1f} " +
              " ".join(f"{t} {100 * a:.1f}" for t, a in v["per_type_pixel_auroc"].items()) +
              f" synthetic {100 * v['synthetic']:.1f}", flush=True)
    return {"run": run_dir, "defective_pixel_share": share, "variants": rows}


def main(argv: list[str]) -> int:
    return per_run_benchmark(argv, __doc__, "map_postprocess.py", analyse)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
