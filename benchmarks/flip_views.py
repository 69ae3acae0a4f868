"""Do flipped views help the densities? Fit on the fit images' flips, and/or average a test image's scores over
its flips (test-time augmentation), on a finished run's network (whole images, not tiles).

Usage:
    python benchmarks/flip_views.py NAME RUN_DIR

Views: the image, flipped left-right, top-bottom, both (a 180-degree turn). For the image embedding
(``pooled+peak``, the run's Gaussian density) and the patch Gaussian's maps (flipped back before
averaging): fit on the originals or on all four views, score the original or the mean over the four views.
Image AUROC (and pixel AUROC / AUPRO of the patch density's map where the test set has masks) per variant,
in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import torch
from common import load_run, save_record
from patch_knn import dense

from sslad.models import PretextNet
from sslad.scoring import image_metrics, pixel_metrics, to_image_maps
from sslad.scoring.density import GaussianDensity, PatchGaussian

FLIPS = ((), (3,), (2,), (2, 3))


@torch.no_grad()
def views(model: PretextNet, images: torch.Tensor):
    """Per flip: (embeddings (N, D), patch descriptors (N, C, h, w) flipped back)."""
    out = []
    for dims in FLIPS:
        patches, _, emb = dense(model, images.flip(dims) if dims else images)
        out.append((emb, patches.flip(dims) if dims else patches))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[0], argv[1]
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    model = model.eval()
    size = cfg.data.image_size
    fv, tv = views(model, fit.images), views(model, data.test.images)
    masks = data.test.masks.numpy() if data.test.masks is not None else None
    rows = {}
    g = torch.Generator().manual_seed(0)
    for fit_name, fit_views in (("originals", fv[:1]), ("flips", fv)):
        dens = GaussianDensity().fit(torch.cat([e for e, _ in fit_views]))
        x = torch.cat([p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) for _, p in fit_views])
        x = x[torch.randperm(len(x), generator=g)[:200_000]] if len(x) > 200_000 else x
        patches = PatchGaussian().fit(x.double())
        for test_name, test_views in (("original", tv[:1]), ("flip-mean", tv)):
            s = torch.stack([dens.score(e) for e, _ in test_views]).mean(0).numpy()
            row = {"image_auroc": image_metrics(data.test.types, s)["image_auroc"]}
            if masks is not None:
                m = torch.stack([patches.maps(p) for _, p in test_views]).mean(0)
                pix = pixel_metrics(data.test.types, to_image_maps(m, size).numpy(), masks)
                row.update(pixel_auroc=pix["pixel_auroc"], aupro=pix["aupro"])
            rows[f"fit {fit_name}, score {test_name}"] = row
            print(name, fit_name, test_name, {k: round(v, 4) for k, v in row.items()}, flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "image_size": size, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
