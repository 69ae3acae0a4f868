"""What the network's memory layout, or the inference precision, costs the scoring on a CPU: the end of
``sslad train`` (the scorer's fit on the fit and held-out images, the synthetic held-out set) and ``sslad eval``
(the test split), alternating in one process between

* ``--vary layout`` (the default): torch's default layout (NCHW, contiguous) and channels-last, fp32 both;
* ``--vary precision``: ``--inference-precision fp32`` and ``bf16``, channels-last both.

Usage: python benchmarks/inference_layout.py NAME RUN_DIR [--rounds 2] [--vary layout|precision]
Writes benchmarks/results/NAME.json: seconds per phase and setting (each round), the ratios (first setting over
second), the test metrics under each and the largest difference between their image scores (first 64 test images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import load_run, save_record

from sslad.backends import make_renderer
from sslad.detector import Detector
from sslad.evaluate import evaluate_set
from sslad.training import fit_scorer

#: Per --vary, the two settings compared: name -> (memory layout, inference precision); the first is the reference.
SETTINGS = {"layout": {"contiguous": (torch.contiguous_format, "fp32"), "channels_last": (torch.channels_last, "fp32")},
            "precision": {"fp32": (torch.channels_last, "fp32"), "bf16": (torch.channels_last, "bf16")}}
KEEP = ("image_auroc", "pixel_auroc", "aupro", "false_positive_rate")
SAMPLE = 64  # test images whose scores are compared between the layouts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("run_dir")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vary", choices=tuple(SETTINGS), default="layout")
    a = ap.parse_args()
    model, _, _, cfg, data, fit, holdout = load_run(a.run_dir)
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, torch.device("cpu"))
    settings = SETTINGS[a.vary]
    seconds = {k: {"fit": [], "eval": []} for k in settings}
    metrics, scores = {}, {}
    for _ in range(a.rounds):
        for name, (layout, precision) in settings.items():
            model.to(memory_format=layout)
            t0 = time.perf_counter()
            scorer = fit_scorer(model, fit, holdout, cfg.override(score={"inference_precision": precision}), renderer)
            t1 = time.perf_counter()
            detector = Detector(model, scorer, cfg.data.image_size)
            with tempfile.TemporaryDirectory() as tmp:
                m = evaluate_set(detector, data.test, Path(tmp))
            seconds[name]["fit"].append(round(t1 - t0, 2))
            seconds[name]["eval"].append(round(time.perf_counter() - t1, 2))
            scores[name] = detector.score(data.test.images[:SAMPLE]).scores  # untimed: the exact values
            metrics[name] = {k: m.get(k) for k in KEEP}
            print(f"{name:14s} fit {seconds[name]['fit'][-1]:7.1f} s  eval {seconds[name]['eval'][-1]:7.1f} s  "
                  f"{metrics[name]}", flush=True)
    ref, new = settings
    ratio = {phase: round(sum(seconds[ref][phase]) / sum(seconds[new][phase]), 3) for phase in ("fit", "eval")}
    both = {k: sum(v["fit"]) + sum(v["eval"]) for k, v in seconds.items()}
    ratio["fit+eval"] = round(both[ref] / both[new], 3)
    diff = float(np.max(np.abs(scores[ref] - scores[new])))
    print(f"{new} speed-up over {ref}: {ratio}; largest image-score difference {diff:.3g} "
          f"(largest score {float(np.max(np.abs(scores[ref]))):.3g})")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/inference_layout.py {a.name} {a.run_dir} "
                         f"--rounds {a.rounds} --vary {a.vary}", "run_dir": a.run_dir,
                         "image_size": cfg.data.image_size, "tile": cfg.score.tile, "whole_view": cfg.score.whole_view,
                         "settings": {k: [str(v[0]).replace("torch.", ""), v[1]] for k, v in settings.items()},
                         "threads": torch.get_num_threads(), "seconds": seconds, f"speedup_{new}": ratio,
                         "metrics": metrics, "max_abs_image_score_difference": diff,
                         "max_abs_image_score": float(np.max(np.abs(scores[ref])))})


if __name__ == "__main__":
    main()
