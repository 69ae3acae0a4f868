"""``sslad bench``: regeneration (and training) throughput per backend, device and image size.

Method (see benchmarks/README.md): fixed seeds; ``warmup`` untimed regenerations, then
``repeats`` timed ones; CUDA is synchronised inside the timed region; the median is reported
with its spread (half the inter-quartile range). CPU cost is process CPU time (this process
and finished children, so DataLoader workers count) per generated image. GPU memory is the
peak of torch's allocator plus what the device reports in use beyond the start (DALI has its
own allocator).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from sslad.config import BACKENDS as RENDERERS
from sslad.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from sslad.data.io import check_memory
from sslad.errors import SsladError

#: The renderers plus the conventional PIL/DataLoader pipeline they are compared with.
BENCH_BACKENDS = (*RENDERERS, "pil")  # the renderers and the conventional PIL pipeline


@dataclass
class Result:
    backend: str
    device: str
    image_size: int
    batch_size: int
    images: int
    images_per_s: float
    images_per_s_spread: float
    mb_per_s: float
    cpu_s_per_image: float
    gpu_peak_mem_mb: float | None
    mode: str = "regeneration"
    repeats: int = 0
    seconds: list[float] | None = None


def _cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (DataLoader workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def base_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Deterministic textured uint8 images (N, 3, S, S): smooth stripes plus noise."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(size, dtype=torch.float32)
    phase = torch.rand(n, 1, 1, generator=g) * 6.28
    stripes = 128 + 50 * torch.sin(ys[None, None, :] / 5 + phase) * torch.cos(ys[None, :, None] / 9)
    noise = torch.randn(n, size, size, generator=g) * 12
    gray = (stripes + noise).clamp(0, 255).to(torch.uint8)
    return gray[:, None].expand(n, 3, size, size).contiguous()


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _gpu_mem_start(dev: torch.device):
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    free, total = torch.cuda.mem_get_info(dev)
    return total - free


def _gpu_mem_peak(dev: torch.device, start) -> float | None:
    if dev.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(dev)
    used_extra = max(0, (total - free) - start)
    return max(torch.cuda.max_memory_allocated(dev), used_extra) / 2**20


def _summary(backend, device, size, batch, images_out, times, cpu, mem, mode) -> Result:
    rates = [images_out / t for t in times]
    med = statistics.median(rates)
    q = np.percentile(rates, [25, 75]) if len(rates) > 1 else [med, med]
    return Result(
        backend=backend, device=device, image_size=size, batch_size=batch, images=images_out,
        images_per_s=med, images_per_s_spread=float(q[1] - q[0]) / 2, mb_per_s=med * 3 * size * size / 1e6,
        cpu_s_per_image=cpu / (images_out * len(times)), gpu_peak_mem_mb=mem, mode=mode,
        repeats=len(times), seconds=[round(t, 6) for t in times],
    )


def _generator(backend: str, base: torch.Tensor, batch: int | None):
    """A generator of the PIL baseline's classes (patch scar) over ``base``, rendered by ``backend``
    (``batch`` images per renderer call; None: the renderers' default on that device, as training renders)."""
    from sslad.backends import make_renderer
    from sslad.config import SynthConfig
    from sslad.synth.generator import PretextGenerator

    renderer = make_renderer(backend, base.shape[-1], base.device, batch_size=batch)
    return PretextGenerator(base, renderer, SynthConfig(scar="patch"), seed=0)


def bench_regeneration(backend: str, device: torch.device, size: int, batch: int, images: int,
                       repeats: int, warmup: int, workers: int) -> Result:
    """Time full regenerations: 3 outputs (good, cut-paste, scar) per base image."""
    base = base_images(images, size)
    if backend == "pil":
        return _bench_pil(base, size, batch, repeats, warmup, workers)
    gen = _generator(backend, base.to(device), batch)
    for k in range(warmup):
        gen.regenerate(k)
    _sync(device)
    mem0 = _gpu_mem_start(device)
    times, cpu0 = [], _cpu_seconds()
    for k in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        x = gen.regenerate(warmup + k).images
        _sync(device)
        times.append(time.perf_counter() - t0)
        del x
    cpu = _cpu_seconds() - cpu0
    return _summary(backend, device.type, size, batch, 3 * images, times, cpu, _gpu_mem_peak(device, mem0),
                    "regeneration")


def _bench_pil(base: torch.Tensor, size: int, batch: int, repeats: int, warmup: int, workers: int) -> Result:
    from PIL import Image

    from sslad.bench.pil_baseline import pil_loader

    pils = [Image.fromarray(b.permute(1, 2, 0).numpy()) for b in base]
    n_out = 3 * len(pils)

    def one_epoch(seed: int) -> None:
        torch.manual_seed(seed)
        for _ in pil_loader(pils, size, batch, workers, seed=seed):
            pass

    for k in range(warmup):
        one_epoch(k)
    times, cpu0 = [], _cpu_seconds()
    for k in range(repeats):
        t0 = time.perf_counter()
        one_epoch(warmup + k)
        times.append(time.perf_counter() - t0)
    cpu = _cpu_seconds() - cpu0
    return _summary("pil", "cpu", size, batch, n_out, times, cpu, None, "regeneration")


def bench_training(feed: str, device: torch.device, size: int, batch: int, images: int, steps: int,
                   warmup: int, workers: int) -> Result:
    """Images/s of full training steps (forward, backward, SGD) fed by ``feed``, at the precision
    training picks on this device (``resolve_precision("auto")``).

    ``resident``: a synthetic set already on the device (the upper bound); ``torch``/``dali``:
    regenerated on the device every epoch, as training renders (regeneration time included); ``pil``: batches from
    the conventional DataLoader, copied to the device (it makes no masks: classes only).
    """
    from sslad.models import NetConfig, PretextNet, training_layout
    from sslad.runtime import resolve_precision
    from sslad.training import train_step

    amp = resolve_precision("auto", device) == "bf16"
    model = training_layout(PretextNet(NetConfig()).to(device))  # as sslad train lays it out
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(xb, yb, mb=None):
        train_step(model, opt, xb, yb, mb, amp)

    base = base_images(images, size)
    mem0 = _gpu_mem_start(device)
    if feed == "pil":
        from PIL import Image

        from sslad.bench.pil_baseline import pil_loader

        pils = [Image.fromarray(b.permute(1, 2, 0).numpy()) for b in base]

        def batches():
            while True:
                for good, cut, scar in pil_loader(pils, size, batch, workers):
                    x = torch.cat([good, cut, scar]).to(device, non_blocking=True)
                    y = torch.arange(3, device=device).repeat_interleave(len(good))
                    yield x, y
        # PIL tensors are already normalised: feed them through the net's normaliser inverse.
        mean, std = model.mean, model.std
        it = batches()

        def next_batch():
            x, y = next(it)
            return x * std + mean, y
    else:
        gen = _generator("torch" if feed == "resident" else feed, base.to(device), None)  # as training renders
        state = {"k": 0, "x": None, "y": None, "m": None, "pos": 0}

        def next_batch():
            if state["x"] is None or (feed != "resident" and state["pos"] + batch > len(state["y"])):
                syn = gen.regenerate(state["k"])
                state["x"], state["y"], state["m"] = syn.images, syn.labels, syn.masks
                state["k"] += 1
                state["pos"] = 0
            if state["pos"] + batch > len(state["y"]):
                state["pos"] = 0
            p = state["pos"]
            state["pos"] += batch
            return state["x"][p:p + batch], state["y"][p:p + batch], state["m"][p:p + batch]

    for _ in range(warmup):
        step(*next_batch())
    _sync(device)
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*next_batch())
    _sync(device)
    dt = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    return _summary(feed, device.type, size, batch, batch * steps, [dt], cpu, _gpu_mem_peak(device, mem0),
                    "training")


