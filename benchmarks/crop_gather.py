"""A cropped step's batch: 0.7.12's gather (the batch's whole images, then per-pixel advanced indexing) against
0.7.13's ``take_crops`` (the windows cut straight out of the set through ``unfold`` views), interleaved in one
process (rounds old, new, old, new ...; the median of each), with the check that both give the same bytes.

Sizes as in the crop recipes: a synthetic set of 2,052 samples (684 images x 3 classes), batches of 96, 128-px
crops, 21 batches (an epoch) per round; random uint8 images, masks and offsets (the cost depends on sizes only).
Usage: python benchmarks/crop_gather.py NAME [--sizes 256,384] [--rounds 7]
Writes benchmarks/results/NAME.json (seconds per epoch's crops for each, the ratio, machine info).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import save_record

from sslad.synth.crops import take_crops

SAMPLES, BATCH, CROP, STEPS = 2052, 96, 128, 21


def gather_then_crop(images, masks, idx, offsets, crop):
    """0.7.12's path: ``synth.images[idx]`` then the windows by per-pixel advanced indexing."""
    xb, mb = images[idx], masks[idx]
    r = torch.arange(crop)
    rows = (offsets[:, 0][:, None] + r)[:, :, None]
    cols = (offsets[:, 1][:, None] + r)[:, None, :]
    b = torch.arange(len(idx))[:, None, None]
    return xb.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2).contiguous(), mb[b, rows, cols]


def cut_from_set(images, masks, idx, offsets, crop):
    return take_crops(images, masks, offsets, crop, index=idx)


def epoch(fn, images, masks, batches) -> float:
    t = time.perf_counter()
    for idx, off in batches:
        fn(images, masks, idx, off, CROP)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--sizes", default="256,384")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        images = torch.randint(0, 256, (SAMPLES, 3, size, size), dtype=torch.uint8, generator=g)
        masks = torch.randint(0, 2, (SAMPLES, size, size), dtype=torch.uint8, generator=g)
        batches = [(torch.randperm(SAMPLES, generator=g)[:BATCH],
                    torch.randint(0, size - CROP + 1, (BATCH, 2), generator=g)) for _ in range(STEPS)]
        for idx, off in batches[:3]:
            a, b = gather_then_crop(images, masks, idx, off, CROP), cut_from_set(images, masks, idx, off, CROP)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "the two paths differ"
        times = {"gather_then_crop": [], "take_crops": []}
        for _ in range(args.rounds):
            times["gather_then_crop"].append(epoch(gather_then_crop, images, masks, batches))
            times["take_crops"].append(epoch(cut_from_set, images, masks, batches))
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"size": size, "seconds_per_epoch_median": med, "rounds": times,
               "ratio": med["gather_then_crop"] / med["take_crops"], "same_bytes": True}
        print(f"{size} px: {med['gather_then_crop']:.3f} s -> {med['take_crops']:.3f} s per epoch's crops "
              f"({row['ratio']:.1f}x), the same bytes", flush=True)
        rows.append(row)
    save_record(args.name, {"command": "python benchmarks/crop_gather.py " + " ".join(
        f"{a}" for a in [args.name, "--sizes", args.sizes, "--rounds", str(args.rounds)]),
        "samples": SAMPLES, "batch": BATCH, "crop": CROP, "steps_per_epoch": STEPS,
        "torch_threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
