"""The small convolutions' weight gradient as one matrix product (sslad.models.cpu_grad) against oneDNN's, on a CPU in
bf16: per layer4-like convolution (weight gradient alone), and whole pretext training steps (U-Net widths 64 and 16,
P px, batch B) with and without it, interleaved in one process (rounds A, B, A, B ...; the median of each).

Usage: python benchmarks/small_conv_grad.py NAME [--px 128] [--batch 96] [--rounds 9]
Writes benchmarks/results/NAME.json (milliseconds, ratios, machine info).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import save_record

import sslad.models.cpu_grad as cpu_grad
from sslad.models.net import NetConfig, PretextNet
from sslad.training import train_step

#: (layer, Cin, Cout, kernel, stride, input side at 128 px): ResNet-18's layer4 and layer3 3x3 convolutions.
CONVS = [("layer4", 512, 512, 3, 1, 4), ("layer4", 256, 512, 3, 2, 8), ("layer3", 256, 256, 3, 1, 8)]


def _ms(fn, *args, reps: int = 8) -> float:
    for _ in range(2):
        fn(*args)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return (time.perf_counter() - t0) / reps * 1e3


def conv_rows(batch: int, px: int) -> dict:
    rows = {}
    for layer, cin, cout, k, s, side in CONVS:
        side = side * px // 128
        taken = (side // s) ** 2 <= cpu_grad.SMALL_OUTPUT
        name = f"{layer} {k}x{k} {cin}->{cout} ({side}->{side // s}{'' if taken else ', not taken'})"
        x = torch.randn(batch, cin, side, side, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, k, k, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        g = torch.randn(batch, cout, side // s, side // s, dtype=torch.bfloat16).contiguous(
            memory_format=torch.channels_last)
        onednn = _ms(torch.ops.aten.convolution_backward, g, x, w, None, [s, s], [k // 2] * 2, [1, 1], False,
                     [0, 0], 1, [False, True, False])
        product = _ms(cpu_grad.conv_weight_grad, g, x, (k, k), (s, s), (k // 2, k // 2))
        rows[name] = {"onednn_ms": round(onednn, 2), "product_ms": round(product, 2),
                      "speedup": round(onednn / product, 2)}
    return rows


def step_rows(px: int, batch: int, rounds: int) -> dict:
    rows = {}
    small = cpu_grad.SMALL_OUTPUT
    for width in (64, 16):
        torch.manual_seed(0)
        net = PretextNet(NetConfig(seg_width=width)).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), 3e-4)
        x = torch.randint(0, 256, (batch, 3, px, px), dtype=torch.uint8)
        y, m = torch.randint(0, 3, (batch,)), (torch.rand(batch, px, px) > 0.95).float()
        times: dict[str, list[float]] = {"onednn": [], "product": []}
        for r in range(rounds + 1):
            for kind, limit in (("onednn", 0), ("product", small)):
                cpu_grad.SMALL_OUTPUT = limit
                t0 = time.perf_counter()
                for _ in range(2):
                    train_step(net, opt, x, y, m, True)
                if r:  # round 0 warms both up
                    times[kind].append((time.perf_counter() - t0) / 2)
        cpu_grad.SMALL_OUTPUT = small
        med = {k: statistics.median(v) for k, v in times.items()}
        rows[f"unet_w{width}"] = {"onednn_s_per_step": round(med["onednn"], 4),
                                  "product_s_per_step": round(med["product"], 4),
                                  "speedup": round(med["onednn"] / med["product"], 3)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    convs, steps = conv_rows(a.batch, a.px), step_rows(a.px, a.batch, a.rounds)
    for k, r in {**convs, **steps}.items():
        print(f"{k:38s} {r}")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/small_conv_grad.py {a.name} --px {a.px} "
                f"--batch {a.batch} --rounds {a.rounds}", "px": a.px, "batch": a.batch, "precision": "bf16",
                "threads": torch.get_num_threads(), "small_output": cpu_grad.SMALL_OUTPUT,
                "weight_grad": convs, "train_step": steps})


if __name__ == "__main__":
    main()
