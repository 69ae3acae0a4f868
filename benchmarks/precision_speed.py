"""Training-step throughput of fp32 against bf16 autocast + channels-last, side by side in one run.

Usage:
    python benchmarks/precision_speed.py [--steps N] [--name NAME]

ResNet-18 with the per-pixel head, Adam, batch 96, random uint8 images and masks, at 64 and 128
px; 2 untimed steps, then ``--steps`` timed ones per setting. Writes
``benchmarks/results/NAME.json`` (default ``precision_speed``) with machine info (the ratio is the figure to read;
name the record after the CPU when measuring another one).
"""

from __future__ import annotations

import sys
import time

import torch
from common import save_record

from sslad.models import NetConfig, PretextNet
from sslad.training import train_step


def images_per_s(size: int, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = PretextNet(NetConfig())
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    x = torch.randint(0, 256, (96, 3, size, size), dtype=torch.uint8)
    y = torch.randint(0, 3, (96,))
    m = (torch.rand(96, size, size) > 0.9).to(torch.uint8)
    for _ in range(2):
        train_step(model, opt, x, y, m, bf16)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, x, y, m, bf16)
    return 96 * steps / (time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else 6
    name = argv[argv.index("--name") + 1] if "--name" in argv else "precision_speed"
    rows = []
    for size in (64, 128):
        fp32, bf16 = images_per_s(size, False, steps), images_per_s(size, True, steps)
        rows.append({"image_size": size, "fp32_images_per_s": fp32, "bf16_images_per_s": bf16, "ratio": bf16 / fp32})
        print(f"{size} px: fp32 {fp32:.0f} img/s, bf16 {bf16:.0f} img/s, {bf16 / fp32:.2f}x")
    save_record(name, {"steps": steps, "batch": 96, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
