"""Probe anomalies: a second label-free yardstick, of alterations no plan renders and no network trains on.

The synthetic held-out set (``training.render_synthetic_holdout``) holds *pretext* anomalies: the per-pixel head
and the classifier learnt exactly those, so a choice judged on it favours them (docs/results.md, session 62: on
``--map both``'s joins it ranks them against the real AUPRO). Probes alter good images in three other ways, each
inside an irregular soft blob at a random opacity: ``blur`` (content smoothed), ``noise`` (grain added) and
``shift`` (content displaced by a few pixels). ``--map-weight auto`` chooses the join whose maps outline them best
(``training.choose_map_weight``). Torch only and on the CPU: an evaluation set of a few hundred images, never a
training set (DALI renders the plans).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

FAMILIES = ("blur", "noise", "shift")

#: The probes' generator is seeded with the run's seed plus this (the synthetic held-out set has its own).
PROBE_SEED_OFFSET = 7


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
    elif family == "shift":
        d = torch.randint(max(2, size // 40), max(3, size // 16) + 1, (2,), generator=g)
        sign = torch.where(torch.rand(2, generator=g) < 0.5, -1, 1)
        alt = torch.roll(x, (int(d[0] * sign[0]), int(d[1] * sign[1])), (1, 2))
    else:
        raise ValueError(f"unknown probe family {family!r} (expected one of {', '.join(FAMILIES)})")
    opacity = 0.6 + 0.4 * float(torch.rand(1, generator=g))  # drawn before the blob, as since 0.6
    shape = blob(size, g)
    a = opacity * shape
    return (x * (1 - a) + alt * a).round().clamp(0, 255).to(torch.uint8), shape >= 0.5


def probe_set(views: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 3, S, S) good views -> (uint8 (4n, 3, S, S) images, bool (4n, S, S) masks): the views unaltered
    (good, empty masks), then each of :data:`FAMILIES` applied to every view, drawn in that order from one generator
    seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    probed = [probe(im, f, g) for f in FAMILIES for im in views]
    size = views.shape[-1]
    images = torch.cat([views, torch.stack([x for x, _ in probed])]) if probed else views
    masks = torch.cat([torch.zeros(len(views), size, size, dtype=torch.bool), *(m[None] for _, m in probed)])
    return images, masks