def metadata() -> dict:
    """Machine and software description stored with every result file."""
    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "commit": _git_commit(),
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        import nvidia.dali

        info["dali"] = nvidia.dali.__version__
    except ImportError:
        info["dali"] = None
    import PIL

    info["pillow"] = PIL.__version__
    from sslad import __version__

    info["sslad"] = __version__
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_bench(backends: list[str], devices: list[str], sizes: list[int], batch: int, images: int, repeats: int,
              warmup: int, workers: int, training: bool = False, train_steps: int = 10,
              log=print) -> dict:
    """All combinations; returns ``{"metadata": ..., "results": [...]}``."""
    bad = [b for b in backends if b not in BENCH_BACKENDS]
    if bad:
        raise SsladError(f"unknown backend(s) {', '.join(bad)} (choose from {', '.join(BENCH_BACKENDS)})")
    if not backends or not devices or not sizes:
        raise SsladError("--backends, --device and --image-size each need at least one value")
    if min(sizes) < MIN_IMAGE_SIZE or max(sizes) > MAX_IMAGE_SIZE:
        raise SsladError(f"--image-size must lie in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]")
    # base images, padded copies, 3 outputs and masks per image, float temporaries: refused before any work
    check_memory(images, max(sizes), copies=12)
    for name, v in (("--batch-size", batch), ("--images", images), ("--repeats", repeats),
                    ("--train-steps", train_steps)):
        if v < 1:
            raise SsladError(f"{name} must be at least 1")
    if warmup < 0 or workers < 0:
        raise SsladError("--warmup and --workers cannot be negative")
    log(HEADER)
    from sslad.runtime import resolve_device

    devs = [resolve_device(d) for d in devices]
    results: list[Result] = []
    for size in sizes:
        for dev in devs:
            for b in backends:
                if b == "pil" and dev.type == "cuda" and any(d.type == "cpu" for d in devs):
                    continue  # PIL runs on the CPU whatever the device: measure it once
                r = bench_regeneration(b, dev, size, batch, images, repeats, warmup, workers)
                log(_row(r))
                results.append(r)
            if training:
                for feed in ["resident", *backends]:
                    r = bench_training(feed, dev, size, batch, images, train_steps, max(1, warmup), workers)
                    log(_row(r))
                    results.append(r)
    meta = metadata()
    meta.update({"repeats": repeats, "warmup": warmup, "workers": workers, "images": images})
    return {"metadata": meta, "results": [asdict(r) for r in results]}


