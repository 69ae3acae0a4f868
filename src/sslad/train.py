"""``sslad train``: setup -> fit_pretext -> fit_scorer -> save -> evaluate.

folder -> uint8 tensors on the device -> held-out split -> pretext regeneration every N epochs ->
training (3-way classes + per-pixel masks) -> network outputs of good images -> scorer fit and
thresholds -> test scores and maps -> metrics and run folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sslad.checkpoint import save_checkpoint
from sslad.config import RunConfig, save_yaml
from sslad.data import AnomalyDataset, ImageSet, holdout_split, load_dataset
from sslad.errors import SsladError
from sslad.evaluate import evaluate_set
from sslad.models import NetConfig, PretextNet, infer_images, load_trunk_weights
from sslad.progress import bar
from sslad.report import EpochLog, results_table, save_class_grid
from sslad.runtime import Dist, init_distributed, resolve_device, resolve_precision, seed_everything
from sslad.scoring import AnomalyScorer
from sslad.synth import CLASS_NAMES
from sslad.synth.backends import make_renderer
from sslad.synth.generator import PretextGenerator


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               mb: torch.Tensor | None, amp: bool, seg_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on uint8 images, labels and 0/1 masks; returns (loss, correct count) on the device.

    Loss: cross-entropy of the 3-way classes, plus ``seg_weight`` x binary cross-entropy of the
    per-pixel logits against the masks averaged down to the logits' resolution (soft targets).
    """
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, _, seg = net(xb)
        loss = F.cross_entropy(logits.float(), yb)
        if seg is not None and mb is not None and seg_weight > 0:
            target = F.adaptive_avg_pool2d(mb[:, None].float(), seg.shape[-2:])
            loss = loss + seg_weight * F.binary_cross_entropy_with_logits(seg.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), (logits.argmax(1) == yb).sum()


def cosine_lr(base: float, step: int, total: int) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


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


