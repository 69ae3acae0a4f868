"""The memory layout's share of the CPU's inference and distillation steps: one fp32 forward pass (scoring) of the
pretext network (U-Net width 64 and 16) and of the default student, and one bf16 distillation step (teacher and
student contiguous; teacher channels-last; both channels-last), alternating in one process, after warm-up.

Usage: python benchmarks/layout_steps.py NAME [--px 128] [--batch 64] [--rounds 3]
Writes benchmarks/results/NAME.json: seconds per pass or step (each round), and the ratios to the contiguous layout.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import save_record

from sslad.distill import distill_loss, teacher_features
from sslad.models import NetConfig, PretextNet, StudentConfig, StudentNet
from sslad.training import optimizer_step

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def seconds(fn, reps: int = 3) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randint(0, 256, (a.batch, 3, a.px, a.px), dtype=torch.uint8)
    teacher = PretextNet(NetConfig()).eval().requires_grad_(False)
    channels = tuple(f.shape[1] for f in teacher_features(teacher, x[:1])[0])
    nets = {"unet_w64": teacher, "unet_w16": PretextNet(NetConfig(seg_width=16)).eval(),
            "student_resnet10_slim": StudentNet(StudentConfig(teacher_channels=channels, standardize=True)).eval()}
    good = torch.arange(a.batch) % 3 == 0

    def student(layout):
        torch.manual_seed(1)
        s = StudentNet(StudentConfig(teacher_channels=channels, standardize=True)).train().to(memory_format=layout)
        return s, torch.optim.Adam(s.parameters(), 1e-3)

    steps = {"teacher_contiguous_student_contiguous": (torch.contiguous_format, student(torch.contiguous_format)),
             "teacher_channels_last_student_contiguous": (torch.channels_last, student(torch.contiguous_format)),
             "teacher_channels_last_student_channels_last": (torch.channels_last, student(torch.channels_last))}

    def distill_step(s, opt):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = distill_loss(s, teacher, x, good, 1.0)
        optimizer_step(opt, loss)

    times: dict[str, list[float]] = {}
    for r in range(a.rounds):
        with torch.no_grad():
            for name, net in nets.items():
                for layout_name, layout in LAYOUTS.items():
                    net.to(memory_format=layout)
                    if r == 0:
                        net.dense_outputs(x)
                    times.setdefault(f"forward_{name}_{layout_name}", []).append(
                        round(seconds(lambda n=net: n.dense_outputs(x)), 4))
        for name, (teacher_layout, (s, opt)) in steps.items():
            teacher.to(memory_format=teacher_layout)
            if r == 0:
                distill_step(s, opt)
            step_s = seconds(lambda s=s, o=opt: distill_step(s, o))
            times.setdefault(f"distill_step_{name}", []).append(round(step_s, 4))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()), flush=True)
    best = {k: min(v) for k, v in times.items()}
    ratios = {f"forward_{n}": round(best[f"forward_{n}_contiguous"] / best[f"forward_{n}_channels_last"], 3)
              for n in nets}
    ref = best["distill_step_teacher_contiguous_student_contiguous"]
    ratios.update({f"distill_step_{n}": round(ref / best[f"distill_step_{n}"], 3) for n in steps})
    for k, v in ratios.items():
        print(f"{k:60s} x{v:.2f}")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/layout_steps.py {a.name} --px {a.px} "
                         f"--batch {a.batch} --rounds {a.rounds}", "px": a.px, "batch": a.batch,
                         "threads": torch.get_num_threads(), "seconds": times,
                         "speedup_vs_contiguous_best_of_rounds": ratios})


if __name__ == "__main__":
    main()
