"""The U-Net decoder's dense gradient for its upsamplings (``sslad.models.net.dense_grad``) against the plain graph:
one bf16 (where native) training step of the pretext network at batch B and P px, per decoder width, both variants
timed side by side in one process (alternating, best of two rounds), and their parameters compared after the steps.

Usage: python benchmarks/dense_grad.py NAME [--px 128] [--batch 96] [--steps 4]
Writes benchmarks/results/NAME.json (seconds per step, the ratio, whether the parameters are equal, machine info).
"""

from __future__ import annotations

import argparse

import torch
from common import save_record
from decoder_cost import step_seconds

import sslad.models.net as net_module
from sslad.runtime import resolve_precision

DENSE = net_module.dense_grad  # the network's own; the plain graph replaces it with the identity


def run(width: int, dense: bool, px: int, batch: int, steps: int, amp: bool) -> tuple[float, torch.Tensor]:
    net_module.dense_grad = DENSE if dense else (lambda z: z)
    secs, net = step_seconds(net_module.NetConfig(seg_width=width), px, batch, steps, amp)
    return secs, torch.cat([p.detach().flatten() for p in net.parameters()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--px", type=int, default=128)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    amp = resolve_precision("auto", torch.device("cpu")) == "bf16"
    rows = {}
    for width in (64, 16):
        secs: dict[bool, list[float]] = {True: [], False: []}
        params = {}
        for dense in (True, False, True, False):
            s, params[dense] = run(width, dense, a.px, a.batch, a.steps, amp)
            secs[dense].append(s)
        rows[f"unet_w{width}"] = {"dense_s_per_step": round(min(secs[True]), 4),
                                  "plain_s_per_step": round(min(secs[False]), 4),
                                  "speedup": round(min(secs[False]) / min(secs[True]), 3),
                                  "parameters_equal": bool(torch.equal(params[True], params[False]))}
        print(f"width {width}: " + ", ".join(f"{k} {v}" for k, v in rows[f"unet_w{width}"].items()))
    net_module.dense_grad = DENSE
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/dense_grad.py {a.name} --px {a.px} "
                f"--batch {a.batch} --steps {a.steps}", "px": a.px, "batch": a.batch,
                "precision": "bf16" if amp else "fp32", "threads": torch.get_num_threads(), "rows": rows})

if __name__ == "__main__":
    main()
