"""Where DALI's GPU graph and the torch reference differ, per size, family, class and row variant.

Run on a machine with a CUDA GPU (benchmarks/gpu_check.sh runs it before the tests): for each image size and
family mix it renders one balanced plan with ``--backend dali`` on the GPU and with the torch reference on the
CPU, and reports per (class, variant) the largest pixel difference, the share of pixels off by more than 2
grey levels, and the share of mask pixels that differ. A failing GPU operator shows up as the rows it
touches (e.g. only cut-paste rows: multi_paste; only blob rows: the blob's warp or blend). Output: one JSON
file (``--json``) and a table on stdout. Needs nothing but sslad, torch and DALI.

    python benchmarks/dali_gpu_diff.py --json /tmp/dali_gpu_diff.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import torch

FAMILIES = {  # name -> (scar, irregular share, crack share)
    "plain_patch": ("patch", 0.0, 0.0),
    "plain_line": ("line", 0.0, 0.0),
    "irregular": ("line", 1.0, 0.0),
    "cracks": ("line", 0.0, 1.0),
    "mixed": ("line", 0.5, 0.25),
}
VARIANTS = {0: "plain", 1: "irregular", 2: "crack"}


def compare(size: int, family: str, groups: int, batch: int, device: torch.device) -> dict:
    from sslad.backends import make_renderer
    from sslad.bench import base_images  # textured with noise: a misread pixel shows
    from sslad.synth import balanced_plan, reflect_pad, render

    scar, irregular, cracks = FAMILIES[family]
    imgs = base_images(groups, size)
    plan = balanced_plan(groups, 1, size, seed=3, scar=scar, irregular=irregular, cracks=cracks)
    padded = reflect_pad(imgs, plan.pad)
    ref, ref_masks = render(plan, padded)
    renderer = make_renderer("dali", size, device, batch_size=batch)
    t0 = time.perf_counter()
    got, got_masks = renderer.render(plan, padded.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    diff = (got.cpu().int() - ref.int()).abs()
    mask_diff = got_masks.cpu() != ref_masks
    rows = {}
    for cls in (0, 1, 2):
        for var, vname in VARIANTS.items():
            sel = (plan.label == cls) & (plan.variant == var)
            if not bool(sel.any()):
                continue
            d, m = diff[sel], mask_diff[sel]
            rows[f"class{cls}_{vname}"] = {
                "rows": int(sel.sum()), "max_diff": int(d.max()), "pixels_off": round(float((d > 2).float().mean()), 5),
                "mask_off": round(float(m.float().mean()), 5),
            }
    return {"size": size, "family": family, "groups": groups, "seconds": round(seconds, 4),
            "equal": all(r["max_diff"] <= 1 and r["mask_off"] == 0 for r in rows.values()), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="48,128,256,512")
    ap.add_argument("--groups", type=int, default=24)
    ap.add_argument("--batch", type=int, default=48, help="renderer batch (images); several DALI iterations per plan")
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", default="cuda", help="cuda (the check), or cpu (DALI's CPU operators: a dry run)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("dali_gpu_diff: no CUDA device", file=sys.stderr)
        return 2
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for family in FAMILIES:
            try:
                r = compare(size, family, args.groups, args.batch, device)
            except Exception as e:  # a GPU fault must not hide the other sizes' answers
                r = {"size": size, "family": family, "error": f"{type(e).__name__}: {e}"[:500],
                     "trace": traceback.format_exc()[-1500:]}
            results.append(r)
            worst = {k: v for k, v in r.get("rows", {}).items() if v["max_diff"] > 1 or v["mask_off"] > 0}
            print(f"{size:4d} {family:12s} {'EQUAL' if r.get('equal') else 'DIFFER'} "
                  f"{r.get('error', '')} {json.dumps(worst)}", flush=True)
            if "error" in r and "illegal memory" in r["error"]:
                break  # the CUDA context is gone: every later render would fail the same way
    if args.json:
        with open(args.json, "w") as f:
            name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
            json.dump({"device": name, "results": results}, f, indent=1)
    return 0 if all(r.get("equal") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
