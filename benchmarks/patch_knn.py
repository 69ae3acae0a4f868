"""Would a nearest-neighbour patch memory (PatchCore-style) make better maps than the patch Gaussian?

Usage:
    python benchmarks/patch_knn.py NAME RUN_DIR [--bank 10000] [--untrained]

On a finished run's trunk: the patch descriptors sslad's patch density scores (layer2 + layer3 at layer2's
grid, 3x3-averaged) of every location of the fit images form a memory; a greedy k-centre coreset of
``--bank`` descriptors (PatchCore's, on a random projection to 128 dimensions) keeps it small; a test
location's anomaly value is its Euclidean distance to the nearest memory entry (``sslad.scoring.PatchKNN``,
what ``--patch-density knn`` fits). Beside it,
the run's own patch Gaussian (fitted the same way as ``sslad train`` does) and the head's map, each alone and
averaged with the head's map on held-out scales (as ``--map both``). Pixel AUROC, AUPRO and the image AUROC
of each map's maximum, whole images at the run's size, in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from common import load_run, save_record

from sslad.models import PretextNet
from sslad.scoring import image_metrics, pixel_metrics, to_image_maps
from sslad.scoring.density import GaussianDensity, PatchGaussian, PatchKNN
from sslad.scoring.scorer import peak_embedding


@torch.no_grad()
def dense(model: PretextNet, images: torch.Tensor, batch: int = 32):
    """(patch descriptors (N, C, h, w), head probabilities (N, 1, H', W') or None, pooled+peak embeddings)."""
    pd, pr, em = [], [], []
    for i in range(0, len(images), batch):
        e, logits, patches = model.dense_outputs(images[i:i + batch])
        pd.append(patches.float())
        em.append(peak_embedding(e, patches))
        if logits is not None:
            pr.append(torch.sigmoid(logits.float()))
    return torch.cat(pd), (torch.cat(pr) if pr else None), torch.cat(em)


def flat(d: torch.Tensor) -> torch.Tensor:
    return d.permute(0, 2, 3, 1).reshape(-1, d.shape[1])


def scale(held: torch.Tensor) -> tuple[float, float]:
    """(median pixel, 99th-percentile of image maxima) of held-out maps: what ``--map both`` scales by."""
    flat_ = held.flatten()
    flat_ = flat_[torch.randperm(len(flat_), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    med = float(flat_.median())
    top = float(np.quantile(held.flatten(1).amax(1).numpy(), 0.99))
    return med, max(top - med, 1e-12)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv[0], argv[1]
    n_bank = int(argv[argv.index("--bank") + 1]) if "--bank" in argv else 10_000
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    if "--untrained" in argv:
        torch.manual_seed(cfg.train.seed)
        model = PretextNet(model.cfg).eval()
    model = model.eval()
    size = cfg.data.image_size
    t0 = time.time()
    fit_d, _, fit_e = dense(model, fit.images)
    held_d, held_p, held_e = dense(model, holdout.images)
    test_d, test_p, test_e = dense(model, data.test.images)
    emb = GaussianDensity().fit(fit_e)
    held_s, test_s = emb.score(held_e), emb.score(test_e)
    mu, sd = float(held_s.mean()), float(held_s.std())
    z_emb = ((test_s - mu) / sd).numpy()
    t_embed = time.time() - t0
    x = flat(fit_d)
    g = torch.Generator().manual_seed(0)
    gauss = PatchGaussian().fit((x[torch.randperm(len(x), generator=g)[:200_000]] if len(x) > 200_000 else x).double())
    t0 = time.time()
    memory = PatchKNN(n_bank).fit(x)
    t_coreset = time.time() - t0
    t0 = time.time()
    maps = {"gauss": (gauss.maps(held_d), gauss.maps(test_d)), "knn": (memory.maps(held_d), memory.maps(test_d))}
    t_knn = time.time() - t0
    if test_p is not None:
        maps["seg"] = (held_p, test_p)
    img = {key: to_image_maps(v[1], size) for key, v in maps.items()}
    held_img = {key: to_image_maps(v[0], size) for key, v in maps.items()}
    if "seg" in img:
        for key in ("gauss", "knn"):
            (ma, sa), (mb, sb) = scale(held_img["seg"]), scale(held_img[key])
            img[f"seg+{key}"] = ((img["seg"] - ma) / sa + (img[key] - mb) / sb) / 2
    rows = {"embedding": image_metrics(data.test.types, z_emb)}
    print(name, "embedding image AUROC", rows["embedding"]["image_auroc"], flush=True)
    for key, m in img.items():
        m = m.numpy()
        pix = pixel_metrics(data.test.types, m, data.test.masks.numpy()) if data.test.masks is not None else {}
        im = image_metrics(data.test.types, m.reshape(len(m), -1).max(1))
        mx = m.reshape(len(m), -1).max(1)
        hm = held_img[key].flatten(1).amax(1).numpy() if key in held_img else None
        if hm is None:  # the averaged maps: the held-out maxima of the same average
            a, b = key.split("+")
            (ma, sa), (mb, sb) = scale(held_img[a]), scale(held_img[b])
            hm = (((held_img[a] - ma) / sa + (held_img[b] - mb) / sb) / 2).flatten(1).amax(1).numpy()
        joint = z_emb + (mx - hm.mean()) / hm.std()
        joint_auroc = image_metrics(data.test.types, joint)
        rows[key] = {"embedding_plus_map_max_image_auroc": joint_auroc["image_auroc"],
                     "embedding_plus_map_max_per_type": joint_auroc["per_type_auroc"],
                     "pixel_auroc": pix.get("pixel_auroc"), "aupro": pix.get("aupro"),
                     "per_type_pixel_auroc": pix.get("per_type_pixel_auroc"),
                     "map_max_image_auroc": im["image_auroc"], "per_type_image_auroc": im["per_type_auroc"]}
        print(f"{name} {key:10s}: pixel {pix.get('pixel_auroc')} AUPRO {pix.get('aupro')} "
              f"image(max) {im['image_auroc']} embedding+max {joint_auroc['image_auroc']}", flush=True)
    record = {"name": name, "run_dir": str(run_dir), "bank": len(memory.bank), "untrained": "--untrained" in argv,
              "memory_locations": len(x), "image_size": size, "rows": rows,
              "seconds": {"descriptors": t_embed, "coreset": t_coreset, "knn_maps": t_knn}}
    save_record(name, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
