"""What ``--map-layers auto`` costs: a finished run's scorer fitted with a fixed choice and with ``auto``,
alternating in one process (the same network, images and synthetic set), seconds and their ratio.

Usage:
    python benchmarks/map_layers_cost.py NAME RUN_DIR [--repeats 2]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from common import load_run, name_and_run, option, save_record

from sslad.backends import make_renderer
from sslad.training import fit_scorer


def main(argv: list[str]) -> int:
    if (args := name_and_run(argv, __doc__, options=True)) is None:
        return 2
    name, run_dir = args
    repeats = int(option(argv, "--repeats", "2"))
    model, _, _, cfg, _, fit, holdout = load_run(run_dir)
    renderer = make_renderer("torch", cfg.data.image_size, torch.device("cpu"))
    times: dict[str, list[float]] = {"2,3": [], "auto": []}
    chosen = {}
    for _ in range(repeats):
        for setting in times:
            t0 = time.perf_counter()
            scorer = fit_scorer(model, fit, holdout, cfg.override(score={"map_layers": setting}), renderer)
            times[setting].append(time.perf_counter() - t0)
            chosen[setting] = {"map_layers": list(scorer.map_layers), "synthetic": scorer.synthetic_map_auroc}
            print(f"{setting}: {times[setting][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name}: fixed 2,3 {med['2,3']:.1f} s, auto {med['auto']:.1f} s ({med['auto'] / med['2,3']:.2f}x)")
    save_record(name, {"name": name, "run_dir": str(run_dir), "seconds": times, "median_s": med,
                       "ratio_auto_to_fixed": med["auto"] / med["2,3"], "chosen": chosen, "fit_images": len(fit),
                       "holdout_images": len(holdout), "tile": cfg.score.tile, "image_size": cfg.data.image_size,
                       "command": " ".join(["python", "benchmarks/map_layers_cost.py", *argv])})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
