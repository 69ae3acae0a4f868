"""``sslad finetune``: the other reading of the downstream transfer, the pretext network itself (the *equal*
model) fine-tuned on the real good images, for the density that scores them.

teacher run -> its data and held-out split -> two augmented views of every good image per step -> the
trunk's deeper stages (layer3 and layer4 by default; the stem, layer1 and layer2 stay frozen, BatchNorm
statistics too) learn the *mean-shifted contrastive* objective (Reiss & Hoshen, AAAI 2023): the L2-normalised
pooled embeddings, shifted by the normal images' mean embedding of the frozen trunk and normalised again,
of two views of one image attract, those of other images repel (NT-Xent, temperature 0.25), optionally plus
the angular centre loss (``--angular``: views pulled towards the normal mean) -> a new density, patch
density and thresholds fitted on the fine-tuned network -> a run folder of the same kind as the teacher's,
so ``eval``, ``predict``, ``export`` and ``distill`` read it unchanged.

Whether it beats the frozen trunk is what ``metrics.json`` shows: the teacher's metrics (and its synthetic
held-out AUROC, the label-free yardstick) sit beside the fine-tuned run's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from sslad.config import FINETUNE_FROM, FinetuneConfig
from sslad.data import ImageSet
from sslad.errors import SsladError
from sslad.models import PretextNet, training_autocast
from sslad.models.embed import infer_images
from sslad.progress import bar
from sslad.report import EpochLog
from sslad.training import budget_epochs, finite_mean, optimizer_step, set_cosine_lr


def trainable_stages(model: PretextNet, train_from: str) -> list[torch.nn.Parameter]:
    """Freeze everything but the trunk's stages from ``train_from`` on (heads and decoder included); return
    the parameters that learn."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for name in FINETUNE_FROM[FINETUNE_FROM.index(train_from):]:
        for p in getattr(model.trunk, name).parameters():
            p.requires_grad_(True)
            params.append(p)
    return params


