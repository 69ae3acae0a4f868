"""Does a yardstick of anomalies the network never trained on rank the image-score modes as the real test does?

Usage:
    python benchmarks/probe_yardstick.py NAME RUN_DIR

The run's own synthetic held-out set (what ``--image-score auto`` judges by) holds pretext anomalies: the
per-pixel head and the classifier were trained on exactly those, so it favours them (README, *The image
score*). Here the held-out good views of that set are altered by *probe* families that no plan renders:
``blur`` (content smoothed inside an irregular soft blob), ``noise`` (grain added inside one) and ``shift``
(content displaced by a few pixels inside one), each at a random opacity. For every image-score mode
(embedding, map, both) of the run's fitted scorer, recorded in ``benchmarks/results/NAME.json``: its AUROC
on the probes (each family and all), on the pretext yardstick, and on the real test split (labels).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.scoring.metrics import auroc
from sslad.training import render_synthetic_holdout

FAMILIES = ("blur", "noise", "shift")


def blob(size: int, g: torch.Generator) -> torch.Tensor:
    """float32 (S, S) soft irregular mask in [0, 1] covering 1-8 % of the image, feathered over ~S/40 px."""
    noise = F.interpolate(torch.rand(1, 1, 6, 6, generator=g), size=(size, size), mode="bicubic",
                          align_corners=False)[0, 0]
    share = 0.01 + 0.07 * float(torch.rand(1, generator=g))
    t = torch.quantile(noise.flatten(), 1 - share)
    return ((noise - t) * (size / 2) + 0.5).clamp(0, 1)


def probe(img: torch.Tensor, family: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (3, S, S) good image -> (the same with one probe anomaly of ``family``, its bool (S, S) mask: where
    the soft blob is at least half way up, before its opacity)."""
    x, size = img.float(), img.shape[-1]
    if family == "blur":
        sigma = size / 64 * (1 + 2 * float(torch.rand(1, generator=g)))
        k = 2 * int(3 * sigma) + 1
        alt = TF.gaussian_blur(x[None], [k, k], [sigma, sigma])[0]
    elif family == "noise":
        std = 255 * (0.05 + 0.15 * float(torch.rand(1, generator=g)))
        alt = x + std * torch.randn(1 if bool((img[0] == img[1]).all()) else 3, size, size, generator=g)
    else:
        d = torch.randint(max(2, size // 40), max(3, size // 16) + 1, (2,), generator=g)
        sign = torch.where(torch.rand(2, generator=g) < 0.5, -1, 1)
        alt = torch.roll(x, (int(d[0] * sign[0]), int(d[1] * sign[1])), (1, 2))
    opacity = 0.6 + 0.4 * float(torch.rand(1, generator=g))  # drawn before the blob, as since 0.6
    shape = blob(size, g)
    a = opacity * shape
    return (x * (1 - a) + alt * a).round().clamp(0, 255).to(torch.uint8), shape >= 0.5


def mode_scores(model, scorer, images: torch.Tensor, size: int) -> dict[str, np.ndarray]:
    out = infer_images(model, images, map_fn=scorer.map_fn, embed_fn=scorer.embed_fn, tile=scorer.tile)
    return scorer.mode_scores(out.embeddings, out.maps, size)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir = argv
    model, scorer, ckpt, cfg, data, fit, holdout = load_run(run_dir)
    model.eval()
    size = cfg.data.image_size
    renderer = make_renderer("torch", size, torch.device("cpu"))
    synth = render_synthetic_holdout(holdout, renderer, cfg)
    good = synth.images[synth.labels == 0]
    g = torch.Generator().manual_seed(cfg.train.seed + 7)
    probes = {f: torch.stack([probe(im, f, g)[0] for im in good]) for f in FAMILIES}
    good_s = mode_scores(model, scorer, good, size)
    rows: dict = {}
    for f, imgs in probes.items():
        s = mode_scores(model, scorer, imgs, size)
        rows[f] = {m: auroc(np.r_[np.zeros(len(good)), np.ones(len(imgs))], np.r_[good_s[m], s[m]]) for m in s}
    n = len(good)
    rows["probes"] = {m: float(np.mean([rows[f][m] for f in FAMILIES])) for m in good_s}
    pre = mode_scores(model, scorer, synth.images, size)
    rows["pretext"] = {m: auroc((synth.labels > 0).numpy(), pre[m]) for m in pre}
    test = mode_scores(model, scorer, data.test.images, size)
    bad = np.array([t != "good" for t in data.test.types])
    rows["real"] = {m: auroc(bad, test[m]) for m in test}
    for k, r in rows.items():
        print(f"{k:>8}: " + "  ".join(f"{m} {100 * v:.1f}" for m, v in r.items()))
    pick = {k: max(r, key=r.get) for k, r in rows.items()}
    save_record(name, {"name": name, "run_dir": str(run_dir), "good_views": n, "rows": rows, "best_mode": pick})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
