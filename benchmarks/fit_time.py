"""Time a finished run's scorer fit (``fit_scorer``, exactly the end of ``sslad train`` before the test split) with
this checkout's code, and save the fitted scorer's state: run it from two checkouts (``PYTHONPATH=<checkout>/src``)
to compare two versions' speed and check that they fit the same scorer.

Usage: python benchmarks/fit_time.py RUN_DIR STATE_OUT.pt [THREADS]
Prints the seconds and the thresholds; STATE_OUT.pt holds ``Scorer.state_dict()``.
"""

from __future__ import annotations

import sys
import time

import torch
from common import load_run

from sslad.backends import make_renderer
from sslad.training import fit_scorer


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(int(argv[2]) if len(argv) > 2 else 1)
    model, _, _, cfg, _, fit, holdout = load_run(argv[0])
    t0 = time.perf_counter()
    scorer = fit_scorer(model, fit, holdout, cfg, make_renderer("torch", cfg.data.image_size, torch.device("cpu")))
    seconds = time.perf_counter() - t0
    state = scorer.state_dict()
    torch.save(state, argv[1])
    print(f"fit_scorer {seconds:.1f} s, threshold {state['threshold']}, pixel threshold {state['pixel_threshold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