def augment_views(images: torch.Tensor, generator: torch.Generator, gray: bool) -> torch.Tensor:
    """float32 0..255 (N, 3, S, S) views of uint8 images: a random resized crop (scale 0.35-1, aspect 3/4-4/3),
    horizontal and vertical flips, and with probability 0.8 a colour jitter (brightness, contrast, and for
    colour data saturation, each x U(0.6, 1.4)); all drawn from ``generator`` (CPU), so views reproduce."""
    n, dev = images.shape[0], images.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale, aspect = u(0.35, 1.0), u(math.log(3 / 4), math.log(4 / 3)).exp()
    w, h = (scale * aspect).sqrt().clamp(max=1.0), (scale / aspect).sqrt().clamp(max=1.0)  # of the side
    cx, cy = (u(0, 1) * 2 - 1) * (1 - w), (u(0, 1) * 2 - 1) * (1 - h)
    fx = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * fx, cx
    theta[:, 1, 1], theta[:, 1, 2] = h * fy, cy
    x = images.float()
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    jitter = (torch.rand(n, generator=generator) < 0.8).float()
    b, c, s = (1 + jitter * (u(0.6, 1.4) - 1) for _ in range(3))
    x = x * b.to(dev).view(n, 1, 1, 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * c.to(dev).view(n, 1, 1, 1) + mean
    if not gray:
        luma = x.mean(1, keepdim=True)
        x = (x - luma) * s.to(dev).view(n, 1, 1, 1) + luma
    return x.clamp(0, 255)


def mean_shifted_loss(z1: torch.Tensor, z2: torch.Tensor, center: torch.Tensor, temperature: float,
                      angular: float = 0.0) -> torch.Tensor:
    """The mean-shifted contrastive loss of two views' pooled embeddings (N, D) around the normal mean
    ``center`` (unit norm): NT-Xent over the 2N shifted, normalised embeddings (each view's positive is the
    other view of its image), plus ``angular`` x the squared distance of the normalised views to the centre."""
    a, b = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    shifted = F.normalize(torch.cat([a, b]) - center, dim=1)
    sim = shifted @ shifted.T / temperature
    n = a.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    loss = F.cross_entropy(sim, target)
    if angular > 0:
        loss = loss + angular * ((a - center) ** 2 + (b - center) ** 2).sum(1).mean()
    return loss


def normal_center(model: PretextNet, images: torch.Tensor) -> torch.Tensor:
    """Unit-norm mean of the frozen network's L2-normalised embeddings of the good images (no augmentation)."""
    e = infer_images(model, images, maps=False).embeddings
    return F.normalize(F.normalize(e.float(), dim=1).mean(0), dim=0).to(images.device)


def fit_finetune(model: PretextNet, fit: ImageSet, fc: FinetuneConfig, gray: bool, amp: bool, out: Path,
                 log: Callable[[str], None]) -> dict:
    """Fine-tune ``model`` in place on the good images ``fit``; returns the loop's statistics."""
    if len(fit) < 2:
        raise SsladError(f"fine-tuning needs at least 2 good training images, not {len(fit)}")
    center = normal_center(model, fit.images)
    params = trainable_stages(model, fc.train_from)
    batch = min(fc.batch_size, len(fit))
    steps_per_epoch = max(1, len(fit) // batch)
    epochs = budget_epochs(fc.epochs, fc.min_steps, steps_per_epoch)
    total = steps_per_epoch * epochs
    opt = torch.optim.Adam(params, lr=fc.lr)
    gen = torch.Generator().manual_seed(fc.seed * 7919 + 17)
    model.eval()  # BatchNorm statistics stay the pretext's (as the mean-shifted recipe keeps them)
    epoch_log, step, seconds, first = EpochLog(out / "metrics.csv"), 0, 0.0, None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(fit), generator=gen).to(fit.images.device)
        losses = []
        for i in bar(range(steps_per_epoch), f"fine-tune {epoch + 1}/{epochs}", unit="step"):
            x = fit.images[perm[i * batch:(i + 1) * batch]]
            v1, v2 = augment_views(x, gen, gray), augment_views(x, gen, gray)
            lr = set_cosine_lr(opt, fc.lr, step, total)
            with training_autocast(x.device, amp):
                z = model.embed(torch.cat([v1, v2]))
            loss = mean_shifted_loss(z[:len(x)], z[len(x):], center, fc.temperature, fc.angular)
            optimizer_step(opt, loss)
            losses.append(loss.detach())
            step += 1
        mean = finite_mean(losses, "fine-tuning", epoch)
        first = mean if first is None else first
        dt = time.perf_counter() - t0
        seconds += dt
        epoch_log.add(epoch=epoch + 1, regen_index=-1, loss=mean, lr=lr, epoch_s=dt, regen_s=0.0,
                      images_per_s=2 * steps_per_epoch * batch / dt)
        log(f"epoch {epoch + 1}/{epochs}: mean-shifted loss {mean:.4f}, {dt:.1f} s")
    for p in model.parameters():
        p.requires_grad_(False)
    return {"epochs": epochs, "steps": step, "train_time_s": seconds, "finetune_loss_first": first,
            "finetune_loss": mean}


def finetune_run(teacher_dir: str | Path, out_dir: str | Path, fc: FinetuneConfig | None = None, *,
                 overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Fine-tune the run in ``teacher_dir`` on its good images into ``out_dir``; returns its metrics."""
    from sslad.distill import evaluate_transfer, open_teacher
    from sslad.training import fit_scorer

    fc = (fc or FinetuneConfig()).validate()
    t = open_teacher(teacher_dir, out_dir, overwrite, seed=fc.seed, device=fc.device, lr=fc.lr)
    model = t.teacher
    log(f"fine-tune: {t.run} ({t.cfg.train.arch}, {t.cfg.data.image_size} px), {fc.train_from} and deeper, "
        f"{len(t.fit)} good images")
    stats = fit_finetune(model, t.fit, fc, gray=_is_gray(t.fit.images), amp=t.cfg.train.precision == "bf16",
                         out=t.out, log=log)
    model.eval()
    scorer = fit_scorer(model, t.fit, t.holdout, t.cfg, t.renderer)
    teacher_synthetic = t.teacher_metrics.get("synthetic_auroc") or {}
    summary = {"finetune": dataclasses.asdict(fc), "teacher_synthetic_auroc": teacher_synthetic, **stats}
    return evaluate_transfer(t, model, scorer, stats["epochs"], summary, {"finetune": dataclasses.asdict(fc)}, log)


def _is_gray(images: torch.Tensor) -> bool:
    from sslad.synth.generator import is_grayscale

    return is_grayscale(images)


__all__ = ["augment_views", "finetune_run", "mean_shifted_loss", "trainable_stages"]
