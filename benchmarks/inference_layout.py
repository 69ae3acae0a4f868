"""What the network's memory layout costs the scoring on a CPU: the end of ``sslad train`` (the scorer's fit on the
fit and held-out images, the synthetic held-out set) and ``sslad eval`` (the test split), with the network in
torch's default layout (NCHW, contiguous) and in channels-last, alternating in one process, fp32 both.

Usage: python benchmarks/inference_layout.py NAME RUN_DIR [--rounds 2]
Writes benchmarks/results/NAME.json: seconds per phase and layout (each round), the ratios, the test metrics under
each layout and the largest difference between the two layouts' image scores (first 64 test images).
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

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
KEEP = ("image_auroc", "pixel_auroc", "aupro", "false_positive_rate")
SAMPLE = 64  # test images whose scores are compared between the layouts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("run_dir")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    model, _, _, cfg, data, fit, holdout = load_run(a.run_dir)
    renderer = make_renderer(cfg.synth.backend, cfg.data.image_size, torch.device("cpu"))
    seconds = {k: {"fit": [], "eval": []} for k in LAYOUTS}
    metrics, scores = {}, {}
    for _ in range(a.rounds):
        for name, layout in LAYOUTS.items():
            model.to(memory_format=layout)
            t0 = time.perf_counter()
            scorer = fit_scorer(model, fit, holdout, cfg, renderer)
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
    ratio = {phase: round(sum(seconds["contiguous"][phase]) / sum(seconds["channels_last"][phase]), 3)
             for phase in ("fit", "eval")}
    both = {k: sum(v["fit"]) + sum(v["eval"]) for k, v in seconds.items()}
    ratio["fit+eval"] = round(both["contiguous"] / both["channels_last"], 3)
    diff = float(np.max(np.abs(scores["contiguous"] - scores["channels_last"])))
    print(f"channels-last speed-up: {ratio}; largest image-score difference {diff:.3g}")
    save_record(a.name, {"name": a.name, "command": f"python benchmarks/inference_layout.py {a.name} {a.run_dir} "
                         f"--rounds {a.rounds}", "run_dir": a.run_dir, "image_size": cfg.data.image_size,
                         "tile": cfg.score.tile, "whole_view": cfg.score.whole_view, "precision": "fp32",
                         "threads": torch.get_num_threads(), "seconds": seconds, "speedup_channels_last": ratio,
                         "metrics": metrics, "max_abs_image_score_difference": diff})


if __name__ == "__main__":
    main()
