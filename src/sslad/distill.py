"""``sslad distill``: the downstream transfer, the pretext network's knowledge moved into a new, equal or smaller
network on the real good training images.

teacher run -> its data and held-out split -> augmented good images (+ the pretext anomalies drawn on
them) every epoch -> the student learns the teacher's layer1-3 features (cosine, per location, on the
good rows only: it learns normal appearance) and its per-pixel probabilities (on every row, so it
maps anomalies without the teacher) -> a density and thresholds fitted on the student's own outputs
-> a run folder that ``eval``, ``predict`` and ``export`` read like any other.

Where student and teacher disagree on a test image is a second anomaly map (the *discrepancy map*:
the student only ever matched normal features); its pixel AUROC and AUPRO are reported beside the
student's and the teacher's maps in ``metrics.json``. ``--map distill`` makes it the run's map (the run
then keeps teacher and student, :class:`~sslad.models.pair.DiscrepancyNet`); ``--map auto`` fits both
and keeps the one that scores synthetic anomalies on the held-out images better (:func:`choose_map`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from sslad.backends import make_renderer
from sslad.checkpoint import load_checkpoint, run_folder, save_checkpoint
from sslad.config import DistillConfig, RunConfig, ScoreConfig, save_yaml
from sslad.data import load_dataset, split_train
from sslad.detector import Detector
from sslad.errors import SsladError
from sslad.evaluate import evaluate_set
from sslad.models import PretextNet, StudentConfig, StudentNet, inference_layout, training_autocast, training_layout
from sslad.models.pair import DiscrepancyNet, feature_distance, mean_distance, standardized_distance
from sslad.progress import bar
from sslad.report import EpochLog, results_table
from sslad.runtime import resolve_device, resolve_precision, seed_everything
from sslad.scoring import Scorer, image_metrics, pixel_metrics, to_image_maps
from sslad.synth.generator import PretextGenerator
from sslad.training import (
    budget_epochs,
    finite_mean,
    fit_scorer,
    optimizer_step,
    prepare_run_dir,
    schedule,
    scorer_choices,
    set_cosine_lr,
)

#: Regenerations of the distillation use seed + this + k: never the teacher's training sets.
DISTILL_SEED = 2_000_003


def teacher_features(teacher: PretextNet, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The teacher's layer1-4 maps and per-pixel probabilities (or None), without gradients."""
    with torch.no_grad():
        _, feats = teacher.features(x)
        seg = teacher.seg_logits(feats)
        seg = None if seg is None else torch.sigmoid(seg.float())
    return [f.float() for f in feats[1:5]], seg


def embedding_distance(student: torch.Tensor, teacher: torch.Tensor,
                       metric: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) distance of the student's pooled embeddings to the teacher's, both L2-normalised as the density
    sees them: in the teacher Gaussian's own metric (squared Mahalanobis with its precision ``metric``,
    divided by the dimension: the error the density would score) or, without one, 1 - cosine."""
    a, b = F.normalize(student.float(), dim=1), F.normalize(teacher.float(), dim=1)
    if metric is None:
        return 1 - (a * b).sum(1)
    d = a - b
    return ((d @ metric) * d).sum(1) / d.shape[1]


@torch.no_grad()
def target_stats(teacher: PretextNet, images: torch.Tensor, batch: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per teacher map (layer1-4), its per-channel (mean, std) over every location of ``images`` (float32,
    (1, C, 1, 1)): the units in which a standardising student learns. Taken over the pretext set the student
    learns from (good images and their synthetic anomalies): over good images alone, deep channels that are
    silent on them and fire on anomalies get a tiny std and squared errors of 1e6 that rule the loss. A
    channel that still barely varies gets the floor of 1 % of the median channel's std."""
    sums = None  # per map: (sum, sum of squares, locations), streamed over batches
    for i in range(0, len(images), batch):
        parts = [(f.double().sum((0, 2, 3)), (f.double() ** 2).sum((0, 2, 3)), f.numel() // f.shape[1])
                 for f in teacher_features(teacher, images[i:i + batch])[0]]
        sums = parts if sums is None else [tuple(a + b for a, b in zip(x, y, strict=True))
                                           for x, y in zip(sums, parts, strict=True)]
    stats = []
    for s1, s2, n in sums:
        mean = s1 / n
        std = (s2 / n - mean ** 2).clamp_min(0).sqrt()
        std = std.clamp_min(0.01 * float(std.median()) + 1e-12)
        stats.append((mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)))
    return stats


