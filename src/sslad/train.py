"""``sslad train``: setup -> fit_pretext -> fit_scorer -> save -> evaluate.

folder -> uint8 tensors on the device -> held-out split -> pretext regeneration every N epochs ->
training (3-way classes + per-pixel masks) -> network outputs of good images -> scorer fit and
thresholds -> test scores and maps -> metrics and run folder.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sslad.checkpoint import TRAIN_STATE, load_train_state, save_checkpoint, save_train_state
from sslad.config import RunConfig, save_yaml
from sslad.data import AnomalyDataset, ImageSet, load_dataset, split_train
from sslad.data.io import check_memory
from sslad.errors import SsladError
from sslad.evaluate import evaluate_set
from sslad.files import make_output_dir
from sslad.models import NetConfig, PretextNet, infer_images, load_trunk_weights
from sslad.progress import bar
from sslad.report import EpochLog, results_table, save_class_grid
from sslad.runtime import Dist, StopSignals, init_distributed, resolve_device, resolve_precision, seed_everything
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


class Tally:
    """Per-step (loss x images, hits) kept on the device (no sync per step), added up on the host in
    step order, so a resumed run's sums equal an uninterrupted run's to the bit. Flushing also
    catches a diverged (non-finite) loss, leaving the last good training state on disk."""

    def __init__(self, progress: dict, state_path: Path):
        self.p, self.state_path, self.pending = progress, state_path, []

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.pending.append(torch.stack([loss.double() * n, correct.double()]))

    def flush(self) -> None:
        for loss_sum, hits in torch.stack(self.pending).tolist() if self.pending else []:
            self.p["loss_sum"] += loss_sum
            self.p["hits"] += hits
        self.pending.clear()
        if not math.isfinite(self.p["loss_sum"]):
            raise SsladError(f"training diverged by step {self.p['step']} (loss {self.p['loss_sum']}); the last "
                             f"good state, if any epoch finished, is {self.state_path}; retrain with a lower --lr")


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


#: What sslad writes into a run folder (train, eval, predict): all that --overwrite removes, and only that.
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.json", "scores.csv", "scores.png", "pretext_samples.png",
             "model.pt", TRAIN_STATE, "predictions.csv")
RUN_DIRS = ("eval", "maps")


def prepare_run_dir(out: Path, data_path: str, overwrite: bool, resume: bool) -> dict | None:
    """Check ``--out`` before any work; clear it for ``--overwrite``; the training state for ``--resume``."""
    if str(out).strip() in ("", "."):
        raise SsladError("--out must name a run folder (not empty, not the current folder)")
    data = Path(data_path).resolve()
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


def setup(cfg: RunConfig, out: Path, log: Callable[[str], None], resume: dict | None = None) -> Run:
    """Device and DDP, network (a bad --weights fails before decoding), data, generator."""
    device = resolve_device(cfg.train.device)
    dist, device = init_distributed(device)
    seed_everything(cfg.train.seed + dist.rank)
    model = PretextNet(NetConfig(arch=cfg.train.arch, seg_head=cfg.train.seg_weight > 0))
    source = load_trunk_weights(model, cfg.train.weights)
    model = model.to(device)
    data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size, device=device)
    fit, holdout = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    if len(fit) < 2:
        raise SsladError(f"{cfg.data.path}: need at least 2 good training images, found {len(data.train)}")
    # the padded base images, one synthetic set (3 per image and variant) and its masks
    check_memory(len(fit), cfg.data.image_size, copies=1.3 + 4 * cfg.synth.variants)
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
        log(f"data: {data.name}, {len(fit)} train + {len(data.train) - len(fit)} held-out good images, {test}, "
            f"{cfg.data.image_size} px, on {device}")
        log(f"model: {cfg.train.arch} ({source}), {cfg.train.optimizer} lr {cfg.train.lr:g}, {cfg.train.precision}, "
            f"backend {renderer.name}, scar {cfg.synth.scar} ({gen.color}), regen every {cfg.synth.regen_every} "
            f"epoch(s), {cfg.synth.variants} variant(s)/class/image")
    return Run(cfg, out, device, dist, data, fit, holdout, model, net, gen, log, resume)


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def fit_pretext(run: Run) -> dict:
    """The pretext training loop; returns a summary of what it did (nothing with ``--epochs 0``).

    The training state is saved at the end of every epoch and when SIGINT/SIGTERM arrives (after
    the current step); with ``run.resume`` the loop continues exactly where that state left off.
    """
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
    shuffle = torch.Generator().manual_seed(cfg.train.seed * 7919 + dist.rank)
    p = {"epoch": 0, "step_in_epoch": 0, "step": 0, "regen_index": -1, "regen_time_s": 0.0, "seen": 0,
         "train_time_s": 0.0, "loss_sum": 0.0, "hits": 0.0, "count": 0, "perm": None, "last": {}}
    if run.resume is not None:  # continue an interrupted run exactly where it stopped
        run.model.load_state_dict(run.resume["model"])
        opt.load_state_dict(run.resume["optimizer"])
        shuffle.set_state(run.resume["shuffle_rng"])
        torch.set_rng_state(run.resume["torch_rng"])
        p = run.resume["progress"]
        run.log(f"resuming at epoch {p['epoch'] + 1}, step {p['step_in_epoch']} of {steps_per_epoch}")
    epoch_log = EpochLog(run.out / "metrics.csv", append=run.resume is not None) if dist.main else None

    def save_state() -> None:
        if dist.main:
            save_train_state(run.out / TRAIN_STATE, run.model, opt, shuffle, p, cfg.to_dict())

    x, tally = None, Tally(p, run.out / TRAIN_STATE)
    with StopSignals(run.log) as stop:
        for epoch in range(p["epoch"], epochs):
            t0, regen_s = time.perf_counter(), 0.0
            # regenerate the synthetic set every N epochs (regeneration k uses seed + k)
            if epoch % cfg.synth.regen_every == 0 or x is None:
                k = epoch // cfg.synth.regen_every
                x, y, m, regen_s = run.gen.regenerate(k)
                p["regen_index"], p["regen_time_s"] = k, p["regen_time_s"] + regen_s
                if dist.main:
                    run.log(f"regeneration {k}: {len(y)} samples in {regen_s:.2f} s (seed {cfg.train.seed + k})")
                    if k == 0:
                        save_class_grid(run.out / "pretext_samples.png", x, y, CLASS_NAMES)
            # one pass over a fresh shuffle, cosine learning rate per step
            if p["step_in_epoch"] == 0:
                p["perm"] = torch.randperm(len(y), generator=shuffle)
            perm = p["perm"].to(device)
            net.train()
            lr = cosine_lr(cfg.train.lr, max(p["step"] - 1, 0), total_steps)
            steps = bar(range(p["step_in_epoch"], steps_per_epoch), f"epoch {epoch + 1}/{epochs}",
                        enabled=dist.main, unit="step")
            for i in steps:
                idx = perm[i * batch:(i + 1) * batch]
                lr = cosine_lr(cfg.train.lr, p["step"], total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss, correct = train_step(net, opt, x[idx], y[idx], m[idx], amp, seg_w)
                tally.add(loss, correct, len(idx))
                p["step"], p["step_in_epoch"], p["count"] = p["step"] + 1, i + 1, p["count"] + len(idx)
                if i % 10 == 0 or i == steps_per_epoch - 1 or stop.signal is not None:
                    tally.flush()
                    steps.set_postfix(loss=f"{p['loss_sum'] / p['count']:.3f}", acc=f"{p['hits'] / p['count']:.3f}")
                if stop.signal is not None:
                    p["train_time_s"] += time.perf_counter() - t0
                    save_state()
                    raise SsladError(f"stopped by {signal.Signals(stop.signal).name} in epoch {epoch + 1}; the "
                                     "training state is saved: continue with the same command and --resume")
            tally.flush()
            # per-epoch record (metrics.csv), log line and training state
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            c = p["count"]
            p["last"] = {"loss": p["loss_sum"] / c, "accuracy": p["hits"] / c}
            p.update(epoch=epoch + 1, step_in_epoch=0, seen=p["seen"] + c, train_time_s=p["train_time_s"] + dt,
                     loss_sum=0.0, hits=0.0, count=0, perm=None)
            if dist.main:
                epoch_log.add(epoch=epoch + 1, regen_index=p["regen_index"], lr=lr, epoch_s=dt, regen_s=regen_s,
                              images_per_s=c * dist.world / dt, **p["last"])
                run.log(f"epoch {epoch + 1}/{epochs}: loss {p['last']['loss']:.4f}, pretext accuracy "
                        f"{p['last']['accuracy']:.3f}, {dt:.1f} s")
                if p["last"]["loss"] > 100:  # the 3-way loss starts near 1.1, the mask loss near 0.7
                    run.log(f"warning: the loss ({p['last']['loss']:.3g}) is diverging; retrain with a lower --lr")
            save_state()
    last = p["last"] or {"loss": math.nan, "accuracy": math.nan}
    return {"epochs": epochs, "steps": p["step"], "regen_index": p["regen_index"], "train_images": n_train,
            "pretext_loss": last["loss"], "pretext_accuracy": last["accuracy"], "train_time_s": p["train_time_s"],
            "images_per_s": p["seen"] * dist.world / max(p["train_time_s"], 1e-9), "regen_time_s": p["regen_time_s"]}


def fit_scorer(model: PretextNet, fit: ImageSet, holdout: ImageSet | None, cfg: RunConfig) -> AnomalyScorer:
    """Density on the network outputs of the fit images; thresholds from the held-out ones."""
    fit_out = infer_images(model, fit.images, progress="embed train")
    hold_out = infer_images(model, holdout.images, progress="embed held-out") if holdout is not None else None
    return AnomalyScorer(cfg.score).fit(fit_out, hold_out, cfg.data.image_size)


def train_run(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Train the pretext model, fit the scorer, save, evaluate; returns ``metrics.json``'s content.

    With ``resume``, the run in ``out_dir`` continues from its training state, with the settings
    saved there (``cfg`` is not re-read).
    """
    out = Path(out_dir)
    created = not out.exists()
    cfg = cfg.resolved()
    is_main = int(os.environ.get("RANK", "0")) == 0
    state = prepare_run_dir(out, cfg.data.path, overwrite, resume) if is_main else None
    if state is not None:
        cfg = RunConfig.from_dict(state["config"])
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
    run.model.eval().to(memory_format=torch.contiguous_format)  # score as eval/predict will load it
    scorer = fit_scorer(run.model, run.fit, run.holdout, cfg)
    save_checkpoint(run.out / "model.pt", run.model, cfg.to_dict(), epoch=stats["epochs"],
                    regen_index=stats["regen_index"], scorer_state=scorer.state_dict(), threshold=scorer.threshold)
    (run.out / TRAIN_STATE).unlink(missing_ok=True)  # finished: model.pt is the run's one artefact
    summary = {"dataset": run.data.name, "backend": run.gen.renderer.name, "device": str(run.device),
               "scar": cfg.synth.scar, "color": cfg.synth.color, "regen_every": cfg.synth.regen_every,
               "precision": cfg.train.precision, "image_score": cfg.score.image_score, "seed": cfg.train.seed,
               "world_size": run.dist.world, "holdout_images": 0 if run.holdout is None else len(run.holdout),
               "threshold_set": scorer.calibration["set"], **stats}
    metrics = evaluate_set(run.model, scorer, run.data.test, run.out, extra=summary)
    log(results_table(metrics))
    return metrics


__all__ = ["cosine_lr", "fit_pretext", "fit_scorer", "setup", "train_run", "train_step"]
