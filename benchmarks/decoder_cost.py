"""The per-pixel head's share of a training step: one bf16 (where native) train step of the pretext network at
batch B and P px, per decoder and width, timed side by side in one process.

Usage: python benchmarks/decoder_cost.py NAME [--px 128] [--batch 96] [--steps 5]
Writes benchmarks/results/NAME.json (seconds per step, ratios to the U-Net at width 64, machine info).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import save_record

from sslad.models.net import NetConfig, PretextNet
from sslad.runtime import resolve_precision
from sslad.training import train_step

VARIANTS = {"unet_w64": NetConfig(), "unet_w32": NetConfig(seg_width=32), "unet_w16": NetConfig(seg_width=16),
            "light_w64": NetConfig(decoder="light"), "no_head": NetConfig(seg_head=False)}


def step_seconds(cfg: NetConfig, px: int, batch: int, steps: int, amp: bool) -> tuple[float, PretextNet]:
    """Seconds per training step after two warm-up steps, and the network after them (same seed, same batch)."""
    torch.manual_seed(0)
    net = PretextNet(cfg)
    if amp:  # as training lays the network out on a CPU (channels-last with bf16 only)
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 3e-4)
    x = torch.randint(0, 256, (batch, 3, px, px), dtype=torch.uint8)
    y, m = torch.randint(0, 3, (batch,)), (torch.rand(batch, px, px) > 0.95).float()
    for _ in range(2):  # warm-up: oneDNN primitive caches
        train_step(net, opt, x, y, m, amp)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(net, opt, x, y, m, amp)
    return (time.perf_counter() - t0) / steps, net


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    amp = resolve_precision("auto", torch.device("cpu")) == "bf16"
    secs = {k: step_seconds(cfg, a.px, a.batch, a.steps, amp)[0] for k, cfg in VARIANTS.items()}
    ref = secs["unet_w64"]
    rows = {k: {"s_per_step": round(s, 4), "speedup_vs_unet_w64": round(ref / s, 3)} for k, s in secs.items()}
    for k, r in rows.items():
        print(f"{k:10s} {r['s_per_step']:.3f} s/step  x{r['speedup_vs_unet_w64']:.2f}")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/decoder_cost.py {a.name} --px {a.px} "
                f"--batch {a.batch} --steps {a.steps}", "px": a.px, "batch": a.batch,
                "precision": "bf16" if amp else "fp32", "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