def distill_loss(student: StudentNet, teacher: PretextNet, x: torch.Tensor, good: torch.Tensor,
                 seg_weight: float, embed_weight: float = 0.0, metric: torch.Tensor | None = None) -> torch.Tensor:
    """Feature loss: the mean per-location distance at layer1-3 on the good rows (normal appearance only: the
    discrepancy map) and at layer4 on every row (the embedding the density scores, which must move on
    anomalies as the teacher's does); plus ``embed_weight`` x :func:`embedding_distance` of the pooled
    embeddings (all rows) and ``seg_weight`` x BCE of the student's per-pixel logits against the teacher's
    probabilities (all rows). The distance is :func:`standardized_distance` for a standardising student,
    else the cosine distance."""
    t_feats, t_seg = teacher_features(teacher, x)
    s_feats, s_seg = student.distill_features(x)
    stats = student.target_stats()
    dist = feature_distance(s_feats, t_feats) if stats is None else standardized_distance(s_feats, t_feats, stats)
    local = sum(d[good].mean() for d in dist[:3]) / 3 if bool(good.any()) else x.new_zeros(())
    loss = local + dist[3].mean()
    if embed_weight > 0:
        loss = loss + embed_weight * embedding_distance(s_feats[3].mean((2, 3)), t_feats[3].mean((2, 3)),
                                                        metric).mean()
    if s_seg is not None and t_seg is not None and seg_weight > 0:
        target = F.adaptive_avg_pool2d(t_seg, s_seg.shape[-2:])
        loss = loss + seg_weight * F.binary_cross_entropy_with_logits(s_seg.float(), target)
    return loss


def density_metric(ckpt: dict, device: torch.device) -> torch.Tensor | None:
    """float32 (D, D): the precision of the teacher's fitted Gaussian density, or None (kNN, or no scorer)."""
    if not ckpt.get("scorer"):
        return None
    precision = getattr(Scorer.from_state(ckpt["scorer"]).density, "precision", None)
    return None if precision is None else precision.float().to(device)


@torch.no_grad()
def discrepancy_maps(student: StudentNet, teacher: PretextNet, images: torch.Tensor, size: int,
                     batch: int = 32) -> torch.Tensor:
    """float32 (N, S, S): the mean over the three scales of the student-teacher feature distance, upsampled
    and smoothed like every anomaly map."""
    out = []
    student.eval()
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        t_feats, _ = teacher_features(teacher, x)
        out.append(to_image_maps(mean_distance(student.distill_features(x, seg=False)[0], t_feats), size))
    return torch.cat(out)


def choose_map(student: StudentNet, teacher: PretextNet, fit, holdout, cfg: RunConfig, renderer,
               source: str) -> tuple[torch.nn.Module, Scorer, str, dict]:
    """(network, its fitted scorer, the map source, {source: synthetic AUROC of its image score}) for ``source``:
    ``seg`` (the student alone, its own per-pixel head), ``distill`` (teacher and student, the discrepancy
    map, the teacher's embedding) or ``auto``: both fitted, ``distill`` kept when its synthetic AUROC (pretext
    anomalies on the held-out images, no test label) beats the smaller ``seg`` by more than ``auto_margin``."""
    student = inference_layout(student.eval())  # as eval/predict will load it
    nets = {"seg": student, "distill": DiscrepancyNet(teacher, student).eval()}
    names = ["seg", "distill"] if source == "auto" else [source]
    scorers = {k: fit_scorer(nets[k], fit, holdout, cfg, renderer) for k in names}
    synthetic = {k: sc.synthetic_auroc.get(sc.image_score) for k, sc in scorers.items()}
    if source == "auto":
        value = {k: -1.0 if v is None or math.isnan(v) else float(v) for k, v in synthetic.items()}
        source = "distill" if value["distill"] > value["seg"] + cfg.score.auto_margin else "seg"
    return nets[source], scorers[source], source, synthetic


