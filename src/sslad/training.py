"""``sslad train``: setup -> fit_pretext -> fit_scorer -> save -> evaluate.

folder -> uint8 tensors on the device -> held-out split -> pretext regeneration every N epochs ->
training (3-way classes + per-pixel masks) -> network outputs of good images -> scorer fit and
thresholds -> test scores and maps -> metrics and run folder.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from sslad.backends import make_renderer
from sslad.checkpoint import TRAIN_STATE, load_train_state, save_checkpoint, save_train_state
from sslad.config import MAP_LAYER_CHOICES, MAP_WEIGHT_CHOICES, RunConfig, save_yaml
from sslad.data import AnomalyDataset, ImageSet, load_dataset, split_train
from sslad.data.io import check_memory
from sslad.detector import Detector
from sslad.errors import SsladError
from sslad.evaluate import evaluate_run, evaluate_set
from sslad.export import EXPORT_FILES, EXPORT_SIDECARS
from sslad.files import make_output_dir
from sslad.models import (
    NetConfig,
    PretextNet,
    infer_images,
    inference_layout,
    load_trunk_weights,
    training_autocast,
    training_layout,
)
from sslad.models.embed import PatchSampler, sample_patches
from sslad.models.tiles import map_passes, network_passes
from sslad.progress import bar
from sslad.report import EpochLog, json_safe, results_table, save_class_grid
from sslad.runtime import Dist, StopSignals, init_distributed, resolve_device, resolve_precision, seed_everything
from sslad.scoring import Scorer
from sslad.scoring.scorer import parse_stages, simplest_within
from sslad.synth import CLASS_NAMES
from sslad.synth.crops import crop_offsets, take_crops
from sslad.synth.generator import PretextGenerator, Synthetic, is_grayscale
from sslad.synth.probes import PROBE_SEED_OFFSET, probe_set


def seg_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "focal") -> torch.Tensor:
    """Per-pixel loss of logits against soft 0..1 targets, for masks that cover a few per cent of the pixels.

    * ``focal``: binary cross-entropy scaled by (1 - p_t)^2 (Lin et al.; DRAEM's choice): the many easy
      normal pixels stop dominating.
    * ``balanced``: the mean BCE over anomalous pixels and the mean over normal ones, averaged, so both
      halves weigh the same whatever their share.
    * ``dice``: BCE plus the soft Dice loss of the batch.
    * ``bce``: plain mean BCE ("normal everywhere" is almost optimal for it: the ablation row).
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if kind == "bce":
        return bce.mean()
    p = torch.sigmoid(logits)
    if kind == "focal":
        p_t = p * target + (1 - p) * (1 - target)
        return ((1 - p_t) ** 2 * bce).mean()
    if kind == "balanced":
        pos, neg = target.sum(), (1 - target).sum()
        return 0.5 * (bce * target).sum() / pos.clamp_min(1.0) + 0.5 * (bce * (1 - target)).sum() / neg.clamp_min(1.0)
    if kind == "dice":
        return bce.mean() + 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    raise ValueError(f"unknown per-pixel loss {kind!r}")


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               mb: torch.Tensor | None, amp: bool, seg_weight: float = 1.0,
               seg_kind: str = "focal") -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on uint8 images, labels and 0/1 masks; returns (loss, correct count) on the device.

    Loss: cross-entropy of the 3-way classes, plus ``seg_weight`` x :func:`seg_loss` of the per-pixel
    logits against the masks averaged down to the logits' resolution (soft targets).
    """
    with training_autocast(xb.device, amp):
        logits, _, seg = net(xb)
        loss = F.cross_entropy(logits.float(), yb)
        if seg is not None and mb is not None and seg_weight > 0:
            target = F.adaptive_avg_pool2d(mb[:, None].float(), seg.shape[-2:])
            loss = loss + seg_weight * seg_loss(seg.float(), target, seg_kind)
    optimizer_step(opt, loss)
    return loss.detach(), (logits.argmax(1) == yb).sum()


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def cosine_lr(base: float, step: int, total: int, warmup: float = 0.0) -> float:
    """The learning rate at ``step`` of ``total``: a linear ramp over the first ``warmup`` share of the steps
    (from base / ramp steps), then one cosine from ``base`` down to 0."""
    ramp = round(warmup * total)
    if step < ramp:
        return base * (step + 1) / ramp
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step - ramp, total - ramp) / max(total - ramp, 1)))


def set_cosine_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int, warmup: float = 0.0) -> float:
    """Set every parameter group's learning rate to :func:`cosine_lr` at ``step`` (called every step), times the
    group's ``lr_scale`` where it has one; returns the base one."""
    lr = cosine_lr(base, step, total, warmup)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def finite_mean(losses: list[torch.Tensor], what: str, epoch: int) -> float:
    """The epoch's mean loss; a non-finite one is one clear error (``what`` diverged), not a NaN model."""
    mean = float(torch.stack(losses).mean())
    if not math.isfinite(mean):
        raise SsladError(f"{what} diverged in epoch {epoch + 1}; retry with a lower --lr")
    return mean


@dataclass
class Run:
    """What setup hands to the loop: resolved config, devices, data splits, model and generator."""

    cfg: RunConfig
    out: Path
    device: torch.device
    dist: Dist
    data: AnomalyDataset
    fit: ImageSet  # good training images: pretext training and the scorer fit
    holdout: ImageSet | None  # good training images kept out of both: the thresholds
    model: PretextNet
    net: torch.nn.Module  # the model, or its DDP wrapper
    gen: PretextGenerator
    log: Callable[[str], None]
    resume: dict | None = None  # the training state to continue from


