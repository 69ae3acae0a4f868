"""Would a per-location feature density make better maps than the per-pixel head? Measured on a finished run.

Usage:
    python benchmarks/patch_density.py NAME RUN_DIR [--layers 2,3] [--untrained]

The run's trunk (or, with ``--untrained``, the same architecture freshly initialised with the run's seed)
embeds the fit images; its layer features (upsampled to the first layer's grid, concatenated, 3x3
average-pooled as PatchCore aggregates neighbourhoods) fit one Gaussian over all locations (Ledoit-Wolf,
the density sslad already uses, without the L2 normalisation); a test location's Mahalanobis distance
is its anomaly value, upsampled and smoothed like every sslad map. Reports pixel AUROC, AUPRO and the
image AUROC of the map maximum beside the run's own maps, in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from common import load_run, save_record

from sslad.models import PretextNet
from sslad.scoring import image_metrics, pixel_metrics, to_image_maps
from sslad.scoring.density import ledoit_wolf


@torch.no_grad()
def patch_features(model: PretextNet, images: torch.Tensor, layers: list[int], batch: int = 32) -> torch.Tensor:
    """float32 (N, C, h, w): the chosen layers at the first one's grid, 3x3 average-pooled."""
    out = []
    for i in range(0, len(images), batch):
        _, feats = model.features(images[i:i + batch])
        maps = [feats[k] for k in layers]
        hw = maps[0].shape[-2:]
        z = torch.cat([F.interpolate(m, size=hw, mode="bilinear", align_corners=False) for m in maps], 1)
        out.append(F.avg_pool2d(z, 3, stride=1, padding=1, count_include_pad=False).float())
    return torch.cat(out)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[0], argv[1]
    layers = [int(k) for k in argv[argv.index("--layers") + 1].split(",")] if "--layers" in argv else [2, 3]
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    if "--untrained" in argv:
        torch.manual_seed(cfg.train.seed)
        model = PretextNet(model.cfg).eval()
    size = cfg.data.image_size
    train = patch_features(model, fit.images, layers)
    c = train.shape[1]
    x = train.permute(0, 2, 3, 1).reshape(-1, c).double()
    g = torch.Generator().manual_seed(0)
    if len(x) > 200_000:
        x = x[torch.randperm(len(x), generator=g)[:200_000]]
    cov, _ = ledoit_wolf(x)
    mean, precision = x.mean(0), torch.linalg.pinv(cov, hermitian=True)
    test = patch_features(model, data.test.images, layers)
    z = test.permute(0, 2, 3, 1).double() - mean
    d = ((z @ precision) * z).sum(-1).clamp_min(0).sqrt().float()[:, None]
    maps = to_image_maps(d, size).numpy()
    pix = {"pixel_auroc": None, "aupro": None, "per_type_pixel_auroc": None}
    if data.test.masks is not None:
        pix = pixel_metrics(data.test.types, maps, data.test.masks.numpy())
    img = image_metrics(data.test.types, maps.reshape(len(maps), -1).max(1))
    record = {"name": name, "run_dir": str(run_dir), "layers": layers, "untrained": "--untrained" in argv,
              "channels": c, "pixel_auroc": pix["pixel_auroc"], "aupro": pix["aupro"],
              "per_type_pixel_auroc": pix["per_type_pixel_auroc"], "map_max_image_auroc": img["image_auroc"],
              "per_type_image_auroc": img["per_type_auroc"]}
    print(f"{name}: pixel AUROC {pix['pixel_auroc']}, AUPRO {pix['aupro']}, image AUROC (map max) {img['image_auroc']}")
    save_record(name, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