HEADER = (f"{'mode':<12} {'backend':<9} {'device':<6} {'size':>5} {'batch':>6} {'img/s':>11} {'±':>9} "
          f"{'MB/s':>9} {'CPU µs/img':>11} {'GPU MB':>8}")


def _row(r: Result) -> str:
    mem = "-" if r.gpu_peak_mem_mb is None else f"{r.gpu_peak_mem_mb:.0f}"
    return (f"{r.mode:<12} {r.backend:<9} {r.device:<6} {r.image_size:>5} {r.batch_size:>6} "
            f"{r.images_per_s:>11.1f} {r.images_per_s_spread:>9.1f} {r.mb_per_s:>9.1f} "
            f"{r.cpu_s_per_image * 1e6:>11.1f} {mem:>8}")


def format_table(report: dict) -> str:
    rows = [HEADER, "-" * len(HEADER)]
    for d in report["results"]:
        rows.append(_row(Result(**d)))
    return "\n".join(rows)


def plot_report(report: dict, path: str | Path) -> None:
    """img/s against image size, one line per backend x device (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SsladError("--plot needs matplotlib: pip install 'sslad[plot]'") from exc
    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[str, list[tuple[int, float]]] = {}
    for r in report["results"]:
        if r["mode"] != "regeneration":
            continue
        series.setdefault(f"{r['backend']} ({r['device']})", []).append((r["image_size"], r["images_per_s"]))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("image size (px)")
    ax.set_ylabel("synthetic images / s")
    ax.set_title("pretext regeneration throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
