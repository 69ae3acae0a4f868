"""How should ``map: both`` join its two sources? The per-pixel head's map and the patch density's, each on its
held-out scale (what the scorer stores), joined several ways on the same network: an analysis, the stored scorer is
not refitted.

Usage: python benchmarks/map_joins.py NAME RUN_DIR [RUN_DIR ...]

Per run (trained with ``score.map: both``): both sources' maps of the test split, the held-out good images and the
run's synthetic held-out set (what ``sslad train`` renders for its label-free choices), made once; then each way of
joining them: ``seg`` and ``density`` alone, ``mean`` (what the scorer does), weighted means (``seg w``: w x seg +
(1 - w) x density), ``max`` (the larger of the two at each pixel) and ``rms`` (the root mean square of their positive
parts). Each is judged on the test labels (pixel AUROC, AUPRO, per type) and without them (``synthetic``: the pixel
AUROC on the synthetic held-out set); ``good_pixels_over``: the share of the test split's good images' pixels above
the 99.9 % quantile of the held-out good images' pixels of the same join (how calm a join keeps good parts; 0.1 % if
test and held-out good images were alike). ``benchmarks/map_combine.py`` is the older comparison, each source's
scorer refitted. ``probe_pixel_auroc`` and ``probe_aupro``: a second label-free yardstick, of anomalies no plan
renders and neither source trained on (``sslad.synth.probes``: blur, noise and shift inside soft blobs) on the
synthetic set's good views, those views unaltered beside them as good images; ``probe_aupro_by_family``: each
family's regions alone on that set's false-positive axis. Writes benchmarks/results/NAME.json.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import load_run, per_run_benchmark, pixel_row, test_masks

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.scoring.metrics import auroc
from sslad.synth.probes import FAMILIES, PROBE_SEED_OFFSET, probe_set
from sslad.training import render_synthetic_holdout

WEIGHTS = (0.25, 0.75)


def scaled_parts(model, scorer, images, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(seg, density): float (N, S, S) smoothed maps of each source, each on the scorer's held-out scale (median 0,
    99 % of the held-out maxima 1): what the scorer's ``combine_parts`` averages."""
    out = infer_images(model, images, tile=scorer.tile, map_fn=scorer.parts_fn, precision=scorer.precision,
                       overlap=scorer.tile_overlap, tile_pass=scorer.tile_pass, embed=False)
    scaled = scorer.scale_parts(out.maps)
    return scorer.maps(scaled[:, :1], size), scorer.maps(scaled[:, 1:], size)


def joins(seg: torch.Tensor, dens: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {"seg": seg, "density": dens, "mean": (seg + dens) / 2}
    out.update({f"seg {w}": w * seg + (1 - w) * dens for w in WEIGHTS})
    out["max"] = torch.maximum(seg, dens)
    out["rms"] = ((seg.clamp(min=0) ** 2 + dens.clamp(min=0) ** 2) / 2).sqrt()
    return out


def analyse(run_dir: str) -> dict:
    model, scorer, _, cfg, data, _, holdout = load_run(run_dir)
    if scorer.map_source != "both" or not scorer.map_scales:
        raise SystemExit(f"{run_dir}: trained with score.map {scorer.map_source!r}; this compares map: both's joins")
    size = cfg.data.image_size
    synth = render_synthetic_holdout(holdout, make_renderer("torch", size, "cpu"), cfg)
    test = joins(*scaled_parts(model, scorer, data.test.images, size))
    held = joins(*scaled_parts(model, scorer, holdout.images, size))
    made = joins(*scaled_parts(model, scorer, synth.images, size))
    good_views = synth.images[synth.labels == 0]
    probe_images, probe_masks = probe_set(good_views, cfg.train.seed + PROBE_SEED_OFFSET)
    probe_types = [t for t in ("good", *FAMILIES) for _ in good_views]
    probes = joins(*scaled_parts(model, scorer, probe_images, size))
    probe_masks = probe_masks.numpy()
    types, masks = test_masks(data, size)
    truth = synth.masks.numpy().ravel() > 0
    good = types == "good"
    rows = {}
    for k, maps in test.items():
        line = float(np.quantile(held[k].numpy(), 0.999))
        rows[k] = {**pixel_row(types, maps, masks), "synthetic": round(auroc(truth, made[k].numpy().ravel()), 5),
                   "good_pixels_over": round(float((maps.numpy()[good] > line).mean()), 5)}
        on_probes = pixel_row(probe_types, probes[k], probe_masks)
        rows[k].update({"probe_pixel_auroc": on_probes["pixel_auroc"], "probe_aupro": on_probes["aupro"],
                        "probe_aupro_by_family": on_probes["per_type_aupro"]})
        v = rows[k]
        print(f"{run_dir} {k:8s} pixel {100 * v['pixel_auroc']:.1f} AUPRO {100 * v['aupro']:.1f} synthetic "
              f"{100 * v['synthetic']:.1f} probes {100 * v['probe_pixel_auroc']:.1f} / {100 * v['probe_aupro']:.1f} "
              f"({', '.join(f'{f} {100 * a:.1f}' for f, a in v['probe_aupro_by_family'].items())}) "
              f"good pixels over the held-out 99.9 % {100 * v['good_pixels_over']:.2f} % " +
              " ".join(f"{t} {100 * a:.1f}" for t, a in v["per_type_pixel_auroc"].items()), flush=True)
    return {"run": run_dir, "joins": rows}


def main(argv: list[str]) -> int:
    return per_run_benchmark(argv, __doc__, "map_joins.py", analyse)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