#: What sslad writes into a run folder (train, eval, predict, export): all that --overwrite removes, and only that.
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.json", "scores.csv", "scores.png", "pretext_samples.png",
             "model.pt", TRAIN_STATE, "predictions.csv", "report.png",
             *EXPORT_FILES.values(), *(f"{name}{ext}" for name in EXPORT_FILES.values() for ext in EXPORT_SIDECARS))
RUN_DIRS = ("eval", "maps", "student", "untrained")


def prepare_run_dir(out: Path, data_path: str, overwrite: bool, resume: bool) -> dict | None:
    """Check ``--out`` before any work; clear it for ``--overwrite``; the training state for ``--resume``."""
    if str(out).strip() in ("", "."):
        raise SsladError("--out must name a run folder (not empty, not the current folder)")
    try:
        data = Path(data_path).resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic-link loop, an unreadable parent
        raise SsladError(f"data folder {data_path} cannot be resolved: {exc}") from exc
    if data.is_dir() and (out.resolve() == data or data in out.resolve().parents):
        raise SsladError(f"--out {out} is inside the data folder {data_path}: the next training would read the "
                         "run's pictures as images; choose a folder outside it")
    state, finished = out / TRAIN_STATE, (out / "model.pt").is_file()
    if resume:
        if not state.is_file():
            raise SsladError(f"{out} holds a finished run: nothing to resume" if finished else
                             f"nothing to resume in {out} (no {TRAIN_STATE})")
        return load_train_state(state)
    if state.is_file() and not overwrite:
        p = load_train_state(state)["progress"]
        raise SsladError(f"{out} holds an unfinished run (stopped after {p['step']} steps, in epoch "
                         f"{p['epoch'] + 1}); continue it with --resume, or pass --overwrite to start again")
    if finished and not overwrite:
        raise SsladError(f"{out} already holds a run (model.pt); pass --overwrite or choose another --out")
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
    make_output_dir(out, "--out")
    return None


def initial_network(cfg: RunConfig, seed: int) -> tuple[PretextNet, str]:
    """The network as training starts it (all RNGs seeded with ``seed``, then built, then ``--weights`` loaded) and
    where its trunk came from: the first weights of a run, and the untrained baseline's network."""
    seed_everything(seed)
    model = PretextNet(NetConfig(arch=cfg.train.arch, seg_head=cfg.train.seg_weight > 0, decoder=cfg.train.decoder,
                                 seg_width=cfg.train.seg_width))
    return model, load_trunk_weights(model, cfg.train.weights)


def setup(cfg: RunConfig, out: Path, log: Callable[[str], None], resume: dict | None = None) -> Run:
    """Device and DDP, network (a bad --weights fails before decoding), data, then the config's last
    choices (the training's and the scoring's precision from the device, colour space from the data), then the
    generator built on them."""
    device = resolve_device(cfg.train.device)
    dist, device = init_distributed(device)
    cfg = cfg.override(train={"precision": resolve_precision(cfg.train.precision, device)},
                       score={"inference_precision": resolve_precision(cfg.score.inference_precision, device)})
    model, source = initial_network(cfg, cfg.train.seed + dist.rank)
    model = model.to(device)
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size, device=device)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    if len(fit) < 2:
        raise SsladError(f"{cfg.data.path}: need at least 2 good training images, found {len(data.train)}")
    if cfg.synth.color == "auto":
        cfg = cfg.override(synth={"color": "gray" if is_grayscale(fit.images) else "rgb"})
    steps_per_epoch = schedule(len(fit), cfg, dist.world)[1]
    cfg = cfg.override(train={"epochs": budget_epochs(cfg.train.epochs, cfg.train.min_steps, steps_per_epoch)})
    # the padded base images, one synthetic set (3 per image and variant) and its masks
    check_memory(len(fit), cfg.data.image_size, copies=1.3 + 4 * cfg.synth.variants)
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, device)
    gen = PretextGenerator(fit.images, renderer, cfg.synth, seed=cfg.train.seed, shard=(dist.rank, dist.world))
    model = training_layout(model)
    net = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist.main:
        save_yaml(cfg, out / "config.yaml")
        test = f"{len(data.test)} test images" if data.test is not None else "no test split"
        log(f"data: {data.name}, {len(fit)} train + {len(data.train) - len(fit)} held-out good images, {test}, "
            f"{cfg.data.image_size} px, on {device}")
        trunk_lr = f" (trunk x{cfg.train.trunk_lr:g})" if cfg.train.trunk_lr != 1 else ""
        log(f"model: {cfg.train.arch} ({source}), {cfg.train.optimizer} lr {cfg.train.lr:g}{trunk_lr}, "
            f"{cfg.train.precision}, backend {renderer.name}, scar {cfg.synth.scar} ({cfg.synth.color}), "
            f"regen every {cfg.synth.regen_every} epoch(s), {cfg.synth.variants} variant(s)/class/image")
    return Run(cfg, out, device, dist, data, fit, holdout, model, net, gen, log, resume)


def train_mode(model: PretextNet, net: torch.nn.Module, trunk_norm: str) -> None:
    """``net`` in training mode; with ``trunk_norm`` frozen, the trunk's BatchNorm layers keep normalising with
    (and never update) the statistics they started with, so training sees the network that scoring will."""
    net.train()
    if trunk_norm == "frozen":
        for m in model.trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # a torchvision ResNet trunk's only norm
                m.eval()


