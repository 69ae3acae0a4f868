"""``sslad train``: the whole main job, one call per arrow of the data flow.

folder -> uint8 tensors on the device -> pretext regeneration every N epochs -> training ->
embeddings of good training images -> scorer fit -> test scores -> metrics and run folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from sslad.checkpoint import save_checkpoint
from sslad.config import RunConfig, default_lr, save_yaml
from sslad.data import AnomalyDataset, load_dataset
from sslad.errors import SsladError
from sslad.evaluate import evaluate_set
from sslad.models import NetConfig, PretextNet, load_trunk_weights
from sslad.report import EpochLog, results_table, save_grid, write_json
from sslad.runtime import init_distributed, resolve_device, seed_everything
from sslad.scoring import make_scorer, threshold_from_good
from sslad.scoring.embed import embed_images
from sslad.synth import CLASS_NAMES
from sslad.synth.generator import PretextGenerator, make_renderer


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    if (out / "model.pt").exists() and not overwrite:
        raise SsladError(f"{out} already holds a run (model.pt); pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch of uint8 images; returns (loss, correct count) as device tensors."""
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, _ = net(xb)
        loss = F.cross_entropy(logits.float(), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), (logits.argmax(1) == yb).sum()


def cosine_lr(base: float, step: int, total: int) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train_run(cfg: RunConfig, out_dir: str | Path, *, overwrite: bool = False,
              data: AnomalyDataset | None = None, log: Callable[[str], None] = print) -> dict:
    """Train the pretext model, fit the scorer, evaluate, and write the run folder.

    Returns the final metrics (also in ``metrics.json``).
    """
    cfg = cfg.validate()
    out = Path(out_dir)
    device = resolve_device(cfg.train.device)
    dist, device = init_distributed(device)
    if dist.main:
        prepare_run_dir(out, overwrite)
    seed_everything(cfg.train.seed + dist.rank)

    base_lr = cfg.train.lr or default_lr(cfg.train.optimizer)
    # network first: a bad --weights fails before minutes of decoding
    model = PretextNet(NetConfig(arch=cfg.train.arch))
    source = load_trunk_weights(model, cfg.train.weights)
    model = model.to(device)

    # folder -> uint8 tensors on the training device
    if data is None:
        data = load_dataset(cfg.data.path, cfg.data.category, cfg.data.image_size, device=device)
    train_images = data.train.images.to(device)
    n_train = train_images.shape[0]
    if n_train < 2:
        raise SsladError(f"{cfg.data.path}: need at least 2 good training images, found {n_train}")
    if dist.main:
        save_yaml(cfg, out / "config.yaml")
        log(f"data: {data.name}, {n_train} train images"
            + (f", {len(data.test)} test images" if data.test is not None else ", no test split")
            + f", {cfg.data.image_size} px, on {device}")

    # pretext generator (backend) on the device
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, device)
    gen = PretextGenerator(train_images, renderer, variants=cfg.synth.variants, scar=cfg.synth.scar,
                           jitter=cfg.synth.jitter, translate=cfg.synth.translate, seed=cfg.train.seed,
                           shard=(dist.rank, dist.world))

    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    net = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist.main:
        log(f"model: {cfg.train.arch} ({source}), {cfg.train.optimizer} lr {base_lr:g}, backend {renderer.name}, "
            f"scar {cfg.synth.scar}, "
            f"regen every {cfg.synth.regen_every} epoch(s), {cfg.synth.variants} variant(s)/class/image")

    # Every rank takes the same number of steps (DDP all-reduces each one): count whole groups
    # per rank from the total, not from this rank's share.
    samples_per_regen = 3 * (n_train * cfg.synth.variants // dist.world)
    if samples_per_regen == 0:
        raise SsladError(f"{n_train} training images are too few for {dist.world} processes")
    batch = max(3, cfg.train.batch_size // dist.world)
    steps_per_epoch = max(1, samples_per_regen // batch)
    total_steps = steps_per_epoch * cfg.train.epochs
    if cfg.train.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=base_lr, momentum=cfg.train.momentum,
                              weight_decay=cfg.train.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=base_lr, weight_decay=cfg.train.weight_decay)
    amp = device.type == "cuda"
    epoch_log = EpochLog(out / "metrics.csv") if dist.main else None

    from sslad.progress import bar as progress_bar

    step, regen_total, seen, train_t = 0, 0.0, 0, 0.0
    x_syn = y_syn = None
    regen_index = -1
    shuffle = torch.Generator(device="cpu").manual_seed(cfg.train.seed * 7919 + dist.rank)
    last = {"loss": math.nan, "accuracy": math.nan}
    try:
        for epoch in range(cfg.train.epochs):
            t_epoch = time.perf_counter()
            regen_s = 0.0
            if epoch % cfg.synth.regen_every == 0:
                regen_index = epoch // cfg.synth.regen_every
                x_syn, y_syn, regen_s = gen.regenerate(regen_index)
                regen_total += regen_s
                if dist.main:
                    log(f"regeneration {regen_index}: {len(y_syn)} samples in {regen_s:.2f} s "
                        f"(seed {cfg.train.seed + regen_index})")
                    if regen_index == 0:
                        _save_samples(out / "pretext_samples.png", x_syn, y_syn)
            perm = torch.randperm(len(y_syn), generator=shuffle).to(device)
            net.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            count = 0
            bar = progress_bar(range(steps_per_epoch), f"epoch {epoch + 1}/{cfg.train.epochs}",
                               enabled=dist.main, unit="step")
            for i in bar:
                idx = perm[i * batch:(i + 1) * batch]
                lr = cosine_lr(base_lr, step, total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                loss, hits = train_step(net, opt, x_syn[idx], y_syn[idx], amp)
                step += 1
                loss_sum += loss * len(idx)  # stays on the device: no sync per step
                correct += hits
                count += len(idx)
                if i % 10 == 0 or i == steps_per_epoch - 1:
                    bar.set_postfix(loss=f"{float(loss_sum) / count:.3f}", acc=f"{int(correct) / count:.3f}")
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t_epoch
            train_t += dt
            seen += count
            last = {"loss": float(loss_sum) / max(count, 1), "accuracy": int(correct) / max(count, 1)}
            if dist.main:
                epoch_log.add(epoch=epoch + 1, regen_index=regen_index, lr=lr, epoch_s=dt, regen_s=regen_s,
                              images_per_s=count * dist.world / dt, **last)
                log(f"epoch {epoch + 1}/{cfg.train.epochs}: loss {last['loss']:.4f}, "
                    f"pretext accuracy {last['accuracy']:.3f}, {dt:.1f} s")
    except KeyboardInterrupt:
        if dist.main:
            save_checkpoint(out / "model.pt", model, cfg.to_dict(), epoch=epoch, regen_index=regen_index,
                            scorer_state=None, threshold=None, extra={"interrupted": True})
        raise SsladError(f"interrupted in epoch {epoch + 1}; weights so far saved to {out / 'model.pt'}") from None

    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    if not dist.main:
        return {}
    # embeddings of good training images -> scorer fit
    model.eval()
    train_emb = embed_images(model, train_images, progress="embed train")
    scorer = make_scorer(cfg.score.scorer, cfg.score.knn_k).fit(train_emb)
    threshold = threshold_from_good(scorer.score(train_emb).numpy())
    summary = {
        "dataset": data.name, "backend": renderer.name, "device": str(device), "scar": cfg.synth.scar,
        "regen_every": cfg.synth.regen_every, "epochs": cfg.train.epochs, "steps": step,
        "train_images": n_train, "pretext_loss": last["loss"], "pretext_accuracy": last["accuracy"],
        "train_time_s": train_t, "images_per_s": seen * dist.world / max(train_t, 1e-9),
        "regen_time_s": regen_total, "seed": cfg.train.seed, "world_size": dist.world,
    }
    save_checkpoint(out / "model.pt", model, cfg.to_dict(), epoch=cfg.train.epochs, regen_index=regen_index,
                    scorer_state=scorer.state_dict(), threshold=threshold)
    # test scores -> metrics
    if data.test is not None and len(data.test) > 0:
        metrics = evaluate_set(model, scorer, data.test, out, threshold, extra=summary)
    else:
        metrics = {"image_auroc": None, "per_type_auroc": {}, "threshold": threshold, **summary}
        write_json(out / "metrics.json", metrics)
    log(results_table(metrics))
    return metrics


def _save_samples(path: Path, x: torch.Tensor, y: torch.Tensor, per_class: int = 8) -> None:
    """A grid of the first regeneration: one row per class (good, cut-paste, scar)."""
    rows = []
    for c in range(len(CLASS_NAMES)):
        idx = (y == c).nonzero().flatten()[:per_class]
        rows.append(x[idx].cpu())
    n = min(len(r) for r in rows)
    if n:
        save_grid(path, torch.cat([r[:n] for r in rows]), ncol=n)


__all__ = ["train_run", "train_step", "cosine_lr"]