def load_teacher(run_dir: str | Path, device: torch.device) -> tuple[PretextNet, dict]:
    """The teacher network (eval, frozen) and its checkpoint; a student or a broken file is one clear line."""
    model, _, ckpt = load_checkpoint(run_dir, device)
    if not isinstance(model, PretextNet):
        raise SsladError(f"{run_dir} holds a student, not a pretext network: start from a run of sslad train")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), ckpt


class Teacher(NamedTuple):
    """What a transfer starts from: the teacher run, its network and checkpoint, its config (with the transfer's
    seed, device, learning rate and precision), its data split as training made it, a renderer of its
    pretext anomalies, the new run folder and the teacher's metrics."""

    run: Path
    teacher: PretextNet
    ckpt: dict
    cfg: RunConfig
    data: object
    fit: object
    holdout: object
    renderer: object
    out: Path
    teacher_metrics: dict


def open_teacher(teacher_dir: str | Path, out_dir: str | Path, overwrite: bool, *, seed: int | None, device: str,
                 lr: float | None, image_size: int | None = None, score: dict | None = None,
                 teachers_image_score: bool = False, validate: bool = False) -> Teacher:
    """Load the teacher run and its data and create the new run folder (removed again if this fails; with
    ``validate``, when the teacher's config with ``score`` is not a valid one). ``seed`` and ``lr`` None: the
    teacher's own. With ``teachers_image_score`` the new run scores images with the mode its teacher's scorer uses
    (the one the teacher's ``auto`` chose) instead of choosing again."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SsladError("a transfer or re-fit (sslad distill, finetune, rescore) runs in one process; start it "
                         "without torchrun")
    dev = resolve_device(device)
    teacher_run = run_folder(teacher_dir)
    teacher, ckpt = load_teacher(teacher_run, dev)
    cfg = RunConfig.from_dict(ckpt["config"])
    size = cfg.data.image_size
    if image_size is not None and image_size != size:
        raise SsladError(f"the teacher in {teacher_dir} takes {size} px images, not --image-size {image_size}: "
                         "a student learns the teacher's features at the teacher's input size")
    out = Path(out_dir)
    created = not out.exists()
    prepare_run_dir(out, cfg.data.path, overwrite, resume=False)
    try:
        cfg = cfg.override(train={"seed": seed, "device": str(dev), "lr": lr,
                                  "precision": resolve_precision("auto", dev)}, score=score or {})
        if teachers_image_score and ckpt.get("scorer"):
            cfg = cfg.override(score={"image_score": Scorer.from_state(ckpt["scorer"]).image_score})
        cfg = cfg.validate() if validate else cfg
        data = load_dataset(cfg.data.path, cfg.data.category, size, device=dev)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    seed_everything(cfg.train.seed)
    save_yaml(cfg, out / "config.yaml")
    return Teacher(teacher_run, teacher, ckpt, cfg, data, fit, holdout, make_renderer(cfg.synth.backend, size, dev),
                   out, _read_json(teacher_run / "metrics.json"))


def evaluate_transfer(t: Teacher, net: torch.nn.Module, scorer: Scorer, epochs: int, summary: dict, extra: dict,
                      log: Callable[[str], None], against: str = "the teacher") -> dict:
    """Save the new run's network with its scorer and its teacher's record, evaluate it on the teacher's test
    split (``summary`` joins metrics.json) and return its metrics; the last line puts them beside the teacher's
    (called ``against``)."""
    extra = {"teacher": {"path": str(t.run), "config": t.ckpt["config"], "metrics": t.teacher_metrics}, **extra}
    save_checkpoint(t.out / "model.pt", net, t.cfg.to_dict(), epoch=epochs, regen_index=-1,
                    scorer_state=scorer.state_dict(), extra=extra)
    summary = {"dataset": t.data.name, "teacher_dir": str(t.run),
               "teacher_image_auroc": t.teacher_metrics.get("image_auroc"),
               "teacher_pixel_auroc": t.teacher_metrics.get("pixel_auroc"),
               "teacher_aupro": t.teacher_metrics.get("aupro"), **scorer_choices(scorer),
               "inference_precision": scorer.precision,
               "parameters": sum(p.numel() for p in net.parameters()),
               **summary}
    metrics = evaluate_set(Detector(net, scorer, t.cfg.data.image_size), t.data.test, t.out, extra=summary)
    log(results_table(metrics))
    log(against_teacher(metrics, t.teacher_metrics, against))
    return metrics


def against_teacher(metrics: dict, teacher: dict, who: str = "the teacher") -> str:
    """One line putting a transferred network's AUROCs beside its teacher's (what the transfer was worth)."""
    parts = []
    for key, name in (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO")):
        new, old = metrics.get(key), (teacher or {}).get(key)
        if new is not None and old is not None:
            parts.append(f"{name} {100 * new:.1f} ({100 * (new - old):+.1f})")
    return f"against {who}: " + (", ".join(parts) if parts else "no AUROC to compare (no labelled test split)")


def distill_run(teacher_dir: str | Path, out_dir: str | Path, dc: DistillConfig | None = None, *,
                image_size: int | None = None, overwrite: bool = False,
                log: Callable[[str], None] = print) -> dict:
    """Distil the run in ``teacher_dir`` into a ``dc.arch`` student written to ``out_dir``; returns its metrics."""
    dc = (dc or DistillConfig()).validate()
    # the student's maps are its --map's; it scores images as its teacher does: a student's per-pixel head learns
    # the teacher's output on the very pretext anomalies the auto choice renders, so its synthetic AUROC flatters
    # it (seed 2 on ELPV: map 97.8 vs embedding 96.1 synthetic, 66.9 vs 89.1 real)
    t = open_teacher(teacher_dir, out_dir, overwrite, seed=dc.seed, device=dc.device, lr=dc.lr,
                     image_size=image_size, score={"map": "seg", "map_weight": ScoreConfig.map_weight},
                     teachers_image_score=True)  # one map: no join to weigh (the stored config stays valid)
    teacher, cfg, fit, size = t.teacher, t.cfg, t.fit, t.cfg.data.image_size
    channels = tuple(f.shape[1] for f in teacher_features(teacher, fit.images[:1])[0])
    student = StudentNet(StudentConfig(arch=dc.arch, teacher_channels=channels, standardize=dc.loss == "mse"))
    student = training_layout(student.to(fit.images.device))  # as pretext training
    gen = PretextGenerator(fit.images, t.renderer, cfg.synth, seed=dc.seed + DISTILL_SEED)
    if dc.loss == "mse":
        student.set_target_stats(target_stats(teacher, gen.regenerate(0).images))  # the first epoch's set
    copied = student.copy_teacher_trunk(teacher.trunk) if dc.init == "teacher" else 0
    log(f"distil: teacher {teacher_dir} ({cfg.train.arch}, {size} px) -> student {dc.arch} "
        f"({f'{copied} tensors from the teacher' if copied else 'from scratch'}, {dc.loss} loss), "
        f"{len(fit)} good images")
    stats = _fit(student, teacher, gen, cfg, dc, t.out, log,
                 density_metric(t.ckpt, fit.images.device) if dc.embed_weight else None)
    student.eval()
    net, scorer, source, map_synthetic = choose_map(student, teacher, fit, t.holdout, cfg, t.renderer, dc.map)
    if note := scorer.margin_note():
        log(f"note: {note}")
    if dc.map == "auto":
        log(f"map source: {source} (synthetic AUROC " + ", ".join(f"{k} {v:.3f}" for k, v in map_synthetic.items()
                                                              if v is not None) + ")")
    summary = {"student": dc.arch, "map": dc.map, "map_chosen": source, "map_synthetic_auroc": map_synthetic,
               "distill_loss_kind": dc.loss, "tensors_from_teacher": copied, "seed": dc.seed, **stats}
    if t.data.test is not None and len(t.data.test) and t.data.test.masks is not None:
        summary.update(_discrepancy_metrics(student, teacher, t.data.test, size))
    return evaluate_transfer(t, net, scorer, stats["epochs"], summary, {"distill": dataclasses.asdict(dc)}, log)


def _fit(student: StudentNet, teacher: PretextNet, gen: PretextGenerator, cfg: RunConfig, dc: DistillConfig,
         out: Path, log: Callable[[str], None], metric: torch.Tensor | None) -> dict:
    """The distillation loop: a fresh augmented set every epoch (seeded), cosine learning rate, Adam."""
    batch, steps_per_epoch = schedule(gen.num_images, cfg, world=1)
    epochs = budget_epochs(dc.epochs, dc.min_steps, steps_per_epoch)
    total = steps_per_epoch * epochs
    opt = torch.optim.Adam(student.parameters(), lr=dc.lr)
    shuffle = torch.Generator().manual_seed(dc.seed * 7919)
    amp = cfg.train.precision == "bf16"
    epoch_log, step, seconds, synth = EpochLog(out / "metrics.csv"), 0, 0.0, None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        synth = gen.regenerate(epoch, reuse=synth)
        perm = torch.randperm(len(synth.labels), generator=shuffle).to(synth.images.device)
        student.train()
        losses = []
        for i in bar(range(steps_per_epoch), f"distil {epoch + 1}/{epochs}", unit="step"):
            idx = perm[i * batch:(i + 1) * batch]
            lr = set_cosine_lr(opt, dc.lr, step, total)
            with training_autocast(synth.images.device, amp):
                loss = distill_loss(student, teacher, synth.images[idx], synth.labels[idx] == 0, dc.seg_weight,
                                    dc.embed_weight, metric)
            optimizer_step(opt, loss)
            losses.append(loss.detach())
            step += 1
        mean = finite_mean(losses, "distillation", epoch)
        dt = time.perf_counter() - t0
        seconds += dt
        epoch_log.add(epoch=epoch + 1, regen_index=epoch, loss=mean, lr=lr, epoch_s=dt, regen_s=synth.seconds,
                      images_per_s=len(synth.labels) / dt)
        log(f"epoch {epoch + 1}/{epochs}: distillation loss {mean:.4f}, {dt:.1f} s")
    return {"epochs": epochs, "steps": step, "train_time_s": seconds, "distill_loss": mean}


def _discrepancy_metrics(student: StudentNet, teacher: PretextNet, test, size: int) -> dict:
    """Pixel AUROC, AUPRO and image AUROC (map maximum) of the discrepancy map on the test split."""
    maps = discrepancy_maps(student, teacher, test.images.to(next(student.parameters()).device), size).numpy()
    pix = pixel_metrics(test.types, maps, test.masks.numpy())
    return {"discrepancy_pixel_auroc": pix["pixel_auroc"], "discrepancy_aupro": pix["aupro"],
            "discrepancy_image_auroc": image_metrics(test.types, maps.reshape(len(maps), -1).max(1))["image_auroc"]}


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


__all__ = ["DistillConfig", "Teacher", "choose_map", "discrepancy_maps", "distill_loss", "distill_run",
           "evaluate_transfer", "feature_distance", "open_teacher"]
