"""Do a run's maps fill large defects? Pixel AUROC of the defect pixels grouped by the size of the region they belong
to, for each map source, and the label-free yardstick rendered with small and large synthetic blobs.

Usage:
    python benchmarks/region_size.py NAME RUN_DIR [--maps seg density both] [--blob-areas 0.15 0.6]
        [--blob-sizes uniform|log]

For each source the run's scorer is fitted anew as ``sslad train`` fits it (``score.map`` overridden) and its maps
made of the real test split. Each defect pixel is put in the band of its connected region's area (a share of the
image: under 1 %, 1-5 %, 5-20 %, 20 % and more), and each band's pixels are ranked against every pixel of the good
test images (an AUROC per band); ``fill``: the share of each band's pixels above the run's stored pixel threshold.
A map that finds a large low-contrast region by its strongest part but does not fill it ranks the large bands low;
``normal_pixels_of_defective_images``: per type, the AUROC of the defective images' pixels outside their masks against
the good images' (0.5: calm off the defect; above it, the map rises over the whole defective image, or around the
defect, and the split's pixel AUROC, which counts those pixels as negatives, pays for it).
These need the test masks (a diagnosis, not a choice). ``synthetic`` needs none: the pixel AUROC on the run's
synthetic held-out set rendered with each ``--blob-area`` and the ``--blob-sizes`` law (default uniform; whatever
the run trained with), the label-free way to compare networks trained with and without larger blobs.
Records ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys

import numpy as np
from common import fitted_maps, map_benchmark, option, save_record, test_masks, trailing, yardstick_auroc, yardsticks
from scipy import ndimage

from sslad.scoring import pixel_metrics
from sslad.scoring.metrics import auroc

#: Region area bands, as shares of the image: [lo, hi).
BANDS = (("<1%", 0.0, 0.01), ("1-5%", 0.01, 0.05), ("5-20%", 0.05, 0.2), (">=20%", 0.2, 1.01))


def region_share(masks: np.ndarray) -> np.ndarray:
    """(N, S, S) bool masks -> float (N, S, S): each defect pixel's connected region (8-connected) area over the
    image's, 0 outside the masks."""
    out = np.zeros(masks.shape, dtype=np.float64)
    for i, m in enumerate(masks):
        labels, count = ndimage.label(m, structure=np.ones((3, 3)))
        if count:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            out[i] = sizes[labels] / m.size
    return out


def main(argv: list[str]) -> int:
    if (args := map_benchmark(argv, __doc__)) is None:
        return 2
    name, run_dir, (model, _, ckpt, cfg, data, fit, holdout), sources = args
    areas = [float(a) for a in trailing(argv, "--blob-areas", ["0.15", "0.6"])]
    law = option(argv, "--blob-sizes", "uniform")
    size = cfg.data.image_size
    types, masks = test_masks(data, size)
    good = types == "good"
    share = region_share(masks)
    rendered = yardsticks(holdout, cfg.override(synth={"blob_sizes": law}), "blob_area", areas)
    rows = {}
    for source in sources:
        scorer, maps = fitted_maps(model, fit, holdout, cfg, source, data.test.images)
        neg = maps[good].ravel()
        row = {"pixel_auroc": pixel_metrics(list(types), maps, masks)["pixel_auroc"], "bands": {}}
        for band, lo, hi in BANDS:
            sel = masks & (share >= lo) & (share < hi)
            pos = maps[sel]
            row["bands"][band] = {
                "auroc": auroc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]) if len(pos) else None,
                "fill": float((pos > scorer.pixel_threshold).mean()) if len(pos) else None,
                "defect_pixels": int(len(pos)),
                "images": int(sel.any((1, 2)).sum()),
            }
        # Spill: the defective images' normal pixels against the good images' (0.5: a map that stays calm off the
        # defect; the whole-split pixel AUROC counts these pixels as negatives).
        row["normal_pixels_of_defective_images"] = {
            t: auroc(np.r_[np.zeros(len(neg)), np.ones(int((~masks[types == t]).sum()))],
                     np.r_[neg, maps[types == t][~masks[types == t]]]) for t in sorted(set(types) - {"good"})}
        row["synthetic"] = {str(a): yardstick_auroc(model, scorer, synth, size) for a, synth in rendered.items()}
        rows[source] = row
        print(f"{name} {source}: pixel AUROC {100 * row['pixel_auroc']:.1f}; by region size "
              + " ".join(f"{b} {100 * v['auroc']:.1f} (fill {100 * v['fill']:.0f} %, {v['defect_pixels']} px)"
                         for b, v in row["bands"].items() if v["auroc"] is not None)
              + "; normal pixels of defective images against good ones "
              + " ".join(f"{t} {100 * v:.1f}" for t, v in row["normal_pixels_of_defective_images"].items())
              + "; synthetic held-out "
              + " ".join(f"(blob area {a}) {100 * v:.1f}" for a, v in row["synthetic"].items()),
              flush=True)
    save_record(name, {"name": name, "run_dir": str(run_dir), "seed": cfg.train.seed, "blob_area": cfg.synth.blob_area,
                       "blob_sizes": cfg.synth.blob_sizes, "yardstick_blob_sizes": law,
                       "command": " ".join(["python", "benchmarks/region_size.py", *argv]), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