def make_optimizer(cfg: RunConfig, model: PretextNet) -> torch.optim.Optimizer:
    """The run's optimiser; with ``trunk_lr`` != 1 the trunk's parameters form a group of their own at that factor."""
    t = cfg.train
    params = list(model.parameters())
    if t.trunk_lr != 1:
        trunk = {id(q) for q in model.trunk.parameters()}
        params = [{"params": [q for q in params if id(q) in trunk], "lr_scale": t.trunk_lr},
                  {"params": [q for q in params if id(q) not in trunk], "lr_scale": 1.0}]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


@dataclass
class Progress:
    """Where the loop stands: the same on every rank except the sums of this rank's own samples."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0
    step: int = 0
    regen_index: int = -1
    regen_time_s: float = 0.0
    train_time_s: float = 0.0
    seen: int = 0  # samples trained on, this rank, finished epochs
    loss_sum: float = 0.0  # this epoch, this rank: sum of loss x batch size
    hits: float = 0.0
    count: int = 0
    last: dict = field(default_factory=dict)  # last finished epoch: loss, accuracy

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Loop:
    """The loop's moving parts: the schedule, the optimiser, the progress and this rank's shuffle."""

    steps_per_epoch: int
    batch: int
    total_steps: int
    opt: torch.optim.Optimizer
    shuffle: torch.Generator
    p: Progress = field(default_factory=Progress)
    perm: torch.Tensor | None = None  # this epoch's sample order, this rank
    crops: torch.Tensor | None = None  # (N, 2) crop windows of the current regeneration, on its device (--crop)
    pending: list = field(default_factory=list)  # per-step (loss x n, hits) still on the device

    def tally(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        """Keep per-step sums on the device (no sync per step); :meth:`flush` adds them in step order, so
        a resumed run's sums equal an uninterrupted run's to the bit."""
        self.pending.append(torch.stack([loss.double() * n, correct.double()]))
        self.p.count += n

    def flush(self, state_path: Path) -> None:
        for loss_sum, hits in torch.stack(self.pending).tolist() if self.pending else []:
            self.p.loss_sum += loss_sum
            self.p.hits += hits
        self.pending.clear()
        if not math.isfinite(self.p.loss_sum):  # diverged: the last good state stays on disk
            raise SsladError(f"training diverged by step {self.p.step} (loss {self.p.loss_sum}); the last "
                             f"good state, if any epoch finished, is {state_path}; retrain with a lower --lr")


def schedule(n_images: int, cfg: RunConfig, world: int) -> tuple[int, int]:
    """(samples per step per rank, steps per epoch). Every rank takes the same number of steps (DDP
    all-reduces each one), so whole groups per rank are counted from the total, not this rank's share."""
    samples = 3 * (n_images * cfg.synth.variants // world)
    if samples == 0:
        raise SsladError(f"{n_images} training images are too few for {world} processes")
    batch = max(3, cfg.train.batch_size // world)
    return batch, max(1, samples // batch)


def budget_epochs(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """The epochs a run trains: ``epochs``, or more where ``min_steps`` asks for them (a small set gets
    the same number of optimiser steps as a large one); 0 stays 0 (the untrained baseline)."""
    if epochs == 0 or min_steps == 0:
        return epochs
    return max(epochs, math.ceil(min_steps / steps_per_epoch))


def make_loop(run: Run) -> Loop:
    """The schedule and, with ``run.resume``, the exact point an interrupted run stopped at."""
    cfg, dist = run.cfg, run.dist
    batch, steps_per_epoch = schedule(len(run.fit), cfg, dist.world)
    loop = Loop(steps_per_epoch, batch, steps_per_epoch * cfg.train.epochs, make_optimizer(cfg, run.model),
                torch.Generator().manual_seed(cfg.train.seed * 7919 + dist.rank))
    if run.resume is not None:
        state = run.resume
        ranks = state.get("ranks") or [{"shuffle_rng": state["shuffle_rng"], "torch_rng": state["torch_rng"],
                                        "perm": state["progress"].get("perm")}]  # states before 0.2: one rank
        mine = ranks[dist.rank]  # load_resume_state checked the number of processes
        run.model.load_state_dict(state["model"])
        loop.opt.load_state_dict(state["optimizer"])
        loop.shuffle.set_state(mine["shuffle_rng"])
        torch.set_rng_state(mine["torch_rng"])
        loop.p, loop.perm = Progress.from_dict(state["progress"]), mine["perm"]
        run.log(f"resuming at epoch {loop.p.epoch + 1}, step {loop.p.step_in_epoch} of {steps_per_epoch}")
    return loop


def save_state(run: Run, loop: Loop) -> None:
    """Every rank's shuffle and RNG state, gathered to rank 0, which writes the training state (all ranks
    call this together)."""
    mine = {"shuffle_rng": loop.shuffle.get_state(), "torch_rng": torch.get_rng_state(), "perm": loop.perm}
    ranks = [mine]
    if run.dist.enabled:
        import torch.distributed as tdist

        ranks = [None] * run.dist.world
        tdist.all_gather_object(ranks, mine)
    if run.dist.main:
        save_train_state(run.out / TRAIN_STATE, run.model, loop.opt, asdict(loop.p), run.cfg.to_dict(), ranks)


def stop_requested(stop: StopSignals, run: Run) -> bool:
    """Whether to stop after this step; with several processes, all agree (one all-reduce), so every rank
    stops after the same step even if the signal reached them at different moments."""
    flag = stop.signal is not None
    if not run.dist.enabled:
        return flag
    import torch.distributed as tdist

    t = torch.tensor([float(flag)], device=run.device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


#: Offset of the crop windows' seed from the regeneration's (crops of regeneration k use seed + k + this).
CROP_SEED = 7_777_777


def regenerate(run: Run, loop: Loop, epoch: int, synth: Synthetic | None) -> tuple[Synthetic, float]:
    """The synthetic set for ``epoch``: regeneration k = epoch // N (seed + k) when due, else the last one;
    with ``--crop``, its crop windows too (drawn once per regeneration, so a resumed run takes the same)."""
    every, crop = run.cfg.synth.regen_every, run.cfg.train.crop
    if synth is not None and epoch % every != 0:
        return synth, 0.0
    k = epoch // every
    synth = run.gen.regenerate(k, reuse=synth)  # the last set is done with: rendered over
    if crop and crop < run.cfg.data.image_size:
        g = torch.Generator().manual_seed(run.cfg.train.seed + k + CROP_SEED)
        loop.crops = crop_offsets(synth.masks, crop, g)
    loop.p.regen_index, loop.p.regen_time_s = k, loop.p.regen_time_s + synth.seconds
    if run.dist.main:
        run.log(f"regeneration {k}: {len(synth.labels)} samples in {synth.seconds:.2f} s "
                f"(seed {run.cfg.train.seed + k})")
        if k == 0:
            save_class_grid(run.out / "pretext_samples.png", synth.images, synth.labels, CLASS_NAMES)
    return synth, synth.seconds


def end_epoch(run: Run, loop: Loop, log: EpochLog | None, lr: float, seconds: float, regen_s: float) -> None:
    """Close the epoch: the record in metrics.csv, the log line, the progress reset, the training state."""
    p, world = loop.p, run.dist.world
    loop.flush(run.out / TRAIN_STATE)
    p.last = {"loss": p.loss_sum / p.count, "accuracy": p.hits / p.count}
    if log is not None:
        log.add(epoch=p.epoch + 1, regen_index=p.regen_index, lr=lr, epoch_s=seconds, regen_s=regen_s,
                images_per_s=p.count * world / seconds, **p.last)
        run.log(f"epoch {p.epoch + 1}/{run.cfg.train.epochs}: loss {p.last['loss']:.4f}, pretext accuracy "
                f"{p.last['accuracy']:.3f}, {seconds:.1f} s")
        if p.last["loss"] > 100:  # the 3-way loss starts near 1.1, the mask loss near 0.7
            run.log(f"warning: the loss ({p.last['loss']:.3g}) is diverging; retrain with a lower --lr")
    p.epoch, p.step_in_epoch, p.seen, p.train_time_s = p.epoch + 1, 0, p.seen + p.count, p.train_time_s + seconds
    p.loss_sum, p.hits, p.count, loop.perm = 0.0, 0.0, 0, None
    save_state(run, loop)


def fit_pretext(run: Run) -> dict:
    """The pretext training loop; returns a summary of what it did (nothing with ``--epochs 0``).

    The training state is saved at the end of every epoch and when SIGINT/SIGTERM arrives (after
    the current step); with ``run.resume`` the loop continues exactly where that state left off.
    """
    cfg, loop = run.cfg, make_loop(run)
    p, amp = loop.p, cfg.train.precision == "bf16"
    log = EpochLog(run.out / "metrics.csv", append=run.resume is not None) if run.dist.main else None
    synth, lr = None, cosine_lr(cfg.train.lr, max(p.step - 1, 0), loop.total_steps, cfg.train.warmup)
    with StopSignals(run.log) as stop:
        for epoch in range(p.epoch, cfg.train.epochs):
            t0 = time.perf_counter()
            synth, regen_s = regenerate(run, loop, epoch, synth)
            if loop.perm is None:  # a fresh shuffle per epoch (a resumed epoch keeps its own)
                loop.perm = torch.randperm(len(synth.labels), generator=loop.shuffle)
            perm = loop.perm.to(run.device)
            train_mode(run.model, run.net, cfg.train.trunk_norm)
            steps = bar(range(p.step_in_epoch, loop.steps_per_epoch), f"epoch {epoch + 1}/{cfg.train.epochs}",
                        enabled=run.dist.main, unit="step")
            for i in steps:
                idx = perm[i * loop.batch:(i + 1) * loop.batch]
                lr = set_cosine_lr(loop.opt, cfg.train.lr, p.step, loop.total_steps, cfg.train.warmup)
                if loop.crops is not None:  # patch-level: P-pixel steps on S-pixel detail
                    xb, mb = take_crops(synth.images, synth.masks, loop.crops[idx], cfg.train.crop, index=idx)
                else:
                    xb, mb = synth.images[idx], synth.masks[idx]
                loss, correct = train_step(run.net, loop.opt, xb, synth.labels[idx], mb, amp, cfg.train.seg_weight,
                                           cfg.train.seg_loss)
                loop.tally(loss, correct, len(idx))
                p.step, p.step_in_epoch = p.step + 1, i + 1
                if i % 10 == 0:  # a host sync every 10 steps only: catches divergence, feeds the bar
                    loop.flush(run.out / TRAIN_STATE)
                    steps.set_postfix(loss=f"{p.loss_sum / p.count:.3f}", acc=f"{p.hits / p.count:.3f}")
                if stop_requested(stop, run):  # save mid-epoch, then stop with a pointer to --resume
                    loop.flush(run.out / TRAIN_STATE)
                    p.train_time_s += time.perf_counter() - t0
                    save_state(run, loop)
                    raise SsladError(f"stopped by {signal.Signals(stop.signal or signal.SIGTERM).name} in epoch "
                                     f"{epoch + 1}; the training state is saved: continue with the same command "
                                     "and --resume")
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            end_epoch(run, loop, log, lr, time.perf_counter() - t0, regen_s)
    last = p.last or {"loss": math.nan, "accuracy": math.nan}
    return {"epochs": cfg.train.epochs, "steps": p.step, "regen_index": p.regen_index, "train_images": len(run.fit),
            "pretext_loss": last["loss"], "pretext_accuracy": last["accuracy"], "train_time_s": p.train_time_s,
            "images_per_s": p.seen * run.dist.world / max(p.train_time_s, 1e-9), "regen_time_s": p.regen_time_s}


#: Regeneration index of the synthetic held-out set (its own seed, ``seed + this``: never a training set's).
SYNTHETIC_HOLDOUT_K = 1_000_003


def render_synthetic_holdout(holdout: ImageSet, renderer, cfg: RunConfig) -> Synthetic:
    """Pretext samples rendered onto the held-out good images with a seed of their own (about 200 samples
    whatever their number): the label-free yardstick every run records and ``auto`` chooses by."""
    variants = min(8, max(1, math.ceil(200 / (3 * len(holdout)))))
    synth = dataclasses.replace(cfg.synth, variants=variants)
    return PretextGenerator(holdout.images, renderer, synth, seed=cfg.train.seed).regenerate(SYNTHETIC_HOLDOUT_K)


def synthetic_holdout(model: PretextNet, holdout: ImageSet, renderer, cfg: RunConfig, map_fn=None,
                      embed_fn=None, precision: str | None = None, data: Synthetic | None = None) -> tuple:
    """(embeddings, per-pixel probabilities, anomalous (N,) bool, whole-view embeddings or None) of
    :func:`render_synthetic_holdout`'s samples (``data``, when they are rendered already)."""
    data = render_synthetic_holdout(holdout, renderer, cfg) if data is None else data
    out = infer_images(model, data.images, progress="score synthetic held-out", tile=cfg.score.tile, map_fn=map_fn,
                       embed_fn=embed_fn, whole=cfg.score.whole_view, precision=precision,
                       overlap=cfg.score.tile_overlap, tile_pass=cfg.score.tile_pass)
    return out.embeddings, out.maps, (data.labels > 0).cpu().numpy(), out.whole


def choose_map_weight(scorer: Scorer, parts_of: Callable[[torch.Tensor], torch.Tensor], views: torch.Tensor,
                      seed: int, size: int) -> tuple[float, dict[str, float]]:
    """``map_weight: auto``: probe anomalies (:func:`sslad.synth.probes.probe_set`: blur, noise and shift inside
    soft blobs, which no plan renders and neither map source trained on) on the good ``views``, those views beside
    them unaltered; their (N, 2, h, w) ``parts_of`` maps (``scorer.parts_fn``'s, the map scales fitted) joined with
    each of :data:`MAP_WEIGHT_CHOICES`, scored by AUPRO against the probes' masks; the best is kept (a tie: the
    earlier, the even join first). Measured (docs/results.md, session 62): over the joins of five networks this
    AUPRO ranks them as the real test AUPRO does, the pretext yardstick against it. Returns (the weight, each
    candidate's probe AUPRO keyed by its text)."""
    from sslad.scoring.metrics import aupro

    images, masks = probe_set(views, seed + PROBE_SEED_OFFSET)
    scaled = scorer.scale_parts(parts_of(images))
    values = {str(w): aupro(scorer.maps(scorer.join_parts(scaled, w), size).numpy(), masks.numpy())
              for w in MAP_WEIGHT_CHOICES}
    best = simplest_within(values, list(values), 0.0)
    return float(best), values


def _fit_maps(scorer: Scorer, model: PretextNet, fit: ImageSet, holdout: ImageSet | None, cfg: RunConfig,
              precision: str, patches: torch.Tensor | None = None, embed: bool = True,
              probe_views: torch.Tensor | None = None) -> tuple:
    """Fit ``scorer``'s patch density (``map: density|both``; on ``patches`` when they are sampled already) and,
    for ``both``, its map scales and (``map_weight: auto``, on probes of ``probe_views``) its weight; the fit and
    held-out images' :class:`Outputs` (embeddings, maps as the scorer makes them; without ``embed``, no embeddings
    (empty) and the fit images' maps only where they set the scales, else None)."""
    tile, overlap, tile_pass = cfg.score.tile, cfg.score.tile_overlap, cfg.score.tile_pass
    calibrate_on_holdout = holdout is not None and Scorer.calibrates_on_holdout(len(holdout))  # fit maps unused
    infer = functools.partial(infer_images, model, tile=tile, embed_fn=scorer.embed_fn, whole=scorer.whole_view,
                              precision=precision, overlap=overlap, tile_pass=tile_pass)
    fit_out = None
    if scorer.map_source in ("density", "both"):
        if patches is None and embed and calibrate_on_holdout:  # the embedding pass draws the patches too
            sampler = PatchSampler(len(fit), seed=cfg.train.seed, stages=scorer.map_layers,
                                   tiles=map_passes(fit.images.shape[-1], tile, overlap, tile_pass))
            fit_out = infer(fit.images, progress="embed train", maps=False, patch_sink=sampler)
            patches = sampler.samples()
        elif patches is None:
            patches = sample_patches(model, fit.images, seed=cfg.train.seed, tile=tile, precision=precision,
                                     stages=scorer.map_layers, overlap=overlap, tile_pass=tile_pass)
        scorer.fit_patches(patches)
    both = scorer.map_source == "both"  # one pass gives both sources' maps; scaled once the held-out ones are in
    map_fn = scorer.parts_fn if both else scorer.map_fn  # a patch density's needs it fitted (above)
    if fit_out is None and (embed or not calibrate_on_holdout):
        fit_out = infer(fit.images, progress="embed train", maps=not calibrate_on_holdout, map_fn=map_fn, embed=embed)
    hold = infer(holdout.images, progress="embed held-out", map_fn=map_fn, embed=embed) if holdout is not None else None
    if both:
        scorer.fit_map_scales((hold if calibrate_on_holdout else fit_out).maps, cfg.data.image_size)
        if cfg.score.map_weight == "auto" and probe_views is not None and len(probe_views):
            parts_of = functools.partial(infer, progress="map weight (auto): probes", map_fn=scorer.parts_fn,
                                         embed=False)
            scorer.map_weight, scorer.probe_aupro = choose_map_weight(
                scorer, lambda images: parts_of(images).maps, probe_views, cfg.train.seed, cfg.data.image_size)
        fit_out, hold = (o if o is None or o.maps is None else o._replace(maps=scorer.combine_parts(o.maps))
                         for o in (fit_out, hold))
    return fit_out, hold


def choose_map_layers(model: PretextNet, fit: ImageSet, holdout: ImageSet, cfg: RunConfig, synth: Synthetic,
                      precision: str) -> tuple[str, dict[str, float]]:
    """``map_layers: auto``: each choice's patch density fitted (and scaled) as the run's would be, its maps of the
    synthetic held-out set (pretext anomalies on the held-out good images, masks from their plans; no test label)
    scored by pixel AUROC; the first choice (layer2-3) is kept unless another beats it by more than ``auto_margin``.
    Returns (the choice, choice -> synthetic pixel AUROC)."""
    from sslad.scoring.metrics import auroc

    masks = (synth.masks > 0).cpu().numpy().ravel()
    samples = sample_patches(model, fit.images, seed=cfg.train.seed, tile=cfg.score.tile, precision=precision,
                             overlap=cfg.score.tile_overlap, tile_pass=cfg.score.tile_pass,
                             stages=[parse_stages(k) for k in MAP_LAYER_CHOICES])  # one pass over the fit images
    values: dict[str, float] = {}
    for layers, patches in zip(MAP_LAYER_CHOICES, samples, strict=True):  # the maps alone: no image scores
        c = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, map_layers=layers, whole_view=0))
        scorer = Scorer(dataclasses.replace(c.score, inference_precision=precision))
        _fit_maps(scorer, model, fit, holdout, c, precision, patches=patches, embed=False)
        out = infer_images(model, synth.images, progress=f"map layers {layers}: synthetic held-out",
                           tile=c.score.tile, map_fn=scorer.map_fn, precision=precision, overlap=c.score.tile_overlap,
                           tile_pass=c.score.tile_pass, embed=False)
        values[layers] = auroc(masks, scorer.maps(out.maps, cfg.data.image_size).numpy().ravel())
    return simplest_within(values, list(MAP_LAYER_CHOICES), cfg.score.auto_margin), values


def fit_scorer(model: PretextNet, fit: ImageSet, holdout: ImageSet | None, cfg: RunConfig, renderer=None) -> Scorer:
    """Density on the network outputs of the fit images; thresholds from the held-out ones (``threshold_rule``:
    a predictive bound from their scores' exponential tail, that tail's fitted quantile, or their empirical quantile
    with their augmented views when they are few). Pretext anomalies rendered onto the held-out images (with a
    ``renderer``) give every image-score mode's synthetic AUROC, recorded; ``image_score: auto`` keeps the best of
    them, ``map_layers: auto`` the density maps' stages that outline them best (:func:`choose_map_layers`)."""
    precision = resolve_precision(cfg.score.inference_precision, next(model.parameters()).device)
    synth = None
    if holdout is not None and renderer is not None:
        synth = render_synthetic_holdout(holdout, renderer, cfg)
    map_auroc: dict[str, float] = {}
    if cfg.score.map_layers == "auto":
        layers = MAP_LAYER_CHOICES[0]  # without density maps, or nothing to judge by: layer2-3
        if synth is not None and cfg.score.map in ("density", "both"):
            layers, map_auroc = choose_map_layers(model, fit, holdout, cfg, synth, precision)
        cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, map_layers=layers))
    scorer = Scorer(dataclasses.replace(cfg.score, inference_precision=precision))
    scorer.synthetic_map_auroc = map_auroc
    views = None if synth is None else synth.images[synth.labels == 0]  # augmented views of the held-out images
    fit_out, hold = _fit_maps(scorer, model, fit, holdout, cfg, precision, probe_views=views)
    rendered = None
    if synth is not None:  # every run records each mode's synthetic AUROC
        rendered = synthetic_holdout(model, holdout, renderer, cfg, scorer.map_fn, scorer.embed_fn, precision, synth)
    return scorer.fit(fit_out.embeddings, fit_out.maps, cfg.data.image_size, holdout=hold, synthetic=rendered,
                      whole=fit_out.whole)


def scoring_line(cfg: RunConfig, fit: int, holdout: int) -> str:
    """The log line before the scorer's fit: what it embeds, in how many network passes per image."""
    s = cfg.score
    passes = network_passes(cfg.data.image_size, s.tile, s.tile_overlap, s.tile_pass) + (1 if s.whole_view else 0)
    held = f", thresholds from {holdout} held-out ones" if Scorer.calibrates_on_holdout(holdout) else ""
    return f"fitting the scorer on {fit} good images{held} ({passes} network pass{'es' * (passes > 1)} per image)"


def map_layers(scorer: Scorer) -> str:
    """The trunk stages of ``scorer``'s density maps as ``score.map_layers`` spells them (``"2,3"``)."""
    return ",".join(map(str, scorer.map_layers))


def scorer_choices(scorer: Scorer) -> dict:
    """What ``scorer``'s ``auto`` settings chose and each choice's label-free yardstick, for ``metrics.json``."""
    return {"image_score_chosen": scorer.image_score, "synthetic_auroc": scorer.synthetic_auroc,
            "map_layers": map_layers(scorer), "map_layers_synthetic_auroc": scorer.synthetic_map_auroc,
            "map_weight_chosen": scorer.map_weight, "map_weight_probe_aupro": scorer.probe_aupro}


def choice_lines(scorer: Scorer) -> list[str]:
    """A log line for each ``auto`` map setting ``scorer`` chose: the choice and every candidate's yardstick."""
    lines = []
    if scorer.synthetic_map_auroc:
        lines.append(f"map layers (auto): {map_layers(scorer)}, synthetic pixel AUROC "
                     + ", ".join(f"{k} {v:.3f}" for k, v in scorer.synthetic_map_auroc.items()))
    if scorer.probe_aupro:
        lines.append(f"map weight (auto): {scorer.map_weight}, probe AUPRO "
                     + ", ".join(f"{k} {v:.3f}" for k, v in scorer.probe_aupro.items()))
    return lines


def save_scored_network(out: Path, model: torch.nn.Module, cfg: RunConfig, scorer: Scorer, summary: dict, *,
                        epoch: int, regen_index: int) -> None:
    """``out/model.pt`` of a finished network: weights, settings, the fitted scorer and the run's summary (what
    ``metrics.json`` gets beside the test figures, kept so that a scoring cut short resumes with it)."""
    save_checkpoint(out / "model.pt", model, cfg.to_dict(), epoch=epoch, regen_index=regen_index,
                    scorer_state=scorer.state_dict(), extra={"summary": json_safe(summary)})


def untrained_baseline(run: Run, renderer) -> dict:
    """The untrained network (the run's first weights, :func:`initial_network` with the run's seed) scored exactly as
    the run is — the same fit and held-out images, the same scorer settings — on the test split, and saved as a run
    of its own in ``RUN_DIR/untrained`` (``model.pt``, ``config.yaml``, ``metrics.json``, ``scores.csv``,
    ``report.png``: the ``--epochs 0`` run, for ``predict``/``eval``/``export`` where it is the better detector).
    Returns its image AUROC (and pixel AUROC / AUPRO where there are masks) for the run's ``metrics.json``."""
    out = run.out / "untrained"
    model = inference_layout(initial_network(run.cfg, run.cfg.train.seed)[0].to(run.device).eval())
    scorer = fit_scorer(model, run.fit, run.holdout, run.cfg, renderer)
    cfg = run.cfg.override(train={"epochs": 0})
    out.mkdir(exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    summary = {"dataset": run.data.name, "untrained_of": str(run.out), "seed": cfg.train.seed, "epochs": 0,
               **scorer_choices(scorer)}
    save_scored_network(out, model, cfg, scorer, summary, epoch=0, regen_index=-1)
    metrics = evaluate_set(Detector(model, scorer, cfg.data.image_size), run.data.test, out, extra=summary)
    keep = ("image_auroc", "per_type_auroc", "pixel_auroc", "aupro")
    return {k: metrics[k] for k in keep if k in metrics} | {"image_score_chosen": scorer.image_score,
                                                            "run_dir": str(out)}


def baseline_line(metrics: dict) -> str | None:
    """One line: what the pretext training is worth against the untrained baseline (None without one)."""
    base, trained = metrics.get("untrained"), metrics.get("image_auroc")
    if not base or base.get("image_auroc") is None or trained is None:
        return None
    gain = 100 * (trained - base["image_auroc"])
    line = (f"untrained network, scored the same way: image AUROC {100 * base['image_auroc']:.1f} "
            f"(the pretext training: {gain:+.1f} points)")
    if gain < 1:
        line += ("; warning: the trained network is no better than an untrained one on this data "
                 f"(docs/results.md, elpv:poly); the untrained run is saved in {base.get('run_dir', 'untrained/')}")
    return line


def load_resume_state(out: Path, is_main: bool, overwrite: bool, resume: bool, data_path: str) -> dict | None:
    """Rank 0 checks (and for ``--overwrite`` clears) the run folder; with ``--resume`` every rank reads the
    training state, so every process continues from the same point."""
    state = prepare_run_dir(out, data_path, overwrite, resume) if is_main else None
    if resume and not is_main:
        state = load_train_state(out / TRAIN_STATE)
    world, saved = int(os.environ.get("WORLD_SIZE", "1")), len((state or {}).get("ranks") or [None])
    if state is not None and saved != world:  # each rank's sample order and RNG belong to its own process
        raise SsladError(f"the run was trained by {saved} process(es), this is {world}: resume it with the same "
                         f"number of processes (torchrun --nproc-per-node {saved})")
    return state


def scoring_was_cut(out: Path) -> bool:
    """A run saved at the end of its training (``model.pt``: network, fitted scorer, the training's summary) and
    stopped while it scored its test split: no training state is left and no ``metrics.json`` was written."""
    return (out / "model.pt").is_file() and not (out / TRAIN_STATE).is_file() and not (out / "metrics.json").is_file()


def finish_scoring(out: Path, log: Callable[[str], None]) -> dict:
    """``--resume`` of a run whose scoring was cut: the end of :func:`train_run` again, from ``model.pt``, on the
    data and device saved with it; metrics.json gets the same summary as an uninterrupted run's."""
    detector = Detector.load(out, "cpu")  # model.pt read once, checked as every reader checks it; then the device
    cfg = RunConfig.from_dict(detector.info["config"])  # its settings name (the scorer's state is device-free)
    detector.model.to(resolve_device(cfg.train.device))
    summary = (detector.info.get("extra") or {}).get("summary", {})
    log(f"resuming the run in {out}: its training is saved (model.pt), scoring its test split")
    if cfg.score.baseline:
        log("(--baseline is not re-run here: it needs the training images; run sslad train ... --epochs 0 beside it)")
    metrics = evaluate_run(out, cfg.data.path, cfg.data.category, out, extra=summary, detector=detector)
    log(results_table(metrics))
    return metrics


def train_run(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Train the pretext model, fit the scorer, save, evaluate; returns ``metrics.json``'s content.

    With ``resume``, the run in ``out_dir`` continues from its training state, with the settings
    saved there (``cfg`` is not re-read); a run stopped while scoring its test split is scored.
    """
    out = Path(out_dir)
    created = not out.exists()
    cfg = cfg.resolved()
    is_main = int(os.environ.get("RANK", "0")) == 0
    if resume and scoring_was_cut(out):
        return finish_scoring(out, log) if is_main else {}
    state = load_resume_state(out, is_main, overwrite, resume, cfg.data.path)
    if state is not None:
        cfg = RunConfig.from_dict(state["config"])
        if is_main:
            log(f"resuming the run in {out} with its saved settings (flags other than --out are not re-read)")
    try:
        run = setup(cfg, out, log, state)
    except BaseException:
        if created and is_main:  # a failed start leaves no empty run folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    cfg = run.cfg
    stats = fit_pretext(run)
    if run.dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if not run.dist.main:
        return {}
    inference_layout(run.model.eval())  # score as eval/predict will load it
    log(scoring_line(cfg, len(run.fit), 0 if run.holdout is None else len(run.holdout)))  # silent minutes in a log
    scorer = fit_scorer(run.model, run.fit, run.holdout, cfg, run.gen.renderer)
    if note := scorer.margin_note():
        log(f"note: {note}")
    for line in choice_lines(scorer):
        log(line)
    summary = {"dataset": run.data.name, "backend": run.gen.renderer.name, "device": str(run.device),
               "scar": cfg.synth.scar, "color": cfg.synth.color, "regen_every": cfg.synth.regen_every,
               "precision": cfg.train.precision, "image_score": cfg.score.image_score,
               "decoder": cfg.train.decoder, "seg_width": cfg.train.seg_width, "seg_loss": cfg.train.seg_loss,
               "crop": cfg.train.crop,
               "irregular": cfg.synth.irregular, "tile": cfg.score.tile, "whole_view": cfg.score.whole_view,
               "tile_overlap": cfg.score.tile_overlap, "tile_pass": cfg.score.tile_pass,
               "map": cfg.score.map, "map_weight": cfg.score.map_weight, **scorer_choices(scorer),
               "inference_precision": scorer.precision,
               "seed": cfg.train.seed,
               "world_size": run.dist.world, "holdout_images": 0 if run.holdout is None else len(run.holdout),
               "threshold_set": scorer.calibration["set"], **stats}
    save_scored_network(run.out, run.model, cfg, scorer, summary, epoch=stats["epochs"],
                        regen_index=stats["regen_index"])
    (run.out / TRAIN_STATE).unlink(missing_ok=True)  # finished: model.pt is the run's one artefact
    if cfg.score.baseline:  # after the save: the trained run is never lost to it
        if cfg.train.epochs == 0:
            log("--baseline: an --epochs 0 run is its own baseline; skipped")
        elif run.data.test is None or len(run.data.test) == 0:
            log("--baseline: no test split to score the untrained network on; skipped")
        else:
            log(f"fitting and scoring the untrained network beside the run (--baseline), into {run.out / 'untrained'}")
            summary["untrained"] = untrained_baseline(run, run.gen.renderer)
    detector = Detector(run.model, scorer, cfg.data.image_size)
    if run.data.test is not None and len(run.data.test):
        log(f"scoring {len(run.data.test)} test images")
    metrics = evaluate_set(detector, run.data.test, run.out, extra=summary)
    log(results_table(metrics))
    line = baseline_line(metrics)
    if line:
        log(line)
    return metrics


__all__ = ["RUN_FILES", "cosine_lr", "finite_mean", "fit_pretext", "fit_scorer", "optimizer_step", "set_cosine_lr",
           "setup", "train_run", "train_step"]
