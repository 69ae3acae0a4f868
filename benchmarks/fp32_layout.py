"""fp32 training on a CPU, contiguous against channels-last: what `--precision fp32` (and `auto` on a CPU without
native bf16) costs in each memory layout, side by side in one process, with the loss curves of the same steps.

The pretext network (U-Net width 64, and width 16) at 128 px and the default network at 64 px, batch 96, Adam,
random uint8 images, labels and masks; and one fp32 distillation step (batch 64, 128 px, the default student, its
teacher channels-last as every scoring and distillation lays it out). Each setting starts from the same weights and
takes the same batches (two untimed, then ``--steps`` timed); rounds alternate the layouts, the best round is
the figure.

Usage: python benchmarks/fp32_layout.py NAME [--steps 3] [--rounds 3]
Writes benchmarks/results/NAME.json: images/s per round, the speed-ups (channels-last / contiguous), and each
setting's losses step by step in both layouts (their largest relative difference: rounding only).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import save_record

from sslad.distill import distill_loss, teacher_features
from sslad.models import NetConfig, PretextNet, StudentConfig, StudentNet
from sslad.training import optimizer_step, train_step

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def pretext(size: int, width: int, batch: int = 96):
    """(build(layout) -> (network, optimiser), step(network, optimiser) -> loss, images per step)."""
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(batch) % 3
    m = (torch.rand(batch, size, size, generator=torch.Generator().manual_seed(1)) > 0.9).to(torch.uint8)

    def build(layout):
        torch.manual_seed(0)
        net = PretextNet(NetConfig(seg_width=width)).to(memory_format=layout)
        return net, torch.optim.Adam(net.parameters(), 3e-4)

    return build, lambda net, opt: train_step(net, opt, x, y, m, False)[0].item(), batch


def distillation(size: int = 128, batch: int = 64):
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    teacher = PretextNet(NetConfig()).eval().requires_grad_(False).to(memory_format=torch.channels_last)
    channels = tuple(f.shape[1] for f in teacher_features(teacher, x[:1])[0])
    good = torch.arange(batch) % 3 == 0

    def build(layout):
        torch.manual_seed(1)
        s = StudentNet(StudentConfig(teacher_channels=channels, standardize=True)).train().to(memory_format=layout)
        return s, torch.optim.Adam(s.parameters(), 1e-3)

    def step(s, opt):
        loss = distill_loss(s, teacher, x, good, 1.0)
        optimizer_step(opt, loss)
        return loss.item()

    return build, step, batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    settings = {"pretext_unet_w64_128px": pretext(128, 64), "pretext_unet_w16_128px": pretext(128, 16),
                "pretext_unet_w64_64px": pretext(64, 64), "distill_step_resnet10_slim_128px": distillation()}
    speed: dict[str, list[float]] = {}
    losses: dict[str, dict[str, list[float]]] = {}
    for r in range(a.rounds):
        for name, (build, step, batch) in settings.items():
            for layout_name, layout in LAYOUTS.items():
                net, opt = build(layout)
                curve = [step(net, opt) for _ in range(2)]  # untimed: allocation, Adam's state, oneDNN's cache
                t0 = time.perf_counter()
                curve += [step(net, opt) for _ in range(a.steps)]
                speed.setdefault(f"{name}_{layout_name}", []).append(
                    round(batch * a.steps / (time.perf_counter() - t0), 2))
                losses.setdefault(name, {})[layout_name] = curve
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in speed.items()), flush=True)
    ratios, loss_gap = {}, {}
    for name in settings:
        ratios[name] = round(max(speed[f"{name}_channels_last"]) / max(speed[f"{name}_contiguous"]), 3)
        c, cl = losses[name]["contiguous"], losses[name]["channels_last"]
        loss_gap[name] = max(abs(p - q) / abs(p) for p, q in zip(c, cl, strict=True))
        print(f"{name:40s} channels-last x{ratios[name]:.2f}, losses within {loss_gap[name]:.1e} (relative)")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/fp32_layout.py {a.name} --steps {a.steps} "
                         f"--rounds {a.rounds}", "threads": torch.get_num_threads(), "images_per_s": speed,
                         "speedup_channels_last_best_of_rounds": ratios, "losses": losses,
                         "largest_relative_loss_difference": loss_gap})


if __name__ == "__main__":
    main()
