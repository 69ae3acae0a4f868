"""torch.compile (inductor) against eager for CPU training, bf16 autocast + channels-last both, side by side.

Usage:
    python benchmarks/compile_speed.py [--size 128] [--batch 96] [--steps 20]

The default network (ResNet-18, U-Net decoder, focal per-pixel loss), Adam, one fixed sequence of random
uint8 batches and masks, the same initial weights for both: the loss of every step (the curves must
match for compile to be usable) and images/s over the steps after the first two (compile's warm-up,
which is timed apart). Writes ``benchmarks/results/compile_speed_<size>.json`` with machine info.
"""

from __future__ import annotations

import copy
import sys
import time

import torch
from common import save_record

from sslad.models import NetConfig, PretextNet
from sslad.training import train_step


def run(model: torch.nn.Module, batches: list, compiled: bool) -> dict:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 3e-4)
    net = torch.compile(model) if compiled else model
    losses, times = [], []
    for x, y, m in batches:
        t0 = time.perf_counter()
        loss, _ = train_step(net, opt, x, y, m, True)
        losses.append(float(loss))
        times.append(time.perf_counter() - t0)
    timed = times[2:]
    return {"losses": losses, "warmup_s": sum(times[:2]), "images_per_s": len(batches[0][0]) * len(timed) / sum(timed)}


def main(argv: list[str]) -> int:
    def arg(name: str, default: int) -> int:
        return int(argv[argv.index(name) + 1]) if name in argv else default

    size, batch, steps = arg("--size", 128), arg("--batch", 96), arg("--steps", 20)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g),
                torch.randint(0, 3, (batch,), generator=g),
                (torch.rand(batch, size, size, generator=g) > 0.95).to(torch.uint8)) for _ in range(steps)]
    torch.manual_seed(0)
    model = PretextNet(NetConfig())
    eager = run(model, batches, compiled=False)
    print(f"eager: {eager['images_per_s']:.1f} img/s")
    comp = run(model, batches, compiled=True)
    print(f"compiled: {comp['images_per_s']:.1f} img/s (warm-up {comp['warmup_s']:.0f} s)")
    diff = max(abs(a - b) / max(abs(a), 1e-9) for a, b in zip(eager["losses"], comp["losses"], strict=True))
    record = {"name": f"compile_speed_{size}", "image_size": size, "batch": batch, "steps": steps,
              "threads": torch.get_num_threads(), "eager": eager, "compiled": comp,
              "speedup": comp["images_per_s"] / eager["images_per_s"], "max_relative_loss_difference": diff}
    print(f"speed-up {record['speedup']:.2f}x, largest relative loss difference {diff:.4f}")
    save_record(f"compile_speed_{size}", record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
