"""What ``--map-weight auto`` adds to a run's scorer fit: ``fit_scorer`` as ``sslad train`` ends it (the run's own
settings, the even join), timed, then the choice alone (``training.choose_map_weight``: the probe set rendered,
its two maps made, each candidate join's AUPRO) on that fitted scorer, timed; the same process, one after the other.

Usage: python benchmarks/map_weight_cost.py NAME RUN_DIR      (a run trained with ``score.map: both``)
Writes benchmarks/results/NAME.json: both times, their ratio, the choice and its probe AUPROs.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import torch
from common import load_run, name_and_run, save_record

from sslad.backends import make_renderer
from sslad.models import infer_images
from sslad.training import choose_map_weight, fit_scorer, render_synthetic_holdout


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__)) is None:
        return 2
    name, run_dir = args
    model, _, _, cfg, _, fit, holdout = load_run(run_dir)
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, map_weight=0.5))
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    t0 = time.perf_counter()
    scorer = fit_scorer(model, fit, holdout, cfg, renderer)
    fit_s = time.perf_counter() - t0
    s = cfg.score
    parts_of = functools.partial(infer_images, model, tile=s.tile, map_fn=scorer.parts_fn, precision=scorer.precision,
                                 overlap=s.tile_overlap, tile_pass=s.tile_pass, embed=False)
    t0 = time.perf_counter()
    synth = render_synthetic_holdout(holdout, renderer, cfg)  # rendered once by fit_scorer anyway: not the cost
    render_s = time.perf_counter() - t0
    views = synth.images[synth.labels == 0]
    t0 = time.perf_counter()
    weight, values = choose_map_weight(scorer, lambda x: parts_of(x).maps, views, cfg.train.seed, cfg.data.image_size)
    choose_s = time.perf_counter() - t0
    print(f"fit_scorer (even join) {fit_s:.1f} s; the auto choice {choose_s:.1f} s on {len(views)} views "
          f"({choose_s / fit_s:.2f} of the fit); weight {weight}, probe AUPRO {values}")
    save_record(name, {"name": name, "run_dir": str(run_dir), "fit_scorer_s": round(fit_s, 2),
                       "choose_map_weight_s": round(choose_s, 2), "synthetic_render_s": round(render_s, 2),
                       "choice_share_of_fit": round(choose_s / fit_s, 4), "probe_views": len(views),
                       "map_weight_chosen": weight, "probe_aupro": values})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