def setup(cfg: RunConfig, out: Path, overwrite: bool, log: Callable[[str], None]) -> Run:
    """Device and DDP, run folder, network (a bad --weights fails before decoding), data, generator."""
    device = resolve_device(cfg.train.device)
    dist, device = init_distributed(device)
    if dist.main:
        if (out / "model.pt").exists() and not overwrite:
            raise SsladError(f"{out} already holds a run (model.pt); pass --overwrite or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed + dist.rank)
    model = PretextNet(NetConfig(arch=cfg.train.arch, seg_head=cfg.train.seg_weight > 0))
    source = load_trunk_weights(model, cfg.train.weights)
    model = model.to(device)
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size, device=device)
    fit_idx, hold_idx = holdout_split(len(data.train), cfg.score.holdout, cfg.score.holdout_min)
    fit, holdout = data.train.subset(fit_idx), (data.train.subset(hold_idx) if len(hold_idx) else None)
    if len(fit) < 2:
        raise SsladError(f"{cfg.data.path}: need at least 2 good training images, found {len(data.train)}")
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, device)
    gen = PretextGenerator(fit.images, renderer, cfg.synth, seed=cfg.train.seed, shard=(dist.rank, dist.world))
    cfg = cfg.override(synth={"color": gen.color}, train={"precision": resolve_precision(cfg.train.precision, device)})
    if device.type == "cuda" or cfg.train.precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    net = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist.main:
        save_yaml(cfg, out / "config.yaml")
        test = f"{len(data.test)} test images" if data.test is not None else "no test split"
        log(f"data: {data.name}, {len(fit)} train + {len(hold_idx)} held-out good images, {test}, "
            f"{cfg.data.image_size} px, on {device}")
        log(f"model: {cfg.train.arch} ({source}), {cfg.train.optimizer} lr {cfg.train.lr:g}, {cfg.train.precision}, "
            f"backend {renderer.name}, scar {cfg.synth.scar} ({gen.color}), regen every {cfg.synth.regen_every} "
            f"epoch(s), {cfg.synth.variants} variant(s)/class/image")
    return Run(cfg, out, device, dist, data, fit, holdout, model, net, gen, log)


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def fit_pretext(run: Run) -> dict:
    """The pretext training loop; returns a summary of what it did (nothing with ``--epochs 0``)."""
    cfg, dist, device, net = run.cfg, run.dist, run.device, run.net
    n_train, epochs = len(run.fit), cfg.train.epochs
    # Every rank takes the same number of steps (DDP all-reduces each one): count whole groups
    # per rank from the total, not from this rank's share.
    samples = 3 * (n_train * cfg.synth.variants // dist.world)
    if samples == 0:
        raise SsladError(f"{n_train} training images are too few for {dist.world} processes")
    batch = max(3, cfg.train.batch_size // dist.world)
    steps_per_epoch = max(1, samples // batch)
    total_steps = steps_per_epoch * epochs
    opt = make_optimizer(cfg, net.parameters())
    amp, seg_w = cfg.train.precision == "bf16", cfg.train.seg_weight
    epoch_log = EpochLog(run.out / "metrics.csv") if dist.main else None
    shuffle = torch.Generator().manual_seed(cfg.train.seed * 7919 + dist.rank)
    step, regen_total, seen, train_t, k = 0, 0.0, 0, 0.0, -1
    last = {"loss": math.nan, "accuracy": math.nan}
    for epoch in range(epochs):
        t0, regen_s = time.perf_counter(), 0.0
        # regenerate the synthetic set every N epochs (regeneration k uses seed + k)
        if epoch % cfg.synth.regen_every == 0:
            k = epoch // cfg.synth.regen_every
            x, y, m, regen_s = run.gen.regenerate(k)
            regen_total += regen_s
            if dist.main:
                run.log(f"regeneration {k}: {len(y)} samples in {regen_s:.2f} s (seed {cfg.train.seed + k})")
                if k == 0:
                    save_class_grid(run.out / "pretext_samples.png", x, y, CLASS_NAMES)
        # one pass over a fresh shuffle, cosine learning rate per step; loss stays on the device
        perm = torch.randperm(len(y), generator=shuffle).to(device)
        net.train()
        loss_sum, hits, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
        steps = bar(range(steps_per_epoch), f"epoch {epoch + 1}/{epochs}", enabled=dist.main, unit="step")
        for i in steps:
            idx = perm[i * batch:(i + 1) * batch]
            lr = cosine_lr(cfg.train.lr, step, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            loss, correct = train_step(net, opt, x[idx], y[idx], m[idx], amp, seg_w)
            step, count = step + 1, count + len(idx)
            loss_sum += loss * len(idx)
            hits += correct
            if i % 10 == 0 or i == steps_per_epoch - 1:
                steps.set_postfix(loss=f"{float(loss_sum) / count:.3f}", acc=f"{float(hits) / count:.3f}")
        # per-epoch record (metrics.csv) and log line
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        train_t, seen = train_t + dt, seen + count
        last = {"loss": float(loss_sum) / count, "accuracy": float(hits) / count}
        if dist.main:
            epoch_log.add(epoch=epoch + 1, regen_index=k, lr=lr, epoch_s=dt, regen_s=regen_s,
                          images_per_s=count * dist.world / dt, **last)
            run.log(f"epoch {epoch + 1}/{epochs}: loss {last['loss']:.4f}, pretext accuracy "
                    f"{last['accuracy']:.3f}, {dt:.1f} s")
    return {"epochs": epochs, "steps": step, "regen_index": k, "train_images": n_train,
            "pretext_loss": last["loss"], "pretext_accuracy": last["accuracy"], "train_time_s": train_t,
            "images_per_s": seen * dist.world / max(train_t, 1e-9), "regen_time_s": regen_total}


def fit_scorer(model: PretextNet, fit: ImageSet, holdout: ImageSet | None, cfg: RunConfig) -> AnomalyScorer:
    """Density on the network outputs of the fit images; thresholds from the held-out ones."""
    fit_out = infer_images(model, fit.images, progress="embed train")
    hold_out = infer_images(model, holdout.images, progress="embed held-out") if holdout is not None else None
    return AnomalyScorer(cfg.score).fit(fit_out, hold_out, cfg.data.image_size)


def train_run(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Train the pretext model, fit the scorer, save, evaluate; returns ``metrics.json``'s content."""
    cfg = cfg.resolved()
    run = setup(cfg, Path(out_dir), overwrite, log)
    cfg = run.cfg
    try:
        stats = fit_pretext(run)
    except KeyboardInterrupt:
        if run.dist.main:
            save_checkpoint(run.out / "model.pt", run.model, cfg.to_dict(), epoch=-1, regen_index=-1,
                            scorer_state=None, threshold=None, extra={"interrupted": True})
        raise SsladError(f"interrupted; weights so far saved to {run.out / 'model.pt'}") from None
    if run.dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if not run.dist.main:
        return {}
    run.model.eval().to(memory_format=torch.contiguous_format)  # score as eval/predict will load it
    scorer = fit_scorer(run.model, run.fit, run.holdout, cfg)
    save_checkpoint(run.out / "model.pt", run.model, cfg.to_dict(), epoch=stats["epochs"],
                    regen_index=stats["regen_index"], scorer_state=scorer.state_dict(), threshold=scorer.threshold)
    summary = {"dataset": run.data.name, "backend": run.gen.renderer.name, "device": str(run.device),
               "scar": cfg.synth.scar, "color": cfg.synth.color, "regen_every": cfg.synth.regen_every,
               "precision": cfg.train.precision, "image_score": cfg.score.image_score, "seed": cfg.train.seed,
               "world_size": run.dist.world, "holdout_images": 0 if run.holdout is None else len(run.holdout),
               "threshold_set": scorer.calibration["set"], **stats}
    metrics = evaluate_set(run.model, scorer, run.data.test, run.out, extra=summary)
    log(results_table(metrics))
    return metrics


__all__ = ["cosine_lr", "fit_pretext", "fit_scorer", "setup", "train_run", "train_step"]
