"""Re-fit a finished run's scorer with this code (the network untouched) and evaluate it: what the run would
report had it been trained with this version's scoring (the auto image-score rule, the thresholds).

Usage:
    python benchmarks/refit_scorer.py NAME RUN_DIR [score.KEY=VALUE ...]   (e.g. score.tile=128)

``sslad rescore`` (``sslad.rescoring.rescore_run``: exactly the end of ``sslad train``, ``fit_scorer`` ->
``evaluate_set``, on the run's saved network) into ``RUN_DIR/refit/`` (``RUN_DIR/refit-KEY-VALUE`` with
overrides, replaced when there), its ``metrics.json`` recorded in ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import save_record

from sslad.rescoring import rescore_run


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all(a.startswith("score.") and "=" in a for a in argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    name, run_dir, overrides = argv[0], argv[1], dict(a[len("score."):].split("=", 1) for a in argv[2:])
    folder = "-".join(["refit", *(f"{k}-{v}" for k, v in overrides.items())])
    metrics = rescore_run(run_dir, Path(run_dir) / folder, overrides, device="cpu", overwrite=True,
                          log=lambda msg: print(msg, file=sys.stderr))
    save_record(name, {"name": name, "run_dir": str(run_dir), "score_overrides": overrides, "metrics": metrics})
    print(f"{name}: {metrics['image_score_chosen']} image AUROC {metrics['image_auroc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
